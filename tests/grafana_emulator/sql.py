"""Expand a dashboard panel's SQL the way Grafana 12 and the ClickHouse data source plugin do, so
the panel queries can be run and tested outside Grafana. The plugin's passes (1 and 3) are pinned
to its release `tests.grafana_emulator.PLUGIN_VERSION` (4.11.2).

Three passes, in the plugin's order:

1. `$__conditionalAll(condition, $var)` (the plugin's frontend, `applyConditionalAll` in
   `src/data/CHDatasource.ts`): the condition, or `1=1` when `$var` is All or empty.
2. Template variables (Grafana's template service): `$var`, `${var}`, `${var:format}`, `[[var]]`,
   and the built-ins `$__from`, `$__to`, `$__interval`, `$__interval_ms`, `$__range*`. Without an
   explicit format the plugin's own formatter applies: a list becomes `'a','b'`, a single value
   is inserted raw. Unknown names are left alone, which is what lets the macros through.
3. Macros (the plugin's backend, `macros.py`): `$__timeFilter(col)`, `$__timeFilter_ms`,
   `$__fromTime`, `$__toTime(_ms)`, `$__dateFilter`, `$__dateTimeFilter`/`$__dt`,
   `$__timeInterval(_ms)`, `$__interval_s`, and the sdk defaults the plugin does not replace
   (`$__timeFrom`, `$__timeTo`, `$__timeGroup`, `$__table`, `$__column`, `$__interval(_ms)`).

Each step mirrors the upstream code it names, quirks included (e.g. `${var:singlequote}` as the
second argument of `$__conditionalAll` is not recognised), so a query that works here works there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from tests.grafana_emulator.macros import (
    ExpandError,
    TimeRange,
    format_interval,
    interpolate_macros,
    ms,
)

__all__ = [
    "ALL",
    "ExpandError",
    "TimeRange",
    "Variable",
    "apply_conditional_all",
    "expand",
    "interpolate_macros",
    "replace_variables",
]

Value = str | list[str]
ALL = "$__all"


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
    start_ms, end_ms = ms(time_range.start), ms(time_range.end)
    span = end_ms - start_ms
    return {
        "__from": str(start_ms),
        "__to": str(end_ms),
        "__interval": format_interval(time_range.interval),
        "__interval_ms": str(time_range.interval // timedelta(milliseconds=1)),
        "__range_ms": str(span),
        "__range_s": str(span // 1000),
        "__range": f"{span // 1000}s",
    }
