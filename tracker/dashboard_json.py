"""The shipped Grafana dashboards (dashboards/*.json): finding, loading and reading them.

The panel SQL names its database through the hidden constant variable `database` (default
`tracker`), so a store under another name only needs that variable changed, and the tests point it
at their own database without rewriting any SQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

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
