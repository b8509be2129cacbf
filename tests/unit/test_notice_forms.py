"""The notice form's fields and errors (tracker/serve/notice_forms.py): pure logic, no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import EVENT_TYPES, parse_event
from tracker.serve.notice_forms import FORM_BY_TYPE, FORMS, build_event, now_local, show_time

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # 20:00 in Beijing
AT = "2026-11-27T19:30"


def test_every_centre_type_has_a_form() -> None:
    wanted = {
        "vuln.notice",
        "outreach.notice",
        "terminal.finding",
        "extranet.notice",
        "crypto.notice",
        "incident.report",
        "mlps.finding",
        "control.finding",
        "supervision.warning",
    }
    assert {f.event_type for f in FORMS} == wanted
    assert wanted <= EVENT_TYPES


# (type, the fields filled in, the event's fields besides event_id/type/unit/at)
VALID = [
    # due left empty: the clause's period decides (contract 5.7)
    (
        "vuln.notice",
        {"notice_id": "V-1", "system": "政务网"},
        {"notice_id": "V-1", "system": "政务网"},
    ),
    # a due given in Beijing time keeps its +08:00 offset
    (
        "vuln.notice",
        {"notice_id": "V-1", "system": "s", "due": "2026-12-11T00:00"},
        {"notice_id": "V-1", "system": "s", "due": "2026-12-11T00:00:00+08:00"},
    ),
    # one terminal per line; blank lines and surrounding spaces dropped
    (
        "outreach.notice",
        {"notice_id": "O-1", "terminals": " 10.0.0.1 \n\n10.0.0.2\n", "cause": "registrar_missing"},
        {"notice_id": "O-1", "terminals": ["10.0.0.1", "10.0.0.2"], "cause": "registrar_missing"},
    ),
    (
        "terminal.finding",
        {"terminal": "PC-7", "finding": "unregistered"},
        {"terminal": "PC-7", "finding": "unregistered"},
    ),
    # optional system left out of the event entirely, not sent as ""
    ("extranet.notice", {"notice_id": "E-1"}, {"notice_id": "E-1"}),
    ("crypto.notice", {"notice_id": "C-1", "system": "OA"}, {"notice_id": "C-1", "system": "OA"}),
    ("incident.report", {"incident_id": "I-1"}, {"incident_id": "I-1"}),
    ("mlps.finding", {"system": "OA"}, {"system": "OA"}),
    (
        "control.finding",
        {"control": "internet_terminal_realname"},
        {"control": "internet_terminal_realname"},
    ),
    ("supervision.warning", {"signal_id": "S-1"}, {"signal_id": "S-1"}),
]


@pytest.mark.parametrize(("event_type", "filled", "expected"), VALID)
def test_a_valid_form_makes_the_contract_event(
    event_type: str, filled: dict[str, str], expected: dict[str, object]
) -> None:
    line, errors = build_event(
        FORM_BY_TYPE[event_type], {"at": AT, **filled}, event_id="web-1", unit="fj.gat", now=NOW
    )
    assert errors == {}
    assert line is not None
    assert json.loads(line) == {
        "event_id": "web-1",
        "type": event_type,
        "unit": "fj.gat",
        "at": "2026-11-27T19:30:00+08:00",
        **expected,
    }
    parse_event(line)  # the intake's own parser accepts it


# (type, the fields filled in, unit, the expected errors by field)
INVALID = [
    # required text left empty
    ("vuln.notice", {"at": AT, "notice_id": "V-1"}, "fj.gat", {"system": "必填。"}),
    # a due not after the notice's at: the model's own check, placed next to `due`
    (
        "vuln.notice",
        {"at": AT, "notice_id": "V-1", "system": "s", "due": "2026-11-27T19:00"},
        "fj.gat",
        {"due": "整改期限必须晚于通报时间。"},
    ),
    # not a date at all
    (
        "vuln.notice",
        {"at": "昨天", "notice_id": "V-1", "system": "s"},
        "fj.gat",
        {"at": "时间格式应为 年-月-日 时:分，例如 2026-03-01 10:00。"},
    ),
    # more than 10 minutes ahead of the clock (20:00 Beijing)
    (
        "crypto.notice",
        {"at": "2026-11-27T20:11", "notice_id": "C-1", "system": "s"},
        "fj.gat",
        {"at": "通报时间晚于当前时间 10 分钟以上，不予受理。"},
    ),
    # only blank lines: no terminal at all
    (
        "outreach.notice",
        {"at": AT, "notice_id": "O-1", "terminals": "\n \n", "cause": "violation"},
        "fj.gat",
        {"terminals": "必填。"},
    ),
    # a value outside the select's options (a hand-made POST)
    (
        "terminal.finding",
        {"at": AT, "terminal": "PC", "finding": "rootkit"},
        "fj.gat",
        {"finding": "请从列表中选择。"},
    ),
    # too long for the contract's Text
    (
        "mlps.finding",
        {"at": AT, "system": "x" * 513},
        "fj.gat",
        {"system": "过长：最多 512 个字符。"},
    ),
    # a year the contract does not accept
    (
        "mlps.finding",
        {"at": "1969-12-31T10:00", "system": "OA"},
        "fj.gat",
        {"at": "时间超出可接受的范围（1970 年至 2199 年）。"},
    ),
    # no unit picked, and the signal id missing: both reported at once
    ("supervision.warning", {"at": AT}, "", {"unit": "请选择单位。", "signal_id": "必填。"}),
]


@pytest.mark.parametrize(("event_type", "filled", "unit", "expected"), INVALID)
def test_errors_are_shown_by_field(
    event_type: str, filled: dict[str, str], unit: str, expected: dict[str, str]
) -> None:
    line, errors = build_event(
        FORM_BY_TYPE[event_type], filled, event_id="web-1", unit=unit, now=NOW
    )
    assert line is None
    assert errors == expected


def test_times_are_beijing_time() -> None:
    assert now_local(NOW) == "2026-11-27T20:00:00"
    assert show_time(NOW + timedelta(minutes=5)) == "2026-11-27 20:05"
