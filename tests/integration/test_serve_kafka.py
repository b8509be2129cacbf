"""`tracker serve` with a broker (issue 10): events posted through the API reach the events topic,
keyed and partitioned as `tracker post` does, with the envelope headers (who posted, when it was
received); a replayed request sends nothing again; a refused request sends nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi.testclient import TestClient

from config.intake_signatures import MAX_TREE_LEAVES, IntakeSignatures
from config.signing import Signer, load_verifier
from engine.chain import event_message
from schemas.envelope import from_headers
from sinks import MemoryStore
from streams.kafka_auth import aiokafka_kwargs
from streams.topics import Topics, end_offsets, partition_for
from tests.integration.kafka_fixture import (  # noqa: F401
    kafka_broker,
    local_kafka,
    login,
    unique_topic,
)
from tests.serve_kit import BOOKS, PRINCIPALS, REGISTRY, event, jsonl
from tracker.principals import PrincipalStore
from tracker.serve import kafka_backend
from tracker.serve import signing as serve_signing
from tracker.serve.app import create_app
from tracker.serve.kafka_backend import KafkaService
from tracker.serve.limits import Limits

pytestmark = pytest.mark.integration

PARTITIONS = 2


def records(bootstrap: str, topic: str) -> list[Any]:
    worker = login("worker")  # the one that may read the input topic

    async def read() -> list[Any]:
        ends = {tp: n for tp, n in (await end_offsets(bootstrap, [topic], worker)).items() if n}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **aiokafka_kwargs(worker),
        )
        await consumer.start()
        try:
            consumer.assign(list(ends))
            await consumer.seek_to_beginning(*ends)
            out: list[Any] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    out += batch
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def intake(bootstrap: str, store_dsn: str, topics: Topics, **options: Any) -> KafkaService:
    """The Kafka-backed intake as the local broker runs it: the intake's login, and the admin's
    to grant the prefix's ACLs first."""
    return KafkaService(
        bootstrap,
        REGISTRY,
        BOOKS,
        store_dsn,
        topics=topics,
        partitions=PARTITIONS,
        login=login("intake"),
        admin=login("admin"),
        **options,
    )


def test_posted_events_reach_the_topic_with_the_envelope(
    signing_key: Path,
    kafka_broker: str,  # noqa: F811
    chdb_dsn: str,
    tmp_path: Path,
) -> None:
    topics = Topics(unique_topic("serve"))
    principals = PrincipalStore(tmp_path / "p.json")
    tokens = {
        name: principals.add(role, scope, name, jurisdiction=j)[1]
        for name, (role, scope, j) in PRINCIPALS.items()
    }
    service = intake(kafka_broker, chdb_dsn, topics)
    client = TestClient(create_app(service, principals, Limits()))

    def post(who: str, body: list[dict[str, Any]]) -> Any:
        return client.post(
            "/v1/events",
            content=jsonl(body).encode(),
            headers={
                "Authorization": f"Bearer {tokens[who]}",
                "Content-Type": "application/x-ndjson",
            },
        )

    try:
        notices = [
            event("vuln.notice", "fj.gat", "n-gat", notice_id="V-1"),
            event("vuln.notice", "fj.fz.gl", "n-gl", notice_id="V-2"),
        ]
        sent = post("centre", notices)
        assert sent.json() == {"accepted": 2, "duplicates": 0, "rejected": [], "backend": "kafka"}
        tick = event("clock.tick", None, "tick-1")
        assert post("ticker", [tick]).json()["accepted"] == 1
        # a replayed request is answered as duplicates and sends nothing
        again = post("centre", notices).json()
        assert (again["accepted"], again["duplicates"]) == (0, 2)
        # refused requests send nothing
        assert post("unit_gat", [event("vuln.notice", "fj.gat", "n-x")]).status_code == 403
        assert post("centre", [*notices, {"event_id": "bad"}]).status_code == 400
        # a retraction of another principal's event is refused; of one the intake cannot place
        # (no store to ask yet), the request waits for a store (503) rather than pass unchecked
        retract = event("event.retracted", "fj.fz.gl", "r-gl", target_event_id="n-gl")
        assert post("centre_fz", [retract]).status_code == 403
        unknown = event("event.retracted", "fj.fz.gl", "r-x", target_event_id="elsewhere")
        assert post("centre_fz", [unknown]).status_code == 503
        # reads go through the store; there is none yet (no worker ran): a clear 503
        unread = client.get("/v1/status", headers={"Authorization": f"Bearer {tokens['auditor']}"})
        assert unread.status_code == 503 and "store" in unread.json()["detail"]
    finally:
        service.close()

    got = records(kafka_broker, topics.events)
    by_id: dict[str, list[Any]] = {}
    for record in got:
        by_id.setdefault(record.value.decode().split('"event_id": "')[1].split('"')[0], []).append(
            record
        )
    assert sorted(by_id) == ["n-gat", "n-gl", "tick-1"]
    for event_id, root in (("n-gat", "fj.gat"), ("n-gl", "fj.fz")):
        (record,) = by_id[event_id]
        assert record.key == root.encode()
        assert record.partition == partition_for(root, PARTITIONS)
        envelope = from_headers(record.headers)
        assert envelope is not None and envelope.posted_by == "centre:*"
        assert isinstance(envelope.received_at, datetime) and envelope.received_at.tzinfo
        # signed at intake with the settings' key, over the body as the worker will log it (the
        # request's two events in one batch, each record with its proof)
        message = event_message(record.value.decode().strip(), "centre:*", envelope.received_at)
        assert IntakeSignatures(load_verifier(signing_key)).valid(message, envelope.signature)
    # a tick reaches every partition, stamped with the ticker
    ticks = by_id["tick-1"]
    assert sorted(r.partition for r in ticks) == list(range(PARTITIONS))
    assert {from_headers(r.headers).posted_by for r in ticks} == {"ticker:*"}  # type: ignore[union-attr]


def test_a_request_waiting_for_the_broker_does_not_hold_the_next_one(
    kafka_broker: str,  # noqa: F811
    chdb_dsn: str,
    tmp_path: Path,
) -> None:
    """The broker's confirmation (acks=all) of one request is awaited while the next request is
    produced: the first request's confirmation is held here until the second has been handed to
    the producer. One at a time (the whole request under the lock), the second would wait for
    the first, which would wait for the second, until the timeout. A third request repeating the
    first's event while it is on its way is a duplicate once the first is confirmed, and the
    topic holds that event once."""
    topics = Topics(unique_topic("serve-inflight"))
    principals = PrincipalStore(tmp_path / "p.json")
    _, token = principals.add("centre", None, "centre")
    service = intake(kafka_broker, chdb_dsn, topics, lock_timeout_s=5)
    handed: list[str] = []
    second_handed = asyncio.Event()
    send_all = service.poster.send_all

    async def held_send(records: Any, futures: dict[int, Any]) -> None:
        await send_all(records, futures)
        handed.extend(event_.event_id for _, event_, _ in records)
        if len(handed) == 2:
            second_handed.set()
        if len(handed) > 1:
            return
        first_futures = futures[0]

        async def confirmed_after_the_second() -> Any:
            await second_handed.wait()
            return [await f for f in first_futures]

        futures[0] = (asyncio.ensure_future(confirmed_after_the_second()),)

    service.poster.send_all = held_send  # type: ignore[method-assign]
    client = TestClient(create_app(service, principals, Limits()))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    first = event("vuln.notice", "fj.gat", "n-1", notice_id="V-1")
    second = event("vuln.notice", "fj.xm", "n-2", notice_id="V-2")
    answers: dict[str, Any] = {}

    def post(name: str, body: list[dict[str, Any]]) -> None:
        answers[name] = client.post("/v1/events", content=jsonl(body).encode(), headers=headers)

    try:
        threads = [threading.Thread(target=post, args=("first", [first]))]
        threads[0].start()
        deadline = time.monotonic() + 10
        while not handed and time.monotonic() < deadline:
            time.sleep(0.01)
        # the first is on its way (not confirmed): the same event again, then another one
        threads.append(threading.Thread(target=post, args=("again", [first])))
        threads[-1].start()
        time.sleep(0.2)
        threads.append(threading.Thread(target=post, args=("second", [second])))
        threads[-1].start()
        for thread in threads:
            thread.join(30)
    finally:
        service.close()
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(
        ("first", "again", "second"), 200
    )
    assert (answers["first"].json()["accepted"], answers["second"].json()["accepted"]) == (1, 1)
    assert answers["again"].json()["duplicates"] == 1
    sent = [r.value.decode() for r in records(kafka_broker, topics.events)]
    assert sorted(json.loads(v)["event_id"] for v in sent) == ["n-1", "n-2"]


def test_the_intake_finds_its_signing_key_once_not_for_every_event(
    signing_key: Path,
    kafka_broker: str,  # noqa: F811
    chdb_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding the key reads the settings (the environment, through pydantic), which cost
    milliseconds: done for every record, it held a 500-event request for over a second and
    the intake's batches at a few hundred events/s (BENCHMARKS.md, `tracker serve`). And the
    request's records are signed once, together (~45 us of CPU an Ed25519 signature kept the
    intake under its 10,000 events/s), each record still verifying on its own."""
    topics = Topics(unique_topic("serve-key"))
    principals = PrincipalStore(tmp_path / "p.json")
    _, token = principals.add("centre", None, "centre")
    service = intake(kafka_broker, chdb_dsn, topics)
    signed: list[bytes] = []
    key = service._signer

    @dataclasses.dataclass(frozen=True)
    class Counting(Signer):
        def sign(self, message: bytes) -> str:
            signed.append(message)
            return key.sign(message)

    service._signer = Counting(key.key)
    looked_up: list[Path] = []
    key_path = serve_signing.key_path

    def counted() -> Path:
        looked_up.append(key_path())
        return looked_up[-1]

    monkeypatch.setattr(serve_signing, "key_path", counted)
    client = TestClient(create_app(service, principals, Limits()))
    notices = [event("vuln.notice", "fj.gat", f"n-{i}", notice_id=f"V-{i}") for i in range(20)]
    try:
        answer = client.post(
            "/v1/events",
            content=jsonl(notices).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        )
        assert answer.json()["accepted"] == 20
    finally:
        service.close()
    assert looked_up == []  # the service found its key when it started
    # one signature a tree of the request's 20 records (trees of MAX_TREE_LEAVES), not one each
    assert len(signed) == -(-20 // MAX_TREE_LEAVES) < 20
    verifier = IntakeSignatures(load_verifier(signing_key))
    for record in records(kafka_broker, topics.events):
        envelope = from_headers(record.headers)
        assert envelope is not None
        message = event_message(record.value.decode().strip(), "centre:*", envelope.received_at)
        assert verifier.valid(message, envelope.signature)


@pytest.mark.parametrize(
    "batch_bytes",
    [
        # the default: each partition's records of the request in one batch of their own
        None,
        # small batches: a full one goes and the next record starts another, in order
        2048,
    ],
)
def test_a_big_request_goes_in_batches_per_partition_in_order(
    kafka_broker: str,  # noqa: F811
    chdb_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch_bytes: int | None,
) -> None:
    """A request with many records for a partition hands them to the producer as batches of
    their own (few records still go one `send` each, as the earlier tests' requests do); the
    topic holds every record once, keyed and partitioned as `tracker post` does, each
    partition in the order of the request, the ticks in every partition."""
    if batch_bytes is not None:
        monkeypatch.setattr(kafka_backend, "MAX_BATCH_BYTES", batch_bytes)
    topics = Topics(unique_topic("serve-batches"))
    principals = PrincipalStore(tmp_path / "p.json")
    _, centre = principals.add("centre", None, "centre")
    _, ticker = principals.add("ticker", None, "ticker")
    service = intake(kafka_broker, chdb_dsn, topics)
    client = TestClient(create_app(service, principals, Limits()))
    units = ["fj.gat", "fj.fz.gl", "fj.xm", "fj.fz"]
    notices = [
        event("vuln.notice", units[i % 4], f"n-{i:03}", notice_id=f"V-{i}") for i in range(120)
    ]
    ticks = [event("clock.tick", None, "tick-1")]

    def post(token: str, body: list[dict[str, Any]]) -> Any:
        return client.post(
            "/v1/events",
            content=jsonl(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        ).json()

    try:
        assert post(centre, notices)["accepted"] == 120
        assert post(ticker, ticks)["accepted"] == 1
    finally:
        service.close()
    got = records(kafka_broker, topics.events)
    by_partition: dict[int, list[str]] = {}
    for record in got:
        sent = json.loads(record.value)
        by_partition.setdefault(record.partition, []).append(sent["event_id"])
        if sent["type"] != "clock.tick":
            root = REGISTRY.root(sent["unit"])
            assert (record.key, record.partition) == (
                root.encode(),
                partition_for(root, PARTITIONS),
            )
        assert from_headers(record.headers) is not None
    expected: dict[int, list[str]] = {}
    for notice in notices:
        partition = partition_for(REGISTRY.root(notice["unit"]), PARTITIONS)
        expected.setdefault(partition, []).append(notice["event_id"])
    for partition in range(PARTITIONS):
        expected.setdefault(partition, []).append("tick-1")
    assert by_partition == expected


def test_a_request_opens_the_store_once_for_its_retractions_not_once_per_line(
    kafka_broker: str,  # noqa: F811
    chdb_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Who posted the target of a retraction the intake does not remember (sent before it
    started, or long ago) is the store's to say. Opening the store costs tens of milliseconds
    (an embedded chDB store; a worker's views: a connection): opened for every such line, a
    request of 100 retractions took seconds. Asked once, for every line of the request."""
    topics = Topics(unique_topic("serve-retract"))
    principals = PrincipalStore(tmp_path / "p.json")
    _, token = principals.add("centre", None, "centre")
    service = intake(kafka_broker, chdb_dsn, topics)
    opened: list[str] = []

    def counted() -> Any:
        # the worker's store, empty (no target is logged): the in-memory one, because the test
        # counts the opens, and the chDB path a test process shares can be held by a child
        # process an earlier test left closing
        opened.append("store")
        return MemoryStore()

    monkeypatch.setattr(service, "reader", counted)
    client = TestClient(create_app(service, principals, Limits()))
    retractions = [
        event("event.retracted", "fj.gat", f"r-{i}", target_event_id=f"old-{i}") for i in range(5)
    ]
    try:
        answer = client.post(
            "/v1/events",
            content=jsonl(retractions).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
        )
    finally:
        service.close()
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 5  # not logged: the engine judges them (contract 2)
    assert opened == ["store"]


def test_a_single_post_goes_to_the_producer_without_a_worker_thread(
    kafka_broker: str,  # noqa: F811
    chdb_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A single post hands itself to the producer's loop once and comes back on the HTTP
    server's loop. It went to a worker thread (FastAPI's threadpool), which handed over to the
    producer's loop twice and waited for each (the records, then the broker's confirmation):
    each hand-over wakes a thread and passes the GIL, and together they cost a single post more
    of the server's CPU than its checks, signature and record (BENCHMARKS.md, issue 10). A
    big request is still checked on a worker thread (the HTTP loop serves others meanwhile)."""
    topics = Topics(unique_topic("serve-hops"))
    principals = PrincipalStore(tmp_path / "p.json")
    _, token = principals.add("centre", None, "centre")
    service = intake(kafka_broker, chdb_dsn, topics)
    threads: list[str] = []
    loops: list[str] = []
    run_sync = anyio.to_thread.run_sync
    to_loop = asyncio.run_coroutine_threadsafe

    async def counted_thread(func: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(getattr(getattr(func, "func", func), "__qualname__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    def counted_loop(coro: Any, loop: Any) -> Any:
        loops.append(coro.__qualname__)
        return to_loop(coro, loop)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted_thread)
    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", counted_loop)
    client = TestClient(create_app(service, principals, Limits()))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    notices = [event("vuln.notice", "fj.gat", f"n-{i}", notice_id=f"V-{i}") for i in range(40)]
    try:
        first = client.post("/v1/events", content=json.dumps(notices[0]), headers=headers)
        assert first.json()["accepted"] == 1  # the token's first use: its hash on a thread
        threads.clear()
        loops.clear()
        single = client.post("/v1/events", content=json.dumps(notices[1]), headers=headers)
        assert single.json()["accepted"] == 1
        assert (threads, len(loops)) == ([], 1)
        # a retraction of a line earlier in the same request asks no store (there is none here:
        # asking would refuse the request, 503), small or big
        retract = event("event.retracted", "fj.gat", "r-2", target_event_id="n-2")
        small = client.post(
            "/v1/events", content=json.dumps([*notices[2:3], retract]), headers=headers
        )
        assert small.status_code == 200, small.text
        big = client.post("/v1/events", content=json.dumps(notices[3:]), headers=headers)
        assert big.json()["accepted"] == 37
        assert threads == ["KafkaService.submit"] and len(loops) == 3
    finally:
        service.close()
    sent = sorted(json.loads(r.value)["event_id"] for r in records(kafka_broker, topics.events))
    assert sent == sorted([*(n["event_id"] for n in notices), "r-2"])
