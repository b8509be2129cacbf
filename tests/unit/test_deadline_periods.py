"""Contract 5.7 (v2) on the shipped rulebooks: which period decides a notice's due instant.

The 2017/2018 clauses state a period ("接到通报2周内": 24:00 of the 14th day after the day of
receipt) and the notice's own `due` moves nothing; the 2020 Ningde clauses say only 按期, so the
notice's `due` decides and must be there; a notice no overdue rule covers keeps its `due` or the
default period of its type, for information.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.status import build_status
from schemas.events import Event
from schemas.ledger import DeadlineState
from tests.builders import SHIPPED_BOOKS, SHIPPED_REGISTRY, apply_all, entries, ev, tick
from tests.builders import shipped_engine as engine

OVERDUE = ("vuln.overdue", "supervision.overdue")


def posting(kind: str, unit: str, at: str, due: str | None) -> Event:
    if kind == "supervision.warning":
        return ev(kind, at, unit=unit, signal_id="S1")
    extra = {"due": due} if due is not None else {}
    return ev(kind, at, unit=unit, notice_id="V1", system="OA", **extra)


def last_state(outcomes: list) -> DeadlineState:  # type: ignore[type-arg]
    return [d for o in outcomes for d in o.deadlines][-1]


VULN, WARNING = "vuln.notice", "supervision.warning"
# (rulebook whose overdue rule judges the notice or None, poster, type, at, the notice's own due,
#  the due instant that judges it)
DUE_ROWS = [
    # -- fj-2017-provincial-dept 7 "接到通报2周内": 24:00 of the 14th day after the day of receipt
    ("fj-2017-provincial-dept", "p", VULN, "2017-03-01T10:00:00", None, "2017-03-16T00:00:00"),
    # received at the first second of a day: that day still does not count
    ("fj-2017-provincial-dept", "p", VULN, "2017-03-01T00:00:00", None, "2017-03-16T00:00:00"),
    # received at the last second of a day: the same deadline
    ("fj-2017-provincial-dept", "p", VULN, "2017-03-01T23:59:59", None, "2017-03-16T00:00:00"),
    # across a month end: February 2017 has 28 days
    ("fj-2017-provincial-dept", "p", VULN, "2017-02-20T10:00:00", None, "2017-03-07T00:00:00"),
    # across the year end: due in 2018, the deduction still belongs to 2017
    ("fj-2017-provincial-dept", "p", VULN, "2017-12-25T10:00:00", None, "2018-01-09T00:00:00"),
    # -- fj-2018-provincial-dept 7: the notice's own due is kept but moves nothing
    (
        "fj-2018-provincial-dept",
        "p",
        VULN,
        "2018-03-01T10:00:00",
        "2018-03-05T18:00:00",
        "2018-03-16T00:00:00",
    ),
    # ... nor a due later than the stated period
    (
        "fj-2018-provincial-dept",
        "p",
        VULN,
        "2018-03-01T10:00:00",
        "2018-06-30T00:00:00",
        "2018-03-16T00:00:00",
    ),
    # received on a holiday (Spring Festival, 16 Feb 2018): calendar days count holidays too
    ("fj-2018-provincial-dept", "p", VULN, "2018-02-16T10:00:00", None, "2018-03-03T00:00:00"),
    # written in UTC: the day of receipt is the Asia/Shanghai day (1 March, 00:30)
    ("fj-2018-provincial-dept", "p", VULN, "2018-02-28T16:30:00Z", None, "2018-03-16T00:00:00"),
    # -- fj-2018-city-gov 1: a county's notice, judged by its city's jurisdiction clause
    (
        "fj-2018-city-gov",
        "c.k",
        VULN,
        "2018-06-29T10:00:00",
        "2018-12-31T00:00:00",
        "2018-07-14T00:00:00",
    ),
    # the city's own notice at the last second of the year: due in the next year
    ("fj-2018-city-gov", "c", VULN, "2018-12-31T23:59:59", None, "2019-01-15T00:00:00"),
    # -- nd-2020-county-gov 1 "未按期完成整改": the notice's own due decides, to the second
    (
        "nd-2020-county-gov",
        "c.k",
        VULN,
        "2020-03-02T10:00:00",
        "2020-03-12T17:30:00",
        "2020-03-12T17:30:00",
    ),
    # across the year end
    (
        "nd-2020-county-gov",
        "c.k",
        VULN,
        "2020-12-30T10:00:00",
        "2021-01-08T00:00:00",
        "2021-01-08T00:00:00",
    ),
    # -- nd-2020-city-dept 1: the same, received on a holiday (National Day)
    (
        "nd-2020-city-dept",
        "c.d",
        VULN,
        "2020-10-01T10:00:00",
        "2020-10-09T12:00:00",
        "2020-10-09T12:00:00",
    ),
    # -- nd-2020-city-dept 3(1) "3个工作日内": 24:00 of the 3rd working day after the day of receipt;
    # National Day 2020 (1-8 Oct off) and the make-up Saturday 10 Oct
    ("nd-2020-city-dept", "c.d", WARNING, "2020-09-30T10:00:00", None, "2020-10-13T00:00:00"),
    ("nd-2020-city-dept", "c.d", WARNING, "2020-09-30T00:00:00", None, "2020-10-13T00:00:00"),
    ("nd-2020-city-dept", "c.d", WARNING, "2020-09-30T23:59:59", None, "2020-10-13T00:00:00"),
    # across a month end: Tue 30 Jun, Wed 1 Jul, Thu 2 Jul
    ("nd-2020-city-dept", "c.d", WARNING, "2020-06-29T10:00:00", None, "2020-07-03T00:00:00"),
    # across the year end: 1-3 January 2021 are off
    ("nd-2020-city-dept", "c.d", WARNING, "2020-12-30T10:00:00", None, "2021-01-06T00:00:00"),
    # received on a holiday: Fri 9 Oct, Sat 10 Oct (make-up working day), Mon 12 Oct
    ("nd-2020-city-dept", "c.d", WARNING, "2020-10-01T10:00:00", None, "2020-10-13T00:00:00"),
    # -- no overdue rule covers the notice (2019 has no assessment): for information only,
    # the default period of its type: 2 weeks for a vulnerability notice
    (None, "p", VULN, "2019-03-01T10:00:00", None, "2019-03-16T00:00:00"),
    # ... or the notice's own due
    (None, "p", VULN, "2019-03-01T10:00:00", "2019-03-05T00:00:00", "2019-03-05T00:00:00"),
    # a city government in 2020 has no rulebook
    (None, "c", VULN, "2020-03-02T10:00:00", None, "2020-03-17T00:00:00"),
    # ... and 3 working days for a risk-warning signal
    (None, "c", WARNING, "2020-09-30T10:00:00", None, "2020-10-13T00:00:00"),
]


@pytest.mark.parametrize(("book", "unit", "kind", "at", "notice_due", "due"), DUE_ROWS)
def test_due_instant(
    book: str | None, unit: str, kind: str, at: str, notice_due: str | None, due: str
) -> None:
    eng = engine()
    first = eng.apply(posting(kind, unit, at, notice_due))
    assert first.status == "accepted", first.reason
    state = first.deadlines[-1]
    assert state.due.isoformat() == due + "+08:00"
    assert state.due.utcoffset() == state.noticed_at.utcoffset()  # shown in Asia/Shanghai
    # never remediated: the rule that judged it deducts, in the year of the notice
    later = eng.apply(tick("2022-12-31T00:00:00"))
    overdue = [e for e in later.entries if e.rule in OVERDUE]
    assert {e.rulebook for e in overdue} == ({book} if book else set())
    assert all(e.effective_at.isoformat() == due + "+08:00" for e in overdue)
    assert all(e.year == state.year for e in overdue)
    shown = state.notice_due.isoformat() if state.notice_due is not None else None
    assert shown == (notice_due + "+08:00" if notice_due else None)  # kept as the notice said


# (rulebook, poster, type, at, the notice's own due, feedback at, status, overdue points)
FEEDBACK_ROWS = [
    # fj-2017-provincial-dept: due 2017-03-16T00:00 (24:00 of 15 March)
    ("fj-2017-provincial-dept", "p", VULN, "2017-03-01T10:00", None, "2017-03-15T23:59:59", "met", "0"),
    ("fj-2017-provincial-dept", "p", VULN, "2017-03-01T10:00", None, "2017-03-16T00:00:00", "met", "0"),
    ("fj-2017-provincial-dept", "p", VULN, "2017-03-01T10:00", None, "2017-03-16T00:00:01", "late", "1"),
    # fj-2018-provincial-dept: a feedback after the notice's own due is still on time
    ("fj-2018-provincial-dept", "p", VULN, "2018-03-01T10:00", "2018-03-05T18:00", "2018-03-15T23:59:59", "met", "0"),
    ("fj-2018-provincial-dept", "p", VULN, "2018-03-01T10:00", "2018-03-05T18:00", "2018-03-16T00:00:00", "met", "0"),
    ("fj-2018-provincial-dept", "p", VULN, "2018-03-01T10:00", "2018-03-05T18:00", "2018-03-16T00:00:01", "late", "1"),
    # fj-2018-city-gov: the county's notice; the city loses the point
    ("fj-2018-city-gov", "c.k", VULN, "2018-03-01T10:00", None, "2018-03-15T23:59:59", "met", "0"),
    ("fj-2018-city-gov", "c.k", VULN, "2018-03-01T10:00", None, "2018-03-16T00:00:00", "met", "0"),
    ("fj-2018-city-gov", "c.k", VULN, "2018-03-01T10:00", None, "2018-03-16T00:00:01", "late", "1"),
    # nd-2020-county-gov: judged by the notice's own due
    ("nd-2020-county-gov", "c.k", VULN, "2020-03-02T10:00", "2020-03-12T17:30", "2020-03-12T17:29:59", "met", "0"),
    ("nd-2020-county-gov", "c.k", VULN, "2020-03-02T10:00", "2020-03-12T17:30", "2020-03-12T17:30:00", "met", "0"),
    ("nd-2020-county-gov", "c.k", VULN, "2020-03-02T10:00", "2020-03-12T17:30", "2020-03-12T17:30:01", "late", "2"),
    # nd-2020-city-dept 1
    ("nd-2020-city-dept", "c.d", VULN, "2020-03-02T10:00", "2020-03-12T17:30", "2020-03-12T17:29:59", "met", "0"),
    ("nd-2020-city-dept", "c.d", VULN, "2020-03-02T10:00", "2020-03-12T17:30", "2020-03-12T17:30:00", "met", "0"),
    ("nd-2020-city-dept", "c.d", VULN, "2020-03-02T10:00", "2020-03-12T17:30", "2020-03-12T17:30:01", "late", "1"),
    # nd-2020-city-dept 3(1): due 2020-10-13T00:00 (24:00 of 12 October)
    ("nd-2020-city-dept", "c.d", WARNING, "2020-09-30T10:00", None, "2020-10-12T23:59:59", "met", "0"),
    ("nd-2020-city-dept", "c.d", WARNING, "2020-09-30T10:00", None, "2020-10-13T00:00:00", "met", "0"),
    ("nd-2020-city-dept", "c.d", WARNING, "2020-09-30T10:00", None, "2020-10-13T00:00:01", "late", "0.5"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("book", "unit", "kind", "at", "notice_due", "feedback_at", "status", "points"), FEEDBACK_ROWS
)
def test_feedback_around_the_due_instant(
    book: str,
    unit: str,
    kind: str,
    at: str,
    notice_due: str | None,
    feedback_at: str,
    status: str,
    points: str,
) -> None:
    if kind == VULN:
        feedback = ev("vuln.feedback", feedback_at, unit=unit, notice_id="V1")
    else:
        feedback = ev("supervision.handled", feedback_at, unit=unit, signal_id="S1")
    out = apply_all(
        engine(), [posting(kind, unit, at, notice_due), feedback, tick("2022-01-01T00:00")]
    )
    assert [o.status for o in out] == ["accepted"] * 3
    assert last_state(out).status == status
    overdue = [e for e in entries(out) if e.rule in OVERDUE]
    assert {e.rulebook for e in overdue} <= {book}
    assert sum((e.applied for e in overdue), Decimal(0)) == Decimal(points)


@pytest.mark.parametrize(
    ("unit", "book", "clause_start"),
    [
        ("c.k", "nd-2020-county-gov", "1.辖区内关键信息基础设施"),  # the county's own clause
        ("c.d", "nd-2020-city-dept", "1.关键信息基础设施"),  # the city department's
    ],
)
def test_a_notice_judged_only_by_its_due_must_carry_one(
    unit: str, book: str, clause_start: str
) -> None:
    eng = engine()
    out = eng.apply(ev("vuln.notice", "2020-03-02T10:00", unit=unit, notice_id="V1", system="OA"))
    assert out.status == "rejected" and out.entries == () and out.deadlines == ()
    reason = out.reason or ""
    assert f"{book} cii-netsec item 1" in reason and clause_start in reason
    assert "按期" in reason and "due" in reason
    assert eng.watermark is None  # a rejected event changes nothing
    # re-posted with a due, it is accepted
    again = eng.apply(
        ev(
            "vuln.notice",
            "2020-03-02T10:00",
            unit=unit,
            notice_id="V1",
            system="OA",
            due="2020-03-20T00:00",
        )
    )
    assert again.status == "accepted"


def test_a_notice_no_rule_judges_by_due_needs_none() -> None:
    # 2018 county: the city's 2-week clause judges it; 2020 city government: no rule at all
    for unit, at in (("c.k", "2018-03-01T10:00"), ("c", "2020-03-02T10:00")):
        out = engine().apply(ev("vuln.notice", at, unit=unit, notice_id="V1", system="OA"))
        assert out.status == "accepted", out.reason


def test_status_shows_the_notices_own_due_where_it_is_not_the_one_that_judges() -> None:
    eng = engine()
    out = apply_all(
        eng,
        [
            # 2018: the stated 2 weeks judge; the notice's own due is shown beside them
            ev(
                "vuln.notice",
                "2018-03-01T10:00",
                unit="p",
                notice_id="V1",
                system="OA",
                due="2018-03-05T18:00",
            ),
            ev("vuln.notice", "2018-03-02T10:00", unit="p", notice_id="V2", system="OA"),
            # 2020: the notice's own due is the one that judges: shown once
            ev(
                "vuln.notice",
                "2020-03-02T10:00",
                unit="c.d",
                notice_id="V3",
                system="OA",
                due="2020-03-12T17:30",
            ),
        ],
    )
    states = {d.ref: d for o in out for d in o.deadlines}  # the latest, as a store keeps them
    rows = build_status(SHIPPED_REGISTRY, SHIPPED_BOOKS, {}, states.values(), [])
    shown = {d["ref"]: d for r in rows for d in r.model_dump(mode="json")["deadlines"]}
    assert shown == {
        "V1": {"ref": "V1", "due": "2018-03-16T00:00:00+08:00", "status": "overdue",
               "notice_due": "2018-03-05T18:00:00+08:00"},
        "V2": {"ref": "V2", "due": "2018-03-17T00:00:00+08:00", "status": "overdue"},
        "V3": {"ref": "V3", "due": "2020-03-12T17:30:00+08:00", "status": "open"},
    }  # fmt: skip


def test_a_repost_needs_no_due_of_its_own() -> None:
    eng = engine()
    first = ev(
        "vuln.notice", "2020-03-02T10:00", unit="c.k", notice_id="V1", system="OA",
        due="2020-03-20T00:00",
    )  # fmt: skip
    again = ev("vuln.notice", "2020-03-03T10:00", unit="c.k", notice_id="V1", system="OA")
    out = apply_all(eng, [first, again])
    assert [o.status for o in out] == ["accepted", "accepted"]
    assert eng.open_deadlines()[0].due.isoformat() == "2020-03-20T00:00:00+08:00"
