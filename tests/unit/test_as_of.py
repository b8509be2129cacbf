"""Status as of an instant (issue 11, docs/semantics.md "As of an instant"), on the in-memory
store: the store's as-of answer against a replay of the events cut at that instant.

The replay cut at T applies, in arrival order, every event dated at or before T, then moves the
clock to T (a tick at T). Where the events dated at or before T came first in arrival order (the
cut is a prefix of the log: always so when no event arrives dated before one already applied),
the as-of answer equals that replay exactly: ledger rows, deadline states, status objects. Where
a late arrival breaks that, the answer is what the tracker recorded, dated by event time; the
rows marked LATE below state how it differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.clock import SHANGHAI
from schemas.events import Event
from schemas.points import format_points
from sinks import MemoryStore
from sinks.views import status_rows
from tests.builders import BOOKS, REGISTRY, calendar, ev, tick
from tests.unit.test_engine_properties import streams
from tracker.pipeline import Tracker

FAR = datetime(2100, 1, 1, tzinfo=SHANGHAI)  # the processing clock: nothing is "ahead" of it
MS = timedelta(milliseconds=1)


def line(event: Event) -> str:
    return event.model_dump_json(exclude_none=True)


def ingest(events: Sequence[Event]) -> MemoryStore:
    store = MemoryStore()
    store.save_config(REGISTRY, BOOKS)
    tracker = Tracker(store, REGISTRY, BOOKS, calendar(), clock=lambda: FAR)
    tracker.feed_lines([line(e) for e in events], "t")
    return store


def cut(events: Sequence[Event], at: datetime) -> MemoryStore:
    """The replay cut at `at`: the events dated at or before it, in arrival order, then a
    tick at `at` (the clock stands at the instant asked about)."""
    kept = [e for e in events if e.at <= at]
    return ingest([*kept, ev("clock.tick", at.isoformat(), unit=None, event_id="tick-as-of")])


def dumped(rows: Sequence[Any]) -> list[Any]:
    return [r.model_dump(mode="json") for r in rows]


def answers(store: MemoryStore, at: datetime) -> tuple[list[Any], list[Any], list[Any]]:
    view = store.as_of(at)
    config = store.load_config()
    assert config is not None
    return (
        dumped(view.ledger()),
        dumped(view.deadlines()),
        dumped(status_rows(store, config, as_of=at)),
    )


def latest(store: MemoryStore) -> tuple[list[Any], list[Any], list[Any]]:
    config = store.load_config()
    assert config is not None
    return dumped(store.ledger()), dumped(store.deadlines()), dumped(status_rows(store, config))


def is_prefix(events: Sequence[Event], at: datetime) -> bool:
    """Whether the events dated at or before `at` all arrived before any dated after it."""
    seen_later = False
    for e in events:
        if e.at > at:
            seen_later = True
        elif seen_later:
            return False
    return True


def instants(events: Sequence[Event]) -> list[datetime]:
    """Instants worth asking about: at, just before and just after every event and every due."""
    found: set[datetime] = set()
    for e in events:
        found.update((e.at - MS, e.at, e.at + MS))
    return sorted(found)


# -- the property --------------------------------------------------------------------------------

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(streams(), st.data())
def test_as_of_equals_the_replay_cut_at_that_instant(
    stream: list[Event], data: st.DataObject
) -> None:
    """For random instants over a generated history (late feedback and re-posts included): the
    answer equals the cut replay at every instant whose cut is a prefix of the log (asserted),
    and for the others it is what the tracker recorded (docs/semantics.md; rows LATE below)."""
    store = ingest(stream)
    states = store.deadlines()
    points = instants(stream) + [d.due + delta for d in states for delta in (-MS, 0 * MS, MS)]
    points.append(min(e.at for e in stream) - timedelta(days=1))  # before any event
    chosen = data.draw(st.lists(st.sampled_from(sorted(set(points))), min_size=1, max_size=6))
    for at in chosen:
        if not is_prefix(stream, at):
            continue  # a late arrival dated at or before `at` came after one dated later
        assert answers(store, at) == latest(cut(stream, at)), at


def in_order(stream: list[Event]) -> list[Event]:
    """The same stream with every event dated no earlier than the one before it."""
    out, clock = [], None
    for e in stream:
        if clock is not None and e.at < clock:
            e = e.model_copy(update={"at": clock})
        clock = e.at if clock is None else max(clock, e.at)
        out.append(e)
    return out


@PROPERTY
@given(streams(), st.data())
def test_in_order_streams_match_the_replay_at_every_instant(
    stream: list[Event], data: st.DataObject
) -> None:
    stream = in_order(stream)
    store = ingest(stream)
    points = sorted(set(instants(stream)) | {d.due for d in store.deadlines()})
    for at in data.draw(st.lists(st.sampled_from(points), min_size=1, max_size=6)):
        assert is_prefix(stream, at)
        assert answers(store, at) == latest(cut(stream, at)), at


def test_after_the_last_event_the_answer_is_the_latest() -> None:
    stream = [
        ev("vuln.notice", "2018-03-01T10:00", event_id="n", notice_id="V1", system="s"),
        tick("2018-04-01T00:00"),
    ]
    store = ingest(stream)
    assert answers(store, datetime(2019, 1, 1, tzinfo=SHANGHAI)) == latest(store)


# -- edge cases ----------------------------------------------------------------------------------

NOTICE = ev("vuln.notice", "2018-03-01T10:00", event_id="n", notice_id="V1", system="s")
DUE = datetime(2018, 3, 16, tzinfo=SHANGHAI)  # 2 weeks, counted the civil-code way (contract 5.7)
OUTREACH = ev("outreach.notice", "2018-03-02T10:00", event_id="o", notice_id="O1", terminals=["a"])
TICK_AFTER = tick("2018-03-17T12:00")  # the clock passes the due a day and a half late
ON_TIME = ev("vuln.feedback", "2018-03-10T10:00", event_id="f", notice_id="V1")
RETRACT = ev(
    "event.retracted", "2018-04-01T10:00", event_id="r", target_event_id="o", reason="error"
)
EXTRANETS = [  # 3 points of the 3 the indicator has: the outreach notice after them is capped
    ev("extranet.notice", f"2018-02-0{i}T10:00", event_id=f"x{i}", notice_id=f"X{i}")
    for i in (1, 2, 3)
]
RETRACT_X1 = ev(
    "event.retracted", "2018-05-01T10:00", event_id="rx", target_event_id="x1", reason="error"
)
FB_RETRACT = ev(
    "event.retracted", "2018-04-01T10:00", event_id="rf", target_event_id="f", reason="error"
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text if "+" in text else text + "+08:00")


def deducted(store: MemoryStore, when: datetime, unit: str = "gat") -> str:
    config = store.load_config()
    assert config is not None
    rows = status_rows(store, config, unit=unit, year=2018, as_of=when)
    return format_points(rows[0].deducted)


def status_of(store: MemoryStore, when: datetime, ref: str = "V1") -> str | None:
    found = [d.status for d in store.as_of(when).deadlines() if d.ref == ref]
    return found[0] if found else None


EDGES = [
    # (stream, instant, points deducted then, V1's status then)
    # before any event: nothing deducted, no deadline (the assessed unit-year still shows, at 0)
    ([NOTICE, TICK_AFTER], at("2018-01-01T00:00"), "0", None),
    # exactly at an entry's effective_at: the entry shows (events dated at T are applied)
    ([NOTICE, TICK_AFTER], NOTICE.at, "1", "open"),
    # a millisecond before it: it does not
    ([NOTICE, TICK_AFTER], NOTICE.at - MS, "0", None),
    # exactly at the due instant: still open (feedback dated then is on time, contract 5.9)
    ([NOTICE, TICK_AFTER], DUE, "1", "open"),
    # a millisecond after the due: overdue and its deduction, though the tick came a day later
    ([NOTICE, TICK_AFTER], DUE + MS, "2", "overdue"),
    # feedback on time, before it: open; at it: met, and no overdue deduction ever
    ([NOTICE, ON_TIME, TICK_AFTER], ON_TIME.at - MS, "1", "open"),
    ([NOTICE, ON_TIME, TICK_AFTER], DUE + MS, "1", "met"),
    # a retraction after T is not visible at T: the notice still counts
    ([NOTICE, OUTREACH, TICK_AFTER, RETRACT], RETRACT.at - MS, "2.5", "overdue"),
    # ... and at its own instant it is: the outreach deduction is reversed
    ([NOTICE, OUTREACH, TICK_AFTER, RETRACT], RETRACT.at, "2", "overdue"),
    # a capped entry re-evaluated by a later retraction: capped (0) before, 0.5 after
    ([*EXTRANETS, OUTREACH, RETRACT_X1], RETRACT_X1.at - MS, "3", None),
    ([*EXTRANETS, OUTREACH, RETRACT_X1], RETRACT_X1.at, "2.5", None),
    # an overdue deduction opened by retracting the on-time feedback, dated at the due: not
    # there between the due and the retraction (the deadline was met then), there after it
    ([NOTICE, ON_TIME, TICK_AFTER, FB_RETRACT], FB_RETRACT.at - MS, "1", "met"),
    ([NOTICE, ON_TIME, TICK_AFTER, FB_RETRACT], FB_RETRACT.at, "2", "overdue"),
    # after the year closed (2018 closes when the clock reaches 2020): the year as it ended
    ([NOTICE, TICK_AFTER, tick("2020-01-02T00:00")], at("2020-06-30T00:00"), "2", "overdue"),
]


@pytest.mark.parametrize(("stream", "when", "points", "status"), EDGES)
def test_edges(stream: list[Event], when: datetime, points: str, status: str | None) -> None:
    store = ingest(stream)
    assert (deducted(store, when), status_of(store, when)) == (points, status)
    assert answers(store, when) == latest(cut(stream, when))  # every row is a prefix cut


# LATE: feedback dated before the due that arrives after the tick that passed the due.
LATE_FEEDBACK = [NOTICE, TICK_AFTER, ON_TIME]

LATE = [
    # (instant, deducted, V1's status, ledger rows shown, whether the ledger equals the cut's)
    # between the feedback's date and the due: the overdue deduction did not exist yet, and its
    # reversal shows only with it: met, 1 point, the cut replay's ledger. The deadline state is
    # the same but for its version: the tracker had counted one more (the overdue state).
    (ON_TIME.at, "1", "met", 1, True),
    # after the due: the tracker recorded the overdue deduction (when the tick passed the due)
    # and its reversal (when the feedback came): both show, net 0, met. The cut replay, where the
    # feedback is applied before the clock passes the due, has neither row.
    (DUE + MS, "1", "met", 3, False),
]


@pytest.mark.parametrize(("when", "points", "status", "rows", "same_ledger"), LATE)
def test_late_feedback(
    when: datetime, points: str, status: str, rows: int, same_ledger: bool
) -> None:
    store = ingest(LATE_FEEDBACK)
    assert (deducted(store, when), status_of(store, when)) == (points, status)
    assert len(store.as_of(when).ledger()) == rows
    ledger, deadlines, shown = answers(store, when)
    replay_ledger, replay_deadlines, replay_shown = latest(cut(LATE_FEEDBACK, when))
    assert (ledger == replay_ledger) is same_ledger
    assert shown == replay_shown  # the status objects agree either way
    versionless = [{**d, "version": 0} for d in deadlines]
    assert versionless == [{**d, "version": 0} for d in replay_deadlines]


def test_late_arrival_capped_by_a_later_dated_event() -> None:
    """LATE: an event dated before T that arrived after an event dated after T, which had taken
    the headroom: the tracker capped it (arrival order decides caps, contract 5.5), and the
    as-of answer shows it so; the cut replay, without the later-dated event, applies it."""
    late = ev("extranet.notice", "2018-02-02T12:00", event_id="late", notice_id="XL")
    stream = [*EXTRANETS, tick("2018-03-01T00:00"), late]
    store = ingest(stream)
    when = at("2018-02-02T13:00")  # x1, x2 and the late one dated before; x3 after
    assert (deducted(store, when), deducted(cut(stream, when), when)) == ("2", "3")
    capped = [e for e in store.as_of(when).ledger() if e.event_ids == ("late",)]
    assert [(str(e.applied), e.capped) for e in capped] == [("0", True)]
    when = at("2018-03-01T00:00")  # all four, in the order they arrived: the same again
    assert answers(store, when) == latest(cut(stream, when))


def test_a_store_without_history_says_so() -> None:
    # the in-memory store always has its history; the ClickHouse one may not (integration test)
    assert ingest([NOTICE]).as_of(NOTICE.at).deadlines()


# -- the CLI option ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "value", "words"),
    [
        ("status", "yesterday", "is not an RFC 3339 time"),  # not a time
        ("ledger", "2018-06-30T00:00:00", "has no offset"),  # event time is never naive
        ("deadlines", "2018-06-30T00:00:00.0005+08:00", "finer than a millisecond"),  # store's
    ],
)
def test_a_bad_as_of_is_a_usage_error_before_the_store_is_opened(
    command: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracker.cli import main

    # a store that does not exist: the option is refused before anything looks for it
    assert main([command, "--store", "chdb:///nonexistent/as-of", "--as-of", value]) == 2
    err = capsys.readouterr().err
    assert words in err and "--as-of" in err and "no store" not in err
