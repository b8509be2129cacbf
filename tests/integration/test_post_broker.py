"""`tracker post` against a real broker (issue 7 item 8): every line accounted for as sent, not
sent or rejected with its reason; a broker killed mid-stream ends the run in bounded time with
the counts, and every event reported sent is in the topic."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from config.registry import DEMO_REGISTRY
from streams.broker import LocalKafka
from streams.kafka_auth import KafkaLogin, aiokafka_kwargs
from streams.topics import Topics, end_offsets
from tests.integration.kafka_fixture import (  # noqa: F401
    CREDENTIALS_ENV,
    free_ports,
    kafka_broker,
    kafka_lib_cache,
    local_kafka,
    login,
    unique_topic,
)

pytestmark = pytest.mark.integration

UNITS = ("fj.gat", "fj.fz", "fj.fz.gl", "fj.xm", "fj.nd")


def finding(i: int) -> str:
    return json.dumps({"event_id": f"f-{i}", "type": "mlps.finding", "unit": UNITS[i % len(UNITS)],
                       "system": f"s{i}", "at": "2018-06-01T10:00:00+08:00"})  # fmt: skip


def post(
    bootstrap: str, prefix: str, events: Path, *extra: str, credentials: Path | None = None
) -> subprocess.Popen[str]:
    """`tracker post --direct` as a subprocess: it logs in as the intake from `credentials` (the
    folder of the broker's logins; default: the session broker's)."""
    cmd = [sys.executable, "-m", "tracker.cli", "post", "--direct", "--bootstrap", bootstrap, "--json",
           "--topic-prefix", prefix, "--units", str(DEMO_REGISTRY), "--file", str(events), *extra]  # fmt: skip
    env = {**os.environ, "TRACKER_KAFKA": ""}
    if credentials is not None:
        env[CREDENTIALS_ENV] = str(credentials)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def topic_values(bootstrap: str, topic: str, reader: KafkaLogin | None = None) -> list[bytes]:
    """Every record in `topic`, read as the worker (the one that may read the input topic)."""
    who = reader or login("worker")

    async def read() -> list[bytes]:
        ends = {tp: n for tp, n in (await end_offsets(bootstrap, [topic], who)).items() if n}
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", **aiokafka_kwargs(who))  # fmt: skip
        await consumer.start()
        try:
            consumer.assign(list(ends))
            await consumer.seek_to_beginning(*ends)
            values: list[bytes] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    values += [r.value for r in records if r.value is not None]
            return values
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_every_line_is_accounted_for_on_a_real_broker(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("post")
    good = [finding(i) for i in range(200)]
    tick = json.dumps(
        {"event_id": "tick-1", "type": "clock.tick", "at": "2018-06-02T00:00:00+08:00"}
    )
    lines = [
        *good[:100],
        "",  # blank: skipped
        "{not json",
        "\xff\xfe not UTF-8",  # written as raw bytes below
        finding(0).replace("fj.gat", "fj.nowhere"),
        tick,
        *good[100:],
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(
        line.encode("latin-1") if line.startswith("\xff") else line.encode() for line in lines
    ))  # fmt: skip
    done = post(kafka_broker, prefix, events)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 1, err  # some lines rejected, every other one sent
    summary = json.loads(out.splitlines()[-1])
    assert {k: summary[k] for k in ("sent", "not_sent", "rejected", "records")} == {
        "sent": 201, "not_sent": 0, "rejected": 3, "records": 204}  # fmt: skip
    assert [r["line"] for r in summary["rejected_lines"]] == [102, 103, 104]
    assert (summary["broker"], summary["broker_from"], summary["error"]) == (
        kafka_broker, "--bootstrap", None)  # fmt: skip
    for number, reason in ((102, "malformed JSON"), (103, "not UTF-8"), (104, "unknown unit")):
        assert f"tracker post: rejected: line {number}: {reason}" in err
    values = topic_values(kafka_broker, Topics(prefix).events)
    assert len(values) == 204  # 200 events, and the tick in each of the 4 partitions
    assert {json.loads(v)["event_id"] for v in values} == {f"f-{i}" for i in range(200)} | {
        "tick-1"}  # fmt: skip


@pytest.fixture
def own_broker() -> Iterator[LocalKafka]:
    """A broker of this test's own, to kill (the session's broker serves the other tests)."""
    data_dir = Path(tempfile.mkdtemp(prefix="tracker-kafka-kill-", dir="/tmp"))
    port, controller_port = free_ports(2)
    broker = LocalKafka(data_dir, port=port, controller_port=controller_port,
                        lib_dir=kafka_lib_cache())  # fmt: skip
    try:
        broker.start(timeout_s=120)
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_broker_killed_midway_ends_the_post_with_counts(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    prefix = unique_topic("kill")
    topic = Topics(prefix).events
    count = 100_000
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(finding(i) for i in range(count)) + "\n", encoding="utf-8")
    timeout_s = 20
    posting = post(own_broker.bootstrap, prefix, events, "--timeout", str(timeout_s),
                   credentials=own_broker.credentials.folder)  # fmt: skip
    worker = own_broker.login("worker")
    # kill the broker as soon as the first records are in the topic
    deadline = time.monotonic() + 120
    while not _records_in(own_broker.bootstrap, topic, worker):
        assert posting.poll() is None, posting.communicate()
        assert time.monotonic() < deadline, "nothing reached the topic"
        time.sleep(0.05)
    pid = own_broker.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    out, err = posting.communicate(timeout=timeout_s + 60)
    took = time.monotonic() - killed_at
    assert posting.returncode == 2, err
    assert took < timeout_s + 30, took  # the timeout, plus bounded graces to stop
    summary = json.loads(out.splitlines()[-1])
    assert summary["sent"] + summary["not_sent"] == count and summary["rejected"] == 0
    assert summary["not_sent"] > 0 and summary["error"]
    assert len(summary["not_sent_lines"]) == summary["not_sent"]
    assert f"not sent: {summary['not_sent']} event(s)" in err
    assert f"broker {own_broker.bootstrap} (--bootstrap)" in err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback, no library noise
    # the broker back: every event reported sent is in the topic (not sent ones may be too:
    # a record can land without its confirmation reaching us; posting them again is harmless)
    own_broker.start(timeout_s=120)
    in_topic = {
        json.loads(v)["event_id"] for v in topic_values(own_broker.bootstrap, topic, worker)
    }
    unsent = set(summary["not_sent_lines"])
    reported_sent = {f"f-{i}" for i in range(count) if i + 1 not in unsent}
    assert len(reported_sent) == summary["sent"]
    assert reported_sent <= in_topic


def _records_in(bootstrap: str, topic: str, reader: KafkaLogin) -> int:
    try:
        ends: dict[TopicPartition, int] = asyncio.run(end_offsets(bootstrap, [topic], reader))
    except Exception:  # the topic is being created
        return 0
    return sum(ends.values())
