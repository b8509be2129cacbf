"""Which writer owns a store's event log (docs/audit.md, "One kind of writer per event log").

Two kinds of writer log events, and they number and chain them differently: the in-process
intake (`tracker ingest`, `tracker serve`'s embedded backend, `tracker demo --embedded`, crash
recovery) logs everything in partition 0 as seq 1, 2, 3, ... with one engine; the Kafka worker
logs each partition of its input topic with the record's offset as seq, one engine per
partition. The event log is keyed by (partition, event_id), so when both log the same event its
rows replace each other with other seq and chain values, and the ledger chains of the two
engines interleave: `tracker audit verify` then fails although nobody tampered with anything.
Nor can one kind continue the other's log: the intake's one engine never saw the events of the
worker's other partitions, and the worker's engines are rebuilt from the topic, which never
held the intake's events.

So the first writer records itself in the store, and a writer of another kind - or a worker of
another topic - is refused before it writes anything, with a message naming the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sinks.errors import StoreError


@dataclass(frozen=True, slots=True)
class EventLogWriter:
    """`topic` None: the in-process intake (partition 0 only)."""

    topic: str | None
    partitions: int

    @classmethod
    def intake(cls) -> EventLogWriter:
        return cls(None, 1)

    @classmethod
    def kafka(cls, topic: str, partitions: int) -> EventLogWriter:
        return cls(topic, partitions)

    def describe(self) -> str:
        if self.topic is None:
            return (
                "the in-process intake (tracker ingest, tracker serve without --bootstrap, "
                "tracker demo --embedded; partition 0)"
            )
        return f"the Kafka worker of topic {self.topic} ({self.partitions} partitions)"

    def to_json(self) -> str:
        kind = "intake" if self.topic is None else "kafka"
        return json.dumps({"writer": kind, "topic": self.topic, "partitions": self.partitions})

    @classmethod
    def from_json(cls, text: str) -> EventLogWriter:
        """The store's row is input like any other: one it cannot read is a clear error."""
        try:
            value = json.loads(text)
            kind, topic, partitions = value["writer"], value["topic"], value["partitions"]
            if kind == "intake" and topic is None and partitions == 1:
                return cls.intake()
            whole = isinstance(partitions, int) and not isinstance(partitions, bool)
            if kind == "kafka" and isinstance(topic, str) and topic and whole and partitions > 0:
                return cls.kafka(topic, partitions)
        except (ValueError, TypeError, KeyError):
            pass
        raise StoreError(f"the store's record of its event log's writer is not readable: {text!r}")


class EventLogOwnerError(StoreError):
    """A writer of another kind than the one that owns the store's event log."""


class EventLogStore(Protocol):
    def identity(self) -> dict[str, str | None]: ...

    def event_log_writer(self) -> EventLogWriter | None: ...

    def record_event_log_writer(self, writer: EventLogWriter) -> None: ...

    def logged_through(self) -> dict[int, int]: ...


def claim_event_log(
    store: EventLogStore, writer: EventLogWriter, ends: Mapping[int, int] | None = None
) -> None:
    """Record `writer` as the owner of the store's event log, or check that it is the owner.

    A store with no record (new, or written before this check existed) is taken by its first
    writer unless it holds events in a partition that writer never writes (a worker's log in
    partitions 1.. for the intake; partitions beyond a smaller topic's for a worker).

    `ends`: a worker's topic's end offsets per partition, as the worker starts. A partition's
    end never falls, and a worker logs a record only after reading it, so a store that logged
    a seq (offset) at or beyond its partition's end logged records this topic no longer holds:
    it was deleted and made again under its name (a wiped broker), or the broker lost them.
    Its new records would take the offsets of logged ones, and the rebuilt engines would count
    again what the ledger counted; such a store is refused before anything is written."""
    recorded = store.event_log_writer()
    if recorded == writer:
        if ends is not None:
            _check_topic_holds_log(store, writer, ends, store.logged_through())
        return
    where = store.identity().get("dsn") or "?"
    if recorded is None:
        through = store.logged_through()  # its keys: the partitions the log holds events in
        stray = sorted(p for p in through if p >= writer.partitions)
        if not stray:
            if ends is not None:
                _check_topic_holds_log(store, writer, ends, through)
            store.record_event_log_writer(writer)
            return
        raise EventLogOwnerError(
            f"the event log of store {where} holds events in partition(s) "
            f"{', '.join(map(str, stray))}, which {writer.describe()} does not write: "
            f"{_REMEDY}"
        )
    raise EventLogOwnerError(
        f"the event log of store {where} is written by {recorded.describe()}; "
        f"{writer.describe()} cannot continue it (the two number and chain events "
        f"differently, and `tracker audit verify` would fail): {_REMEDY}"
    )


def _check_topic_holds_log(
    store: EventLogStore,
    writer: EventLogWriter,
    ends: Mapping[int, int],
    through: Mapping[int, int],
) -> None:
    """The store's event log's writer is this worker's topic: that topic still holds every
    offset the store logged (`through`: `logged_through`; see `claim_event_log`)."""
    topic = writer.topic
    if topic is None:
        return
    for partition, last in sorted(through.items()):
        end = ends.get(partition)
        if end is not None and last >= end:
            where = store.identity().get("dsn") or "?"
            raise EventLogOwnerError(
                f"the event log of store {where} holds {topic}/{partition} through offset "
                f"{last}, but that partition now ends at offset {end}: the topic was deleted "
                "and made again (a wiped broker), or the broker lost records, and its new "
                f"records would take the offsets of logged ones: {_REMEDY}"
            )


def claim_store(dsn: str, writer: EventLogWriter, ends: Mapping[int, int] | None = None) -> None:
    """`claim_event_log` on the store at `dsn`, opened for it and closed again (a worker at
    startup, before its sink holds the store)."""
    from sinks import open_store  # sinks/__init__ imports the stores, which import this module

    store = open_store(dsn)
    try:
        claim_event_log(store, writer, ends)
    finally:
        store.close()


_REMEDY = (
    "give this writer another store (--store, or TRACKER_STORE / TRACKER_DATA), or start "
    "a fresh one (docs/audit.md)"
)
