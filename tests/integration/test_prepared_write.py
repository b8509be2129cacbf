"""A prepared write (sinks/clickhouse_prepared.py: the blocks made on the caller's thread, the
inserts on the store's) stores what `write` stores, byte for byte, through the same inserts in
the same order (real chDB, read back)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sinks import Batch
from sinks import clickhouse as clickhouse_module
from sinks.base import UnmadeEvents
from sinks.clickhouse import ClickHouseStore, connect
from sinks.ddl import TABLES
from tests.integration.test_sink_contract import _fill
from tests.integration.test_store_columns import _batches, _dump, two_stores


class PreparedStore(ClickHouseStore):
    """Writes each batch as the live worker does: prepared, then its inserts."""

    prepared = 0

    def write(self, batch: Batch) -> None:
        ready = self.prepare(batch)
        assert ready is not None, "an embedded store prepares every write"
        self.prepared += 1
        self.write_prepared(ready)


@pytest.fixture
def stores(chdb_dsn: str) -> Iterator[tuple[PreparedStore, ClickHouseStore]]:
    yield from two_stores(chdb_dsn, PreparedStore, ClickHouseStore, "whole")


def test_a_prepared_write_stores_what_a_write_stores(
    stores: tuple[PreparedStore, ClickHouseStore],
) -> None:
    prepared, whole = stores
    for store in stores:
        _fill(store)  # the contract's stream: every table of a write, the first write too
        for batch in _batches():  # instants of every kind: ticked here, or by the driver
            store.write(batch)
    assert prepared.prepared == 1 + len(list(_batches()))
    for table in TABLES:
        assert _dump(prepared, table) == _dump(whole, table), table
    assert prepared.deadlines() == whole.deadlines()  # the `then` table: the same block twice


def test_a_prepared_write_makes_the_same_inserts_in_the_same_order(
    stores: tuple[PreparedStore, ClickHouseStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash drill counts a write's inserts (sinks/faulty.py): a kill before any of them
    leaves the store as a kill of a whole write would."""
    inserts: dict[str, list[str]] = {"prepared": [], "whole": []}
    for name, store in zip(inserts, stores, strict=True):
        monkeypatch.setattr(clickhouse_module, "before_write", inserts[name].append)
        _fill(store)
    assert inserts["prepared"] == inserts["whole"]  # the registry's, then the write's
    write = inserts["whole"][inserts["whole"].index("dead_letters") :]
    assert write[:3] == ["dead_letters", "events", "unit_years"]
    assert write[-1] == "batches"  # the commit mark last
    assert {"ledger", "deadline_history", "deadlines", "chain_heads"} <= set(write)


def test_what_only_a_whole_write_writes(chdb_dsn: str) -> None:
    store = ClickHouseStore(chdb_dsn)
    try:
        # a writer process's events, whose rows the writer makes (sinks/writer_process.py)
        unmade = Batch(unmade=UnmadeEvents(partition=0, previous="", fields=[], signer=None))
        assert store.prepare(unmade) is None
        assert store.prepare(Batch()) is not None  # nothing to insert: a write of nothing
        # a store given its client (a server's, or a writer process's): written whole
        given = ClickHouseStore(chdb_dsn, client=connect(chdb_dsn))
        try:
            assert given.prepare(Batch()) is None
        finally:
            given.close()
    finally:
        store.close()
