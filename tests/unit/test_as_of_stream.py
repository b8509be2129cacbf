"""The live path keeps what as-of reads need: the processor's outputs, sent by the emitter and
decoded by the sink agent, give a store answering as of any instant as `tracker ingest`'s does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from engine.clock import SHANGHAI
from sinks import MemoryStore
from streams.emitter import Emitter
from streams.partition import Record
from streams.processor import Processor
from streams.settings import Config
from streams.sink_agent import BatchDecoder, SinkStats
from streams.topics import Topics
from tests import builders
from tests.unit.test_as_of import EXTRANETS, NOTICE, ON_TIME, OUTREACH, TICK_AFTER, answers, ingest

TOPICS = Topics("unit-as-of")
# an expiry (overdue entry dated at the due), a late feedback (its reversal), and a re-evaluated
# capped entry after a retraction: every kind of entry not seen at its effective_at
STREAM = [
    *EXTRANETS,
    NOTICE,
    OUTREACH,
    TICK_AFTER,
    ON_TIME,
    builders.ev(
        "event.retracted", "2018-04-01T10:00", event_id="rx", target_event_id="x1", reason="e"
    ),
]


def through_kafka_outputs() -> MemoryStore:
    sent: list[tuple[str, bytes]] = []

    async def send(topic: str, key: Any, value: bytes, *_: Any) -> asyncio.Future[Any]:
        sent.append((topic, value))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def no_replay(partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
        raise AssertionError("no rebuild expected")
        yield []

    async def run() -> None:
        config = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
        proc = Processor(config, TOPICS.events, 1, no_replay)
        emitter = Emitter(send, TOPICS, holds=None)  # type: ignore[arg-type]  # emit needs none
        for offset, event in enumerate(STREAM):
            value = event.model_dump_json(exclude_none=True).encode()
            for out in await proc.handle(Record(TOPICS.events, 0, offset, None, value)):
                await emitter.emit(out, 0)

    asyncio.run(run())
    stored = [(t, v) for t, v in sent if t in TOPICS.sink_inputs]  # not the warnings
    batch = BatchDecoder(TOPICS, stats := SinkStats()).decode(stored)
    assert stats.skipped == 0 and stats.by_kind.get("seen")
    store = MemoryStore()
    store.save_config(builders.REGISTRY, builders.BOOKS)
    store.write(batch)
    return store


def test_the_live_path_answers_as_of_like_ingest() -> None:
    live, ingested = through_kafka_outputs(), ingest(STREAM)
    ms = timedelta(milliseconds=1)
    points = sorted({t for e in STREAM for t in (e.at - ms, e.at, e.at + ms)})
    points += [datetime(2018, 3, 16, tzinfo=SHANGHAI) + d for d in (-ms, 0 * ms, ms)]
    for at in points:
        assert answers(live, at) == answers(ingested, at), at
