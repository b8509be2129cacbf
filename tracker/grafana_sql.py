"""Expand a dashboard panel's SQL the way Grafana 12 and the ClickHouse data source plugin (4.x) do,
so the panel queries can be run and tested outside Grafana.

Three passes, in the plugin's order:

1. `$__conditionalAll(condition, $var)` (the plugin's frontend, `applyConditionalAll`): the
   condition, or `1=1` when `$var` is All or empty.
2. Template variables (Grafana's template service): `$var`, `${var}`, `${var:format}`, `[[var]]`,
   and the built-ins `$__from`, `$__to`, `$__interval`, `$__interval_ms`, `$__range*`. Without an
   explicit format the plugin's own formatter applies: a list becomes `'a','b'`, a single value
   is inserted raw. Unknown names are left alone, which is what lets the macros through.
3. Macros (the plugin's backend: grafana-plugin-sdk-go `sqlutil.Interpolate` with the plugin's
   macro map): `$__timeFilter(col)`, `$__timeFilter_ms`, `$__fromTime`, `$__toTime(_ms)`,
   `$__dateFilter`, `$__dateTimeFilter`, `$__timeInterval(_ms)`, `$__interval_s`, ...

Each step mirrors the upstream code it names, quirks included (e.g. `${var:singlequote}` as the
second argument of `$__conditionalAll` is not recognised), so a query that works here works there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Value = str | list[str]
ALL = "$__all"


class ExpandError(ValueError):
    """A query that Grafana or the plugin would refuse (bad macro arguments, unknown format)."""


@dataclass(frozen=True)
class Variable:
    """A dashboard variable's current value; `options` is what "All" stands for."""

    name: str
    value: Value
    options: tuple[str, ...] = ()
    all_value: str | None = None

    @property
    def is_all(self) -> bool:
        return self.value == ALL or self.value == [ALL]


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    interval: timedelta = timedelta(minutes=1)


def expand(sql: str, variables: Mapping[str, Variable], time_range: TimeRange) -> str:
    sql = apply_conditional_all(sql, variables)
    sql = replace_variables(sql, variables, time_range)
    return interpolate_macros(sql, time_range)


# -- 1. $__conditionalAll (frontend) ----------------------------------------------------------

_CONDITIONAL = "$__conditionalAll("
_VAR_NAME = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", re.ASCII)


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    index = sql.rfind(_CONDITIONAL)
    while index != -1:
        args = _macro_args(sql, index + len(_CONDITIONAL) - 1)
        if len(args) != 2:
            return sql  # the plugin gives up on the whole query, leaving it as written
        condition = args[0]
        found = _VAR_NAME.search(args[1].strip())
        if found:
            var = variables.get(found.group(0))
            current = _js_string(var.value) if var is not None else None
            if current in ("", ALL):
                condition = "1=1"
        sql = _js_replace_first(sql, f"{_CONDITIONAL}{args[0]},{args[1]})", condition)
        index = sql.rfind(_CONDITIONAL)
    return sql


def _macro_args(sql: str, open_paren: int) -> list[str]:
    """The plugin's getMacroArgs: split at top-level commas up to the matching parenthesis."""
    args: list[str] = []
    depth, last = 0, 1
    text = sql[open_paren:]
    for match in re.finditer(r"[(),]", text):
        token, end = match.group(0), match.end()
        depth += {"(": 1, ")": -1}.get(token, 0)
        if token == "," and depth == 1:
            args.append(text[last : end - 1])
            last = end
        if depth == 0:
            args.append(text[last : end - 1])
            return args
    return []


def _js_string(value: Value) -> str:
    return ",".join(value) if isinstance(value, list) else value


def _js_replace_first(text: str, pattern: str, replacement: str) -> str:
    """JavaScript's `String.replace` with a string pattern, `$` patterns of the replacement too."""
    at = text.find(pattern)
    if at == -1:
        return text
    before, after = text[:at], text[at + len(pattern) :]
    special = {"$$": "$", "$&": pattern, "$`": before, "$'": after}
    replaced = re.sub(r"\$[$&`']", lambda m: special[m.group(0)], replacement)
    return before + replaced + after


# -- 2. template variables (Grafana) ----------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}", re.ASCII
)


def _quote(value: str, quote: str) -> str:
    return quote + value.replace(quote, "\\" + quote) + quote


def _listed(value: Value) -> list[str]:
    return value if isinstance(value, list) else [value]


FORMATS: dict[str, Callable[[Value], str]] = {
    "singlequote": lambda v: ",".join(_quote(x, "'") for x in _listed(v)),
    "doublequote": lambda v: ",".join(_quote(x, '"') for x in _listed(v)),
    "sqlstring": lambda v: ",".join("'" + x.replace("'", "''") + "'" for x in _listed(v)),
    "csv": lambda v: ",".join(_listed(v)),
    "raw": lambda v: ",".join(_listed(v)),
    "text": lambda v: ",".join(_listed(v)),
    "pipe": lambda v: "|".join(_listed(v)),
    "json": lambda v: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False),
}


def plugin_format(value: Value) -> str:
    """The ClickHouse plugin's default formatter (CHDatasource.format); note: no escaping."""
    return "'" + "','".join(value) + "'" if isinstance(value, list) else value


def replace_variables(
    sql: str, variables: Mapping[str, Variable], time_range: TimeRange | None = None
) -> str:
    builtins = _builtins(time_range) if time_range else {}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in builtins and name not in variables:
            return builtins[name]
        var = variables.get(name)
        if var is None:
            return match.group(0)  # not a variable: left for the macros (or as it was)
        if var.is_all:
            if var.all_value is not None:
                return var.all_value  # a custom "All" value is inserted as written
            value: Value = list(var.options)
        else:
            value = var.value
        if fmt is None:
            return plugin_format(value)
        formatter = FORMATS.get(fmt.split(":")[0])
        if formatter is None:
            raise ExpandError(f"unknown variable format {fmt!r} in {match.group(0)}")
        return formatter(value)

    return _VARIABLE.sub(one, sql)


def _builtins(time_range: TimeRange) -> dict[str, str]:
    start_ms, end_ms = _ms(time_range.start), _ms(time_range.end)
    span = end_ms - start_ms
    return {
        "__from": str(start_ms),
        "__to": str(end_ms),
        "__interval": format_interval(time_range.interval),
        "__interval_ms": str(int(time_range.interval / timedelta(milliseconds=1))),
        "__range_ms": str(span),
        "__range_s": str(span // 1000),
        "__range": f"{span // 1000}s",
    }


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit, e.g. `20s`, `5m`, `1d`."""
    ms = int(interval / timedelta(milliseconds=1))
    for unit, size in (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    for unit, size in (("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


# -- 3. macros (backend) ----------------------------------------------------------------------

Macro = Callable[[TimeRange, list[str] | None], str]


def _need(name: str, args: list[str] | None, count: int) -> list[str]:
    got = len(args or [])
    if got != count:
        raise ExpandError(f"$__{name}: expected {count} argument(s), received {got}")
    return args or []


def _dt(moment: datetime) -> str:
    return f"toDateTime({math.floor(moment.timestamp())})"


def _dt64(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({_ms(moment)})"


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


def variable_names(sql: str) -> Sequence[str]:
    """Every template variable name a query refers to (built-ins and macros included)."""
    return [m.group(1) or m.group(2) or m.group(4) for m in _VARIABLE.finditer(sql)]
