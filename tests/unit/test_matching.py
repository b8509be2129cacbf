"""engine/matching.py: the reason texts made per event type from an event's fields, and the keyers
fused with a match of one field, against the forms they replaced (the ledger's `reason` and its
counting keys are in every entry's digest: they must not change by a byte)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.matching import _KEYS, _MATCHED_ONE, describe, keyer, reasoner
from schemas.events import Event, parse_event
from schemas.rulebook import Rule

# The reason text as engine/matching.py `describe` made it from the event model before.
_OLD_WHAT = {
    "vuln.notice": lambda e: f"major vulnerability notice {e.notice_id} ({e.system})",
    "outreach.notice": lambda e: f"outreach notice {e.notice_id} ({e.cause})",
    "terminal.finding": lambda e: f"terminal {e.terminal}: {e.finding}",
    "extranet.notice": lambda e: f"extranet access violation notice {e.notice_id}",
    "crypto.notice": lambda e: f"commercial cryptography not applied, notice {e.notice_id}",
    "incident.report": lambda e: f"major security incident {e.incident_id}",
    "mlps.finding": lambda e: f"system {e.system} not compliant with graded protection",
    "control.finding": lambda e: f"control missing: {e.control}",
}


def _old_describe(event: Any, key: str) -> str:
    kind = event.type
    what = _OLD_WHAT[kind](event) if kind in _OLD_WHAT else kind
    if kind == "outreach.notice":
        what += f", counted as {key}"
    unit = event.__dict__.get("unit", "")
    return f"{what} of {unit}" if unit else what


AT = '"at": "2018-03-01T10:00:00+08:00"'
EVENTS = [
    '{"type": "vuln.notice", "notice_id": "V-1", "system": "OA 系统", "unit": "fj.jtt"}',
    '{"type": "outreach.notice", "notice_id": "O-1", "terminals": ["t1", "t2"], "unit": "u"}',
    '{"type": "outreach.notice", "notice_id": "O-2", "terminals": ["t1"], "unit": "u",'
    ' "cause": "registrar_missing"}',
    '{"type": "terminal.finding", "terminal": "10.0.0.1", "finding": "unregistered", "unit": "u"}',
    '{"type": "extranet.notice", "notice_id": "E-1", "unit": "u"}',
    '{"type": "crypto.notice", "notice_id": "C-1", "system": "s", "unit": "u"}',
    '{"type": "incident.report", "incident_id": "I-1", "unit": "u"}',
    '{"type": "mlps.finding", "system": "s", "unit": "u"}',
    '{"type": "control.finding", "control": "internet_terminal_realname", "unit": "u"}',
    '{"type": "supervision.warning", "signal_id": "S-1", "unit": "u"}',
]


def _event(text: str) -> Event:
    return parse_event(f'{{"event_id": "e-1", {AT}, {text[1:]}')


@pytest.mark.parametrize("text", EVENTS)
def test_reason_is_the_old_describe(text: str) -> None:
    event = _event(text)
    fields = event.__dict__
    for key in ("u/O-1/t1", "", "u/x"):
        old = _old_describe(event, key)
        assert reasoner(fields["type"], fields["unit"])(fields, key) == old
        assert describe(fields, key) == old


class _NoUnit:
    """An event without a unit (the schema gives every counted event one): the old text had no
    " of " then."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)


@pytest.mark.parametrize("text", EVENTS)
def test_reason_without_a_unit_is_the_old_describe(text: str) -> None:
    fields = dict(_event(text).__dict__, unit="")
    old = _old_describe(_NoUnit(fields), "k")
    assert reasoner(fields["type"], "")(fields, "k") == old
    assert describe(fields, "k") == old
    del fields["unit"]
    assert describe(fields, "k") == _old_describe(_NoUnit(fields), "k")


def _old_keyer(rule: Rule) -> Any:
    keys = _KEYS[rule.counting]
    ((name, value),) = rule.match.items()
    return lambda fields: () if fields.get(name) != value else keys(fields)


@pytest.mark.parametrize(
    ("rule", "texts"),
    [
        (
            Rule(
                on="terminal.finding",
                match={"finding": "unregistered"},
                points="0.5",
                counting="per_year_terminal_finding",
            ),
            [EVENTS[3], EVENTS[3].replace("unregistered", "antivirus_missing")],
        ),
        (
            Rule(
                on="outreach.notice",
                match={"cause": "violation"},
                points="1",
                counting="per_notice_terminal",
            ),
            [
                EVENTS[1],
                EVENTS[2],
                '{"type": "outreach.notice", "notice_id": "O-3", "unit": "u",'
                ' "terminals": ["t2", "t1", "t2", "t3", "t1"]}',
            ],
        ),
    ],
)
def test_fused_keyers_give_the_keys_of_match_then_counting(rule: Rule, texts: list[str]) -> None:
    assert rule.counting in _MATCHED_ONE
    fused, old = keyer(rule), _old_keyer(rule)
    found = []
    for text in texts:
        fields = _event(text).__dict__
        found.append(fused(fields))
        assert found[-1] == old(fields)
    assert () in found and any(found)  # both branches taken
