"""The local Kafka 4.x broker end to end: admin, keyed produce, group consume, lifecycle."""

from __future__ import annotations

import socket
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

from streams.broker import LocalKafka
from streams.kafka_auth import aiokafka_kwargs
from streams.kafka_probe import api_versions_ok
from tests.integration.kafka_fixture import (  # noqa: F401
    kafka_broker,
    local_kafka,
    login,
    unique_topic,
)

pytestmark = pytest.mark.integration

MESSAGES = 100


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    # the broker's own behaviour, below any ACL: as the super user
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_kwargs(login("admin")))
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)], timeout_ms=10_000
        )
    finally:
        await admin.close()
    errors = [error for _name, error, *_rest in response.topic_errors if error != 0]
    assert not errors, f"CreateTopics failed: {response}"


async def produce(bootstrap: str, topic: str) -> dict[bytes, set[int]]:
    """Send MESSAGES keyed records; returns the partitions each key was written to."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", **aiokafka_kwargs(login("admin"))
    )
    await producer.start()
    placed: dict[bytes, set[int]] = defaultdict(set)
    try:
        for i in range(MESSAGES):
            key = f"unit-{i % 10}".encode()
            meta = await producer.send_and_wait(topic, f"event-{i}".encode(), key=key)
            placed[key].add(meta.partition)
    finally:
        await producer.stop()
    return placed


async def consume(
    bootstrap: str, topic: str, group: str, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **aiokafka_kwargs(login("admin")),
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < MESSAGES and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                records.extend(batch)
        await consumer.commit()
    finally:
        await consumer.stop()
    return records


@pytest.mark.asyncio
async def test_keyed_roundtrip_over_three_partitions(kafka_broker: str) -> None:  # noqa: F811
    topic = unique_topic("roundtrip")
    await create_topic(kafka_broker, topic, partitions=3)

    placed = await produce(kafka_broker, topic)
    records = await consume(kafka_broker, topic, group=unique_topic("group"))

    assert sorted(r.value for r in records) == sorted(
        f"event-{i}".encode() for i in range(MESSAGES)
    )
    assert all(len(partitions) == 1 for partitions in placed.values()), "a key changed partition"
    assert {r.partition for r in records} == {0, 1, 2}
    for record in records:
        assert {record.partition} == placed[record.key]


@pytest.mark.asyncio
async def test_auto_created_topic_gets_one_partition(kafka_broker: str) -> None:  # noqa: F811
    topic = unique_topic("auto")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, **aiokafka_kwargs(login("admin")))
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello")
        assert await producer.partitions_for(topic) == {0}
    finally:
        await producer.stop()


def test_start_is_idempotent_and_status_reports_running(local_kafka: LocalKafka) -> None:  # noqa: F811
    before = local_kafka.status()
    assert before.running and before.ready and before.pid is not None
    assert before.bootstrap == local_kafka.bootstrap == f"127.0.0.1:{local_kafka.port}"

    started = time.monotonic()
    local_kafka.start(timeout_s=10)
    assert time.monotonic() - started < 5, "a second start() must not relaunch the broker"
    assert local_kafka.status().pid == before.pid


def test_api_versions_probe_rejects_a_non_kafka_port() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert not api_versions_ok("127.0.0.1", server.getsockname()[1], timeout_s=0.5)


def test_controller_listener_binds_loopback_only(local_kafka: LocalKafka) -> None:  # noqa: F811
    config = (local_kafka.config_dir / "server.properties").read_text()
    listeners = next(line for line in config.splitlines() if line.startswith("listeners="))
    assert listeners.count("127.0.0.1") == 2, listeners
