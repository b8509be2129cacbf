"""A writer's open of a ClickHouse store: its tables, columns and views made or brought up to date,
once per schema rather than once per process.

Making them is ~80 idempotent statements (CREATE ... IF NOT EXISTS, ALTER ... ADD COLUMN IF NOT
EXISTS, CREATE OR REPLACE VIEW), 0.5 to 1 s of every writing process's start on embedded chDB
(`tracker ingest` of a few lines, each CLI a test runs). After they all ran, the store's meta
records a digest of exactly those statements; a later open that finds the digest and every
table and view by name skips them. Any change to the statements (a new table, column or view,
this version's or another's) changes the digest, so they run again. The row is the store's own,
so it is not trusted alone: the names are read from the engine each time.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sinks.dashboard_views import VIEWS as DASHBOARD_VIEWS
from sinks.ddl import TABLES, VIEWS, statements

if TYPE_CHECKING:
    from sinks.clickhouse import ClickHouseStore

SCHEMA_KEY = "schema"


def ensure_schema(store: ClickHouseStore) -> None:
    from sinks.clickhouse_as_of import mark_history_missing

    made = statements(store.db)
    digest = hashlib.sha256("\n;\n".join(made).encode()).hexdigest()
    if _is_current(store, digest):
        return
    mark_history_missing(store)
    for sql in made:
        store._command(sql)
    store._insert("meta", ["key", "value", "saved_at"], [[SCHEMA_KEY, digest, datetime.now(UTC)]])


def _is_current(store: ClickHouseStore, digest: str) -> bool:
    if not {*TABLES, *VIEWS, *DASHBOARD_VIEWS} <= store._table_names():
        return False
    rows = store._query(
        f"SELECT value FROM {store.db}.meta FINAL WHERE key = {{k:String}}", {"k": SCHEMA_KEY}
    )
    return bool(rows) and rows[0][0] == digest
