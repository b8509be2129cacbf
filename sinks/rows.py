"""A store's rows as tuples, with their column types: the port the light status read
(sinks/clickhouse_status.py) queries through, and its two adapters.

- An embedded store (`chdb:///DIR?database=NAME`) is read through chDB's own Python API
  (sinks/chdb_rows.py), without importing the driver: clickhouse-connect's import and its
  connection handshake are ~0.2-0.3 s of CPU, a quarter of `tracker status` on a 1M-event store
  (BENCHMARKS.md, "As-of status"). Read only: writers keep the driver.
- A server, or an embedded DSN with driver settings in it, is read through the driver
  (sinks/connection.py `DriverRows`).

Both give the same SQL's answer as the same Python values (str, int, Decimal, None): the
shared tests run one set of queries through both against the real engine
(tests/integration/test_rows.py). The values are the store's, so untrusted: the caller checks
the column types (`Result.types`) and what the values mean.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol
from urllib.parse import urlparse

from sinks.dsn import chdb_location
from sinks.errors import StoreError
from sinks.store_open import split_dsn


class QueryError(StoreError):
    """The store refused or failed a query (its message's first line, the password masked)."""


class Result(NamedTuple):
    types: list[str]  # each column's ClickHouse type name; empty for a result without rows
    rows: list[tuple[Any, ...]]


class Rows(Protocol):
    def query(self, sql: str, params: dict[str, Any] | None = None) -> Result: ...

    def close(self) -> None: ...


def embedded(dsn: str) -> bool:
    """Whether `dsn` is an embedded store's directory with nothing but its database named: read
    through chDB itself (any other parameter is a driver setting, which only the driver reads)."""
    return chdb_location(dsn) is not None and not urlparse(split_dsn(dsn)[0]).query


def open_rows(dsn: str) -> Rows:
    """The store's rows, through chDB's own API for an embedded store, else through the driver."""
    if embedded(dsn):
        from sinks.chdb_rows import EmbeddedRows

        return EmbeddedRows(dsn)
    from sinks.connection import DriverRows

    return DriverRows(dsn)
