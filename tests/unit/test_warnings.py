"""Deadline warnings (engine/warnings.py): pure, no Kafka."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from config.holidays import official_calendar
from engine.clock import SHANGHAI
from engine.warnings import DeadlineWarning, Warner, WarningPolicy
from schemas.ledger import DeadlineState
from tests import builders

CAL = official_calendar()
T0 = datetime(2018, 3, 1, 10, 0, tzinfo=SHANGHAI)
DUE = T0 + timedelta(days=14)


def state(status: str = "open", updated: datetime = T0, **kw: Any) -> DeadlineState:
    values: dict[str, Any] = {
        "unit": "fj.gat",
        "kind": "vuln.notice",
        "ref": "V-1",
        "year": 2018,
        "event_id": "e1",
        "noticed_at": T0,
        "due": DUE,
        "status": status,
        "feedback_at": None,
        "updated_at": updated,
        "version": 1,
    }
    values.update(kw)
    return DeadlineState(**values)


def summary(warnings: list[DeadlineWarning]) -> list[tuple[str, str | None, datetime]]:
    return [(w.type, w.lead, w.at) for w in warnings]


def test_approaching_at_each_lead_then_overdue_at_due() -> None:
    w = Warner(CAL)
    assert w.feed([state()], T0) == []
    assert w.feed([], DUE - timedelta(days=3, seconds=1)) == []
    assert summary(w.feed([], DUE - timedelta(days=3))) == [
        ("deadline.approaching", "3d", DUE - timedelta(days=3))
    ]
    assert summary(w.feed([], DUE - timedelta(hours=1))) == [
        ("deadline.approaching", "1d", DUE - timedelta(days=1))
    ]
    overdue = w.feed([state("overdue", updated=DUE)], DUE + timedelta(hours=6))
    assert summary(overdue) == [("deadline.overdue", None, DUE)]
    assert w.feed([], DUE + timedelta(days=30)) == []


def test_warnings_do_not_depend_on_how_often_the_clock_ticks() -> None:
    fine, coarse = Warner(CAL), Warner(CAL)
    out = fine.feed([state()], T0)
    for hours in range(6, 15 * 24, 6):
        now = T0 + timedelta(hours=hours)
        changes = [state("overdue", updated=DUE)] if now > DUE else []
        if now > DUE and any(w.type == "deadline.overdue" for w in out):
            changes = []
        out += fine.feed(changes, now)
    # one jump straight past due: the leads passed while the notice was open still count
    jump = coarse.feed([state()], T0) + coarse.feed(
        [state("overdue", updated=DUE)], DUE + timedelta(days=2)
    )
    assert sorted(w.warning_id for w in out) == sorted(w.warning_id for w in jump)
    assert [w.type for w in jump] == ["deadline.approaching"] * 2 + ["deadline.overdue"]


def test_feedback_before_a_lead_cancels_that_warning() -> None:
    w = Warner(CAL)
    w.feed([state()], T0)
    met = state("met", updated=DUE - timedelta(days=2), feedback_at=DUE - timedelta(days=2))
    assert summary(w.feed([met], DUE - timedelta(days=2))) == [
        ("deadline.approaching", "3d", DUE - timedelta(days=3))
    ]
    assert w.feed([], DUE + timedelta(days=1)) == []


def test_late_feedback_that_moved_the_clock_past_due_still_reports_overdue() -> None:
    w = Warner(CAL)
    w.feed([state()], T0)
    late_at = DUE + timedelta(hours=2)
    late = state("late", updated=late_at, feedback_at=late_at)
    assert [x.type for x in w.feed([late], late_at)] == [
        "deadline.approaching",
        "deadline.approaching",
        "deadline.overdue",
    ]


def test_withdrawn_and_short_deadlines() -> None:
    w = Warner(CAL)
    w.feed([state()], T0)
    assert (
        w.feed([state("withdrawn", updated=T0 + timedelta(days=1))], T0 + timedelta(days=1)) == []
    )
    assert w.feed([], DUE + timedelta(days=1)) == []
    # a notice due two days after it arrives gets no "3 days left"
    short = Warner(CAL)
    short.feed([state(due=T0 + timedelta(days=2))], T0)
    assert summary(short.feed([], T0 + timedelta(days=2))) == [
        ("deadline.approaching", "1d", T0 + timedelta(days=1))
    ]


def test_working_day_leads_count_back_on_the_official_calendar() -> None:
    # Signal at 2020-09-30 10:00, due at the end of 2020-10-12 (docs/semantics.md): National
    # Day runs 1-8 October, Saturday 10 October is a make-up working day.
    noticed = datetime(2020, 9, 30, 10, 0, tzinfo=SHANGHAI)
    due = datetime(2020, 10, 13, tzinfo=SHANGHAI)
    signal = state(kind="supervision.warning", ref="S-1", year=2020, noticed_at=noticed, due=due,
                   updated=noticed)  # fmt: skip
    w = Warner(CAL)
    w.feed([signal], noticed)
    got = summary(w.feed([], datetime(2020, 10, 12, tzinfo=SHANGHAI)))
    assert got == [
        # three working days left (9, 10 and 12 October) from the end of 30 September
        ("deadline.approaching", "3wd", datetime(2020, 10, 1, tzinfo=SHANGHAI)),
        # one left (the 12th) from the end of Saturday the 10th, a make-up working day
        ("deadline.approaching", "1wd", datetime(2020, 10, 11, tzinfo=SHANGHAI)),
    ]


def test_ids_are_deterministic_and_json_is_flat() -> None:
    a, b = Warner(CAL), Warner(CAL)
    for w in (a, b):
        w.feed([state()], T0)
    first, second = a.feed([], DUE), b.feed([], DUE)
    assert [x.warning_id for x in first] == [x.warning_id for x in second]
    assert len({x.warning_id for x in first}) == 2
    assert first[0].as_json() == {
        "warning_id": first[0].warning_id,
        "type": "deadline.approaching",
        "unit": "fj.gat",
        "kind": "vuln.notice",
        "ref": "V-1",
        "due": "2018-03-15T10:00:00+08:00",
        "lead": "3d",
        "at": "2018-03-12T10:00:00+08:00",
    }


def test_policy_parsing() -> None:
    assert WarningPolicy.parse("1,3").leads == (3, 1)
    assert WarningPolicy.parse("").leads == ()
    for bad in ("3d", "0", "-1"):
        with pytest.raises(ValueError, match="warning leads"):
            WarningPolicy.parse(bad)
    w = Warner(CAL, WarningPolicy.parse("7"))
    w.feed([state()], T0)
    assert summary(w.feed([], DUE)) == [("deadline.approaching", "7d", DUE - timedelta(days=7))]


def test_fed_by_the_engine() -> None:
    engine = builders.engine()
    w = Warner(CAL)
    events = [
        builders.ev("vuln.notice", "2018-03-01T10:00:00", notice_id="V-1", system="OA"),
        builders.tick("2018-03-13T00:00:00"),
        builders.tick("2018-03-20T00:00:00"),
    ]
    out = []
    for event in events:
        outcome = engine.apply(event)
        out += w.feed(outcome.deadlines, engine.watermark)
    # 2 weeks end at 24:00 of 15 March (contract v2): due 2018-03-16T00:00
    assert summary(out) == [
        ("deadline.approaching", "3d", datetime(2018, 3, 13, tzinfo=SHANGHAI)),
        ("deadline.approaching", "1d", datetime(2018, 3, 15, tzinfo=SHANGHAI)),
        ("deadline.overdue", None, datetime(2018, 3, 16, tzinfo=SHANGHAI)),
    ]
