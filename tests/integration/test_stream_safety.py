"""What no record, no neighbour and no crash may do to a worker (issue 7): a record the engine
fails on, code smuggled in as an engine snapshot, workers of different topic prefixes sharing one
data directory."""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import json
import pickle
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from config.holidays import official_calendar
from streams.kafka_auth import aiokafka_kwargs
from streams.settings import Config
from streams.topics import Topics, ensure_topics, partition_for
from tests.integration.kafka_fixture import kafka_broker, local_kafka, login  # noqa: F401
from tests.integration.test_streaming import (
    BOOKS,
    REGISTRY,
    Worker,
    _streams,
    assert_same_as_ingest,
    demo_lines,
    drain,
    post,
    reference,
    running,
    unique_topic,
)

pytestmark = pytest.mark.integration


class Payload:
    """Unpickling this creates `marker`: what a crafted snapshot record could make a worker do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return builtins.open, (str(self.marker), "w")


# Records `tracker post` would have refused once the models bound the years, produced directly:
# the engine failed on each (OverflowError) and, after any restart, on every record after it.
POISON = [
    {"event_id": "poison-due", "type": "vuln.notice", "unit": "fj.gat", "notice_id": "V-P",
     "system": "OA", "at": "2018-03-01T10:00:00+08:00", "due": "0001-01-01T00:00:00+08:00"},
    {"event_id": "poison-at", "type": "vuln.notice", "unit": "fj.gat", "notice_id": "V-Q",
     "system": "OA", "at": "9999-12-31T23:59:59-12:00"},
]  # fmt: skip


def test_a_record_the_engine_fails_on_is_a_dead_letter_and_stays_one(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("poison")
    topics = Topics(prefix)
    lines = demo_lines(seed=44)[:450]
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    with running(worker):
        worker.wait_web()
        post(kafka_broker, prefix, lines[:150])

        async def produce() -> None:
            # the intake's login: the one that may write the input topic
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka_broker, **aiokafka_kwargs(login("intake"))
            )
            await producer.start()
            try:
                for event in POISON:  # in fj.gat's partition, as `post` would route them
                    p = partition_for(REGISTRY.root("fj.gat"), 4)
                    await producer.send_and_wait(
                        topics.events, json.dumps(event).encode(), partition=p
                    )
            finally:
                await producer.stop()

        asyncio.run(produce())
        post(kafka_broker, prefix, lines[150:300])  # the partition goes on
        drain(kafka_broker, prefix)
        live = worker.remote()
        letters = {json.loads(d.raw)["event_id"]: d for d in live.dead_letters()}
        assert sorted(letters) == ["poison-at", "poison-due"]
        assert_same_as_ingest(live, reference(lines[:300]))
        # A restart rebuilds the partition through the poison: the same letters, nothing stops.
        worker.kill()
        worker.start()
        worker.wait_web()
        post(kafka_broker, prefix, lines[300:])
        drain(kafka_broker, prefix)
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        live = worker.remote()
        assert {d.letter_id: d for d in live.dead_letters()} == {
            d.letter_id: d for d in letters.values()
        }
        assert_same_as_ingest(live, reference(lines))
        replay = _streams("replay", "--from-kafka", "--bootstrap", kafka_broker, "--topic-prefix",
                          prefix, "--worker-url", worker.url)  # fmt: skip
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "differences: 0" in replay.stdout
        assert worker.stop() == 0


# Loaded by the worker's interpreter at start (PYTHONPATH): the first send of one event's outputs
# (per-record path), or the first time they are added to a batch's rows (batch path), fails, as a
# bug outside the engine (serialising, producing) would.
FAIL_ONCE = """
import os
import streams.app
import streams.batch

_add = streams.batch.Made.add


def add(self, out):
    if not _failed and out.logged is not None and out.logged.event_id == os.environ["FAIL_EMIT"]:
        _failed.append(out.logged.event_id)
        raise RuntimeError("injected emit failure")
    return _add(self, out)


streams.batch.Made.add = add

_emit = streams.app.Emitter.emit
_failed = []


async def emit(self, out, partition):
    if not _failed and out.logged is not None and out.logged.event_id == os.environ["FAIL_EMIT"]:
        _failed.append(out.logged.event_id)
        raise RuntimeError("injected emit failure")
    return await _emit(self, out, partition)


streams.app.Emitter.emit = emit
"""


@pytest.mark.parametrize("split", [False, True])  # the batch path; the per-record path
def test_a_failure_outside_the_engine_loses_no_record(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
    split: bool,
) -> None:
    prefix = unique_topic("emitfail")
    lines = demo_lines(seed=45)[:300]
    target = next(json.loads(x)["event_id"] for x in lines[100:] if '"clock.tick"' not in x)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAIL_ONCE)
    env = {"PYTHONPATH": str(hook), "FAIL_EMIT": target}
    if split:
        store = Worker(kafka_broker, prefix, tmp_path / "sink", role="sink")
        worker = Worker(
            kafka_broker, prefix, tmp_path / "w", role="processor", store="memory://", env=env
        )
    else:
        store = worker = Worker(kafka_broker, prefix, tmp_path / "w", env=env)
    with running(*{id(w): w for w in (store, worker)}.values()):
        store.wait_web()
        worker.wait_web()
        post(kafka_broker, prefix, lines)
        drain(kafka_broker, prefix, role="split" if split else "all", timeout_s=90)
        assert "injected emit failure" in worker.log.read_text()
        assert_same_as_ingest(store.remote(), reference(lines))
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()


def _fingerprint(config: Config) -> str:
    """The configuration digest old workers stored with (and checked on) a snapshot."""
    h = hashlib.sha256(config.registry.model_dump_json().encode())
    for book_id in sorted(config.rulebooks):
        h.update(config.rulebooks[book_id].model_dump_json().encode())
    cal = config.calendar
    for part in (cal.years, cal.holidays, cal.workdays):
        h.update(repr(sorted(part)).encode())
    return h.hexdigest()[:16]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_crafted_snapshot_record_runs_nothing(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("evil")
    topics = Topics(prefix)
    lines = demo_lines(seed=43)[:400]
    marker = tmp_path / "pwned"
    blob = zlib.compress(pickle.dumps(Payload(marker)))
    # What the snapshot table used to accept: a manifest naming one chunk, checksum and
    # configuration fingerprint right (both are easy to know for anyone who can read the topics).
    fingerprint = _fingerprint(Config(REGISTRY, BOOKS, official_calendar()))
    manifest = [{"offset": 0, "chunks": 1, "sha256": hashlib.sha256(blob).hexdigest(),
                 "config": fingerprint}]  # fmt: skip
    changelog = f"{topics.group('all')}-snapshots-changelog"
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    with running(worker):
        worker.wait_web()
        post(kafka_broker, prefix, lines[:200])
        drain(kafka_broker, prefix)
        assert worker.stop() == 0

        async def produce() -> None:
            # the topic an older worker left behind; written by someone who may write the
            # worker's own topics (here the super user: ACLs aside, nothing may be unpickled)
            admin = login("admin")
            await ensure_topics(kafka_broker, topics, 4, login=admin, changelogs=[changelog])
            producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, **aiokafka_kwargs(admin))
            await producer.start()
            try:
                for p in range(4):
                    await producer.send_and_wait(
                        changelog, blob, key=json.dumps(f"{p}:0:0").encode(), partition=p
                    )
                    await producer.send_and_wait(
                        changelog,
                        json.dumps(manifest).encode(),
                        key=json.dumps(str(p)).encode(),
                        partition=p,
                    )
                # the same payload where the processor and the sink read
                await producer.send_and_wait(
                    topics.events, pickle.dumps(Payload(marker)), partition=0
                )
                await producer.send_and_wait(
                    topics.ledger, pickle.dumps(Payload(marker)), partition=0
                )
            finally:
                await producer.stop()

        asyncio.run(produce())
        worker.start()
        worker.wait_web()
        post(kafka_broker, prefix, lines[200:])
        drain(kafka_broker, prefix)
        assert not marker.exists()
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        live = worker.remote()
        assert_same_as_ingest(live, reference(lines))
        # the batch path reads no output topic: the ledger record is not even read (the
        # per-record sink skipped it as "not a ledger entry")
        assert live.progress()["sink"]["skipped"] == 0
        letters = live.dead_letters()
        assert len(letters) == 1  # the input record, kept as it came (base64), never unpickled
        assert letters[0].reason.startswith("malformed: not UTF-8 text (byte ")
        assert base64.b64decode(letters[0].raw) == pickle.dumps(Payload(marker))
        # Faust's own table pages served the pickled state: off, as are its other built-in pages
        assert _status(f"{worker.url}/table/") == 404
        assert _status(f"{worker.url}/table/snapshots/") == 404
        assert _status(f"{worker.url}/router/") == 404
        assert worker.stop() == 0


def test_workers_of_two_prefixes_share_one_data_dir(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    shared = tmp_path / "data"
    lines = demo_lines(seed=41)[:400]
    # Faust keeps local state (table files, once RocksDB snapshots) in its data directory.
    a = Worker(kafka_broker, unique_topic("nsa"), tmp_path / "a", data=shared)
    b = Worker(kafka_broker, unique_topic("nsb"), tmp_path / "b", data=shared)
    with running(b):
        b.wait_web()
        post(kafka_broker, b.prefix, lines[:60])
        drain(kafka_broker, b.prefix)
        assert b.stop() == 0
    with running(a):
        a.wait_web()
        post(kafka_broker, a.prefix, lines)
        drain(kafka_broker, a.prefix)
        assert a.stop() == 0
    with running(b):  # b again, after a wrote to the same data dir
        b.wait_web()
        post(kafka_broker, b.prefix, lines[60:120])
        drain(kafka_broker, b.prefix, timeout_s=60)
        assert b.proc is not None and b.proc.poll() is None, b.tail()
        assert_same_as_ingest(b.remote(), reference(lines[:120]))
    assert {d.name for d in (shared / "faust").iterdir()} == {f"{w.prefix}-worker" for w in (a, b)}
