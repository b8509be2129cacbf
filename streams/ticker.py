"""The clock: `clock.tick` into every input partition, on an interval, from the leader only.

Ticks are ordinary events from the moment they are produced: the processor logs them like any
other event, so a replay of the input topic reproduces every expiry at the same point. The
ticker is a small Faust app of its own (group `<prefix>-ticker`); run it on several hosts and
only the group leader ticks (`app.timer(on_leader=True)`). Faust's own timers decide only *when*
to produce a tick, never a deduction: the tick's `at` is data from then on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import faust
from aiokafka import AIOKafkaProducer

from engine.clock import iso, local
from streams.faust_app import QuietWorker
from streams.kafka_auth import KafkaLogin, aiokafka_kwargs, faust_credentials
from streams.topics import Topics, ensure_topics, quiet_kafka

log = logging.getLogger(__name__)


def tick_record(at: datetime, partition: int) -> bytes:
    """One partition's tick; the id is a function of (at, partition), so a tick produced twice
    (a leader change in the middle of a round) is the same tick."""
    stamp = iso(at)
    event = {"event_id": f"tick-{stamp}-p{partition}", "type": "clock.tick", "at": stamp}
    return json.dumps(event, separators=(",", ":")).encode()


def now_seconds() -> datetime:
    return local(datetime.now(UTC).replace(microsecond=0))


async def tick_once(
    bootstrap: str,
    topics: Topics,
    partitions: int,
    at: datetime,
    login: KafkaLogin | None = None,
) -> None:
    """One round of ticks without the Faust app (tests and one-off use); `login`: the
    ticker's (or the intake's: both may write the input topic)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **aiokafka_kwargs(login))
    await producer.start()
    try:
        for p in range(partitions):
            await producer.send_and_wait(topics.events, tick_record(at, p), partition=p)
    finally:
        await producer.stop()


def build_ticker(
    bootstrap: str,
    topics: Topics,
    partitions: int,
    interval_s: float,
    login: KafkaLogin | None = None,
) -> faust.App:
    app = faust.App(
        topics.group("ticker"),
        broker=f"kafka://{bootstrap}",
        broker_credentials=faust_credentials(login),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=1,
        topic_replication_factor=1,
        producer_acks=-1,
    )

    @app.timer(interval_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        at = now_seconds()
        for p in range(partitions):
            await app.producer.send(topics.events, None, tick_record(at, p), p, None, None)
        await app.producer.flush()
        log.info("tick %s to %d partitions", iso(at), partitions)

    return app


def run_ticker(
    bootstrap: str,
    topics: Topics,
    partitions: int,
    interval_s: float,
    login: KafkaLogin | None = None,
    admin: KafkaLogin | None = None,
) -> int:
    """Run the ticker as `login` (the ticker's principal: it may write the input topic and
    use its own group); `admin` (the local broker's) grants the prefix's ACLs first."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with quiet_kafka():
        partitions = loop.run_until_complete(
            ensure_topics(bootstrap, topics, partitions, login=login, admin=admin, only_input=True)
        )
    app = build_ticker(bootstrap, topics, partitions, interval_s, login)
    worker = QuietWorker(app, loop=loop, loglevel="info", quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
