"""Topic names, their creation, the partitioner every producer and the processor agree on, and
consumer-group lag (how the CLI, the demo and the tests know that the pipeline has caught up).

Every function that talks to the broker takes the caller's `login` (streams/kafka_auth.py; None
for an open broker): each process logs in as its own principal, and the ACLs decide what it may
do (streams/kafka_acls.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from aiokafka.partitioner import murmur2

from streams.kafka_auth import KafkaLogin, aiokafka_kwargs
from streams.kafka_probe import api_versions_ok

DEFAULT_PREFIX = "tracker"
DEFAULT_PARTITIONS = 4
# An output record carries its raw input line plus metadata, so it can exceed the 1 MB default.
OUTPUT_MAX_BYTES = 8 * 1024 * 1024
INPUT_CONFIG = {
    # The broker stamps each record when it is appended; the processor uses that stamp as the
    # "processing wall clock" of the 10-minutes-ahead check, so a replay decides the same way.
    "message.timestamp.type": "LogAppendTime",
    # Engine state is rebuilt by replaying a partition from its start (there are no snapshots): the
    # input log is the system of record and must never be deleted.
    "retention.ms": "-1",
    "retention.bytes": "-1",
}


@contextlib.contextmanager
def quiet_kafka() -> Iterator[None]:
    """Silence aiokafka's own error lines (a retried connection logs one per attempt) while a
    command reports failures itself, in one line."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class TopicError(RuntimeError):
    """The broker cannot be reached or the topics cannot be created."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def accepted(self) -> str:
        return f"{self.prefix}.accepted"

    @property
    def ledger(self) -> str:
        return f"{self.prefix}.ledger"

    @property
    def deadlines(self) -> str:
        return f"{self.prefix}.deadlines"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    @property
    def warnings(self) -> str:
        return f"{self.prefix}.warnings"

    @property
    def sink_inputs(self) -> tuple[str, str, str, str]:
        """What the sink agent writes to the store (warnings are for subscribers, not stored)."""
        return (self.accepted, self.ledger, self.deadlines, self.dead_letters)

    @property
    def all(self) -> tuple[str, ...]:
        return (self.events, *self.sink_inputs, self.warnings)

    def group(self, role: str) -> str:
        """Consumer group (= Faust app id) of a worker role; each role commits its own offsets."""
        return f"{self.prefix}-{'worker' if role == 'all' else role}"


@lru_cache(maxsize=4096)
def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key bytes), as in the Java client."""
    return int(murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


async def ensure_topics(
    bootstrap: str,
    topics: Topics,
    partitions: int,
    *,
    login: KafkaLogin | None = None,
    admin: KafkaLogin | None = None,
    only_input: bool = False,
    changelogs: Iterable[str] = (),
    attempts: int = 10,
) -> int:
    """Create missing topics; return the input topic's real partition count (an existing topic
    keeps its own: partitions can never change once keyed data is in it). `changelogs` are Faust
    table changelog topics, created compacted and co-partitioned with the input: Faust creates
    them itself, but a worker that joins its group right after can cache metadata without their
    partitions and then fail every table write until the metadata refreshes (5 minutes).
    Transient broker errors (a broker still starting, a dropped connection) are retried.

    `login` creates what its ACLs allow: the worker every topic, the intake and the ticker the
    input topic alone (`only_input`). With the super user's login (`admin`: the local broker's,
    `kafka_auth.local_admin()`), the prefix's ACLs are granted first and the topics created as
    the admin, so a component started on its own on the local broker just works."""
    if admin is not None:
        from streams.kafka_acls import AclError, grant  # kafka_acls needs Topics from here

        try:
            await grant(bootstrap, admin, topics, attempts=attempts)
        except AclError as exc:
            raise TopicError(str(exc)) from None
        login = admin
    for attempt in range(1, attempts + 1):
        try:
            return await _ensure_topics(
                bootstrap, topics, partitions, tuple(changelogs), login, only_input
            )
        except TopicError as exc:
            if not exc.retriable or attempt == attempts:
                raise
            await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


async def _ensure_topics(
    bootstrap: str,
    topics: Topics,
    partitions: int,
    changelogs: tuple[str, ...],
    login: KafkaLogin | None,
    only_input: bool,
) -> int:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=15_000, **aiokafka_kwargs(login)
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        outputs = {"max.message.bytes": str(OUTPUT_MAX_BYTES)}
        names = (topics.events,) if only_input else topics.all
        await _create(admin, existing, [
            NewTopic(name, partitions, 1, topic_configs=INPUT_CONFIG if name == topics.events else outputs)
            for name in names
        ], topics)  # fmt: skip
        count = await _partition_count(admin, topics.events, topics)
        compacted = {"cleanup.policy": "compact"}
        await _create(
            admin,
            existing,
            [NewTopic(n, count, 1, topic_configs=compacted) for n in changelogs],
            topics,
        )
        for name in changelogs:
            await _partition_count(admin, name, topics)
        return count
    except KafkaError as exc:
        refused = refused_login(bootstrap, login, exc)
        if refused is not None:
            raise refused from None
        raise TopicError(f"Kafka at {bootstrap}: {exc}", retriable=exc.retriable) from None
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def refused_login(
    bootstrap: str, login: KafkaLogin | None, exc: BaseException
) -> TopicError | None:
    """The broker answers Kafka, yet the client could not connect: it refused the login (or the
    lack of one). aiokafka says only "Unable to bootstrap", as for a broker that is down, and a
    caller would wait that out; this one is final, and says what to fix."""
    if not isinstance(exc, KafkaConnectionError):
        return None
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    if not port.isdigit() or not api_versions_ok(host or "127.0.0.1", int(port)):
        return None
    if login is None:
        return TopicError(
            f"Kafka at {bootstrap} takes SASL logins only: set TRACKER_KAFKA_USER and "
            "TRACKER_KAFKA_PASSWORD, or TRACKER_KAFKA_CREDENTIALS (the local broker's logins: "
            "<data>/kafka/credentials)"
        )
    return TopicError(
        f"Kafka at {bootstrap} refused the login of Kafka user {login.username!r} "
        f"({login.mechanism}): a wrong password, or no such user"
    )


def not_granted(topic: str, topics: Topics) -> TopicError:
    return TopicError(
        f"not authorized for topic {topic}: the ACLs of topic prefix {topics.prefix!r} are not "
        f"granted to this login (python -m streams.kafka_acls --topic-prefix {topics.prefix})"
    )


async def _create(
    admin: AIOKafkaAdminClient, existing: set[str], new: list[NewTopic], topics: Topics
) -> None:
    missing = [t for t in new if t.name not in existing]
    if not missing:
        return
    response = await admin.create_topics(missing, timeout_ms=15_000)
    for name, code, *_ in response.topic_errors:
        if code == TopicAuthorizationFailedError.errno:
            raise not_granted(name, topics)
        if code and code != TopicAlreadyExistsError.errno:
            raise TopicError(f"cannot create topic {name}: Kafka error code {code}")


async def _partition_count(admin: AIOKafkaAdminClient, topic: str, topics: Topics) -> int:
    # Freshly created topics can take a moment to show their partitions in the metadata.
    for _ in range(50):
        for meta in await admin.describe_topics([topic]):
            if meta["topic"] != topic:
                continue
            if meta["error_code"] == TopicAuthorizationFailedError.errno:
                raise not_granted(topic, topics)
            if meta["partitions"]:
                return len(meta["partitions"])
        await asyncio.sleep(0.1)
    raise TopicError(f"topic {topic} has no partitions")


async def end_offsets(
    bootstrap: str, topics: Iterable[str], login: KafkaLogin | None = None
) -> dict[TopicPartition, int]:
    names = list(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_kwargs(login))
    await admin.start()
    try:
        tps = [
            TopicPartition(meta["topic"], part["partition"])
            for meta in await admin.describe_topics(names)
            if meta["topic"] in names
            for part in meta["partitions"]
        ]
    finally:
        await admin.close()
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **aiokafka_kwargs(login)
    )
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def group_lag(
    bootstrap: str,
    group: str,
    ends: Mapping[TopicPartition, int],
    login: KafkaLogin | None = None,
) -> int:
    """Records in `ends` that `group` has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **aiokafka_kwargs(login))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return sum(ends.values())  # e.g. no group coordinator yet on a fresh broker: ask again
    finally:
        await admin.close()
    lag = 0
    for tp, end in ends.items():
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag += max(0, end - done)
    return lag


async def wait_drained(
    bootstrap: str,
    topics: Topics,
    groups: tuple[str, str],
    timeout_s: float,
    poll_s: float = 0.3,
    login: KafkaLogin | None = None,
) -> bool:
    """Wait until the processor group has committed everything now in the input topic and the
    sink group everything the processor produced for it (outputs are durable before the
    processor commits, and the sink commits only after the store write), so the store then holds
    every record that was in the input topic when this was called. One group for both (`--role
    all`, the batch path: streams/batch.py) commits the input only after the store write, and
    reads no output topic: the input alone is waited for. `login`: the worker's (it may describe
    the topics and its groups) or the admin's."""
    processor, sink = groups
    deadline = time.monotonic() + timeout_s
    inputs = await end_offsets(bootstrap, [topics.events], login)
    while await group_lag(bootstrap, processor, inputs, login):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll_s)
    if sink == processor:
        return True
    outputs = await end_offsets(bootstrap, topics.sink_inputs, login)
    while await group_lag(bootstrap, sink, outputs, login):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll_s)
    return True
