"""Producing events: check each against the contract first, key it by its root unit (so a whole
jurisdiction subtree is one partition, in order), and send clock ticks to every partition.

An event the contract rejects outright (bad JSON, schema, unknown unit, naive or too-far-future
timestamp) is reported and not sent. What only the engine can judge (feedback for an unknown
notice, say) is sent and, if rejected there, becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from engine.clock import SHANGHAI, iso
from engine.core import MAX_AHEAD
from schemas.events import ClockTick, Event, EventError, parse_event
from schemas.registry import Registry
from streams.topics import TopicError, Topics, ensure_topics, partition_for

# `tracker post` flags that become event fields (dest -> field); `--terminals a,b` is a list.
FIELD_FLAGS = (
    "notice_id",
    "system",
    "due",
    "terminals",
    "cause",
    "terminal",
    "finding",
    "incident_id",
    "control",
    "signal_id",
    "target_event_id",
    "reason",
)


def event_from_flags(values: dict[str, Any], now: datetime) -> str:
    """One event as compact JSON from `tracker post` flags (absent flags are left out)."""
    event: dict[str, Any] = {
        "event_id": values.get("event_id") or f"post-{uuid.uuid4().hex[:16]}",
        "type": values["type"],
    }
    if values.get("unit"):
        event["unit"] = values["unit"]
    event["at"] = values.get("at") or now.astimezone(SHANGHAI).replace(microsecond=0).isoformat()
    for name in FIELD_FLAGS:
        value = values.get(name)
        if value is None:
            continue
        if name == "terminals":
            value = [t.strip() for t in str(value).split(",") if t.strip()]
        event[name] = value
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def raw_events(text: str) -> Iterator[tuple[int, str]]:
    """(line number, raw event) from JSONL, one JSON object (pretty-printed or not) or a JSON
    array of objects. Blank lines are skipped."""
    stripped = text.strip()
    if stripped.startswith("[") or (stripped.startswith("{") and "\n" in stripped):
        try:
            doc = json.loads(stripped)
        except ValueError:
            doc = None  # JSONL after all (or broken): judged line by line below
        if isinstance(doc, list | dict):
            items = doc if isinstance(doc, list) else [doc]
            for i, item in enumerate(items, 1):
                yield i, json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            return
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line.strip()


class Validator:
    """What can be judged before an event reaches the engine."""

    def __init__(self, registry: Registry, clock: Callable[[], datetime]) -> None:
        self.registry = registry
        self.clock = clock

    def check(self, raw: str) -> tuple[Event | None, str | None]:
        try:
            event = parse_event(raw)
        except EventError as exc:
            return None, exc.reason
        if not isinstance(event, ClockTick) and self.registry.unit(event.unit) is None:
            return None, f"unknown unit {event.unit!r}"
        if event.at > self.clock() + MAX_AHEAD:
            return None, f"at {iso(event.at)} is more than 10 minutes ahead of the wall clock"
        return event, None


@dataclass
class PostSummary:
    sent: int = 0
    rejected: int = 0
    records: int = 0  # Kafka records: a tick is one per partition
    problems: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "rejected": self.rejected, "records": self.records}


class Poster:
    """Checks and produces events: keyed by root unit, ticks to every partition."""

    def __init__(self, bootstrap: str, topics: Topics, registry: Registry, partitions: int = 4):
        self.bootstrap = bootstrap
        self.topics = topics
        self.registry = registry
        self.partitions = partitions
        self.validator = Validator(registry, lambda: datetime.now(UTC))
        self._producer: AIOKafkaProducer | None = None

    async def start(self, *, create_topics: bool = True) -> None:
        if create_topics:
            self.partitions = await ensure_topics(self.bootstrap, self.topics, self.partitions)
        # Idempotence keeps retries from duplicating or reordering records in a partition.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all", linger_ms=5
        )
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise TopicError(f"Kafka at {self.bootstrap}: {exc}") from None

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(self, raw: str, event: Event) -> list[asyncio.Future[Any]]:
        """Produce one checked event; returns the delivery futures (one per record)."""
        assert self._producer is not None, "start() first"
        value = raw.encode("utf-8")
        if isinstance(event, ClockTick):
            # Event time must advance in every partition: each has its own engine.
            return [
                await self._producer.send(self.topics.events, value, partition=p)
                for p in range(self.partitions)
            ]
        root = self.registry.root(event.unit)
        partition = partition_for(root, self.partitions)
        return [
            await self._producer.send(
                self.topics.events, value, key=root.encode(), partition=partition
            )
        ]

    async def post(self, raws: Iterable[tuple[int, str]]) -> PostSummary:
        summary = PostSummary()
        pending: list[asyncio.Future[Any]] = []
        for number, raw in raws:
            event, reason = self.validator.check(raw)
            if event is None:
                summary.rejected += 1
                summary.problems.append((number, reason or "rejected"))
                continue
            futures = await self.send(raw, event)
            summary.sent += 1
            summary.records += len(futures)
            pending += futures
            if len(pending) >= 10_000:
                await _delivered(pending)
                pending = []
        await _delivered(pending)
        return summary


async def _delivered(futures: list[asyncio.Future[Any]]) -> None:
    try:
        await asyncio.gather(*futures)
    except KafkaError as exc:
        raise TopicError(f"could not produce to Kafka: {exc}") from None
