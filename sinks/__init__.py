"""Stores for the ledger, deadlines, dead letters and the replayable event log.

The names below load on first use (PEP 562): importing a light module such as `sinks.dsn` or
`sinks.clickhouse_status` must not pull in the contract models and the in-memory store, which
the read path of `tracker status` does not need (tests/unit/test_cli_start.py).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sinks.base import Batch, Store, StoreError, StoreReader, StoreWriter
    from sinks.memory import MemoryStore


def open_store(
    dsn: str,
    *,
    create: bool = True,
    writer: str = "inline",
    idle: Callable[[], bool] | None = None,
) -> Store:
    """`memory://` for tests, otherwise a ClickHouse DSN (chDB or server); `create=False` opens
    an existing store only, and raises StoreError when there is none. `writer="process"` runs
    an embedded (chDB) store's driver in a child process (sinks/writer_process.py); any other
    store, and `"inline"`, in this process. `idle`: work of the caller's that a writer process's
    client does, a piece a call, while it waits for the child (`WriterClient.idle`)."""
    if dsn.startswith("memory:"):
        from sinks.memory import MemoryStore

        return MemoryStore()
    from sinks.clickhouse import ClickHouseStore  # imported lazily: the driver is heavy

    if writer == "process" and create and dsn.startswith("chdb:"):
        from sinks.writer_process import WriterClient

        client = WriterClient(dsn, idle)
        try:
            return ClickHouseStore(dsn, client=client)  # type: ignore[arg-type]
        except BaseException:
            with suppress(Exception):  # the open's own error is the one to say
                client.close()
            raise
    return ClickHouseStore(dsn, create=create)


_LAZY = {
    "Batch": "sinks.base",
    "Store": "sinks.base",
    "StoreError": "sinks.errors",
    "StoreReader": "sinks.base",
    "StoreWriter": "sinks.base",
    "MemoryStore": "sinks.memory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sinks' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)


__all__ = [
    "Batch",
    "MemoryStore",
    "Store",
    "StoreError",
    "StoreReader",
    "StoreWriter",
    "open_store",
]
