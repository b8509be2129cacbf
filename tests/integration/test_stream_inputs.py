"""What reaches the input topic besides well-formed events: malformed and misplaced records
(dead letters; the worker keeps running) and the ticker's clock ticks (every partition, from
the group leader only)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.kafka_auth import aiokafka_kwargs
from streams.topics import Topics, partition_for
from tests.integration.kafka_fixture import kafka_broker, local_kafka, login  # noqa: F401
from tests.integration.test_streaming import (
    REGISTRY,
    Worker,
    assert_same_as_ingest,
    demo_lines,
    drain,
    post,
    reference,
    running,
    unique_topic,
)

pytestmark = pytest.mark.integration


def test_malformed_records_become_dead_letters(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("bad")
    topics = Topics(prefix)
    good = demo_lines(seed=12)[:300]
    at = "2018-03-01T10:00:00+08:00"
    bad: list[bytes] = [
        b"{not json",
        b"\xff\xfe not utf-8",
        _json(event_id="x1", type="vuln.praise", unit="fj.gat", at=at),
        _json(
            event_id="x2",
            type="vuln.notice",
            unit="fj.gat",
            notice_id="V",
            system="s",
            at="2018-03-01T10:00:00",
        ),  # naive
        _json(event_id="x3", type="vuln.feedback", unit="fj.gat", notice_id="nope", at=at),
        _json(event_id="x4", type="clock.tick", at="2199-01-01T00:00:00+08:00"),
    ]
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    with running(worker):
        worker.wait_web()
        post(kafka_broker, prefix, good[:150])

        async def produce_raw() -> None:
            # the intake's login: the one that may write the input topic
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka_broker, **aiokafka_kwargs(login("intake"))
            )
            await producer.start()
            try:
                for i, value in enumerate(bad):
                    # fj.gat's own partition for the one only the engine can reject
                    p = partition_for("fj.gat", 4) if b'"x3"' in value else i % 4
                    await producer.send_and_wait(topics.events, value, partition=p)
                # a unit event in a partition its root does not hash to
                await producer.send_and_wait(topics.events, good_misplaced(), partition=3)
            finally:
                await producer.stop()

        asyncio.run(produce_raw())
        post(kafka_broker, prefix, good[150:])
        drain(kafka_broker, prefix)
        live = worker.remote()
        letters = live.dead_letters()
        assert len(letters) == len(bad) + 1
        assert all(d.origin.startswith(f"kafka:{topics.events}/") for d in letters)
        reasons = Counter(d.reason.split(":")[0] for d in letters)
        assert reasons["malformed JSON"] == 1 and reasons["malformed"] == 1
        assert reasons["schema violation"] == 2, reasons
        assert any("unknown notice" in d.reason for d in letters)
        assert any("10 minutes ahead" in d.reason for d in letters)
        assert any("produce it with key" in d.reason for d in letters)
        assert worker.proc is not None and worker.proc.poll() is None  # still running
        assert_same_as_ingest(live, reference(good))


def good_misplaced() -> bytes:
    """An event of a root unit that does not hash to partition 3."""
    unit = next(u.id for u in REGISTRY.units if partition_for(REGISTRY.root(u.id), 4) != 3)
    return _json(event_id="misplaced-1", type="mlps.finding", unit=unit, system="s",
                 at="2018-06-01T10:00:00+08:00")  # fmt: skip


def _json(**fields: str) -> bytes:
    return json.dumps(fields).encode()


def test_ticker_ticks_every_partition_from_the_leader_only(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("tick")
    topics = Topics(prefix)
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    cmd = [sys.executable, "-m", "tracker", "ticker", "--bootstrap", kafka_broker]
    cmd += ["--topic-prefix", prefix, "--interval-s", "1"]
    tickers: list[subprocess.Popen[bytes]] = []
    with running(worker):
        worker.wait_web()
        try:
            for i in range(2):  # two tickers in one group: only the leader ticks
                log = (tmp_path / f"ticker-{i}.log").open("wb")
                tickers.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            deadline = time.monotonic() + 90
            while len(worker.remote().progress().get("processed", {})) < 4:
                assert time.monotonic() < deadline, "ticks did not reach every partition"
                time.sleep(0.3)
            time.sleep(5)
            window = 5.0
        finally:
            for proc in tickers:
                proc.terminate()
                proc.wait(timeout=60)
        assert all(proc.returncode == 0 for proc in tickers)
        mark = worker.remote().watermark()
        assert mark is not None and abs(mark.timestamp() - time.time()) < 120  # ticks are "now"

    async def read_ticks() -> list[tuple[int, dict[str, str]]]:
        consumer = AIOKafkaConsumer(topics.events, bootstrap_servers=kafka_broker, group_id=None,
                                    auto_offset_reset="earliest",
                                    **aiokafka_kwargs(login("worker")))  # fmt: skip
        await consumer.start()
        try:
            got = await consumer.getmany(timeout_ms=3000)
            return [(r.partition, json.loads(r.value)) for rs in got.values() for r in rs]
        finally:
            await consumer.stop()

    rounds: dict[str, set[tuple[int, str]]] = {}
    for partition, tick in asyncio.run(read_ticks()):
        rounds.setdefault(tick["at"], set()).add((partition, tick["event_id"]))
    for at, records in rounds.items():
        assert records == {(p, f"tick-{at}-p{p}") for p in range(4)}
    assert len(rounds) >= window - 1
    ticked = [(tmp_path / f"ticker-{i}.log").read_text().count(" tick ") for i in range(2)]
    assert sorted(ticked) == [0, len(rounds)], ticked  # one leader produced every round
