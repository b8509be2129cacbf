"""The data source plugin's backend macros, as grafana-plugin-sdk-go's `sqlutil.Interpolate` applies
them with the ClickHouse plugin's macro map (pkg/macros/macros.go, plugin 4.x): the sdk defaults
first, the plugin's own over them, longer names first, each match found and then replaced
everywhere. Used by tests.grafana_emulator.sql.expand, the last of its three passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class ExpandError(ValueError):
    """A query that Grafana or the plugin would refuse (bad macro arguments, unknown format)."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    interval: timedelta = timedelta(minutes=1)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit, e.g. `20s`, `5m`, `1d`."""
    total = int(interval / timedelta(milliseconds=1))
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


Macro = Callable[[TimeRange, list[str] | None], str]


def _need(name: str, args: list[str] | None, count: int) -> list[str]:
    got = len(args or [])
    if got != count:
        raise ExpandError(f"$__{name}: expected {count} argument(s), received {got}")
    return args or []


def _dt(moment: datetime) -> str:
    return f"toDateTime({math.floor(moment.timestamp())})"


def _dt64(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({ms(moment)})"


def _date(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"


def _between(name: str, conv: Callable[[datetime], str]) -> Macro:
    def macro(r: TimeRange, args: list[str] | None) -> str:
        (col,) = _need(name, args, 1)
        return f"{col} >= {conv(r.start)} AND {col} <= {conv(r.end)}"

    return macro


def _date_time_filter(r: TimeRange, args: list[str] | None) -> str:
    date_col, time_col = _need("dateTimeFilter", args, 2)
    return (
        f"({date_col} >= {_date(r.start)} AND {date_col} <= {_date(r.end)}) AND "
        f"({time_col} >= {_dt(r.start)} AND {time_col} <= {_dt(r.end)})"
    )


def _seconds(r: TimeRange) -> int:
    return int(max(r.interval.total_seconds(), 1))


def _time_interval(r: TimeRange, args: list[str] | None) -> str:
    (col,) = _need("timeInterval", args, 1)
    return f"toStartOfInterval(toDateTime({col}), INTERVAL {_seconds(r)} second)"


def _time_interval_ms(r: TimeRange, args: list[str] | None) -> str:
    (col,) = _need("timeInterval_ms", args, 1)
    ms = int(max(r.interval / timedelta(milliseconds=1), 1))
    return f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {ms} millisecond)"


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sdk_time_from(r: TimeRange, args: list[str] | None) -> str:
    (col,) = _need("timeFrom", args, 1)
    return f"{col} >= '{_rfc3339(r.start)}'"


def _sdk_time_to(r: TimeRange, args: list[str] | None) -> str:
    (col,) = _need("timeTo", args, 1)
    return f"{col} <= '{_rfc3339(r.end)}'"


def _unsupported(name: str) -> Macro:
    def macro(r: TimeRange, args: list[str] | None) -> str:
        raise ExpandError(f"$__{name} expands to SQL ClickHouse does not accept; do not use it")

    return macro


# sdk defaults first, then the plugin's map over them (sqlutil.Interpolate merges them so).
MACROS: dict[str, Macro] = {
    "interval": lambda r, a: format_interval(r.interval),
    "interval_ms": lambda r, a: str(int(r.interval / timedelta(milliseconds=1))),
    "timeFrom": _sdk_time_from,
    "timeTo": _sdk_time_to,
    "timeGroup": _unsupported("timeGroup"),  # the sdk default emits SQL Server's datepart()
    "table": _unsupported("table"),
    "column": _unsupported("column"),
    "fromTime": lambda r, a: _dt(r.start),
    "toTime": lambda r, a: _dt(r.end),
    "fromTime_ms": lambda r, a: _dt64(r.start),
    "toTime_ms": lambda r, a: _dt64(r.end),
    "timeFilter": _between("timeFilter", _dt),
    "timeFilter_ms": _between("timeFilter_ms", _dt64),
    "dateFilter": _between("dateFilter", _date),
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": _time_interval,
    "timeInterval_ms": _time_interval_ms,
    "interval_s": lambda r, a: str(_seconds(r)),
}


def interpolate_macros(sql: str, time_range: TimeRange) -> str:
    # Longer names first, so `$__timeFilter_ms` is never read as `$__timeFilter` + `_ms`.
    for name in sorted(MACROS, key=len, reverse=True):
        matches = []
        for found in re.finditer(rf"\$__{name}\b", sql, re.ASCII):
            args, length = _parse_args(sql[found.end() :])
            if length < 0:
                raise ExpandError(f"$__{name}: missing closing parenthesis")
            matches.append((sql[found.start() : found.end() + length], args))
        for full, args in matches:  # found first, then replaced everywhere, like upstream
            sql = sql.replace(full, MACROS[name](time_range, args))
    return sql


def _parse_args(text: str) -> tuple[list[str] | None, int]:
    """sqlutil.parseArgs: the bracketed, comma-separated arguments right after a macro name."""
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
