"""The shipped Grafana dashboards (dashboards/*.json): finding, loading and reading them.

The panel SQL names its database through the hidden constant variable `database` (default
`tracker`), so a store under another name only needs that variable changed, and the tests point it
at their own database without rewriting any SQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tracker.grafana_sql import ALL, TimeRange, Variable, expand

DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE_UID = "tracker-clickhouse"
DATASOURCE = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
# What Grafana 12.2 writes (its DashboardMigrator / schemaversion.LATEST_VERSION).
SCHEMA_VERSION = 42
FILES = {
    "tracker-province": "province-overview.json",
    "tracker-unit": "unit-status.json",
    "tracker-audit": "audit-trail.json",
}

Dashboard = dict[str, Any]


def default_dir() -> Path:
    """`./dashboards` when run from a checkout or the image's /app, else the source tree's."""
    here = Path.cwd() / "dashboards"
    if (here / FILES["tracker-province"]).is_file():
        return here
    return Path(__file__).resolve().parent.parent / "dashboards"


def load(directory: Path | None = None) -> dict[str, Dashboard]:
    """The three dashboards by uid; a missing or broken file is an OSError/ValueError naming it."""
    root = directory or default_dir()
    out: dict[str, Dashboard] = {}
    for uid, name in FILES.items():
        path = root / name
        try:
            out[uid] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
    return out


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(dashboard.get("templating", {}).get("list", []))


_LABEL = re.compile(r"\$\{__field\.labels\.(\w+)\}")


def referenced_fields(panel: Mapping[str, Any]) -> set[str]:
    """Field (column) names a panel's overrides, transformations and options refer to."""
    names: set[str] = set()
    config = panel.get("fieldConfig", {})
    for override in config.get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") == "byName":
            names.add(matcher["options"])
    names.update(_LABEL.findall(json.dumps(config.get("defaults", {}))))
    for step in panel.get("transformations", []):
        options = step.get("options", {})
        if step.get("id") == "organize":
            for key in ("excludeByName", "indexByName", "renameByName"):
                names.update(options.get(key, {}))
        elif step.get("id") == "rowsToFields":
            names.update(m["fieldName"] for m in options.get("mappings", []))
        elif step.get("id") == "sortBy":
            names.update(s["field"] for s in options.get("sort", []) if s.get("field"))
    fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if fields and not fields.startswith("/"):
        names.add(fields)
    elif fields.startswith("/^") and fields.endswith("$/"):
        names.add(fields[2:-2])
    return names


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
