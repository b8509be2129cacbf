"""The local broker locked down (issue 10, item 4): SASL/SCRAM logins and per-prefix ACLs.

Against the real broker `tracker kafka start` runs: anonymous clients and wrong passwords are
refused; the intake writes the events topic and nothing else; the worker reads it and owns the
outputs, its groups and Faust's own topics; the ticker writes ticks; a prefix's ACLs say nothing
about another prefix. Each check names the principal and what it tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from config.registry import DEMO_REGISTRY
from streams.broker import LocalKafka
from streams.kafka_acls import grant, granted
from streams.kafka_auth import PRINCIPALS, KafkaLogin, aiokafka_kwargs
from streams.topics import Topics
from tests.integration.kafka_fixture import (  # noqa: F401
    free_ports,
    granted_topics,
    kafka_lib_cache,
    local_kafka,
    unique_topic,
)

pytestmark = pytest.mark.integration

REFUSED_IN_S = 30.0


@pytest.fixture(scope="module")
def broker(local_kafka: LocalKafka) -> LocalKafka:  # noqa: F811
    """The session's broker, locked down as `tracker kafka start` runs it."""
    return local_kafka


async def produce(bootstrap: str, login: KafkaLogin | None, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
        **aiokafka_kwargs(login),
    )
    try:
        await producer.start()
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, login: KafkaLogin | None, topic: str, group: str | None = None
) -> list[bytes]:
    """Every record now in `topic` (partition 0), read in `group` (committed) or without one."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=10_000,
        **aiokafka_kwargs(login),
    )
    try:
        await consumer.start()
        first = await asyncio.wait_for(consumer.getone(), 20)
        values = [first.value or b""]
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            values += [r.value or b"" for r in batch]
        if group is not None:
            await consumer.commit()
        return values
    finally:
        await consumer.stop()


async def refused(action: Awaitable[Any], *expected: type[BaseException]) -> BaseException:
    """The broker said no: `action` raised one of `expected` (not a time-out, not success)."""
    try:
        await asyncio.wait_for(action, REFUSED_IN_S)
    except expected as exc:
        return exc
    except TimeoutError:
        pytest.fail(f"not refused within {REFUSED_IN_S}s (waited on the broker instead)")
    pytest.fail("allowed, but the broker must refuse it")


async def test_anonymous_clients_are_refused(broker: LocalKafka) -> None:
    topics = await granted_topics(broker)
    bootstrap = broker.bootstrap
    await produce(bootstrap, broker.login("intake"), topics.events, b"from the intake")

    # no SASL login at all: the listener speaks SASL only, so not even metadata is served
    await refused(produce(bootstrap, None, topics.events, b"anonymous"), KafkaConnectionError)
    await refused(consume(bootstrap, None, topics.events), KafkaConnectionError)
    assert await consume(bootstrap, broker.login("worker"), topics.events) == [b"from the intake"]


async def test_a_wrong_password_or_unknown_user_is_refused(broker: LocalKafka) -> None:
    topics = await granted_topics(broker)
    bootstrap, intake = broker.bootstrap, broker.login("intake")
    await produce(bootstrap, intake, topics.events, b"right password")
    wrong = KafkaLogin(intake.username, intake.password[::-1])
    await refused(produce(bootstrap, wrong, topics.events, b"x"), KafkaConnectionError)
    stranger = KafkaLogin("mallory", intake.password)
    await refused(produce(bootstrap, stranger, topics.events, b"x"), KafkaConnectionError)


async def test_the_intake_writes_the_events_topic_and_nothing_else(
    broker: LocalKafka,
) -> None:
    topics = await granted_topics(broker)
    bootstrap, intake = broker.bootstrap, broker.login("intake")
    worker = broker.login("worker")
    await produce(bootstrap, intake, topics.events, b"posted")
    await produce(bootstrap, worker, topics.ledger, b"a ledger line")

    # it cannot read back what it (or anyone) posted
    await refused(consume(bootstrap, intake, topics.events), TopicAuthorizationFailedError)
    # nor forge or read the worker's outputs
    await refused(produce(bootstrap, intake, topics.ledger, b"x"), TopicAuthorizationFailedError)
    await refused(consume(bootstrap, intake, topics.ledger), TopicAuthorizationFailedError)
    # nor join the worker's group (which would take its partitions) nor Faust's own topics
    await refused(
        consume(bootstrap, intake, topics.events, group=topics.group("all")),
        TopicAuthorizationFailedError,
        GroupAuthorizationFailedError,
    )
    leader_topic = f"{topics.group('all')}-__assignor-__leader"
    await refused(produce(bootstrap, intake, leader_topic, b"x"), TopicAuthorizationFailedError)


async def test_the_worker_reads_events_and_owns_the_internal_topics(
    broker: LocalKafka,
) -> None:
    topics = await granted_topics(broker)
    bootstrap = broker.bootstrap
    intake, worker = broker.login("intake"), broker.login("worker")
    await produce(bootstrap, intake, topics.events, b"event 1")

    # reads the events in each worker role's group (and without a group, as a rebuild does)
    for role in ("all", "processor", "sink"):
        assert await consume(bootstrap, worker, topics.events, group=topics.group(role)) == [
            b"event 1"
        ]
    assert await consume(bootstrap, worker, topics.events) == [b"event 1"]
    # writes and reads every output topic and Faust's own topics of its app ids
    leader_topic = f"{topics.group('all')}-__assignor-__leader"
    for topic in (*topics.sink_inputs, topics.warnings, leader_topic):
        await produce(bootstrap, worker, topic, b"out")
        assert await consume(bootstrap, worker, topic, group=topics.group("sink")) == [b"out"]
    # but it never writes the events topic: only the intake (and the ticker's ticks) do
    await refused(produce(bootstrap, worker, topics.events, b"x"), TopicAuthorizationFailedError)
    # and a group outside its app ids is not its own
    await refused(
        consume(bootstrap, worker, topics.events, group=unique_topic("stray")),
        GroupAuthorizationFailedError,
    )


async def test_the_ticker_writes_ticks_to_the_events_topic_only(broker: LocalKafka) -> None:
    topics = await granted_topics(broker)
    bootstrap, ticker = broker.bootstrap, broker.login("ticker")
    await produce(bootstrap, ticker, topics.events, b'{"type":"clock.tick"}')
    ticker_topic = f"{topics.group('ticker')}-__assignor-__leader"
    await produce(bootstrap, ticker, ticker_topic, b"leader")
    await refused(consume(bootstrap, ticker, topics.events), TopicAuthorizationFailedError)
    await refused(produce(bootstrap, ticker, topics.ledger, b"x"), TopicAuthorizationFailedError)


async def test_acls_of_one_prefix_say_nothing_of_another(broker: LocalKafka) -> None:
    ours = await granted_topics(broker)
    theirs = Topics(unique_topic("ungranted"))
    bootstrap, intake = broker.bootstrap, broker.login("intake")
    await produce(bootstrap, intake, ours.events, b"ours")
    await refused(produce(bootstrap, intake, theirs.events, b"x"), TopicAuthorizationFailedError)
    worker = broker.login("worker")
    await refused(consume(bootstrap, worker, theirs.events), TopicAuthorizationFailedError)
    # the super user may do anything (it creates topics and ACLs)
    await produce(bootstrap, broker.login("admin"), theirs.events, b"by the operator")


async def test_grant_is_idempotent_and_lists_what_it_made(broker: LocalKafka) -> None:
    topics = Topics(unique_topic("twice"))
    admin = broker.login("admin")
    made = await grant(broker.bootstrap, admin, topics)
    assert await grant(broker.bootstrap, admin, topics) == made
    held = await granted(broker.bootstrap, admin)
    assert set(made) <= held
    # nothing for the admin itself: it is a super user, not an ACL holder
    assert not [acl for acl in held if acl.principal == "User:admin"]


def test_credentials_are_private_and_never_logged(broker: LocalKafka) -> None:
    folder = broker.credentials.folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(broker.config_dir.stat().st_mode) == 0o700
    server_properties = broker.config_dir / "server.properties"
    assert stat.S_IMODE(server_properties.stat().st_mode) == 0o600
    passwords = []
    for name in PRINCIPALS:
        path = folder / f"{name}.properties"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        login = broker.login(name)
        assert login.username == name and len(login.password) >= 32
        assert login.password not in repr(login)
        passwords.append(login.password)
    assert len(set(passwords)) == len(passwords), "every principal has its own password"
    for log in broker.log_dir.iterdir():
        text = log.read_text(errors="replace")
        for password in passwords:
            assert password not in text, f"a password is in {log}"
    # the format step's argument file (it held every password) is gone
    assert not list(broker.config_dir.glob("*.args"))
    assert os.environ.get("TRACKER_KAFKA_PASSWORD") is None


async def test_an_open_client_cannot_even_list_topics(broker: LocalKafka) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        try:
            await asyncio.wait_for(admin.start(), REFUSED_IN_S)
            await admin.list_topics()
        finally:
            await admin.close()


async def test_rotating_a_password(broker: LocalKafka) -> None:
    topics = await granted_topics(broker)
    bootstrap = broker.bootstrap
    for principal in ("ticker", "admin"):
        old = broker.login(principal)
        path = await asyncio.to_thread(broker.rotate, principal)
        new = broker.login(principal)
        assert path == broker.credentials.path(principal)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert new.password != old.password
        await produce(bootstrap, new, topics.events, principal.encode())
        await refused(produce(bootstrap, old, topics.events, b"x"), KafkaConnectionError)
    # the rotated admin still grants, and no rotation file is left behind
    await granted_topics(broker)
    assert not list(broker.config_dir.glob("rotate-*")) + list(broker.config_dir.glob("scram-*"))
    assert await consume(bootstrap, broker.login("worker"), topics.events) == [
        b"ticker",
        b"admin",
    ]


async def test_a_store_from_before_the_lockdown_keeps_its_events(tmp_path: Path) -> None:
    """A data folder formatted by the open broker gets the SCRAM users at its first locked-down
    start; its topics and records stay."""
    port, controller_port = free_ports(2)
    where = {"port": port, "controller_port": controller_port, "lib_dir": kafka_lib_cache()}
    old = LocalKafka(tmp_path, secure=False, **where)
    topics = Topics(unique_topic("before"))
    await asyncio.to_thread(old.start, 120)
    try:
        await produce(old.bootstrap, None, topics.events, b"posted before the lockdown")
    finally:
        await asyncio.to_thread(old.stop)

    new = LocalKafka(tmp_path, **where)
    await asyncio.to_thread(new.start, 180)
    try:
        await grant(new.bootstrap, new.login("admin"), topics)
        assert await consume(new.bootstrap, new.login("worker"), topics.events) == [
            b"posted before the lockdown"
        ]
        await refused(produce(new.bootstrap, None, topics.events, b"x"), KafkaConnectionError)
        # the PLAIN door of the migration start is closed again
        lines = (new.config_dir / "server.properties").read_text().splitlines()
        props = dict(line.split("=", 1) for line in lines)
        assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert "listener.name.client.plain.sasl.jaas.config" not in props
    finally:
        await asyncio.to_thread(new.stop)


def _two_free_ports() -> int:
    """A port whose next one is free too (`tracker kafka --port P` puts its controller on P+1)."""
    for _ in range(50):
        (port,) = free_ports(1)
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", port + 1))
            return port
    raise AssertionError("no two consecutive free ports")


def _tracker(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_tracker_kafka_start_runs_it_locked_down(tmp_path: Path) -> None:
    """The CLI: `tracker kafka start` says where the logins are (never what they are) and grants
    the default prefix; `tracker post` logs in as the intake; a login given in the environment
    is used as it is, with no admin to grant a prefix the operator has not granted."""
    port = _two_free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["TRACKER_DATA"] = str(tmp_path / "data")
    bootstrap = f"127.0.0.1:{port}"
    started = _tracker("kafka", "--port", str(port), "start", env=env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        broker = LocalKafka(tmp_path / "data", port=port)
        folder = broker.credentials.folder
        assert f"kafka ready: {bootstrap}" in started.stdout
        assert f"kafka logins (SASL/SCRAM): {folder}/" in started.stdout
        for name in PRINCIPALS:
            assert broker.login(name).password not in started.stdout + started.stderr
        event = json.dumps({"event_id": "cli-1", "type": "mlps.finding", "unit": "fj.gat",
                            "system": "OA", "at": "2018-06-01T10:00:00+08:00"})  # fmt: skip
        events = tmp_path / "events.jsonl"
        events.write_text(event + "\n", encoding="utf-8")
        post = ["post", "--direct", "--bootstrap", bootstrap, "--units", str(DEMO_REGISTRY)]
        post += ["--file"]
        done = _tracker(*post, str(events), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "sent 1," in done.stdout

        # the intake's login named in the environment (as on a host without the files)
        intake = broker.login("intake")
        as_intake = env | {
            "TRACKER_DATA": str(tmp_path / "elsewhere"),
            "TRACKER_KAFKA_USER": intake.username,
            "TRACKER_KAFKA_PASSWORD": intake.password,
        }
        done = _tracker(*post, str(events), env=as_intake)  # prefix `tracker`: granted at start
        assert done.returncode == 0, done.stdout + done.stderr
        done = _tracker(*post, str(events), "--topic-prefix", "ungranted", env=as_intake)
        assert done.returncode != 0
        assert "python -m streams.kafka_acls --topic-prefix ungranted" in done.stderr
        assert intake.password not in done.stdout + done.stderr

        # a wrong password or no login at all: said at once, not waited out as a broker down
        wrong = as_intake | {"TRACKER_KAFKA_PASSWORD": intake.password[::-1]}
        for environment, said in (
            (wrong, "refused the login of Kafka user 'intake'"),
            (env | {"TRACKER_DATA": str(tmp_path / "elsewhere")}, "takes SASL logins only"),
        ):
            began = time.monotonic()
            done = _tracker(*post, str(events), env=environment)
            assert done.returncode != 0 and said in done.stderr, done.stdout + done.stderr
            assert time.monotonic() - began < 30, "a refused login is not worth retrying"
            assert intake.password not in done.stdout + done.stderr

        async def posted() -> list[bytes]:
            return await consume(bootstrap, broker.login("worker"), "tracker.events")

        assert [json.loads(v)["event_id"] for v in asyncio.run(posted())] == ["cli-1", "cli-1"]
    finally:
        stopped = _tracker("kafka", "--port", str(port), "stop", env=env)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
