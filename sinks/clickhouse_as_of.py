"""The ClickHouse store as of an instant of event time: sinks/as_of.py's cut, in SQL.

A one-unit answer reads that unit's rows only (the ledger and both history tables are ordered by
unit first), so it costs the same on a store of any size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from schemas.ledger import DeadlineState, LedgerEntry
from sinks.base import HISTORY_MISSING, HistoryMissingError
from sinks.clickhouse_rows import (
    DEADLINE_COLS,
    LEDGER_COLS,
    deadline_state,
    ledger_entry,
    stored_points,
)
from sinks.clickhouse_sql import (
    AT,
    HISTORY_KEY,
    HISTORY_TABLES,
    STATE_SHOWN,
    millis,
    shown_entries,
    unit_year_filter,
)

if TYPE_CHECKING:
    from sinks.clickhouse import ClickHouseStore


def mark_history_missing(store: ClickHouseStore) -> None:
    """Before a writer makes the history tables in a store that has events already: record that
    its outputs so far have no history (a store made with the tables needs no mark), so that an
    as-of read of it is refused rather than answered wrongly."""
    names = store._table_names()
    if not {"events", "meta"} <= names or set(HISTORY_TABLES) <= names:
        return
    if not store._query(f"SELECT count() FROM {store.db}.events")[0][0]:
        return
    marked = store._query(
        f"SELECT 1 FROM {store.db}.meta WHERE key = {{k:String}}", {"k": HISTORY_KEY}
    )
    if not marked:  # else marked by an open that stopped before making the tables: keep it
        now = datetime.now(UTC)
        store._insert("meta", ["key", "value", "saved_at"], [[HISTORY_KEY, "missing", now]])


@dataclass(frozen=True)
class ClickHouseAsOf:
    store: ClickHouseStore
    at: datetime

    @classmethod
    def open(cls, store: ClickHouseStore, at: datetime) -> ClickHouseAsOf:
        names = store._table_names()
        marked = store._query(
            f"SELECT value FROM {store.db}.meta FINAL WHERE key = {{k:String}}",
            {"k": HISTORY_KEY},
        )
        if not set(HISTORY_TABLES) <= names or (marked and marked[0][0] == "missing"):
            raise HistoryMissingError(HISTORY_MISSING)
        return cls(store, at)

    def _params(self, unit: str | None, year: int | None) -> tuple[str, dict[str, Any]]:
        where, params = unit_year_filter(unit, year)
        params["t"] = millis(self.at)
        return where, params

    def _shown_entries(self, columns: str, unit: str | None, year: int | None) -> tuple[str, Any]:
        where, params = self._params(unit, year)
        return shown_entries(self.store.db, columns, where), params

    def ledger(self, unit: str | None = None, year: int | None = None) -> list[LedgerEntry]:
        sql, params = self._shown_entries(", ".join(f"l.{c}" for c in LEDGER_COLS), unit, year)
        rows = self.store._query(f"{sql} ORDER BY l.unit, l.year, l.seq", params)
        entries = [ledger_entry(dict(zip(LEDGER_COLS, r, strict=True))) for r in rows]
        ids = {e.entry_id for e in entries}
        # a reversal shows only with the entry it reverses (sinks/as_of.py `cut_ledger`)
        return [e for e in entries if e.reverses is None or e.reverses in ids]

    def totals(
        self, unit: str | None = None, year: int | None = None
    ) -> dict[tuple[str, int, str], Decimal]:
        columns = (
            "l.entry_id AS id, l.unit AS u, l.year AS y, l.indicator AS i, "
            "l.applied AS applied, l.reverses AS reverses"
        )
        sql, params = self._shown_entries(columns, unit, year)
        rows = self.store._query(
            f"WITH shown AS ({sql}) SELECT u, y, i, sum(applied) FROM shown "
            "WHERE reverses IS NULL OR reverses IN (SELECT id FROM shown) GROUP BY u, y, i",
            params,
        )
        return {(str(u), int(y), str(i)): stored_points(s) for u, y, i, s in rows}

    def deadlines(self, unit: str | None = None, year: int | None = None) -> list[DeadlineState]:
        where, params = self._params(unit, year)
        rows = self.store._query(
            f"SELECT {', '.join(DEADLINE_COLS)} FROM {self.store.db}.deadline_history "
            f"{where or 'WHERE 1'} AND {STATE_SHOWN} "
            "ORDER BY unit, kind, ref, version DESC LIMIT 1 BY unit, kind, ref",
            params,
        )
        return [deadline_state(dict(zip(DEADLINE_COLS, r, strict=True))) for r in rows]

    def event_unit_years(
        self, unit: str | None = None, year: int | None = None
    ) -> set[tuple[str, int]]:
        where, params = self._params(unit, year)
        rows = self.store._query(
            f"SELECT DISTINCT unit, year FROM {self.store.db}.events "
            f"{where or 'WHERE 1'} AND unit != '' AND at <= {AT}",
            params,
        )
        return {(str(u), int(y)) for u, y in rows}
