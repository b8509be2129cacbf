"""SQL the ClickHouse store's readers share, in a module that imports nothing heavy: the full
store (sinks/clickhouse_reads.py, clickhouse_as_of.py) and the light status read
(sinks/clickhouse_status.py) build the same queries from it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

HISTORY_TABLES = ("ledger_seen", "deadline_history")
HISTORY_KEY = "as_of_history"  # meta key; "missing": the store had events before the tables
# meta key; KEPT: every write since the store was made, or since a writer filled the tables from
# the ledger and the event log (sinks/clickhouse_totals.py), kept ledger_points and unit_years.
# A store without it is read from the ledger and the event log themselves.
TOTALS_KEY = "kept_totals"
KEPT = "kept"

# An output's instant against the as-of instant {t} (sinks/as_of.py `shown`): a ledger entry at
# its effective_at unless ledger_seen says otherwise; a deadline state at its updated_at, the
# clock's own `overdue` (dated at the due instant) only strictly after it.
AT = "fromUnixTimestamp64Milli({t:Int64}, 'Asia/Shanghai')"
ENTRY_SHOWN = (
    f"if(s.entry_id = '', l.effective_at <= {AT}, "
    f"s.seen_at < {AT} OR (s.seen_at = {AT} AND NOT s.after))"
)
STATE_SHOWN = (
    f"noticed_at <= {AT} AND (updated_at < {AT} OR (updated_at = {AT} "
    "AND NOT (status = 'overdue' AND updated_at = due)))"
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def millis(at: datetime) -> int:
    """The instant in whole milliseconds since the epoch, the store's resolution (floored; the
    CLI refuses an as-of instant with finer digits: tracker/options.py)."""
    delta = at - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def unit_year_filter(unit: str | None, year: int | None) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if unit is not None:
        clauses.append("unit = {unit:String}")
        params["unit"] = unit
    if year is not None:
        clauses.append("year = {year:UInt16}")
        params["year"] = year
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def shown_entries(db: str, columns: str, where: str) -> str:
    """The ledger rows (`l`, with `s` their ledger_seen row) shown at {t}, filtered by `where`
    (a `unit_year_filter`); a reversal whose entry is not shown is left to the caller."""
    inner = where.replace("unit =", "l.unit =").replace("year =", "l.year =")
    return (
        f"SELECT {columns} FROM {db}.ledger AS l FINAL "
        "LEFT JOIN (SELECT entry_id, seen_at, after "
        f"FROM {db}.ledger_seen FINAL {where}) AS s ON s.entry_id = l.entry_id "
        f"{inner or 'WHERE 1'} AND {ENTRY_SHOWN}"
    )


def iso_text(column: str) -> str:
    """`column` (a DateTime64(3)) as engine.clock.iso writes it: the +08:00 wall time, to the
    second, then `.fff000` only when the milliseconds are not zero (datetime.isoformat). The
    fixed zone Etc/GMT-8 is +08:00 always, as engine.clock.SHANGHAI is."""
    ms = f"positiveModulo(toUnixTimestamp64Milli({column}), 1000)"
    return (
        f"concat(formatDateTime({column}, '%Y-%m-%dT%H:%i:%S', 'Etc/GMT-8'), "
        f"if({ms} = 0, '', concat('.', leftPad(toString({ms}), 3, '0'), '000')), '+08:00')"
    )


def kept_totals(db: str, where: str) -> str:
    """The points deducted per unit, year and indicator (`where`: a `unit_year_filter`), from the
    kept table: the same sums and keys as the ledger's `GROUP BY unit, year, indicator`."""
    return (
        f"SELECT unit, year, indicator, sum(applied) FROM {db}.ledger_points FINAL {where} "
        "GROUP BY unit, year, indicator"
    )


def kept_unit_years(db: str, where: str, *, as_of: bool) -> str:
    """The unit-years of the event log (`as_of`: those with an event at or before {t}), from the
    kept table: one row per unit-year, not one per event."""
    having = f" HAVING min(first_at) <= {AT}" if as_of else ""
    return (
        f"SELECT unit, year FROM {db}.unit_years {where or 'WHERE 1'} AND unit != '' "
        f"GROUP BY unit, year{having}"
    )
