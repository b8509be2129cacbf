"""A real Kafka broker for integration tests (import the fixtures; this is not a conftest).

Usage in a test module::

    from tests.integration.kafka_fixture import kafka_broker, local_kafka, unique_topic  # noqa: F401

One broker serves the whole session on free loopback ports with a throwaway data dir under /tmp.
Its jars live in a per-machine cache (``TRACKER_KAFKA_LIB``, default
``~/.cache/tracker-kafka/lib``) so Maven runs once per machine, not once per session.
Set ``TRACKER_KAFKA_KEEP=1`` to keep the data dir (and its logs) after the session.

The broker is locked down (SASL/SCRAM, ACLs), as ``tracker kafka start`` runs it. For the session
``TRACKER_KAFKA_CREDENTIALS`` names its credentials folder, so every tracker process a test starts
logs in as its own principal (the worker as ``worker``, ``tracker post`` as ``intake``) and, finding
the admin's login there, grants its topic prefix's ACLs as it creates the topics, as on a
developer's machine. A test's own clients log in with ``login(principal)`` (or
``broker.login(principal)``); ``granted_topics(broker)`` is a fresh prefix with its ACLs granted.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from streams.broker import LocalKafka
from streams.kafka_acls import grant
from streams.kafka_auth import KafkaLogin, Principal, login_for
from streams.topics import Topics


def kafka_lib_cache() -> Path:
    override = os.environ.get("TRACKER_KAFKA_LIB")
    return Path(override) if override else Path.home() / ".cache" / "tracker-kafka" / "lib"


def free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; all are held open together so they differ."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextmanager
def session_broker() -> Iterator[LocalKafka]:
    data_dir = Path(tempfile.mkdtemp(prefix="tracker-kafka-", dir="/tmp"))
    port, controller_port = free_ports(2)
    broker = LocalKafka(
        data_dir,
        port=port,
        controller_port=controller_port,
        lib_dir=kafka_lib_cache(),
    )
    try:
        broker.start(timeout_s=120)
        yield broker
    finally:
        broker.stop()
        if not os.environ.get("TRACKER_KAFKA_KEEP"):
            shutil.rmtree(data_dir, ignore_errors=True)


CREDENTIALS_ENV = "TRACKER_KAFKA_CREDENTIALS"


@pytest.fixture(scope="session")
def local_kafka() -> Iterator[LocalKafka]:
    """The session's broker, locked down; its logins are the session's (CREDENTIALS_ENV)."""
    with session_broker() as broker:
        before = os.environ.get(CREDENTIALS_ENV)
        os.environ[CREDENTIALS_ENV] = str(broker.credentials.folder)
        try:
            yield broker
        finally:
            if before is None:
                os.environ.pop(CREDENTIALS_ENV, None)
            else:
                os.environ[CREDENTIALS_ENV] = before


def login(principal: Principal) -> KafkaLogin:
    """A principal's login on the session's broker (`local_kafka` must be in use)."""
    found = login_for(principal)
    assert found is not None, f"no Kafka login for {principal}: use the local_kafka fixture"
    return found


async def granted_topics(broker: LocalKafka, prefix: str = "acl") -> Topics:
    """A fresh topic prefix with its ACLs granted by the broker's super user."""
    topics = Topics(unique_topic(prefix))
    await grant(broker.bootstrap, broker.login("admin"), topics)
    return topics


@pytest.fixture(scope="session")
def kafka_broker(local_kafka: LocalKafka) -> str:
    """Bootstrap address ("127.0.0.1:<port>") of the session's broker."""
    return local_kafka.bootstrap
