"""Dashboard variables given their values the way Grafana does when a dashboard loads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tests.grafana_emulator.sql import ALL, TimeRange, Variable, expand
from tracker.dashboard_json import variables


def resolve_variables(
    dashboard: Mapping[str, Any],
    run: Callable[[str], list[str]],
    time_range: TimeRange,
    overrides: Mapping[str, str | list[str]] | None = None,
) -> dict[str, Variable]:
    """Give each variable its value the way Grafana does on load: in dashboard order, running query
    variables (expanded with the ones before them) through `run`; `overrides` pins values."""
    pinned = dict(overrides or {})
    resolved: dict[str, Variable] = {}
    for var in variables(dashboard):
        name, kind = var["name"], var["type"]
        current = var.get("current", {}).get("value", "")
        options: list[str] = []
        if kind == "constant":
            current = var.get("query", "")
        elif kind == "custom":
            options = [o.split(" : ")[-1].strip() for o in var.get("query", "").split(",")]
        elif kind == "textbox":
            current = current or var.get("query", "")
        elif kind == "query":
            options = run(expand(var["query"], resolved, time_range))
        else:
            raise ValueError(f"variable {name}: type {kind!r} is not handled")
        value = pinned.get(name, current)
        if kind in ("custom", "query") and name not in pinned:
            value = _pick(value, options, bool(var.get("includeAll")), bool(var.get("multi")))
        resolved[name] = Variable(name, value, tuple(options), var.get("allValue") or None)
    return resolved


def _pick(current: Any, options: list[str], include_all: bool, multi: bool) -> str | list[str]:
    """Keep the saved selection when still valid, else Grafana's fallback: All, or the first."""
    wanted = current if isinstance(current, list) else [current]
    if include_all and ALL in wanted:
        return [ALL] if multi else ALL
    kept = [w for w in wanted if w in options]
    if kept:
        return kept if multi else kept[0]
    if include_all:
        return [ALL] if multi else ALL
    first = options[0] if options else ""
    return [first] if multi else first
