"""Per-unit access to the store, generated from the unit registry (see docs/access.md).

ClickHouse: one read-only user per unit and row policies that keep it to its own rows, or, for a
city or county government, to its jurisdiction (the unit and all its descendants, spec 5.11);
read-all roles for the security centre and the auditors. Grafana: one team, folder and data
source per unit, the data source logging in as that unit's ClickHouse user.

Everything is statements and payloads only: nothing here talks to a server.
"""

from __future__ import annotations

import copy
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.registry import Registry, Unit
from tracker import dashboard_json
from tracker.grafana import clickhouse_datasource

GOVERNMENT_TIERS = frozenset({"city-gov", "county-gov"})
READ_ALL_ROLES = ("centre_reader", "auditor")
# Tables and views a unit user may read, with the column that names the unit of a row. Views are
# listed too: a policy on a view is what keeps it honest if it is ever made SQL SECURITY DEFINER.
UNIT_COLUMNS: dict[str, str] = {
    "events": "unit",
    "ledger": "unit",
    "deadlines": "unit",
    "units": "id",
    "ledger_v": "unit",
    "deadlines_v": "unit",
    "indicator_status": "unit",
    "deadlines_now": "unit",
    "ledger_clauses": "unit",
    # as of an instant (issue 11): a unit reads its own history only
    "ledger_seen": "unit",
    "deadline_history": "unit",
    "ledger_seen_v": "unit",
    # the totals kept as the ledger and the log are written (issue 12, sinks/clickhouse_totals.py)
    "ledger_points": "unit",
    "unit_years": "unit",
    # each unit-year's deadlines as status writes them (sinks/clickhouse_docs.py)
    "deadline_docs": "unit",
}
# No unit column, and a rejected line's raw text may name any unit: hidden from unit users.
HIDDEN = ("dead_letters", "dead_letters_v")
PLACEHOLDER = "CHANGE_ME"


class AccessError(ValueError):
    pass


@dataclass
class AccessPlan:
    sql: list[str]
    passwords: dict[str, str]  # unit id -> password of its ClickHouse user
    grafana: list[dict[str, Any]] = field(default_factory=list)


def user_name(unit_id: str) -> str:
    return "unit_" + re.sub(r"[^A-Za-z0-9_]", "_", unit_id)


def jurisdiction(registry: Registry, unit_id: str) -> list[str]:
    """The units whose rows `unit_id` may read: itself, plus every descendant for a government."""
    unit = registry.unit(unit_id)
    if unit is None:
        raise AccessError(f"unknown unit {unit_id!r}")
    if unit.tier not in GOVERNMENT_TIERS:
        return [unit_id]
    return [u.id for u in registry.units if u.id == unit_id or unit_id in registry.ancestors(u.id)]


def plan(
    registry: Registry,
    *,
    database: str = "tracker",
    writers: Sequence[str] = ("tracker",),
    passwords: Mapping[str, str] | None = None,
    placeholders: bool = False,
    store_dsn_for_grafana: str = "http://clickhouse:8123/?database=tracker",
) -> AccessPlan:
    """Statements and payloads for every unit of the registry.

    `passwords` reuses known ones (unit id -> password); the others are random, or
    `CHANGE_ME` with `placeholders`. `writers` are the store's writing users, which must keep
    reading every row once policies exist (the worker replays the event log on start)."""
    _check_names(registry, database, writers)
    known = dict(passwords or {})
    chosen = {
        u.id: known.get(u.id) or (PLACEHOLDER if placeholders else secrets.token_urlsafe(18))
        for u in registry.units
    }
    sql = _roles(database, writers)
    for unit in registry.units:
        sql += _unit_sql(registry, unit, database, chosen[unit.id])
    template = dashboard_json.load()["tracker-unit"]
    payloads = [
        grafana_payload(unit, chosen[unit.id], store_dsn_for_grafana, template)
        for unit in registry.units
    ]
    return AccessPlan(sql=sql, passwords=chosen, grafana=payloads)


def _check_names(registry: Registry, database: str, writers: Sequence[str]) -> None:
    names = [database, *writers, *READ_ALL_ROLES]
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)]
    if bad:
        raise AccessError(f"not a plain ClickHouse name: {', '.join(bad)}")
    users: dict[str, str] = {}
    for unit in registry.units:
        other = users.setdefault(user_name(unit.id), unit.id)
        if other != unit.id:
            raise AccessError(
                f"units {other} and {unit.id} map to the same user {user_name(unit.id)}"
            )


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _roles(db: str, writers: Sequence[str]) -> list[str]:
    readers = ", ".join([*READ_ALL_ROLES, *writers])
    out = []
    for role in READ_ALL_ROLES:
        out += [f"CREATE ROLE IF NOT EXISTS {role}", f"GRANT SELECT ON {db}.* TO {role}"]
    # Once a table has a policy, only rows some policy admits are visible: read-all keeps
    # the centre, the auditors and the writers whole.
    for table in [*UNIT_COLUMNS, *HIDDEN]:
        out.append(
            f"CREATE ROW POLICY OR REPLACE tracker_read_all ON {db}.{table} "
            f"AS PERMISSIVE FOR SELECT USING 1 TO {readers}"
        )
    return out


def _unit_sql(registry: Registry, unit: Unit, db: str, password: str) -> list[str]:
    user = user_name(unit.id)
    allowed = ", ".join(_quote(u) for u in jurisdiction(registry, unit.id))
    out = [
        # readonly = 1 with max_execution_time changeable: what the Grafana plugin needs
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_password BY {_quote(password)} "
        "SETTINGS readonly = 1, max_execution_time CHANGEABLE_IN_READONLY",
        f"GRANT SELECT ON {db}.* TO {user}",
    ]
    for table, column in UNIT_COLUMNS.items():
        out.append(
            f"CREATE ROW POLICY OR REPLACE {user} ON {db}.{table} "
            f"AS PERMISSIVE FOR SELECT USING {column} IN ({allowed}) TO {user}"
        )
    for table in HIDDEN:
        out.append(
            f"CREATE ROW POLICY OR REPLACE {user} ON {db}.{table} "
            f"AS PERMISSIVE FOR SELECT USING 0 TO {user}"
        )
    return out


# -- Grafana ----------------------------------------------------------------------------------


def grafana_uid(prefix: str, unit_id: str) -> str:
    """`prefix` + the unit id, hashed when Grafana's 40-character uid limit would be passed."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "-", unit_id)
    if len(prefix) + len(slug) > 40:
        slug = hashlib.sha1(unit_id.encode("utf-8")).hexdigest()[: 40 - len(prefix)]
    return prefix + slug


def grafana_payload(
    unit: Unit, password: str, store_dsn: str, template: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Team, folder, data source and the unit-status dashboard for one unit.

    The dashboard copy reads through the unit's own data source, so what it shows is whatever
    the row policies let that ClickHouse user see; its unit list is the jurisdiction for free."""
    ds_uid = grafana_uid("tracker-ch-", unit.id)
    folder = grafana_uid("tracker-unit-", unit.id)
    team = f"{unit.name} ({unit.id})"
    datasource = clickhouse_datasource(
        store_dsn,
        uid=ds_uid,
        name=f"Tracker ClickHouse · {unit.id}",
        username=user_name(unit.id),
        password=password,
    )
    return {
        "unit": unit.id,
        "team": {"name": team, "email": ""},
        "folder": {"uid": folder, "title": f"{unit.name} · 扣分跟踪"},
        # POST /api/folders/{uid}/permissions needs the team's numeric id, known once created
        "folder_permissions": {"team": team, "permission": 1},
        "datasource": datasource,
        "dashboard": _unit_dashboard(
            template or dashboard_json.load()["tracker-unit"], unit, ds_uid, folder
        ),
    }


def _unit_dashboard(
    template: Mapping[str, Any], unit: Unit, ds_uid: str, folder: str
) -> dict[str, Any]:
    board = copy.deepcopy(dict(template))
    _repoint(board, {"type": dashboard_json.DATASOURCE_TYPE, "uid": ds_uid})
    for var in dashboard_json.variables(board):
        if var["name"] == "unit":
            var["current"] = {"text": unit.id, "value": unit.id}
    board.update(
        uid=grafana_uid("tracker-u-", unit.id),
        title=f"{unit.name} · 扣分状态",
        tags=[*board.get("tags", []), f"unit:{unit.id}"],
    )
    return {"dashboard": board, "folderUid": folder, "overwrite": True}


def _repoint(node: Any, datasource: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                node[key] = dict(datasource)
            else:
                _repoint(value, datasource)
    elif isinstance(node, list):
        for item in node:
            _repoint(item, datasource)
