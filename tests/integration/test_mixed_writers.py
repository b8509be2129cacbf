"""One store, two kinds of event-log writer: the in-process intake (`tracker ingest`, `tracker
serve`'s embedded backend, `tracker demo --embedded`: partition 0, seq 1, 2, 3, ...) and the Kafka
worker (its topic's partitions, seq = offset). Their rows of one event share a key and differ in
seq and chain, so a store written by both fails `tracker audit verify` with nobody having
tampered with it. The store records which writer owns its event log; the other kind is refused
before it writes anything (docs/audit.md, "Who writes the event log")."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY
from sinks.clickhouse import ClickHouseStore
from sinks.event_log import EventLogWriter
from streams.kafka_auth import aiokafka_kwargs
from streams.topics import Topics
from tests.integration.kafka_fixture import (  # noqa: F401
    kafka_broker,
    local_kafka,
    login,
    unique_topic,
)
from tests.integration.test_streaming import (
    BOOKS,
    REGISTRY,
    Worker,
    _tracker_cli,
    demo_lines,
    drain,
    post,
    running,
)
from tracker import demo_store
from tracker.errors import UserError
from tracker.pipeline import Tracker

pytestmark = pytest.mark.integration


def _web_or_exit(worker: Worker, timeout_s: float = 90) -> int | None:
    """None once the worker serves its web views; its exit code if it stopped before."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.proc is not None
        code = worker.proc.poll()
        if code is not None:
            return code
        try:
            worker.remote(timeout_s=2).progress()
            return None
        except Exception:
            time.sleep(0.3)
    raise AssertionError(f"worker neither up nor stopped\n{worker.tail()}")


def _writes(worker: Worker, lines: list[str]) -> None:
    """The worker starts, logs the lines posted to its topic, and stops cleanly."""
    with running(worker):
        assert _web_or_exit(worker) is None, worker.tail()
        post(worker.bootstrap, worker.prefix, lines)
        drain(worker.bootstrap, worker.prefix)
        assert worker.stop() == 0


def _refused_and_clean(worker: Worker, lines: list[str], *said: str) -> None:
    """Start the worker on its store; had it started writing, it is given `lines`. It must have
    stopped at startup, saying each of `said` in its log, and the store must verify clean."""
    assert worker.store is not None and worker.data is not None
    with running(worker):
        exited = _web_or_exit(worker)
        if exited is None:
            post(worker.bootstrap, worker.prefix, lines)
            drain(worker.bootstrap, worker.prefix)
            worker.stop()
    verified = _tracker_cli(
        "audit", "verify", "--store", worker.store, data=worker.data, check=False, env={}
    )
    assert verified.returncode == 0 and verified.stdout.startswith("audit: clean: "), (
        verified.stdout + verified.stderr
    )
    assert exited not in (None, 0), worker.tail()
    log = worker.log.read_text(errors="replace")
    assert all(words in log for words in said), worker.tail()


def test_a_worker_refuses_a_store_whose_event_log_ingest_wrote(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    lines = demo_lines(seed=7, scale=0.01)[:40]  # a handful of events, ticks among them
    stream = tmp_path / "events.jsonl"
    stream.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data, dsn = tmp_path / "data", f"chdb://{tmp_path / 'chdb'}"
    _tracker_cli("ingest", "--units", str(DEMO_REGISTRY), "--store", dsn, str(stream), data=data)

    prefix = unique_topic("mix")
    worker = Worker(kafka_broker, prefix, tmp_path / "w", store=dsn, data=data)
    # if it writes, it is given the same events, as the live demo would
    _refused_and_clean(worker, lines, "written by the in-process intake", "--store")


def test_ingest_refuses_a_store_whose_event_log_a_worker_wrote(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    lines = demo_lines(seed=8, scale=0.01)[:40]
    stream = tmp_path / "events.jsonl"
    stream.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data, dsn = tmp_path / "data", f"chdb://{tmp_path / 'chdb'}"
    prefix = unique_topic("mix")
    _writes(Worker(kafka_broker, prefix, tmp_path / "w", store=dsn, data=data), lines)

    more = tmp_path / "more.jsonl"  # the same events and one new one
    new = lines[-1].replace('"event_id":"', '"event_id":"new-', 1)
    more.write_text("\n".join([*lines, new]) + "\n", encoding="utf-8")
    ingested = _tracker_cli(
        "ingest", "--units", str(DEMO_REGISTRY), "--store", dsn, str(more),
        data=data, check=False, env={},
    )  # fmt: skip
    assert ingested.returncode != 0, ingested.stdout
    assert f"Kafka worker of topic {prefix}.events" in ingested.stderr, ingested.stderr
    verified = _tracker_cli("audit", "verify", "--store", dsn, data=data, check=False, env={})
    assert verified.returncode == 0 and verified.stdout.startswith("audit: clean: "), (
        verified.stdout + verified.stderr
    )


async def _wipe(bootstrap: str, prefix: str) -> None:
    """What a wiped broker leaves: the prefix's topics gone (a worker makes them again, empty)."""
    names = set(Topics(prefix).all)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_kwargs(login("admin")))
    await admin.start()
    try:
        await admin.delete_topics(sorted(names & set(await admin.list_topics())))
        deadline = time.monotonic() + 60
        while names & set(await admin.list_topics()):
            assert time.monotonic() < deadline, "the topics were not deleted"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def test_a_worker_refuses_a_store_whose_topic_was_made_anew(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The broker is wiped (the topics deleted; the worker makes them again, empty) but the store
    is kept. Before, the worker started, logged the new topic's records at offsets the store
    had logged other records at and counted them again with engines rebuilt from nothing, and
    the store failed `tracker audit verify`. Now it refuses to start, naming the offsets."""
    lines = demo_lines(seed=9, scale=0.01)[:40]
    data, dsn = tmp_path / "data", f"chdb://{tmp_path / 'chdb'}"
    prefix = unique_topic("wiped")
    _writes(Worker(kafka_broker, prefix, tmp_path / "w1", store=dsn, data=data), lines)

    asyncio.run(_wipe(kafka_broker, prefix))
    again = Worker(kafka_broker, prefix, tmp_path / "w2", store=dsn, data=data)
    # if it writes, new events take the offsets the store logged others at
    others = demo_lines(seed=10, scale=0.01)[:40]
    _refused_and_clean(again, others, f"holds {prefix}.events/", "was deleted and made again")


@pytest.mark.parametrize("foreign", [False, True])
def test_the_live_demo_starts_afresh_only_a_store_of_nothing_but_the_demo(
    chdb_dsn: str, foreign: bool
) -> None:
    """`scripts/demo --embedded`, then `scripts/demo`: the live demo's worker could not continue
    the intake's log, so the store starts afresh - unless it holds events the demo did not make
    (`foreign`: one posted after the demo), which are never deleted."""
    lines = demo_lines(seed=9, scale=0.01)[:30]
    mine = '{"event_id":"mine-1","type":"vuln.notice","unit":"fj.gat","at":"2018-03-01T10:00:00+08:00","notice_id":"V-mine","system":"门户网站"}'
    store = ClickHouseStore(chdb_dsn)
    try:
        store.save_config(REGISTRY, BOOKS)
        tracker = Tracker(store, REGISTRY, BOOKS, official_calendar())
        tracker.feed_lines([*lines, mine] if foreign else lines, "demo")
        logged = len(list(store.logged_events()))
        store_id = store.store_id()
    finally:
        store.close()

    if foreign:
        with pytest.raises(UserError, match=r"1 event\(s\) that are not the demo's"):
            demo_store.live_demo_store(chdb_dsn, demo_store.demo_ids(lines))
    else:
        said = demo_store.live_demo_store(chdb_dsn, demo_store.demo_ids(lines))
        assert said is not None and "starts afresh" in said

    store = ClickHouseStore(chdb_dsn)
    try:
        if foreign:  # untouched
            assert len(list(store.logged_events())) == logged
            assert store.event_log_writer() == EventLogWriter.intake()
        else:  # a new store: no events, no owner yet, a new id
            assert list(store.logged_events()) == [] and store.event_log_writer() is None
            assert store.store_id() != store_id
            assert (
                demo_store.live_demo_store(chdb_dsn, demo_store.demo_ids(lines)) is None
            )  # nothing more to do
    finally:
        store.close()
