"""Nothing open is forgotten (contract 5.14): closing a year keeps what an open deadline needs,
so the outcome does not depend on how often the clock ticks."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, Outcome
from engine.clock import SHANGHAI
from schemas.events import Event
from schemas.ledger import DeadlineState
from tests.builders import apply_all, ev, serialize, shipped_engine, tick

# A 2020 county notice judged by its own due (nd-2020-county-gov 1), due two years later.
NOTICE = dict(unit="c.k", notice_id="V1", system="OA")


def final_states(outcomes: list[Outcome]) -> dict[tuple[str, str, str], DeadlineState]:
    out = {}
    for o in outcomes:
        for d in o.deadlines:
            out[(d.unit, d.kind, d.ref)] = d
    return out


def test_an_open_deadline_survives_the_closing_of_its_year() -> None:
    notice = ev("vuln.notice", "2020-03-02T10:00", due="2022-06-30T00:00", **NOTICE)
    jump = apply_all(shipped_engine(), [notice, tick("2022-07-01T00:00")])
    ticking = apply_all(
        shipped_engine(),
        [
            notice,
            tick("2021-01-01T00:00"),
            tick("2022-01-01T00:00"),  # closes 2020
            tick("2022-07-01T00:00"),
        ],
    )
    assert serialize(ticking) == serialize(jump)
    assert final_states(ticking) == final_states(jump)
    assert final_states(jump)[("c.k", "vuln.notice", "V1")].status == "overdue"
    overdue = [e for o in jump for e in o.entries]
    assert [(e.year, e.rulebook, str(e.applied)) for e in overdue] == [
        (2020, "nd-2020-county-gov", "2")
    ]


def test_feedback_after_the_closing_reaches_the_open_deadline() -> None:
    for ticks in ([], [tick("2022-01-01T00:00")]):
        notice = ev("vuln.notice", "2020-03-02T10:00", due="2022-06-30T00:00", **NOTICE)
        feedback = ev("vuln.feedback", "2022-05-01T10:00", unit="c.k", notice_id="V1")
        out = apply_all(shipped_engine(), [notice, *ticks, feedback, tick("2022-07-01T00:00")])
        assert [o.status for o in out] == ["accepted"] * len(out), [o.reason for o in out]
        assert final_states(out)[("c.k", "vuln.notice", "V1")].status == "met"
        assert not [e for o in out for e in o.entries]


def test_an_overdue_deadline_keeps_what_an_on_time_feedback_needs_after_its_year_closes() -> None:
    # due in 2021: the clock passes it and closes 2020 at once; feedback dated before the due
    # (2021 is not closed) still arrives, and reverses the deduction
    notice = ev("vuln.notice", "2020-03-02T10:00", due="2021-12-20T00:00", **NOTICE)
    feedback = ev("vuln.feedback", "2021-12-10T10:00", unit="c.k", notice_id="V1")
    out = apply_all(shipped_engine(), [notice, tick("2022-01-05T00:00"), feedback])
    assert [o.status for o in out] == ["accepted"] * 3, out[-1].reason
    assert final_states(out)[("c.k", "vuln.notice", "V1")].status == "met"
    assert sum(e.applied for o in out for e in o.entries) == 0


def test_what_nothing_can_change_is_forgotten_when_its_year_closes() -> None:
    eng = shipped_engine()
    notice = ev("vuln.notice", "2018-03-01T10:00", unit="p", notice_id="V1", system="OA")
    apply_all(eng, [notice, tick("2018-04-01T00:00"), tick("2020-01-01T00:00")])
    late = eng.apply(ev("vuln.feedback", "2020-01-02T10:00", unit="p", notice_id="V1"))
    assert late.status == "rejected" and "unknown notice" in (late.reason or "")
    assert eng.open_deadlines() == []


# -- property: extra ticks change nothing ---------------------------------------------------------

UNITS = ("p", "c", "c.k", "c.d")
KINDS = ("vuln", "vuln", "warning", "feedback", "feedback", "repost", "retract", "extranet")
KINDS += ("mlps", "tick")
START = datetime(2017, 11, 1, 9, 0, tzinfo=SHANGHAI)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """Events over several assessment years, with deadlines that outlive the year they open in."""
    events: list[Event] = []
    refs: list[tuple[str, str, str]] = []  # (unit, type, ref) of notices and signals
    clock = START
    for n in range(draw(st.integers(1, 30))):
        clock += timedelta(days=draw(st.integers(0, 150)), hours=draw(st.integers(0, 23)))
        at = clock.isoformat()
        unit = draw(st.sampled_from(UNITS))
        kind = draw(st.sampled_from(KINDS))
        if kind == "vuln":
            fields = {"notice_id": f"V{n}", "system": "OA"}
            if draw(st.booleans()):  # 2020 clauses need a due; others keep it for show
                due = clock + timedelta(days=draw(st.integers(1, 900)), hours=3)
                fields["due"] = due.isoformat()
            refs.append((unit, "vuln.notice", f"V{n}"))
            events.append(ev("vuln.notice", at, unit=unit, **fields))
        elif kind == "warning":
            refs.append((unit, "supervision.warning", f"S{n}"))
            events.append(ev("supervision.warning", at, unit=unit, signal_id=f"S{n}"))
        elif kind == "feedback" and refs:
            owner, type_, ref = draw(st.sampled_from(refs))
            # may claim an earlier `at` than the clock: on time, delivered late
            fb_at = (clock - timedelta(days=draw(st.integers(0, 40)))).isoformat()
            if type_ == "vuln.notice":
                events.append(ev("vuln.feedback", fb_at, unit=owner, notice_id=ref))
            else:
                events.append(ev("supervision.handled", fb_at, unit=owner, signal_id=ref))
        elif kind == "repost" and events:
            first = draw(st.sampled_from(events))
            if first.type in ("vuln.notice", "extranet.notice", "supervision.warning"):
                events.append(
                    first.model_copy(update={"event_id": f"{first.event_id}-again", "at": clock})
                )
        elif kind == "retract" and events:
            target = draw(st.sampled_from(events))
            if target.type not in ("clock.tick", "event.retracted"):
                events.append(
                    ev(
                        "event.retracted",
                        at,
                        unit=target.unit,
                        target_event_id=target.event_id,
                        reason="error",
                    )
                )
        elif kind == "extranet":
            events.append(ev("extranet.notice", at, unit=unit, notice_id=f"X{n}"))
        elif kind == "mlps":
            events.append(ev("mlps.finding", at, unit=unit, system="OA"))
        else:
            events.append(tick(at))
    return events


def _run(stream: list[Event]) -> tuple[list[Outcome], list[datetime | None]]:
    eng: Engine = shipped_engine()
    outcomes, marks = [], []
    for event in stream:
        outcomes.append(eng.apply(event))
        marks.append(eng.watermark)
    return outcomes, marks


@PROPERTY
@given(streams(), st.data())
def test_extra_ticks_anywhere_change_nothing(stream: list[Event], data: st.DataObject) -> None:
    plain, marks = _run(stream)
    # A tick before event i may move the clock anywhere up to where event i moves it anyway:
    # later than that it would be a different stream (the clock reading more than it saw).
    ticked: list[Event] = []
    extra = 0
    for i, event in enumerate(stream):
        before, after = (marks[i - 1] if i else None), marks[i]
        if after is not None and data.draw(st.integers(0, 3)) == 0:
            low = before or after - timedelta(days=400)
            span = (after - low).total_seconds()
            for _ in range(data.draw(st.integers(1, 3))):
                at = low + timedelta(seconds=span * data.draw(st.floats(0, 1)))
                ticked.append(ev("clock.tick", at.isoformat(), unit=None, event_id=f"x{extra}"))
                extra += 1
        ticked.append(event)
    with_ticks = apply_all(shipped_engine(), ticked)
    # (the stream's own ticks may find the clock already there: only unit events are compared)
    units = [o for o, e in zip(with_ticks, ticked, strict=True) if e.type != "clock.tick"]
    expected = [o for o, e in zip(plain, stream, strict=True) if e.type != "clock.tick"]
    assert [(o.status, o.reason) for o in units] == [(o.status, o.reason) for o in expected]
    assert serialize(with_ticks) == serialize(plain)
    assert final_states(with_ticks) == final_states(plain)
