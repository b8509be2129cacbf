"""As of an instant, one contract for both stores (in-memory and real chDB): each answers what
the replay cut at that instant gives, and the same as the other (docs/semantics.md)."""

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
from sinks import MemoryStore, Store
from sinks.base import HistoryMissingError
from sinks.views import status_rows
from tests.builders import BOOKS, REGISTRY, calendar, ev, tick
from tracker.pipeline import Tracker

MS = timedelta(milliseconds=1)
FAR = datetime(2100, 1, 1, tzinfo=SHANGHAI)

# gat's V1 overdue at 03-16 (reversed when its on-time feedback comes, late, after the tick);
# the city's V2 with its own due, judged by the clause's two weeks; an outreach notice of the
# county retracted after the tick; a capped outreach re-evaluated by that retraction.
STREAM = [
    ev("vuln.notice", "2018-03-01T10:00", event_id="v1", notice_id="V1", system="OA"),
    ev("outreach.notice", "2018-03-02T10:00", unit="fz.gl", event_id="o1", notice_id="O1",
       terminals=["a", "b"]),
    ev("vuln.notice", "2018-03-03T10:00", unit="fz", event_id="v2", notice_id="V2",
       system="门户网站", due="2018-03-25T18:00"),
    tick("2018-03-20T00:00"),
    ev("vuln.feedback", "2018-03-10T10:00", event_id="f1", notice_id="V1"),  # late: before the tick
    ev("event.retracted", "2018-03-21T10:00", unit="fz.gl", event_id="r1", target_event_id="o1",
       reason="posted in error"),
    tick("2018-05-01T00:00"),
]  # fmt: skip


def at(text: str) -> datetime:
    return datetime.fromisoformat(text + "+08:00")


INSTANTS = [
    # (instant, whether the cut at it is a prefix of the log: then it equals the cut replay)
    (at("2018-01-01T00:00"), True),  # before any event
    (at("2018-03-01T10:00"), True),  # exactly at V1's notice
    (at("2018-03-10T10:00"), False),  # at the late feedback's date: it arrived after the tick
    (at("2018-03-16T00:00"), False),  # exactly at V1's due (the feedback is dated before)
    (at("2018-03-16T00:00") + MS, False),  # just after it
    (at("2018-03-18T00:00") + MS, False),  # just after V2's due (the clause's two weeks)
    (at("2018-03-20T00:00"), True),  # the tick: everything dated up to it had arrived
    (at("2018-03-21T10:00") - MS, True),  # just before the retraction
    (at("2018-03-21T10:00"), True),  # at the retraction
    (at("2019-06-30T00:00"), True),  # long after
]


def fill(store: Store, events: Sequence[Event]) -> Store:
    store.save_config(REGISTRY, BOOKS)
    tracker = Tracker(store, REGISTRY, BOOKS, calendar(), clock=lambda: FAR, batch_size=2)
    tracker.feed_lines([e.model_dump_json(exclude_none=True) for e in events], "t")
    return store


def answer(store: Store, when: datetime, unit: str | None = None) -> dict[str, Any]:
    view = store.as_of(when)
    config = store.load_config()
    assert config is not None
    return {
        "ledger": [e.model_dump(mode="json") for e in view.ledger(unit)],
        "deadlines": [d.model_dump(mode="json") for d in view.deadlines(unit)],
        "totals": {k: format_points(v) for k, v in view.totals(unit).items() if v},
        "status": [r.model_dump(mode="json") for r in status_rows(store, config, unit, as_of=when)],
    }


def latest(store: Store) -> dict[str, Any]:
    config = store.load_config()
    assert config is not None
    return {
        "ledger": [e.model_dump(mode="json") for e in store.ledger()],
        "deadlines": [d.model_dump(mode="json") for d in store.deadlines()],
        "totals": {k: format_points(v) for k, v in store.totals().items() if v},
        "status": [r.model_dump(mode="json") for r in status_rows(store, config)],
    }


def test_as_of_answers_the_replay_cut_and_both_stores_agree(sink: Store) -> None:
    fill(sink, STREAM)
    memory = fill(MemoryStore(), STREAM)
    for when, prefix in INSTANTS:  # one store filled once: the rows above, in turn
        got = answer(sink, when)
        assert got == answer(memory, when), when
        if prefix:
            kept = [e for e in STREAM if e.at <= when]
            replay = fill(MemoryStore(), [*kept, ev("clock.tick", when.isoformat(), unit=None)])
            assert got == latest(replay), when


def test_one_unit_and_the_shown_states(sink: Store) -> None:
    fill(sink, STREAM)
    view = sink.as_of(at("2018-03-18T00:00") + MS)
    assert [(d.ref, d.status) for d in view.deadlines("fz")] == [("V2", "overdue")]
    assert [(d.ref, d.status) for d in view.deadlines("gat")] == [("V1", "met")]
    assert view.event_unit_years("fz") == {("fz", 2018)}
    assert {k: format_points(v) for k, v in view.totals("fz", 2018).items()} == {
        ("fz", 2018, "sys"): "2.2"
    }
    before = sink.as_of(at("2018-03-18T00:00"))  # exactly at V2's due: still open
    assert [(d.ref, d.status) for d in before.deadlines("fz")] == [("V2", "open")]
    assert {k: format_points(v) for k, v in before.totals("fz").items()} == {
        ("fz", 2018, "sys"): "1.2"
    }


def test_a_store_from_before_the_history_refuses_to_answer(chdb_dsn: str) -> None:
    """A store that had events before the history tables existed: what it showed before then is
    not recorded, so an as-of read is a clear error, not a wrong answer; a store made with the
    tables answers even when empty."""
    from sinks.clickhouse import ClickHouseStore

    store = ClickHouseStore(chdb_dsn)
    fill(store, STREAM[:2])
    assert store.as_of(at("2018-03-02T00:00")).ledger()  # made with the tables: it answers
    for table in ("ledger_seen", "deadline_history"):  # as a store made before issue 11
        store.client.command(f"DROP TABLE {store.db}.{table}")
    store.close()
    reader = ClickHouseStore(chdb_dsn, create=False)  # a reader changes nothing
    with pytest.raises(HistoryMissingError, match="made before --as-of"):
        reader.as_of(at("2018-03-02T00:00"))
    assert reader.ledger()  # the latest outputs read as before
    reader.close()
    writer = ClickHouseStore(chdb_dsn)  # a writer makes the tables, and marks the store
    fill(writer, STREAM[2:])
    with pytest.raises(HistoryMissingError, match="ingest the same events into a new store"):
        writer.as_of(at("2018-05-02T00:00"))
    writer.close()


def _demo() -> list[Event]:
    from config.registry import DEMO_REGISTRY, load_registry
    from schemas.events import parse_event
    from tracker import demo

    registry = load_registry(DEMO_REGISTRY)
    lines = demo.lines(demo.generate(registry, seed=5, years=(2018,), scale=0.05, tick_hours=24))
    return [parse_event(line) for line in lines]


@settings(
    max_examples=1,  # filling the stores costs seconds: one fill, asked at 30 random instants
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_instants_of_the_demo_stream_on_chdb(chdb_dsn: str, data: st.DataObject) -> None:
    """chDB answers as the in-memory store does at random instants of the demo stream (whose
    answers tests/unit/test_as_of.py ties to the replay cut)."""
    from config.registry import DEMO_REGISTRY, load_registry
    from config.rulebooks import load_rulebooks
    from sinks.clickhouse import ClickHouseStore

    events = _demo()
    registry, books = load_registry(DEMO_REGISTRY), dict(load_rulebooks())
    lines = [e.model_dump_json(exclude_none=True) for e in events]
    chdb, memory = ClickHouseStore(chdb_dsn), MemoryStore()
    try:
        for store in (chdb, memory):
            store.save_config(registry, books)
            Tracker(store, registry, books, calendar(), clock=lambda: FAR).feed_lines(lines, "d")
        first, last = events[0].at, max(e.at for e in events)
        span_ms = int((last - first).total_seconds() * 1000)
        units = sorted({e.unit for e in events if e.type != "clock.tick"})
        log = list(chdb.logged_events())  # the store's own log, in arrival order
        replays = 0
        for _ in range(30):
            when = first + timedelta(milliseconds=data.draw(st.integers(-86_400_000, span_ms)))
            unit = data.draw(st.sampled_from(units))
            assert answer(chdb, when, unit) == answer(memory, when, unit), (when, unit)
            assert answer(chdb, when)["totals"] == answer(memory, when)["totals"], when
            if replays < 4 and _prefix([e.at for e in log], when):
                # an engine replay of the log cut at the instant (docs/semantics.md)
                cut = [e.raw for e in log if e.at <= when]
                replay = MemoryStore()
                replay.save_config(registry, books)
                tracker = Tracker(replay, registry, books, calendar(), clock=lambda: FAR)
                tick = f'{{"event_id":"as-of","type":"clock.tick","at":"{when.isoformat()}"}}'
                tracker.feed_lines([*cut, tick], "cut")
                assert answer(chdb, when) == latest(replay), when
                replays += 1
        assert replays, "no instant drawn was a prefix cut of the log"
    finally:
        chdb.close()


def _prefix(instants: Sequence[datetime], when: datetime) -> bool:
    """Whether everything dated at or before `when` came before anything dated after it."""
    later = False
    for at in instants:
        if at > when:
            later = True
        elif later:
            return False
    return True
