"""A notice is one notice however often it is posted (contract 5.3), and entries cite the events
that support them now (5.15)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from engine import Outcome
from schemas.events import Event
from schemas.ledger import LedgerEntry
from tests.builders import apply_all, engine, entries, ev, shipped_engine, tick


def per_year(outcomes: list[Outcome], rule: str) -> dict[int, Decimal]:
    out: dict[int, Decimal] = defaultdict(Decimal)
    for e in entries(outcomes):
        if e.rule.startswith(rule):
            out[e.year] += e.applied
    return {y: v for y, v in out.items() if v}


def standing(outcomes: list[Outcome]) -> list[LedgerEntry]:
    """The entries not reversed: what the ledger says now."""
    every = entries(outcomes)
    reversed_ids = {e.reverses for e in every if e.reverses}
    return [e for e in every if e.reverses is None and e.entry_id not in reversed_ids]


# (type, its fields, the rule it counts under) — each once on 31 December 2017 and once more,
# under a new event id, on 1 January 2018; the province has a rulebook in both years.
REPOSTS: list[tuple[str, dict[str, Any], str]] = [
    ("vuln.notice", {"notice_id": "V1", "system": "OA"}, "vuln.notice"),
    ("extranet.notice", {"notice_id": "X1"}, "extranet.notice"),
    ("outreach.notice", {"notice_id": "O1", "terminals": ["t1", "t2"]}, "outreach.notice"),
]


@pytest.mark.parametrize(("kind", "fields", "rule"), REPOSTS)
def test_a_repost_in_the_next_year_deducts_once_in_the_year_of_the_first_posting(
    kind: str, fields: dict[str, Any], rule: str
) -> None:
    first = ev(kind, "2017-12-31T20:00", unit="p", **fields)
    again = ev(kind, "2018-01-01T09:00", unit="p", **fields)
    out = apply_all(shipped_engine(), [first, again])
    assert [o.status for o in out] == ["accepted", "accepted"]
    points = {"vuln.notice": "1", "extranet.notice": "1", "outreach.notice": "1"}[kind]
    assert per_year(out, rule) == {2017: Decimal(points)}
    assert all(e.event_ids == (first.event_id,) for e in entries(out))


def test_a_reposted_vulnerability_keeps_the_deadline_and_year_of_its_first_posting() -> None:
    first = ev("vuln.notice", "2017-12-31T20:00", unit="p", notice_id="V1", system="OA")
    again = ev("vuln.notice", "2018-01-01T09:00", unit="p", notice_id="V1", system="OA")
    out = apply_all(shipped_engine(), [first, again, tick("2018-02-01T00:00")])
    states = [d for o in out for d in o.deadlines]
    assert {(d.year, d.due.isoformat()) for d in states} == {(2017, "2018-01-15T00:00:00+08:00")}
    assert states[-1].status == "overdue"
    assert per_year(out, "vuln.") == {2017: Decimal(2)}  # notice and overdue, both in 2017


def test_a_notice_whose_postings_were_all_retracted_is_new_when_posted_again() -> None:
    first = ev("vuln.notice", "2017-12-31T20:00", unit="p", notice_id="V1", system="OA")
    out = apply_all(
        shipped_engine(),
        [
            first,
            _retract(first, "2018-01-01T08:00"),
            ev("vuln.notice", "2018-01-02T09:00", unit="p", notice_id="V1", system="OA"),
        ],
    )
    assert per_year(out, "vuln.notice") == {2018: Decimal(1)}  # as if the first never was


def _retract(target: Event, at: str) -> Event:
    return ev(
        "event.retracted",
        at,
        unit=target.unit,  # type: ignore[union-attr]
        target_event_id=target.event_id,
        reason="posted in error",
    )


@pytest.mark.parametrize(
    "unit",
    [
        "gat",  # the province's own items: notice and overdue
        "fz.gl.x",  # a county's notice counted in its city's jurisdiction
    ],
)
def test_entries_that_remain_cite_the_remaining_posting(unit: str) -> None:
    first = ev("vuln.notice", "2018-03-01T10:00", unit=unit, notice_id="V1", system="s")
    again = ev("vuln.notice", "2018-03-02T10:00", unit=unit, notice_id="V1", system="s")
    before = apply_all(engine(), [first, again, tick("2018-03-20T00:00")])
    eng = engine()
    out = apply_all(
        eng, [first, again, tick("2018-03-20T00:00"), _retract(first, "2018-03-21T10:00")]
    )
    now = standing(out)
    assert sorted((e.unit, e.rule) for e in now) == sorted(
        (e.unit, e.rule) for e in standing(before)
    )
    assert now and all(e.event_ids == (again.event_id,) for e in now)
    assert sum(e.applied for e in entries(out)) == sum(e.applied for e in entries(before))
    state = [d for o in out for d in o.deadlines][-1]
    assert (state.event_id, state.status) == (again.event_id, "overdue")


def test_a_finding_found_twice_is_cited_by_the_second_after_the_first_is_retracted() -> None:
    first = ev("terminal.finding", "2018-03-01T10:00", terminal="T1", finding="unregistered")
    again = ev("terminal.finding", "2018-05-01T10:00", terminal="T1", finding="unregistered")
    out = apply_all(engine(), [first, again, _retract(first, "2018-06-01T10:00")])
    now = standing(out)
    assert [(e.event_ids, str(e.applied)) for e in now] == [((again.event_id,), "0.5")]


def test_a_claim_keeps_no_supporters_of_its_own_until_another_event_asserts_it() -> None:
    # issue 12 item 4 (memory): nearly every claim is supported by just the event it cites, and
    # keeps no dict of them until a second event asserts its key (or a retraction changes them)
    first = ev("terminal.finding", "2018-03-01T10:00", terminal="T1", finding="unregistered")
    again = ev("terminal.finding", "2018-05-01T10:00", terminal="T1", finding="unregistered")
    eng = engine()
    apply_all(eng, [first])
    [claim] = [c for a in eng._assessments.values() if a is not None for c in a.claims]
    assert (claim.event_ids, claim.supporters) == ((first.event_id,), None)
    apply_all(eng, [again])
    assert list(claim.backers()) == [first.event_id, again.event_id]
    out = apply_all(eng, [_retract(again, "2018-06-01T10:00")])
    assert list(claim.backers()) == [first.event_id] and not entries(out)  # still cites `first`
    gone = _retract(first, "2018-06-02T10:00")
    out = apply_all(eng, [gone])  # its last supporter: reversed, citing it and the retraction
    assert [(e.event_ids, str(e.applied)) for e in entries(out)] == [
        ((first.event_id, gone.event_id), "-0.5")
    ]


def test_re_evaluated_entries_cite_the_remaining_supporting_events() -> None:
    # V1..V3 fill the 3-point indicator; V4 is recorded capped at 0, posted twice
    notices = [
        ev("vuln.notice", f"2018-03-0{i}T10:00", notice_id=f"V{i}", system="s") for i in (1, 2, 3)
    ]
    v4a = ev("vuln.notice", "2018-03-04T10:00", notice_id="V4", system="s")
    v4b = ev("vuln.notice", "2018-03-05T10:00", notice_id="V4", system="s")
    out = apply_all(
        engine(),
        [
            *notices,
            v4a,
            v4b,
            _retract(v4a, "2018-03-06T10:00"),  # V4 stands on its second posting
            _retract(notices[0], "2018-03-07T10:00"),  # frees a point: V4 now gets it
        ],
    )
    v4 = [e for e in standing(out) if e.count_key == "gat/V4"]
    assert [(e.event_ids, str(e.applied)) for e in v4] == [((v4b.event_id,), "1")]
    assert not any(v4a.event_id in e.event_ids for e in standing(out))


def test_a_tick_reusing_an_accepted_event_id_is_a_duplicate() -> None:
    # Contract 2: a repeated event_id is ignored, whatever its type. Ticks are not remembered,
    # but an id the engine knows must not be logged again as a tick: the store keeps one row
    # per event id, so the notice's row would be replaced and a replay would lose the notice.
    notice = ev("vuln.notice", "2018-03-01T10:00", unit="p", notice_id="V1", system="OA")
    reuse = tick("2018-03-02T00:00").model_copy(update={"event_id": notice.event_id})
    out = apply_all(shipped_engine(), [notice, reuse])
    assert [o.status for o in out] == ["accepted", "duplicate"]
