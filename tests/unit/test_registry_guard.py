"""Which registry changes would take away what the store's events were deducted under."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.registry import Registry
from tracker.registry_guard import registry_conflicts

BASE: dict[str, Any] = {
    "assessments": [
        {"year": 2018, "tier": "provincial-dept", "rulebook": "p18"},
        {"year": 2018, "tier": "city-gov", "rulebook": "c18"},
        {"year": 2020, "tier": "city-gov", "rulebook": "c20"},
    ],
    "units": [
        {"id": "gat", "name": "公安厅", "tier": "provincial-dept"},
        {"id": "fz", "name": "福州市", "tier": "city-gov"},
        {"id": "fz.gl", "name": "鼓楼区", "tier": "county-gov", "parent": "fz"},
        {"id": "idle", "name": "无事件", "tier": "provincial-dept"},
    ],
}
EVENTS = {("gat", 2018), ("fz.gl", 2018)}


def changed(**edits: Any) -> Registry:
    data = {**BASE, **edits}
    return Registry.model_validate(data)


def units_without(*ids: str) -> list[dict[str, Any]]:
    return [u for u in BASE["units"] if u["id"] not in ids]


@pytest.mark.parametrize(
    ("new", "problems"),
    [
        # the same registry
        (changed(), []),
        # a new unit and a new assessment only add
        (
            changed(
                units=[*BASE["units"], {"id": "xm", "name": "厦门市", "tier": "city-gov"}],
                assessments=[
                    *BASE["assessments"],
                    {"year": 2018, "tier": "county-gov", "rulebook": "k18"},
                ],
            ),
            [],
        ),
        # a unit without events may go
        (changed(units=units_without("idle")), []),
        # an assessment no event falls under (2020) may go
        (changed(assessments=BASE["assessments"][:2]), []),
        # a unit with events may not
        (changed(units=units_without("gat")), ["drops units the store has events for: gat"]),
        # nor a unit with events under a new tier
        (
            changed(
                units=[*units_without("gat"), {"id": "gat", "name": "公安厅", "tier": "city-dept"}]
            ),
            ["changes the tier or parent of units with events: gat"],
        ),
        # the city's 2018 book is needed by its county's events (jurisdiction)
        (
            changed(assessments=[BASE["assessments"][0], BASE["assessments"][2]]),
            ["drops or changes assessments the store has events for: city-gov 2018 (c18)"],
        ),
        # another rulebook for an assessment with events is a change too
        (
            changed(
                assessments=[
                    {"year": 2018, "tier": "provincial-dept", "rulebook": "p18-v2"},
                    *BASE["assessments"][1:],
                ]
            ),
            ["drops or changes assessments the store has events for: provincial-dept 2018 (p18)"],
        ),
    ],
)
def test_registry_conflicts(new: Registry, problems: list[str]) -> None:
    assert registry_conflicts(changed(), new, EVENTS) == problems


def test_events_of_units_the_old_registry_did_not_know_are_ignored() -> None:
    assert registry_conflicts(changed(), changed(), {("ghost", 2018)}) == []
