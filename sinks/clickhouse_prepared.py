"""A write made ready on one thread and stored on another (issue 12 item 3; BENCHMARKS.md, "The
live worker's write, prepared").

A live worker's write of an embedded store had two halves, both on the store's thread: the
interpreter's (the rows, their columns, the driver's Native blocks) and the engine's (chDB
inserting the blocks, which lets go of the interpreter). The worker started the write only once
its next batch was applied, so every write ran after an apply rather than beside one; started at
once, its interpreter half fought the apply for the interpreter and the write took 2-3x as long.
Now the worker makes the blocks itself, on the event loop's thread, right after a batch is
applied (`ClickHouseStore.prepare`), and hands the store's thread only the inserts of those
bytes (`ClickHouseStore.write_prepared`), which run while the next batch is applied.

The blocks are the driver's own (its insert context and Native serializer, as `client.insert`
makes them), in `write`'s order, so the rows stored are the same bytes either way; the test
tests/integration/test_prepared_write.py compares the stored tables of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform

from sinks.clickhouse_columns import as_columns


@dataclass(frozen=True, slots=True)
class PreparedInsert:
    table: str  # unqualified: the store adds its database
    columns: tuple[str, ...]
    block: bytes  # the rows in ClickHouse's Native format


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A batch's inserts, in the crash-safe order of `ClickHouseStore.write` (sinks/base.py)."""

    inserts: tuple[PreparedInsert, ...]
    deadlines: bool  # whether it writes deadlines (the store's documents are then due)


def native_block(
    table: str, columns: Sequence[str], types: Sequence[Any], rows: Sequence[Sequence[Any]]
) -> bytes:
    """`rows` as the uncompressed Native block the driver's `insert` would send for them."""
    data = as_columns(rows, types)
    context = InsertContext(table, list(columns), types, data=data, column_oriented=True)
    try:
        chunks = list(NativeTransform.build_insert(context))
        if context.insert_exception is not None:  # a value its column's type cannot hold
            raise context.insert_exception
    finally:
        # The context refers to itself (a bound method of its own): only the cyclic collector
        # would free it and the columns with it (see ClickHouseStore._insert).
        data.clear()
    # The first chunk starts with the statement the driver posts to a server ("INSERT INTO
    # ... FORMAT Native" and a newline; no name of ours holds one): the block follows it.
    first = chunks[0]
    chunks[0] = first[first.index(b"\n") + 1 :]
    return b"".join(chunks)
