"""Opening the store for reading never creates one (issue 7 item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.base import StoreError
from sinks.clickhouse import ClickHouseStore, connect, split_dsn


def _databases(dsn: str) -> set[str]:
    client = connect(dsn)
    try:
        return {r[0] for r in client.query("SELECT name FROM system.databases").result_rows}
    finally:
        client.close()


def test_a_missing_database_is_an_error_and_is_not_created(chdb_dsn: str) -> None:
    """What a server DSN does (the embedded engine stands in for the server: same queries)."""
    _, database = split_dsn(chdb_dsn)
    client = connect(chdb_dsn)
    try:
        with pytest.raises(StoreError, match=f"no store at .*database {database!r} does not exist"):
            ClickHouseStore(chdb_dsn, client=client, create=False)
    finally:
        client.close()
    assert database not in _databases(chdb_dsn)


def test_a_database_without_the_tables_is_not_a_store(chdb_dsn: str) -> None:
    _, database = split_dsn(chdb_dsn)
    client = connect(chdb_dsn)
    try:
        client.command(f"CREATE DATABASE {database}")
        with pytest.raises(StoreError, match="holds no tracker store"):
            ClickHouseStore(chdb_dsn, client=client, create=False)
        tables = client.query(f"SELECT name FROM system.tables WHERE database = '{database}'")
        assert tables.result_rows == []
    finally:
        client.close()


def test_an_existing_store_opens_for_reading(chdb_dsn: str) -> None:
    ClickHouseStore(chdb_dsn).close()
    sink = ClickHouseStore(chdb_dsn, create=False)
    try:
        assert sink.load_config() is None and sink.ledger() == []
    finally:
        sink.close()


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        (None, "does not exist"),  # no directory at all
        ([], "holds no tracker store"),  # an empty directory
        (["etc/passwd"], "holds no tracker store"),  # some folder with files
        (["metadata/other.sql"], "holds no tracker store"),  # a chDB store, another database
    ],
)
def test_embedded_store_checked_before_the_engine_starts(
    tmp_path: Path, layout: list[str] | None, why: str
) -> None:
    """The embedded engine would create its directories on start: the check comes first, so
    these never reach chDB (this process has its own chDB path already)."""
    root = tmp_path / "store"
    if layout is not None:
        root.mkdir()
        for name in layout:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(StoreError, match=f"no store at chdb://.*: .*{why}"):
        ClickHouseStore(f"chdb://{root}", create=False)
    assert sorted(tmp_path.rglob("*")) == before
