"""The store inserts columns with its instants already as ticks (sinks/clickhouse_columns.py): what
it stores is byte for byte what the driver's row inserts stored (real chDB, read back)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from engine.clock import SHANGHAI, local
from schemas.ledger import DeadLetter, EntrySeen
from sinks import Batch
from sinks.clickhouse import ClickHouseStore
from sinks.ddl import TABLES
from tests.integration.test_sink_contract import _fill

# written with the wall clock (`now`) or the store's own random id: not the batch's
NOT_THE_BATCHES = {
    "meta": "saved_at, value",
    "batches": "written_at",
    "registry_changes": "changed_at",
    **dict.fromkeys(["units", "indicators", "items"], "saved_at"),
}
WEST = timezone(timedelta(hours=-5))


class RowStore(ClickHouseStore):
    """The store as it inserted before: row tuples, the driver converting every value."""

    def _insert(
        self,
        table: str,
        columns: list[str],
        rows: Sequence[Sequence[Any]],
        *,
        then: str | None = None,
    ) -> None:
        for name in (table,) if then is None else (table, then):
            if rows:
                self.client.insert(
                    f"{self.db}.{name}", [list(r) for r in rows], column_names=columns
                )


First = TypeVar("First", bound=ClickHouseStore)
Second = TypeVar("Second", bound=ClickHouseStore)


def two_stores(
    chdb_dsn: str, first: type[First], second: type[Second], name: str
) -> Iterator[tuple[First, Second]]:
    """`first` on the test's database, `second` on database `name`_ of it beside it (chDB opens
    one directory a process), dropped after the test."""
    one, two = first(chdb_dsn), second(chdb_dsn.replace("database=", f"database={name}_"))
    yield one, two
    two.client.command(f"DROP DATABASE IF EXISTS {two.db}")
    two.close()
    one.close()


@pytest.fixture
def stores(chdb_dsn: str) -> Iterator[tuple[ClickHouseStore, RowStore]]:
    yield from two_stores(chdb_dsn, ClickHouseStore, RowStore, "rows")


def _letters(name: str, instants: list[datetime]) -> list[DeadLetter]:
    return [
        DeadLetter(
            letter_id=f"{name}{n}",
            origin=f"f:{n}",
            raw="{",
            reason="malformed JSON",
            posted_by="unit:fz",
            received_at=at,
        )
        for n, at in enumerate(instants)
    ]


EDGES = [
    datetime(1970, 1, 1, 7, 59, 59, 999_999, tzinfo=SHANGHAI),  # just before the epoch
    datetime(1960, 6, 30, 12, 0, 0, 500, tzinfo=SHANGHAI),  # before it: floors down
    datetime(1900, 1, 1, 0, 0, tzinfo=SHANGHAI),  # DateTime64's first day
    datetime(2299, 12, 31, 23, 59, 59, 999_999, tzinfo=SHANGHAI),  # its last instant
    datetime(2024, 2, 29, 23, 59, 59, 999_500, tzinfo=SHANGHAI),  # sub-millisecond
]


def _batches() -> Iterator[Batch]:
    yield Batch(dead_letters=_letters("edge", EDGES))  # one zone: ticked here
    yield Batch(dead_letters=_letters("west", [e.astimezone(WEST) for e in EDGES]))
    yield Batch(dead_letters=_letters("mixed", [EDGES[0], EDGES[1].astimezone(WEST)]))  # driver's
    # most of them repeats, as a batch's receipts are: each distinct instant ticked once
    yield Batch(
        seen=[
            EntrySeen(
                entry_id=f"e{n}", unit="fz", year=2018, seen_at=EDGES[n % 2], after=n % 3 == 0
            )
            for n in range(300)
        ]
    )


def _dump(store: ClickHouseStore, table: str) -> bytes:
    skip = NOT_THE_BATCHES.get(table)
    columns = f"* EXCEPT ({skip})" if skip else "*"
    return store.client.raw_query(
        f"SELECT {columns} FROM {store.db}.{table} ORDER BY ALL", fmt="RowBinaryWithNamesAndTypes"
    )


def test_what_the_store_writes_is_what_the_row_inserts_wrote(
    stores: tuple[ClickHouseStore, ClickHouseStore],
) -> None:
    new, old = stores
    for store in stores:
        _fill(store)  # the contract's stream: every table of a write
        for batch in _batches():
            store.write(batch)
    assert local(new.dead_letters()[0].received_at) == EDGES[2]  # read back as written
    for table in TABLES:
        assert _dump(new, table) == _dump(old, table), table
    assert len(new.dead_letters()) == 1 + 5 + 5 + 2  # the contract's letter and these
