"""The envelope on the real broker (issue 10, item 2): who posted a record and when it was
received travel as Kafka record headers, and a worker stores and serves them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from schemas.envelope import UNKNOWN_POSTER, Envelope
from streams.kafka_auth import Principal, aiokafka_kwargs
from streams.processor import KafkaReader
from streams.topics import Topics, partition_for
from tests.integration.kafka_fixture import (  # noqa: F401
    kafka_broker,
    local_kafka,
    login,
    unique_topic,
)
from tests.integration.test_streaming import Worker, drain, running

pytestmark = pytest.mark.integration

CENTRE = Envelope(posted_by="centre:fj", received_at=datetime(2026, 11, 27, 8, 0, 0, 125000, UTC))


def event(event_id: str, unit: str = "fj.gat") -> bytes:
    body = {"event_id": event_id, "type": "mlps.finding", "unit": unit, "system": "OA",
            "at": "2018-03-01T10:00:00+08:00"}  # fmt: skip
    return json.dumps(body).encode()


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, list[tuple[str, bytes]] | None]],
    partition: int = 0, principal: Principal = "intake",
) -> None:  # fmt: skip
    # the intake's login may write an input topic of a granted prefix; a bare topic, the admin's
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **aiokafka_kwargs(login(principal)))
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value, partition=partition, headers=headers)
    finally:
        await producer.stop()


def test_the_rebuild_reader_carries_the_record_headers(kafka_broker: str) -> None:  # noqa: F811
    topic = unique_topic("hdr")
    records = [(event("a"), CENTRE.headers()), (event("b"), None)]
    asyncio.run(produce(kafka_broker, topic, records, principal="admin"))

    async def read() -> list[object]:
        got = []
        async for batch in KafkaReader(kafka_broker, topic, login("admin"))(0, 0, 2):
            got += batch
        return got

    first, second = asyncio.run(read())
    assert list(first.headers) == CENTRE.headers()  # type: ignore[attr-defined]
    assert not second.headers  # type: ignore[attr-defined]


def test_a_worker_serves_who_posted_what(kafka_broker: str, tmp_path: Path) -> None:  # noqa: F811
    """Records produced without an envelope (an operator's direct produce) are the broker's:
    no poster, received when the broker appended them. The worker's read views serve both the
    posters of logged events and the dead letters' envelopes."""
    prefix = unique_topic("env")
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    before = datetime.now(UTC).replace(microsecond=0)
    with running(worker):
        worker.wait_web()
        p = partition_for("fj.gat", 4)  # its root unit
        asyncio.run(
            produce(kafka_broker, Topics(prefix).events, [(event("plain"), None), (b"{", None)], p)
        )
        drain(kafka_broker, prefix)
        remote = worker.remote()
        deadline = time.monotonic() + 60
        while not remote.dead_letters() and time.monotonic() < deadline:
            time.sleep(0.2)
        after = datetime.now(UTC)
        posters = remote.posters(["plain", "unknown"])
        assert set(posters) == {"plain"}
        poster, received = posters["plain"]
        assert poster == UNKNOWN_POSTER and before <= received <= after
        [letter] = remote.dead_letters()
        assert letter.posted_by == UNKNOWN_POSTER and before <= letter.received_at <= after
        assert remote.posters([]) == {}


def test_a_worker_logs_the_envelope_of_each_record(kafka_broker: str, tmp_path: Path) -> None:  # noqa: F811
    """The live path and the rebuild read the same envelope from the record's headers, so the
    store says who posted each event and each rejected record, however it was processed."""
    prefix = unique_topic("live")
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    unit = Envelope(posted_by="unit:fj.gat", received_at=CENTRE.received_at)
    with running(worker):
        worker.wait_web()
        p = partition_for("fj.gat", 4)  # its root unit
        records = [(event("c1"), CENTRE.headers()), (event("u1"), unit.headers()),
                   (b"{", CENTRE.headers()), (event("none"), None)]  # fmt: skip
        asyncio.run(produce(kafka_broker, Topics(prefix).events, records, p))
        drain(kafka_broker, prefix)
        remote = worker.remote()
        deadline = time.monotonic() + 60
        while not remote.dead_letters() and time.monotonic() < deadline:
            time.sleep(0.2)
        posters = remote.posters(["c1", "u1", "none"])
        assert {i: p for i, (p, _) in posters.items()} == {
            "c1": "centre:fj",
            "u1": "unit:fj.gat",
            "none": UNKNOWN_POSTER,
        }
        assert posters["c1"][1] == posters["u1"][1] == CENTRE.received_at
        [letter] = remote.dead_letters()
        assert (letter.posted_by, letter.received_at) == ("centre:fj", CENTRE.received_at)
