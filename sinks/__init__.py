"""Stores for the ledger, deadlines, dead letters and the replayable event log."""

from __future__ import annotations

from sinks.base import Batch, Store, StoreError, StoreReader, StoreWriter
from sinks.memory import MemoryStore


def open_store(dsn: str, *, create: bool = True) -> Store:
    """`memory://` for tests, otherwise a ClickHouse DSN (chDB or server); `create=False` opens
    an existing store only, and raises StoreError when there is none."""
    if dsn.startswith("memory:"):
        return MemoryStore()
    from sinks.clickhouse import ClickHouseStore  # imported lazily: the driver is heavy

    return ClickHouseStore(dsn, create=create)


__all__ = [
    "Batch",
    "MemoryStore",
    "Store",
    "StoreError",
    "StoreReader",
    "StoreWriter",
    "open_store",
]
