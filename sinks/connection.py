"""Opening a ClickHouse connection through the driver (clickhouse-connect): a server, or the
embedded engine's directory for a writer; failures said once, in one line, without the
password (the parts that need no driver: sinks/store_open.py)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.dsn import mask
from sinks.errors import StoreError
from sinks.rows import QueryError, Result
from sinks.store_open import (
    engine_stderr,
    first_line,
    open_failed,
    require_embedded_store,
    split_dsn,
    without_arrow,
)

__all__ = ["DriverRows", "connect", "first_line", "require_embedded_store", "split_dsn"]


def connect(dsn: str) -> Client:
    base, _ = split_dsn(dsn)
    if not base.startswith(("chdb:", "http:", "https:")):
        raise StoreError(
            f"unsupported store DSN {mask(dsn)!r} (use chdb:///DIR or http(s)://HOST:PORT)"
        )
    driver = logging.getLogger("clickhouse_connect")
    level = driver.level
    # the driver logs its own line for a failed first request; the StoreError below says it once
    driver.setLevel(logging.ERROR)
    try:
        with engine_stderr(base.startswith("chdb:")) as said, without_arrow():
            client = clickhouse_connect.get_client(dsn=base)
        _without_dataframes()
        return client
    except Exception as exc:  # the driver raises several unrelated types for "cannot open"
        raise open_failed(exc, dsn, said) from None
    finally:
        driver.setLevel(level)


def _without_dataframes() -> None:
    """The driver's insert asks whether its rows are a pandas DataFrame or a numpy array, and
    asking imports pandas and numpy: 0.5 s or more of CPU at the first write of every process,
    a tenth of a small `tracker ingest`. This project inserts sequences of rows only and reads
    Python values (never the numpy or pandas formats, whose paths alone use these), so the
    driver is told there are none, unless something in this process has imported them."""
    from clickhouse_connect.driver import options

    if "pandas" not in sys.modules:
        options.pd = None
        options.pd_time_test = None
    if "numpy" not in sys.modules:
        options.np = None


class DriverRows:
    """sinks/rows.py's `Rows` through the driver: a ClickHouse server (or an embedded DSN with
    driver settings in it)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.client = connect(dsn)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> Result:
        try:
            result = self.client.query(sql, parameters=params)
        except ClickHouseError as exc:
            raise QueryError(first_line(exc, self.dsn)) from None
        rows = [tuple(r) for r in result.result_rows]
        # (an empty result may come without its column types)
        types = [t.name for t in result.column_types] if rows else []
        return Result(types, rows)

    def close(self) -> None:
        self.client.close()
