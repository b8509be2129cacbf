"""Stores for the ledger, deadlines, dead letters and the replayable event log."""

from __future__ import annotations

from sinks.base import Batch, Sink, Store, StoreError
from sinks.memory import MemorySink


def open_sink(dsn: str, *, create: bool = True) -> Store:
    """`memory://` for tests, otherwise a ClickHouse DSN (chDB or server); `create=False` opens
    an existing store only, and raises StoreError when there is none."""
    if dsn.startswith("memory:"):
        return MemorySink()
    from sinks.clickhouse import ClickHouseSink  # imported lazily: the driver is heavy

    return ClickHouseSink(dsn, create=create)


__all__ = ["Batch", "MemorySink", "Sink", "Store", "StoreError", "open_sink"]
