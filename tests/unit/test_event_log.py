"""Which writer owns a store's event log (sinks/event_log.py), on the in-memory store, and what
the demo makes of a store the other demo mode filled (tracker/demo_store.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.ledger import LoggedEvent
from sinks import MemoryStore
from sinks.base import Batch, StoreError
from sinks.event_log import EventLogOwnerError, EventLogWriter, claim_event_log
from tracker import demo_store
from tracker.errors import UserError

INTAKE = EventLogWriter.intake()
TOPIC4 = EventLogWriter.kafka("tracker.events", 4)


def _event(
    event_id: str, partition: int = 0, seq: int = 1, type_: str = "vuln.notice"
) -> LoggedEvent:
    at = datetime(2018, 3, 1, tzinfo=UTC)
    return LoggedEvent(
        event_id=event_id, partition=partition, seq=seq, unit="fj.gat", type=type_, at=at,
        year=2018, raw="{}", posted_by="test", received_at=at,
    )  # fmt: skip


def _store(recorded: EventLogWriter | None, *partitions: int) -> MemoryStore:
    store = MemoryStore()
    if recorded is not None:
        store.record_event_log_writer(recorded)
    store.write(Batch(events=[_event(f"e{p}", p) for p in partitions]))
    return store


@pytest.mark.parametrize(
    ("recorded", "partitions", "writer", "allowed"),
    [
        (None, (), INTAKE, True),  # a new store: its first writer takes it
        (None, (), TOPIC4, True),
        (INTAKE, (0,), INTAKE, True),  # the owner again (ingest after ingest, serve after ingest)
        (TOPIC4, (0, 3), TOPIC4, True),  # a worker of the same topic (restart, second worker)
        (INTAKE, (0,), TOPIC4, False),  # the reported case: the live demo after --embedded
        (TOPIC4, (0, 1), INTAKE, False),  # ingest into a worker's store
        (TOPIC4, (0,), EventLogWriter.kafka("other.events", 4), False),  # another topic
        (TOPIC4, (0,), EventLogWriter.kafka("tracker.events", 8), False),  # a topic made anew
        (None, (0,), INTAKE, True),  # a store from before the record: taken when it fits
        (None, (0,), TOPIC4, True),
        (None, (0, 2), TOPIC4, True),
        (None, (0, 2), INTAKE, False),  # a worker wrote partition 2: not the intake's
        (None, (0, 5), TOPIC4, False),  # partition 5: not a 4-partition topic's
    ],
)
def test_one_kind_of_writer_per_event_log(
    recorded: EventLogWriter | None,
    partitions: tuple[int, ...],
    writer: EventLogWriter,
    allowed: bool,
) -> None:
    store = _store(recorded, *partitions)
    if allowed:
        claim_event_log(store, writer)
        assert store.event_log_writer() == writer
    else:
        with pytest.raises(EventLogOwnerError) as refused:
            claim_event_log(store, writer)
        assert store.event_log_writer() == recorded  # nothing recorded, nothing changed
        message = str(refused.value)
        assert "memory://" in message and "another store (--store" in message


def test_the_refusal_names_both_writers() -> None:
    with pytest.raises(EventLogOwnerError) as refused:
        claim_event_log(_store(INTAKE, 0), TOPIC4)
    assert str(refused.value).startswith(
        "the event log of store memory:// is written by the in-process intake (tracker ingest, "
    )
    assert "the Kafka worker of topic tracker.events (4 partitions) cannot continue it" in str(
        refused.value
    )


@pytest.mark.parametrize("writer", [INTAKE, TOPIC4, EventLogWriter.kafka("t.events", 1)])
def test_the_record_reads_back(writer: EventLogWriter) -> None:
    assert EventLogWriter.from_json(writer.to_json()) == writer


@pytest.mark.parametrize(
    "text",
    [
        "",  # not JSON
        "[]",  # not an object
        '{"writer": "intake", "topic": null}',  # no partitions
        '{"writer": "intake", "topic": "x", "partitions": 1}',  # the intake has no topic
        '{"writer": "kafka", "topic": "", "partitions": 4}',  # no topic name
        '{"writer": "kafka", "topic": "t", "partitions": 0}',  # no partitions
        '{"writer": "kafka", "topic": "t", "partitions": true}',  # not a count
        '{"writer": "worker", "topic": "t", "partitions": 4}',  # an unknown kind
    ],
)
def test_an_unreadable_record_is_a_clear_error(text: str) -> None:
    with pytest.raises(StoreError, match="record of its event log's writer is not readable"):
        EventLogWriter.from_json(text)


BAD = ['{"event_id":"bad-1"}']  # rejected: never logged
IDS = demo_store.demo_ids(['{"event_id":"v-1"}', '{"event_id":"v-2"}', "not json", *BAD], BAD)


def test_the_demo_ids_are_those_of_its_good_lines() -> None:
    assert {"v-1", "v-2"} == IDS


def test_the_embedded_demo_shows_a_store_the_live_demo_filled() -> None:
    store = _store(TOPIC4)
    store.write(Batch(events=[_event("v-1", 1), _event("tick-x", 2, type_="clock.tick")]))
    shown = demo_store.embedded_demo_store(store, "memory://", IDS)
    assert shown is not None and "adds nothing" in shown
    assert "1 of the stream's 2 events are not in it yet" in shown
    assert demo_store.embedded_demo_store(_store(INTAKE, 0), "memory://", IDS) is None
    assert demo_store.embedded_demo_store(MemoryStore(), "memory://", IDS) is None


def test_the_embedded_demo_leaves_a_worker_store_with_other_events_alone() -> None:
    store = _store(TOPIC4)
    store.write(Batch(events=[_event("v-1"), _event("someone-elses", 1)]))
    with pytest.raises(UserError, match="1 event\\(s\\) that are not the demo's"):
        demo_store.embedded_demo_store(store, "memory://", IDS)


def _logged(seqs: dict[int, int]) -> MemoryStore:
    """A worker's store that logged each partition's records through the seq (offset) given."""
    store = MemoryStore()
    store.record_event_log_writer(TOPIC4)
    store.write(Batch(events=[_event(f"p{p}s{s}", p, s) for p, last in seqs.items()
                              for s in range(last + 1)]))  # fmt: skip
    return store


@pytest.mark.parametrize(
    ("logged", "ends", "refused"),
    [
        ({}, {0: 0, 1: 0, 2: 0, 3: 0}, None),  # a new store, a new topic
        ({0: 4}, {0: 5, 1: 0, 2: 0, 3: 0}, None),  # a restart: offset 4 logged, the topic at 5
        ({0: 4}, {0: 9, 1: 3, 2: 0, 3: 0}, None),  # records posted while it was stopped
        ({0: 4}, {0: 4, 1: 0, 2: 0, 3: 0}, 0),  # the topic ends at the last offset logged
        ({0: 4, 2: 7}, {0: 0, 1: 0, 2: 0, 3: 0}, 0),  # a wiped broker: every partition empty
        ({0: 0}, {0: 0, 1: 0, 2: 0, 3: 0}, 0),  # one record logged at offset 0, none in the topic
        ({2: 7}, {0: 9, 1: 9, 2: 3, 3: 9}, 2),  # one partition truncated (unclean election)
    ],
)
def test_a_worker_refuses_a_store_that_logged_offsets_its_topic_does_not_hold(
    logged: dict[int, int], ends: dict[int, int], refused: int | None
) -> None:
    """A partition's end offset never falls: a store that logged a record at or beyond it logged
    another topic's records under this name (deleted and made again: a wiped broker), or the
    broker lost them. The topic's new records would take the offsets of logged ones, and the
    rebuilt engines would count again what the store's ledger counted."""
    store = _logged(logged)
    if refused is None:
        claim_event_log(store, TOPIC4, ends)
        return
    with pytest.raises(EventLogOwnerError) as caught:
        claim_event_log(store, TOPIC4, ends)
    said = str(caught.value)
    last = logged[refused]
    assert f"tracker.events/{refused} through offset {last}" in said, said
    assert f"ends at offset {ends[refused]}" in said, said
    assert "another store" in said, said


def test_the_intake_is_never_asked_for_offsets() -> None:
    store = MemoryStore()
    claim_event_log(store, INTAKE, {0: 0})  # the intake numbers its own seq: no topic to compare
    assert store.event_log_writer() == INTAKE
