"""Small builders shared by the tests: a compact rulebook set, a registry and event factories."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from config.holidays import official_calendar
from config.rulebooks import load_rulebooks, parse_rulebook
from engine import Engine, Outcome, WorkCalendar
from schemas.events import Event, parse_event
from schemas.ledger import LedgerEntry
from schemas.registry import Registry

# A miniature of the real 2018 province and city rulebooks, so engine tests do not depend on
# transcription details; the real rulebooks have their own table-driven tests.
PROVINCE = """
id: t-province
year: 2018
tier: provincial-dept
title: test province
source: {seed: test, where: test}
indicators:
  - id: net
    name: 网络安全管理
    max_points: "3"
    items:
      - {number: "1", clause: c1, rules: [{on: control.finding, match: {control: internet_terminal_realname}, points: "1", counting: once_per_year}]}
      - {number: "2", clause: c2, rules: [{on: outreach.notice, match: {cause: violation}, points: "0.5", counting: per_notice_terminal}]}
      - {number: "4", clause: c4, rules: [{on: terminal.finding, match: {finding: unregistered}, points: "0.5", counting: per_year_terminal_finding}]}
      - {number: "6", clause: c6, rules: [{on: vuln.notice, points: "1", counting: per_notice}]}
      - {number: "7", clause: c7, rules: [{on: vuln.overdue, points: "1", counting: per_notice, deadline: {calendar_days: 14}}]}
      - {number: "8", clause: c8, rules: [{on: extranet.notice, points: "1", counting: per_notice}]}
  - id: mlps
    name: 等级保护
    max_points: "2"
    items:
      - {number: "1", clause: m1, rules: [{on: mlps.finding, points: "2", counting: once_per_year}]}
"""
CITY = """
id: t-city
year: 2018
tier: city-gov
title: test city
source: {seed: test, where: test}
indicators:
  - id: sys
    name: 政务信息系统安全
    max_points: "6"
    items:
      - number: "1"
        clause: v1
        cap_points: "4"
        rules:
          - {on: vuln.notice, points: "1", counting: per_notice, scope: jurisdiction}
          - {on: vuln.overdue, points: "1", counting: per_notice, scope: jurisdiction, deadline: {calendar_days: 14}}
      - number: "2"
        clause: o2
        cap_points: "2"
        rules:
          - {on: outreach.notice, match: {cause: violation}, points: "0.2", counting: per_notice, scope: jurisdiction}
          - {on: outreach.notice, match: {cause: registrar_missing}, points: "0.2", counting: per_notice, scope: jurisdiction}
  - id: mlps
    name: 等级保护
    max_points: "5"
    items:
      - {number: "1", clause: m1, rules: [{on: mlps.finding, points: "1", counting: per_year_system, scope: jurisdiction}]}
"""
DEPT = """
id: t-dept
year: 2020
tier: city-dept
title: test city department
source: {seed: test, where: test}
indicators:
  - id: sec
    name: 网络安全管理
    max_points: "6"
    items:
      - number: "3"
        clause: c3
        cap_points: "2"
        rules:
          - {on: crypto.notice, points: "1", counting: per_notice}
          - {on: extranet.notice, points: "1", counting: per_notice}
      - {number: "2", clause: i2, cap_points: "2", rules: [{on: incident.report, points: "2", counting: per_incident}]}
  - id: leads
    name: 线索处理
    max_points: "2"
    items:
      - {number: "1", clause: s1, rules: [{on: supervision.overdue, points: "0.5", counting: per_signal, deadline: {working_days: 3}}]}
"""
BOOKS = {b.id: b for b in (parse_rulebook(PROVINCE), parse_rulebook(CITY), parse_rulebook(DEPT))}
REGISTRY = Registry.model_validate(
    {
        "assessments": [
            {"year": 2018, "tier": "provincial-dept", "rulebook": "t-province"},
            {"year": 2018, "tier": "city-gov", "rulebook": "t-city"},
            {"year": 2020, "tier": "city-dept", "rulebook": "t-dept"},
        ],
        "units": [
            {"id": "gat", "name": "公安厅", "tier": "provincial-dept"},
            {"id": "fz", "name": "福州市", "tier": "city-gov"},
            {"id": "fz.gl", "name": "鼓楼区", "tier": "county-gov", "parent": "fz"},
            {"id": "fz.gl.x", "name": "某街道", "tier": "county-gov", "parent": "fz.gl"},
            {"id": "nd", "name": "宁德市", "tier": "city-gov"},
            {"id": "nd.gaj", "name": "宁德市公安局", "tier": "city-dept", "parent": "nd"},
        ],
    }
)
# The shipped rulebooks on a small registry: a provincial department (2017, 2018), a city
# (2018 jurisdiction), its county (2018 through the city, 2020 its own) and its department (2020).
SHIPPED_BOOKS = load_rulebooks()
SHIPPED_REGISTRY = Registry.model_validate(
    {
        "assessments": [
            {"year": b.year, "tier": b.tier, "rulebook": b.id} for b in SHIPPED_BOOKS.values()
        ],
        "units": [
            {"id": "p", "name": "省直单位", "tier": "provincial-dept"},
            {"id": "c", "name": "设区市", "tier": "city-gov"},
            {"id": "c.k", "name": "县", "tier": "county-gov", "parent": "c"},
            {"id": "c.d", "name": "市直部门", "tier": "city-dept", "parent": "c"},
        ],
    }
)
_CALENDAR: WorkCalendar | None = None


def calendar() -> WorkCalendar:
    global _CALENDAR
    if _CALENDAR is None:
        _CALENDAR = official_calendar()
    return _CALENDAR


def engine() -> Engine:
    return Engine(REGISTRY, BOOKS, calendar())


def shipped_engine() -> Engine:
    return Engine(SHIPPED_REGISTRY, SHIPPED_BOOKS, calendar())


_counter = 0


def ev(
    type_: str, at: str, unit: str | None = "gat", event_id: str | None = None, **fields: Any
) -> Event:
    """An event from its type, its `at` (+08:00 assumed when no offset) and its fields."""
    global _counter
    _counter += 1
    body: dict[str, Any] = {"event_id": event_id or f"e{_counter}", "type": type_, "at": _ts(at)}
    if unit is not None and type_ != "clock.tick":
        body["unit"] = unit
    for key, value in fields.items():
        body[key] = _ts(value) if key == "due" else value
    return parse_event(json.dumps(body))


def _ts(text: str) -> str:
    return text if ("+" in text[10:] or text.endswith("Z")) else text + "+08:00"


def tick(at: str) -> Event:
    return ev("clock.tick", at, unit=None)


def apply_all(eng: Engine, events: Iterable[Event], now: datetime | None = None) -> list[Outcome]:
    return [eng.apply(e, now=now) for e in events]


def entries(outcomes: Iterable[Outcome]) -> list[LedgerEntry]:
    return [e for o in outcomes for e in o.entries]


def net(outcomes: Iterable[Outcome], unit: str | None = None, indicator: str | None = None) -> str:
    from decimal import Decimal

    from schemas.points import format_points

    total = sum(
        (
            e.applied
            for e in entries(outcomes)
            if (unit is None or e.unit == unit) and (indicator is None or e.indicator == indicator)
        ),
        Decimal(0),
    )
    return format_points(total)


def serialize(outcomes: Iterable[Outcome]) -> bytes:
    """The ledger as the bytes an auditor would diff."""
    return b"\n".join(e.model_dump_json().encode() for e in entries(outcomes))
