"""Shared fixtures: a real embedded ClickHouse (chDB) with a fresh database per test.

chDB allows one engine path per process, so the session shares one path and every test gets its
own database, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sinks import MemoryStore, Store

# The test brokers live for a few seconds of traffic each: the JIT's first tier only starts them
# in ~60% of the CPU (streams/broker_jvm.py). Benchmarks and `tracker kafka start` keep the
# default.
os.environ.setdefault("TRACKER_KAFKA_JVM_OPTS", "-XX:TieredStopAtLevel=1")


@pytest.fixture(scope="session", autouse=True)
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One Ed25519 key for the session's writers (config/signing.py), so that no test makes one
    in the working directory's data dir; child processes inherit it through the environment."""
    import os

    from config.signing import make_key_file

    path = tmp_path_factory.mktemp("keys") / "signing.key"
    make_key_file(path)
    before = os.environ.get("TRACKER_SIGNING_KEY")
    os.environ["TRACKER_SIGNING_KEY"] = str(path)
    yield path
    if before is None:
        os.environ.pop("TRACKER_SIGNING_KEY", None)
    else:
        os.environ["TRACKER_SIGNING_KEY"] = before


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def chdb_dsn(chdb_path: Path) -> Iterator[str]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    dsn = f"chdb://{chdb_path}?database={database}"
    yield dsn
    from sinks.clickhouse import connect

    client = connect(dsn)
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client.close()


@pytest.fixture(params=["memory", "clickhouse"])
def sink(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from sinks.clickhouse import ClickHouseStore

    store = ClickHouseStore(request.getfixturevalue("chdb_dsn"))
    yield store
    store.close()


@pytest.fixture(params=["memory", "clickhouse"])
def new_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """Makes any number of fresh, empty stores of one kind (each chDB one in its own database)."""
    made: list[Store] = []

    def new() -> Store:
        if request.param == "memory":
            store: Store = MemoryStore()
        else:
            from sinks.clickhouse import ClickHouseStore

            path = request.getfixturevalue("chdb_path")
            store = ClickHouseStore(f"chdb://{path}?database=t_{uuid.uuid4().hex[:12]}")
        made.append(store)
        return store

    yield new
    for store in made:
        if hasattr(store, "db"):
            store.client.command(f"DROP DATABASE IF EXISTS {store.db}")
        store.close()
