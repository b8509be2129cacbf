"""The data source's backend macros, pinned to grafana-clickhouse-datasource 4.11.2.

Upstream, `sqlds.Interpolate` hands the query to grafana-plugin-sdk-go 0.280.0's
`sqlutil.Interpolate` with the plugin's map (`pkg/macros/macros.go`): the sdk's defaults
(`DefaultMacros`) first, the plugin's over them, longer names first, each name's matches found
and then every occurrence of each replaced. Error texts are upstream's, after `$__name: `.

Later plugin releases changed the engine (4.12+: grafana/macropro, macros nested in macro
arguments, string literals skipped), so moving the pin means porting again: docs/dashboards.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class ExpandError(ValueError):
    """A query that Grafana or the plugin would refuse (bad macro arguments, unknown format)."""


@dataclass(frozen=True)
class TimeRange:
    """The panel's time range and interval, as the backend gets them (`backend.TimeRange` and
    `DataQuery.Interval`)."""

    start: datetime
    end: datetime
    interval: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        # Grafana sends epoch milliseconds; a naive datetime would silently mean this host's zone
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("TimeRange needs timezone-aware datetimes")


@dataclass(frozen=True)
class Query:
    """What a macro reads of sqlutil.Query. The plugin's query model has no top-level `table` or
    `column` (its builder keeps them in `builderOptions`), so for its panels both stay empty."""

    time_range: TimeRange
    table: str = ""
    column: str = ""


Macro = Callable[[Query, list[str] | None], str]


def ms(moment: datetime) -> int:
    """Go's `Time.UnixMilli`: floored, exact (no float)."""
    return (moment - EPOCH) // _MS


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit, e.g. `20s`, `5m`, `1d`."""
    total = interval // _MS
    for unit, size in (
        ("y", 365 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ):
        if total >= size:
            return f"{total // size}{unit}"
    return "1ms"


def _bad_count(want: int, args: list[str] | None) -> list[str]:
    got = len(args or [])
    if got != want:
        noun = "argument" if want == 1 else "arguments"
        raise ExpandError(f"unexpected number of arguments: expected {want} {noun}, received {got}")
    return args or []


# -- the plugin's conversions (pkg/macros/macros.go) ------------------------------------------


def _utc(moment: datetime) -> datetime:
    # Go formats in the process's zone; the grafana/grafana image runs in UTC (no TZ set)
    return moment.astimezone(UTC)


def _to_date(moment: datetime) -> str:
    return f"toDate('{_utc(moment).date().isoformat()}')"


def _to_date_time(moment: datetime) -> str:
    return f"toDateTime({(moment - EPOCH) // timedelta(seconds=1)})"


def _to_date_time64(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({ms(moment)})"


def _filter(conv: Callable[[datetime], str]) -> Macro:
    def macro(q: Query, args: list[str] | None) -> str:
        (col,) = _bad_count(1, args)
        r = q.time_range
        return f"{col} >= {conv(r.start)} AND {col} <= {conv(r.end)}"

    return macro


def _date_time_filter(q: Query, args: list[str] | None) -> str:
    date_col, time_col = _bad_count(2, args)
    r = q.time_range
    return (
        f"({date_col} >= {_to_date(r.start)} AND {date_col} <= {_to_date(r.end)}) AND "
        f"({time_col} >= {_to_date_time(r.start)} AND {time_col} <= {_to_date_time(r.end)})"
    )


def _seconds(q: Query) -> int:
    return int(max(q.time_range.interval.total_seconds(), 1))


def _time_interval(q: Query, args: list[str] | None) -> str:
    (col,) = _bad_count(1, args)
    return f"toStartOfInterval(toDateTime({col}), INTERVAL {_seconds(q)} second)"


def _time_interval_ms(q: Query, args: list[str] | None) -> str:
    (col,) = _bad_count(1, args)
    millis = max(q.time_range.interval // _MS, 1)
    return f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {millis} millisecond)"


PLUGIN_MACROS: Mapping[str, Macro] = {
    "fromTime": lambda q, a: _to_date_time(q.time_range.start),
    "toTime": lambda q, a: _to_date_time(q.time_range.end),
    "fromTime_ms": lambda q, a: _to_date_time64(q.time_range.start),
    "toTime_ms": lambda q, a: _to_date_time64(q.time_range.end),
    "timeFilter": _filter(_to_date_time),
    "timeFilter_ms": _filter(_to_date_time64),
    "dateFilter": _filter(_to_date),
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": _time_interval,
    "timeInterval_ms": _time_interval_ms,
    "interval_s": lambda q, a: str(_seconds(q)),
}


# -- the sdk's defaults (data/sqlutil/macros.go), where the plugin does not override them -------


def _rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339 of a UTC time: no fraction, `Z`, a four-digit year."""
    m = _utc(moment)
    return f"{m.date().isoformat()}T{m:%H:%M:%S}Z"


def _sdk_time_filter(q: Query, args: list[str] | None) -> str:
    (col,) = _bad_count(1, args)
    r = q.time_range
    return f"{col} >= '{_rfc3339(r.start)}' AND {col} <= '{_rfc3339(r.end)}'"


def _sdk_time_from(q: Query, args: list[str] | None) -> str:
    (col,) = _bad_count(1, args)
    return f"{col} >= '{_rfc3339(q.time_range.start)}'"


def _sdk_time_to(q: Query, args: list[str] | None) -> str:
    (col,) = _bad_count(1, args)
    return f"{col} <= '{_rfc3339(q.time_range.end)}'"


_PERIODS = ("minute", "hour", "day", "month", "year")


def _sdk_time_group(q: Query, args: list[str] | None) -> str:
    # SQL Server's datepart(), which ClickHouse refuses; emitted all the same, as upstream does
    if args is None or len(args) != 2:
        got = len(args or [])  # upstream checks for two arguments and says one (sic)
        raise ExpandError(f"unexpected number of arguments: expected 1 argument, received {got}")
    col, period = args
    if period not in _PERIODS:
        return ""  # a `switch` without a default case
    return ",".join(f"datepart({p}, {col})" for p in _PERIODS[_PERIODS.index(period) :])


SDK_DEFAULT_MACROS: Mapping[str, Macro] = {
    "interval": lambda q, a: format_interval(q.time_range.interval),
    "interval_ms": lambda q, a: str(q.time_range.interval // _MS),
    "timeFilter": _sdk_time_filter,
    "timeFrom": _sdk_time_from,
    "timeGroup": _sdk_time_group,
    "timeTo": _sdk_time_to,
    "table": lambda q, a: q.table,
    "column": lambda q, a: q.column,
}


# -- sqlutil.Interpolate ------------------------------------------------------------------------


def interpolate_macros(
    sql: str,
    time_range: TimeRange,
    macros: Mapping[str, Macro] = PLUGIN_MACROS,
    *,
    table: str = "",
    column: str = "",
) -> str:
    merged = {**SDK_DEFAULT_MACROS, **macros}
    query = Query(time_range, table, column)
    # Longer names first (upstream's sort; `\b` already keeps `$__timeFilter_ms` whole).
    for name in sorted(merged, key=len, reverse=True):
        matches = []
        for found in re.finditer(rf"\$__{name}\b", sql, re.ASCII):
            args, length = parse_args(sql[found.end() :])
            if length < 0:
                raise ExpandError(
                    f"$__{name}: failed to parse macro arguments (missing close bracket?)"
                )
            matches.append((sql[found.start() : found.end() + length], args))
        for full, args in matches:  # found first, then replaced everywhere, like upstream
            try:
                expanded = merged[name](query, args)
            except ExpandError as exc:
                raise ExpandError(f"$__{name}: {exc}") from None
            sql = sql.replace(full, expanded)
    return sql


def parse_args(text: str) -> tuple[list[str] | None, int]:
    """sqlutil.parseArgs: the bracketed, comma-separated, trimmed arguments right after a macro
    name, and the length they take; (None, 0) without a bracket, (None, -1) when it never closes."""
    if not text.startswith("("):
        return None, 0
    args: list[str] = []
    depth, current = 0, ""
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
            if depth == 1:
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                return [*args, current.strip()], i + 1
        elif char == "," and depth == 1:
            args.append(current.strip())
            current = ""
            continue
        current += char
    return None, -1
