"""The store's errors, in a module of their own: the light read path (sinks/clickhouse_status.py)
raises them without importing the contract models that sinks/base.py needs."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The store cannot be reached or used; the message is one line for the user."""


HISTORY_MISSING = (
    "this store was made before --as-of existed (issue 11) and keeps no history of what it "
    "showed before then, so it cannot answer as of an instant; ingest the same events into a "
    "new store (tracker ingest), which can"
)


class HistoryMissingError(StoreError):
    """The store cannot answer as of an instant: it holds no history of its older outputs."""
