"""The batch path (`--role all`, streams/batch.py) on a real broker: two workers of one group share
the input partitions through rebalances while events stream in, and write one store; nothing
goes through intermediate topics. The kill -9, outage and between-write-and-commit tests of the
same path are in test_stream_crash.py (a `tracker worker` runs it by default)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.holidays import official_calendar
from config.signing import Signer
from sinks import MemoryStore
from streams.batch import BatchWorker
from streams.checkpoints import worker_checkpoints
from streams.kafka_auth import aiokafka_kwargs
from streams.processor import KafkaReader, Processor
from streams.settings import Config, WorkerSettings
from streams.sink_agent import SinkStats, StoreThread
from streams.topics import Topics, end_offsets, ensure_topics, wait_drained
from tests.integration.kafka_fixture import kafka_broker, local_kafka, login  # noqa: F401
from tests.integration.test_streaming import (
    BOOKS,
    REGISTRY,
    demo_lines,
    post,
    reference,
    status_of,
    unique_topic,
)

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _worker(
    settings: WorkerSettings, store: StoreThread, producer: AIOKafkaProducer
) -> BatchWorker:
    async def send(topic: str, key: bytes | None, value: bytes, *_: Any) -> Any:
        return await producer.send(topic, value, key=key)

    keeper = worker_checkpoints(settings, store)
    processor = Processor(
        settings.engine_config,
        settings.topics.events,
        settings.partitions,
        KafkaReader(settings.bootstrap, settings.topics.events, settings.login),
        resumer=None if keeper is None else keeper.resume,
    )
    return BatchWorker(settings, processor, store, SinkStats(), send, keeper)


@pytest.mark.parametrize(
    "signer",
    [
        None,  # no key: no checkpoints, every partition taken is replayed from offset 0
        Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32)))),  # checkpoints: each
        # revoked partition is checkpointed and its next owner starts there
    ],
    ids=["replay", "checkpoints"],
)
async def test_two_workers_share_partitions_through_rebalances(
    kafka_broker: str,  # noqa: F811
    signer: Signer | None,
) -> None:
    topics = Topics(unique_topic("batchpair"))
    settings = WorkerSettings(
        config=Config(REGISTRY, BOOKS, official_calendar(), signer),
        checkpoint_every=200,  # periodic checkpoints as well, many of them
        bootstrap=kafka_broker,
        topics=topics,
        partitions=4,
        session_timeout_s=6,
        sink_within_s=0.2,
        sink_max_records=300,  # many batches: rebalances fall between and inside them
        login=login("worker"),
    )
    await ensure_topics(kafka_broker, topics, 4, login=login("worker"), admin=login("admin"))
    lines = demo_lines(seed=23, scale=0.1)
    third = len(lines) // 3
    memory = MemoryStore()
    memory.save_config(REGISTRY, BOOKS)
    store = StoreThread(lambda: memory)  # one store thread: both workers write one store
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, **aiokafka_kwargs(login("worker")))
    await producer.start()
    a, b = _worker(settings, store, producer), _worker(settings, store, producer)
    try:
        running_a = asyncio.create_task(a.run())
        streaming = asyncio.create_task(
            asyncio.to_thread(_post_slowly, kafka_broker, topics, lines[:third])
        )
        await _until(lambda: bool(a.processed), 60, "A to process")
        running_b = asyncio.create_task(b.run())  # a rebalance in the middle of processing
        await _until(lambda: bool(a.assignment()) and bool(b.assignment()), 60, "A and B to share")
        await streaming
        assert len(a.assignment()) + len(b.assignment()) == 4
        await asyncio.to_thread(post, kafka_broker, topics.prefix, lines[third : 2 * third])
        await _until(lambda: bool(b.processed), 60, "B to process")
        # A leaves while the last third streams in: B takes every partition.
        streaming = asyncio.create_task(
            asyncio.to_thread(_post_slowly, kafka_broker, topics, lines[2 * third :])
        )
        await asyncio.sleep(1)
        running_a.cancel()
        await asyncio.gather(running_a, return_exceptions=True)
        await streaming
        drained = await wait_drained(
            kafka_broker, topics, (topics.group("all"),) * 2, 120, login=login("worker")
        )
        assert drained, "the batch path is stuck"
        assert len(b.assignment()) == 4
        running_b.cancel()
        await asyncio.gather(running_b, return_exceptions=True)
        if signer is not None:  # B took A's partitions twice: from A's checkpoints
            assert b.checkpoints is not None and b.checkpoints.resumed > 0
            assert a.checkpoints is not None and a.checkpoints.written > 0
        # nothing went through the per-record path's topics
        outputs = await end_offsets(kafka_broker, topics.sink_inputs, login("worker"))
        assert sum(outputs.values()) == 0
    finally:
        await producer.stop()
        store.close_now()
    ref = reference(lines)
    assert memory.ledger() == ref.ledger()
    fields = ("unit", "kind", "ref", "year", "event_id", "due", "status", "feedback_at")
    strip = lambda rows: [tuple(getattr(d, f) for f in fields) for d in rows]  # noqa: E731
    assert strip(memory.deadlines()) == strip(ref.deadlines())
    assert status_of(memory) == status_of(ref)
    # every event logged (a tick once per partition here, once in ingest's one log)
    logged = {e.event_id for e in memory.logged_events()}
    assert logged == {e.event_id for e in ref.logged_events()}


def _post_slowly(bootstrap: str, topics: Topics, lines: list[str], seconds: float = 6) -> None:
    """Post `lines` in 20 slices spread over `seconds`."""
    step = max(1, len(lines) // 20)
    for i in range(0, len(lines), step):
        post(bootstrap, topics.prefix, lines[i : i + step])
        time.sleep(seconds / 20)
