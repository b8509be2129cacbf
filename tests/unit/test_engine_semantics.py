"""Every numbered point of spec section 5, on the miniature rulebooks of tests/builders.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import Engine
from tests.builders import BOOKS, REGISTRY, apply_all, engine, entries, ev, net, serialize, tick


# 5.1 points are decimals -------------------------------------------------------------------------
def test_ten_deductions_of_0_2_are_exactly_2() -> None:
    eng = engine()
    out = apply_all(
        eng,
        [
            ev(
                "outreach.notice",
                f"2018-03-{d:02d}T10:00",
                unit="fz",
                notice_id=f"O{d}",
                terminals=["t"],
            )
            for d in range(1, 12)
        ],
    )
    assert net(out, "fz", "sys") == "2"  # the 11th notice finds the 2-point item cap full
    last = entries(out)[-1]
    assert last.capped and str(last.applied) == "0"


# 5.3 idempotency ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("events", "expected_net", "statuses"),
    [
        # the same event delivered twice: the second is a duplicate and deducts nothing
        (
            lambda: (
                [ev("vuln.notice", "2018-03-01T10:00", event_id="x1", notice_id="V1", system="s")]
                * 2
            ),
            "1",
            ["accepted", "duplicate"],
        ),
        # the same notice_id under a new event_id is the same notice: it deducts once
        (
            lambda: [
                ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"),
                ev("vuln.notice", "2018-03-02T10:00", notice_id="V1", system="s"),
            ],
            "1",
            ["accepted", "accepted"],
        ),
        # the same incident id twice deducts once (per_incident)
        (
            lambda: [
                ev("incident.report", "2020-03-01T10:00", unit="nd.gaj", incident_id="I1"),
                ev("incident.report", "2020-03-05T10:00", unit="nd.gaj", incident_id="I1"),
            ],
            "2",
            ["accepted", "accepted"],
        ),
    ],
)
def test_idempotency(events, expected_net: str, statuses: list[str]) -> None:  # type: ignore[no-untyped-def]
    out = apply_all(engine(), events())
    assert [o.status for o in out] == statuses
    assert net(out) == expected_net


# 5.4 counting keys -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("events", "expected_net"),
    [
        # a terminal listed twice in one notice counts once: 2 distinct terminals x 0.5
        (
            lambda: [
                ev("outreach.notice", "2018-03-01T10:00", notice_id="O1", terminals=["a", "b", "a"])
            ],
            "1",
        ),
        # the same terminal in a new notice counts again
        (
            lambda: [
                ev("outreach.notice", "2018-03-01T10:00", notice_id="O1", terminals=["a"]),
                ev("outreach.notice", "2018-03-09T10:00", notice_id="O2", terminals=["a"]),
            ],
            "1",
        ),
        # registrar_missing outreach does not match the province's violation item
        (
            lambda: [
                ev(
                    "outreach.notice",
                    "2018-03-01T10:00",
                    notice_id="O1",
                    terminals=["a"],
                    cause="registrar_missing",
                )
            ],
            "0",
        ),
        # per (year, terminal, finding): the same unregistered terminal twice a year counts once
        (
            lambda: [
                ev("terminal.finding", "2018-03-01T10:00", terminal="T1", finding="unregistered"),
                ev("terminal.finding", "2018-09-01T10:00", terminal="T1", finding="unregistered"),
            ],
            "0.5",
        ),
        # antivirus_missing has no item in the miniature province book
        (
            lambda: [
                ev(
                    "terminal.finding",
                    "2018-03-01T10:00",
                    terminal="T1",
                    finding="antivirus_missing",
                )
            ],
            "0",
        ),
        # once per year: the real-name control finding deducts once however often it is found
        (
            lambda: [
                ev("control.finding", "2018-03-01T10:00", control="internet_terminal_realname"),
                ev("control.finding", "2018-06-01T10:00", control="internet_terminal_realname"),
            ],
            "1",
        ),
        # per (year, system) in the city's graded-protection item: two systems, one repeated
        (
            lambda: [
                ev("mlps.finding", "2018-03-01T10:00", unit="fz", system="OA"),
                ev("mlps.finding", "2018-04-01T10:00", unit="fz", system="OA"),
                ev("mlps.finding", "2018-05-01T10:00", unit="fz", system="门户网站"),
            ],
            "2",
        ),
    ],
)
def test_counting_keys(events, expected_net: str) -> None:  # type: ignore[no-untyped-def]
    assert net(apply_all(engine(), events())) == expected_net


# 5.5 caps ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "expected_net", "last_applied", "last_capped"),
    [
        (3, "3", "1", False),  # three vulnerability notices reach the 3-point indicator exactly
        (4, "3", "0", True),  # the fourth is recorded with 0 applied, marked capped
    ],
)
def test_indicator_maximum(
    count: int, expected_net: str, last_applied: str, last_capped: bool
) -> None:
    out = apply_all(
        engine(),
        [
            ev("vuln.notice", f"2018-03-0{i + 1}T10:00", notice_id=f"V{i}", system="s")
            for i in range(count)
        ],
    )
    assert net(out) == expected_net
    last = entries(out)[-1]
    assert (str(last.applied), last.capped) == (last_applied, last_capped)


def test_partial_amount_when_headroom_is_smaller() -> None:
    out = apply_all(
        engine(),
        [
            ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"),
            ev("vuln.notice", "2018-03-02T10:00", notice_id="V2", system="s"),
            ev("outreach.notice", "2018-03-03T10:00", notice_id="O1", terminals=["a"]),  # 2.5
            ev(
                "outreach.notice", "2018-03-04T10:00", notice_id="O2", terminals=["b", "c"]
            ),  # +0.5, then 0
        ],
    )
    applied = [str(e.applied) for e in entries(out)]
    assert applied == ["1", "1", "0.5", "0.5", "0"]
    assert net(out) == "3"


def test_item_cap_shared_by_two_rules_of_one_clause() -> None:
    # city clause 1: notice -1 and overdue -1, together at most 4
    events = [
        ev("vuln.notice", f"2018-03-0{i + 1}T10:00", unit="fz", notice_id=f"V{i}", system="s")
        for i in range(3)
    ]
    out = apply_all(engine(), [*events, tick("2018-04-30T00:00")])
    assert net(out, "fz", "sys") == "4"
    overdue = [e for e in entries(out) if e.rule == "vuln.overdue"]
    assert [str(e.applied) for e in overdue] == ["1", "0", "0"]


def test_crypto_and_extranet_share_one_cap() -> None:
    out = apply_all(
        engine(),
        [
            ev("crypto.notice", "2020-03-02T10:00", unit="nd.gaj", notice_id="C1", system="OA"),
            ev("extranet.notice", "2020-03-03T10:00", unit="nd.gaj", notice_id="X1"),
            ev("extranet.notice", "2020-03-04T10:00", unit="nd.gaj", notice_id="X2"),
        ],
    )
    assert net(out, "nd.gaj", "sec") == "2"


# 5.6 assessment year in Asia/Shanghai ------------------------------------------------------------
def test_year_boundary_is_read_in_shanghai() -> None:
    eng = engine()
    # 2018-12-31T17:00Z is 2019-01-01 01:00 in Shanghai: no 2018 rulebook applies
    out = apply_all(eng, [ev("vuln.notice", "2018-12-31T17:00:00Z", notice_id="V1", system="s")])
    assert entries(out) == []
    # 2018-12-31T15:59:59Z is still 2018-12-31 23:59:59 in Shanghai
    out = apply_all(eng, [ev("vuln.notice", "2018-12-31T15:59:59Z", notice_id="V2", system="s")])
    assert [e.year for e in entries(out)] == [2018]


def test_overdue_deduction_belongs_to_the_year_of_its_notice() -> None:
    out = apply_all(
        engine(),
        [
            ev("vuln.notice", "2018-12-25T10:00", notice_id="V1", system="s"),
            tick("2019-01-09T00:00:01"),  # due at 24:00 of 8 January (2 weeks)
        ],
    )
    overdue = [e for e in entries(out) if e.rule == "vuln.overdue"]
    assert [(e.year, e.effective_at.isoformat()) for e in overdue] == [
        (2018, "2019-01-09T00:00:00+08:00")
    ]


# 5.7 deadlines -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event", "due"),
    [
        # 2 weeks = 24:00 of the 14th day after the day of receipt
        (
            lambda: ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"),
            "2018-03-16T00:00:00+08:00",
        ),
        # a stated period decides: the notice's own `due` moves nothing
        (
            lambda: ev(
                "vuln.notice",
                "2018-03-01T10:00",
                notice_id="V1",
                system="s",
                due="2018-03-05T18:00",
            ),
            "2018-03-16T00:00:00+08:00",
        ),
        # 3 working days: National Day 2020 (Oct 1-8 off) and the make-up Saturday Oct 10
        (
            lambda: ev("supervision.warning", "2020-09-30T10:00", unit="nd.gaj", signal_id="S1"),
            "2020-10-13T00:00:00+08:00",
        ),
        # a Friday warning: Mon, Tue, Wed -> end of Wednesday
        (
            lambda: ev("supervision.warning", "2020-06-05T16:00", unit="nd.gaj", signal_id="S1"),
            "2020-06-11T00:00:00+08:00",
        ),
        # Sunday 2020-09-27 is a make-up working day: a warning on Sat 26 is due end of Tue 29
        (
            lambda: ev("supervision.warning", "2020-09-26T09:00", unit="nd.gaj", signal_id="S1"),
            "2020-09-30T00:00:00+08:00",
        ),
    ],
)
def test_due_instants(event, due: str) -> None:  # type: ignore[no-untyped-def]
    out = engine().apply(event())
    assert [d.due.isoformat() for d in out.deadlines] == [due]


def test_unknown_calendar_year_is_an_explicit_error() -> None:
    out = engine().apply(
        ev("supervision.warning", "2099-06-01T10:00", unit="nd.gaj", signal_id="S1")
    )
    assert out.status == "rejected"
    assert "does not know 2099" in (out.reason or "") and "--holidays" in (out.reason or "")


# 5.8 event-time clock ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tick_at", "status"),
    [
        ("2018-03-16T00:00", "open"),  # watermark exactly at due: not strictly later, still open
        ("2018-03-16T00:00:00.001", "overdue"),  # one millisecond later: overdue
    ],
)
def test_deadline_boundary(tick_at: str, status: str) -> None:
    eng = engine()
    out = apply_all(
        eng, [ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"), tick(tick_at)]
    )
    states = [d.status for o in out for d in o.deadlines]
    assert states[-1] == status


def test_deadlines_expire_by_due_then_arrival_before_the_event_applies() -> None:
    eng = engine()
    out = apply_all(
        eng,
        [
            ev("vuln.notice", "2018-03-02T10:00", notice_id="B", system="s"),
            ev("vuln.notice", "2018-03-01T10:00", notice_id="A", system="s"),
            ev("vuln.notice", "2018-03-01T10:00", notice_id="A2", system="s"),
            ev("extranet.notice", "2018-04-01T10:00", notice_id="X1"),  # moves the clock past all
        ],
    )
    last = out[-1].entries
    assert [(e.rule, e.count_key) for e in last] == [
        ("vuln.overdue", "gat/A"),  # due 03-16 00:00, arrived second
        ("vuln.overdue", "gat/A2"),  # same due, arrived third
        ("vuln.overdue", "gat/B"),  # due 03-17 — by now the 3-point cap is full
        ("extranet.notice", "gat/X1"),  # the event itself comes last
    ]


# 5.9 feedback ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("feedback_at", "status", "expected_net"),
    [
        ("2018-03-16T00:00", "met", "1"),  # feedback exactly at the due instant is on time
        ("2018-03-16T00:00:01", "late", "2"),  # one second late: the overdue deduction stands
    ],
)
def test_feedback_at_the_boundary(feedback_at: str, status: str, expected_net: str) -> None:
    out = apply_all(
        engine(),
        [
            ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"),
            ev("vuln.feedback", feedback_at, notice_id="V1"),
        ],
    )
    assert out[-1].deadlines[-1].status == status
    assert net(out) == expected_net


def test_on_time_feedback_arriving_late_in_the_stream_reverses_the_overdue_deduction() -> None:
    out = apply_all(
        engine(),
        [
            ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"),
            tick("2018-03-20T00:00"),  # overdue: -1 dated at the due instant
            ev("vuln.feedback", "2018-03-14T09:00", notice_id="V1"),  # on time, delivered late
        ],
    )
    reversal = out[-1].entries[0]
    assert reversal.reverses == entries(out)[1].entry_id and str(reversal.applied) == "-1"
    assert out[-1].deadlines[-1].status == "met"
    assert net(out) == "1"


# 5.10 retraction ---------------------------------------------------------------------------------
def test_retraction_frees_headroom_for_later_capped_entries() -> None:
    notices = [
        ev("vuln.notice", f"2018-03-0{i + 1}T10:00", notice_id=f"V{i}", system="s")
        for i in range(4)
    ]
    retract = ev(
        "event.retracted",
        "2018-03-10T10:00",
        target_event_id=notices[0].event_id,
        reason="posted in error",
    )
    with_retraction = apply_all(engine(), [*notices, retract])
    without = apply_all(engine(), notices[1:])
    assert net(with_retraction) == net(without) == "3"
    assert with_retraction[-1].deadlines[0].status == "withdrawn"
    # the fourth notice was capped at 0 and now gets its point: reversal + re-evaluated entry
    changed = [
        (e.count_key, str(e.applied), e.reverses is not None) for e in with_retraction[-1].entries
    ]
    assert changed == [("gat/V0", "-1", True), ("gat/V3", "0", True), ("gat/V3", "1", False)]


def test_headroom_freed_with_no_later_claim_to_take_it_goes_to_the_next_occurrence() -> None:
    """The engine remembers a rule whose caps are full (`Assessment.spent`) so as not to ask
    again per occurrence; a withdrawal that frees headroom must make it ask again, even when no
    claim after the withdrawn one is there to take the room (and when the occurrence capped at 0
    was withdrawn first, which frees nothing)."""
    notices = [
        ev("vuln.notice", f"2018-03-0{i + 1}T10:00", notice_id=f"V{i}", system="s")
        for i in range(4)
    ]  # the 4th is capped at 0: the indicator's 3 points are taken
    retractions = [
        ev(
            "event.retracted",
            f"2018-03-0{i + 5}T10:00",
            target_event_id=target.event_id,
            reason="x",
        )
        for i, target in enumerate((notices[3], notices[0]))
    ]
    later = ev("vuln.notice", "2018-03-07T10:00", notice_id="V9", system="s")
    out = apply_all(engine(), [*notices, *retractions, later])
    assert [o.status for o in out] == ["accepted"] * 7
    assert [(e.count_key, str(e.applied)) for e in out[-1].entries] == [("gat/V9", "1")]
    assert net(out) == "3"


def test_retracting_the_only_feedback_reopens_the_deadline_and_the_clock_decides() -> None:
    fb = ev("vuln.feedback", "2018-03-10T10:00", notice_id="V1")
    out = apply_all(
        engine(),
        [
            ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"),
            fb,
            ev(
                "event.retracted",
                "2018-03-20T10:00",
                target_event_id=fb.event_id,
                reason="wrong unit",
            ),
        ],
    )
    assert out[-1].deadlines[-1].status == "overdue"
    assert net(out) == "2"


# 5.11 jurisdiction -------------------------------------------------------------------------------
def test_descendants_count_for_jurisdiction_items_of_every_ancestor() -> None:
    out = apply_all(
        engine(),
        [
            ev("vuln.notice", "2018-03-01T10:00", unit="fz.gl.x", notice_id="V1", system="s"),
            ev(
                "outreach.notice", "2018-03-02T10:00", unit="fz.gl", notice_id="O1", terminals=["a"]
            ),
        ],
    )
    assert net(out, "fz") == "1.2"
    assert {e.source_unit for e in entries(out)} == {"fz.gl.x", "fz.gl"}
    assert net(out, "fz.gl") == "0"  # counties have no 2018 assessment


def test_own_unit_items_ignore_other_units() -> None:
    out = apply_all(
        engine(), [ev("vuln.notice", "2018-03-01T10:00", unit="fz", notice_id="V1", system="s")]
    )
    assert net(out, "gat") == "0"


# rejections (section 2) --------------------------------------------------------------------------
NOW = datetime(2018, 6, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            lambda: ev(
                "vuln.notice", "2018-03-01T10:00", unit="nowhere", notice_id="V", system="s"
            ),
            "unknown unit",
        ),
        (lambda: ev("vuln.feedback", "2018-03-01T10:00", notice_id="NOPE"), "unknown notice"),
        (
            lambda: ev("supervision.handled", "2018-03-01T10:00", unit="nd.gaj", signal_id="NOPE"),
            "unknown signal",
        ),
        (
            lambda: ev("event.retracted", "2018-03-01T10:00", target_event_id="ghost", reason="x"),
            "unknown event",
        ),
        # 10 minutes ahead of the processing clock is the limit; 11 is rejected
        (
            lambda: ev("extranet.notice", "2018-06-01T08:11:00", notice_id="X"),
            "ahead of the processing clock",
        ),
    ],
)
def test_rejected_events_change_nothing(event, reason: str) -> None:  # type: ignore[no-untyped-def]
    eng = engine()
    out = eng.apply(event(), now=NOW)
    assert out.status == "rejected" and reason in (out.reason or "")
    assert eng.watermark is None and out.entries == ()


def test_ten_minutes_ahead_is_still_accepted() -> None:
    out = engine().apply(ev("extranet.notice", "2018-06-01T08:10:00", notice_id="X"), now=NOW)
    assert out.status == "accepted"


# A finding is validated in `Engine.apply`'s own frame (engine/core.py); what it rejects, and
# why, must be what the general validation says of any other event.
FINDING = {"terminal": "T1", "finding": "unregistered"}


@pytest.mark.parametrize(
    ("at", "unit", "reason"),
    [
        ("2018-03-01T10:00", "nowhere", "unknown unit 'nowhere'"),
        ("2018-06-01T08:11:00", "gat", "at 2018-06-01T08:11:00+08:00 is more than 10 minutes"),
    ],
)
def test_a_finding_is_rejected_as_any_event_is(at: str, unit: str, reason: str) -> None:
    eng = engine()
    out = eng.apply(ev("terminal.finding", at, unit=unit, **FINDING), now=NOW)
    notice = eng.apply(ev("extranet.notice", at, unit=unit, notice_id="X"), now=NOW)
    assert out.status == notice.status == "rejected"
    assert reason in (out.reason or "") and out.reason == notice.reason
    assert eng.watermark is None and out.entries == ()


def test_a_finding_of_a_closed_year_is_rejected_as_any_event_is() -> None:
    eng = engine()
    eng.apply(tick("2020-01-01T00:00"))  # closes 2018 (one year retained)
    out = eng.apply(ev("terminal.finding", "2018-03-01T10:00", **FINDING))
    notice = eng.apply(ev("extranet.notice", "2018-03-01T10:00", notice_id="X"))
    assert out.status == notice.status == "rejected"
    assert (
        out.reason
        == notice.reason
        == ("assessment year 2018 is closed (the clock is at 2020-01-01T00:00:00+08:00)")
    )


def test_a_finding_ten_minutes_ahead_is_still_accepted() -> None:
    out = engine().apply(ev("terminal.finding", "2018-06-01T08:10:00", **FINDING), now=NOW)
    assert out.status == "accepted" and len(out.entries) == 1


def test_retraction_of_another_units_event_is_unknown() -> None:
    eng = engine()
    notice = ev("vuln.notice", "2018-03-01T10:00", unit="fz", notice_id="V1", system="s")
    eng.apply(notice)
    out = eng.apply(
        ev("event.retracted", "2018-03-02T10:00", target_event_id=notice.event_id, reason="x")
    )
    assert out.status == "rejected" and "unknown event" in (out.reason or "")


# 5.12 statuses and 5.13 replay -------------------------------------------------------------------
def test_every_deadline_status_occurs() -> None:
    n = [
        ev("vuln.notice", f"2018-03-0{i}T10:00", notice_id=f"V{i}", system="s") for i in range(1, 6)
    ]
    out = apply_all(
        engine(),
        [
            *n,
            ev("vuln.feedback", "2018-03-05T10:00", notice_id="V1"),  # met
            ev(
                "event.retracted", "2018-03-06T10:00", target_event_id=n[4].event_id, reason="error"
            ),
            tick("2018-03-18T12:00"),  # V2, V3 overdue; V4 still open (due 03-19 00:00)
            ev("vuln.feedback", "2018-03-18T13:00", notice_id="V3"),  # late
        ],
    )
    final = {}
    for o in out:
        for d in o.deadlines:
            final[d.ref] = d.status
    assert final == {"V1": "met", "V2": "overdue", "V3": "late", "V4": "open", "V5": "withdrawn"}


def test_replay_from_nothing_is_byte_identical() -> None:
    stream = [
        ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="s"),
        ev(
            "outreach.notice",
            "2018-03-02T10:00",
            unit="fz.gl",
            notice_id="O1",
            terminals=["a", "b"],
        ),
        tick("2018-04-01T00:00"),
        ev("vuln.feedback", "2018-03-10T10:00", notice_id="V1"),
    ]
    first = serialize(apply_all(Engine(REGISTRY, BOOKS), stream))
    second = serialize(apply_all(Engine(REGISTRY, BOOKS), stream))
    assert first == second and first
