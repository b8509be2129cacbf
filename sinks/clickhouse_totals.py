"""Totals kept as the ledger and the event log are written (issue 12 item 4), so that `tracker
status` for every unit reads a few thousand rows rather than summing the ledger with FINAL and
grouping the whole event log (docs/ingest.md, "Kept totals").

`write` stores each kept table right after the table it is derived from, in the same batch, and
every row is keyed so that writing it again replaces it rather than adds to it: any batch may be
written again, whole or from any of its tables on (sinks/base.py: crash recovery, redelivery,
two writers). A SummingMergeTree fed by the ledger's inserts would count such a rewrite twice.

- ledger_points: each entry that moves points (applied != 0), keyed by its id as the ledger is.
  An entry id names one entry (engine/caps.py derives it from its claim and the claim's
  version; the hash chain covers it), so the same entry written again is the same row. And one
  row (entry_id '', 0) per (unit, year, indicator) with entries, so the sums have the keys the
  ledger's own `GROUP BY` has.
- unit_years: per unit and year, its earliest event (an AggregatingMergeTree of `min`: the same
  events written again leave the minimum as it was).

A store made before these tables gets them on its first writer's open, which fills them from the
ledger (FINAL) and the event log and then marks the store (meta TOTALS_KEY); until it is marked,
every reader reads the ledger and the event log themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from schemas.ledger import LedgerEntry, LoggedEvent
from sinks.clickhouse_rows import stored_points, unit_year_filter
from sinks.clickhouse_sql import KEPT, TOTALS_KEY, kept_totals, kept_unit_years

if TYPE_CHECKING:
    from sinks.clickhouse import ClickHouseStore

ZERO = Decimal(0)
POINTS_COLS = ["unit", "year", "indicator", "entry_id", "applied"]
UNIT_YEAR_COLS = ["unit", "year", "first_at"]
_POINTS_ROW = attrgetter(*POINTS_COLS)
_POINTS_KEY = attrgetter("unit", "year", "indicator")
_APPLIED = attrgetter("applied")


def points_rows(entries: Iterable[LedgerEntry]) -> list[tuple[Any, ...]]:
    """The ledger_points rows of a batch's entries."""
    entries = list(entries)
    # built in C where it can be (attrgetter): a batch's entries are ~half its records
    rows: list[tuple[Any, ...]] = list(map(_POINTS_ROW, filter(_APPLIED, entries)))
    rows.extend((u, y, i, "", ZERO) for u, y, i in set(map(_POINTS_KEY, entries)))
    return rows


def unit_year_rows(events: Iterable[LoggedEvent]) -> list[tuple[Any, ...]]:
    """The unit_years rows of a batch's events: one per unit-year, its earliest event (a tick,
    of no unit, has none)."""
    first: dict[tuple[str, int], datetime] = {}
    for e in events:
        if e.unit:
            key = (e.unit, e.year)
            at = first.get(key)
            if at is None or e.at < at:
                first[key] = e.at
    return [(u, y, at) for (u, y), at in first.items()]


def keep_totals(store: ClickHouseStore) -> None:
    """On a writer's open: fill the kept tables of a store made before them, then mark it. The
    fill writes what `write` would have (the same keys): a writer writing meanwhile, or an open
    that stopped half-way and runs again, changes nothing."""
    db = store.db
    if is_kept(store):
        return
    store._command(
        f"INSERT INTO {db}.ledger_points ({', '.join(POINTS_COLS)}) "
        f"SELECT unit, year, indicator, entry_id, applied FROM {db}.ledger FINAL "
        "WHERE applied != 0"
    )
    store._command(
        f"INSERT INTO {db}.ledger_points ({', '.join(POINTS_COLS)}) "
        f"SELECT unit, year, indicator, '', 0 FROM {db}.ledger GROUP BY unit, year, indicator"
    )
    store._command(
        f"INSERT INTO {db}.unit_years ({', '.join(UNIT_YEAR_COLS)}) "
        f"SELECT unit, year, min(at) FROM {db}.events WHERE unit != '' GROUP BY unit, year"
    )
    store._insert("meta", ["key", "value", "saved_at"], [[TOTALS_KEY, KEPT, datetime.now(UTC)]])


def is_kept(store: ClickHouseStore) -> bool:
    """Whether the store's kept tables are complete: marked by a writer that made them so."""
    rows = store._query(
        f"SELECT value FROM {store.db}.meta FINAL WHERE key = {{k:String}}", {"k": TOTALS_KEY}
    )
    return bool(rows) and rows[0][0] == KEPT


def read_totals(store: ClickHouseStore, kept: bool) -> dict[tuple[str, int, str], Decimal]:
    """The points deducted per unit, year and indicator: from ledger_points when `kept`, else
    from the ledger (the same sums and keys)."""
    sql = (
        kept_totals(store.db, "")
        if kept
        else (
            f"SELECT unit, year, indicator, sum(applied) FROM {store.db}.ledger FINAL "
            "GROUP BY unit, year, indicator"
        )
    )
    return {(str(u), int(y), str(i)): stored_points(s) for u, y, i, s in store._query(sql)}


def read_unit_years(store: ClickHouseStore, kept: bool) -> set[tuple[str, int]]:
    """The unit-years of the event log: from unit_years when `kept`, else from the log."""
    sql = (
        kept_unit_years(store.db, unit_year_filter(None, None)[0], as_of=False)
        if kept
        else f"SELECT DISTINCT unit, year FROM {store.db}.events WHERE unit != ''"
    )
    return {(str(u), int(y)) for u, y in store._query(sql)}
