"""Producing events: check every event against the contract first, then key each by its root
unit (so a whole jurisdiction subtree is one partition, in order) and send clock ticks to every
partition.

An event the contract rejects outright (bad JSON, schema, unknown unit, naive or too-far-future
timestamp, a line that is not UTF-8: ``streams/post_lines.py`` reads and judges the lines) is
reported and not sent. What only the engine can judge
(feedback for an unknown notice, say) is sent and, if rejected there, becomes a dead letter.

Every line is accounted for: sent (the broker confirmed every record of it), rejected (with its
reason) or not sent (the broker failed or the time ran out first). `post_within` bounds the
whole network part, from the first connection to the last confirmation. Nothing touches the
network before every event and the broker address are checked; a broker that cannot be reached
yet is tried again, each wait said (`on_wait`), until that time is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.events import ClockTick, Event
from schemas.registry import Registry
from streams.kafka_auth import KafkaLogin, aiokafka_kwargs
from streams.post_lines import Line, Validator
from streams.topics import TopicError, Topics, ensure_topics, partition_for, refused_login

CONFIRM_EVERY = 10_000  # events in flight before waiting for the broker's confirmations
STOP_GRACE_S = 5.0  # closing the producer after a failure: it would wait for a dead broker
RETRY_FIRST_S = 0.5  # the first wait before connecting again; doubled up to RETRY_MAX_S
RETRY_MAX_S = 2.0
DEFAULT_WITHIN_S = 60.0
# The most a batch of one partition holds. A posted file fills batches as fast as they are sent:
# 256 KiB ones (as `tracker serve` sends) took less of the broker's CPU and of the post's time
# than aiokafka's default 16 KiB (BENCHMARKS.md). Under the broker's limit (1 MB by default).
BATCH_BYTES = 256 * 1024


def retry_waits(within_s: float) -> list[float]:
    """The waits between connection attempts that fit in `within_s` (attempts that fail at
    once): 0.5 s, 1 s, then every 2 s."""
    waits: list[float] = []
    total, wait = 0.0, RETRY_FIRST_S
    while total + wait < within_s:
        waits.append(wait)
        total += wait
        wait = min(wait * 2, RETRY_MAX_S)
    return waits


def check_bootstrap(bootstrap: str) -> str | None:
    """Why `bootstrap` (HOST:PORT[,HOST:PORT...]; a HOST alone means port 9092) is not a broker
    address, or None. Judged before any connection: a typo is not a network problem."""
    for entry in bootstrap.split(","):
        entry = entry.strip()
        host, colon, port = entry.rpartition(":")
        if not colon:
            host, port = entry, "9092"
        if not host.strip("[]"):
            return f"bad broker address {bootstrap!r}: no host in {entry!r} (HOST:PORT)"
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            return (
                f"bad broker address {bootstrap!r}: port {port!r} is not a number from 1 to 65535"
            )
    return None


@dataclass
class PostSummary:
    sent: int = 0
    rejected: int = 0
    not_sent: int = 0
    records: int = 0  # Kafka records of the sent events: a tick is one per partition
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why rejected)
    unsent: list[int] = field(default_factory=list)  # lines checked, not confirmed by the broker
    error: str | None = None  # why sending stopped early

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "rejected": self.rejected,
            "not_sent": self.not_sent,
            "records": self.records,
        }


@dataclass
class _Checked:
    number: int
    raw: str
    event: Event
    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    records: int = 1

    @property
    def confirmed(self) -> bool:
        """The broker acknowledged every record of the event (all of a tick's partitions)."""
        return len(self.futures) == self.records and all(
            f.done() and not f.cancelled() and f.exception() is None for f in self.futures
        )


class Poster:
    """Checks and produces events: keyed by root unit, ticks to every partition."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        registry: Registry,
        partitions: int = 4,
        *,
        retry_within_s: float = DEFAULT_WITHIN_S,
        on_wait: Callable[[str], None] | None = None,
        login: KafkaLogin | None = None,
        admin: KafkaLogin | None = None,
        linger_ms: int = 5,
        max_batch_bytes: int = BATCH_BYTES,
    ):
        """`login`: the intake's (it may write the input topic and nothing else); `admin`: the
        local broker's super user, to grant the prefix's ACLs first (`ensure_topics`);
        `linger_ms`: how long the producer waits to fill a batch before it sends;
        `max_batch_bytes`: the most a batch of one partition holds (`BATCH_BYTES`)."""
        self.bootstrap = bootstrap
        self.linger_ms = linger_ms
        self.max_batch_bytes = max_batch_bytes
        self.login = login
        self.admin = admin
        self.retry_within_s = retry_within_s
        self.on_wait = on_wait
        self.topics = topics
        self.registry = registry
        self.partitions = partitions
        self.validator = Validator(registry, lambda: datetime.now(UTC))
        self._producer: AIOKafkaProducer | None = None
        self.last_problem: str | None = None  # why the last connection attempt failed

    async def start(self, *, create_topics: bool = True) -> None:
        """Connect (creating the topics first), trying again while the broker cannot be reached
        (not started yet, a refused or dropped connection) for about `retry_within_s`;
        `on_wait` is told of each wait: what for, which attempt comes next and why the last
        one failed."""
        within_s, on_wait = self.retry_within_s, self.on_wait
        waits = retry_waits(within_s)
        attempts = len(waits) + 1
        for attempt in range(1, attempts + 1):
            try:
                await self._start_once(create_topics)
                return
            except TopicError as exc:
                self.last_problem = _reason(str(exc), self.bootstrap)
                if not exc.retriable:
                    raise
                if attempt == attempts:
                    raise TopicError(
                        f"Kafka at {self.bootstrap}: gave up after {attempts} attempts in "
                        f"{within_s:g}s: {self.last_problem}"
                    ) from None
            wait = waits[attempt - 1]
            if on_wait is not None:
                on_wait(
                    f"waiting for Kafka at {self.bootstrap} (attempt {attempt + 1} of {attempts}, "
                    f"next in {wait:g}s): {self.last_problem}"
                )
            await asyncio.sleep(wait)

    async def _start_once(self, create_topics: bool) -> None:
        if create_topics:
            self.partitions = await ensure_topics(
                self.bootstrap,
                self.topics,
                self.partitions,
                login=self.login,
                admin=self.admin,
                only_input=True,
                attempts=1,
            )
        # Idempotence keeps retries from duplicating or reordering records in a partition.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=self.linger_ms,
            max_batch_size=self.max_batch_bytes,
            **aiokafka_kwargs(self.login),
        )
        try:
            await producer.start()
        except KafkaError as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            refused = refused_login(self.bootstrap, self.login, exc)
            if refused is not None:
                raise refused from None
            raise TopicError(f"Kafka at {self.bootstrap}: {exc}", retriable=exc.retriable) from None
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def check(self, lines: Iterable[Line | tuple[int, str]]) -> tuple[PostSummary, list[_Checked]]:
        """Every event judged before anything goes to the network."""
        summary, checked = PostSummary(), []
        for line in lines:
            if not isinstance(line, Line):
                line = Line(*line)
            event, reason = (None, line.problem) if line.problem else self.validator.check(line.raw)
            if event is None:
                summary.rejected += 1
                summary.problems.append((line.number, reason or "rejected"))
            else:
                checked.append(_Checked(line.number, line.raw, event))
        return summary, checked

    async def send(self, raw: str, event: Event) -> list[asyncio.Future[Any]]:
        """Produce one checked event; returns the delivery futures (one per record)."""
        assert self._producer is not None, "start() first"
        value = raw.encode("utf-8")
        if isinstance(event, ClockTick):
            # Event time must advance in every partition: each has its own engine.
            return [
                await self._producer.send(self.topics.events, value, partition=p)
                for p in range(self.partitions)
            ]
        root = self.registry.root(event.unit)
        partition = partition_for(root, self.partitions)
        return [
            await self._producer.send(
                self.topics.events, value, key=root.encode(), partition=partition
            )
        ]

    async def produce(
        self, checked: list[_Checked], *, on_sent: Callable[[int], None] | None = None
    ) -> None:
        """Send the checked events in order and wait for the broker's confirmations; the first
        failed delivery stops it (TopicError). Progress stays in `checked` when cancelled;
        `on_sent(1)` is called per event handed to the producer (a progress display)."""
        in_flight: list[asyncio.Future[Any]] = []
        for item in checked:
            item.records = self.partitions if isinstance(item.event, ClockTick) else 1
            item.futures = await self.send(item.raw, item.event)
            in_flight += item.futures
            if on_sent is not None:
                on_sent(1)
            if len(in_flight) >= CONFIRM_EVERY:
                await _confirmed(in_flight, self.bootstrap)
                in_flight = []
        await _confirmed(in_flight, self.bootstrap)

    async def post(
        self,
        lines: Iterable[Line | tuple[int, str]],
        *,
        on_sent: Callable[[int], None] | None = None,
    ) -> PostSummary:
        """Check, then produce with a started producer (TopicError if a delivery fails)."""
        summary, checked = self.check(lines)
        try:
            await self.produce(checked, on_sent=on_sent)
        finally:
            tally(summary, checked)
        return summary


def tally(summary: PostSummary, checked: list[_Checked]) -> None:
    for item in checked:
        if item.confirmed:
            summary.sent += 1
            summary.records += item.records
        else:
            summary.not_sent += 1
            summary.unsent.append(item.number)
            for f in item.futures:  # failed later by the closing producer: already counted
                f.add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def post_within(
    poster: Poster,
    lines: Iterable[Line | tuple[int, str]],
    timeout_s: float,
    *,
    on_wait: Callable[[str], None] | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> PostSummary:
    """Check every event and the broker address, then start, send and wait for the broker
    within `timeout_s` in all; whatever was not confirmed by then is counted as not sent, with
    the reason in `error` (one line). `on_wait` hears of each wait for the broker."""
    summary, checked = poster.check(lines)
    if not checked:
        return summary
    bad_address = check_bootstrap(poster.bootstrap)
    if bad_address is not None:
        summary.error = bad_address
        tally(summary, checked)
        return summary

    # the poster's own settings, so that a Poster whose start() is replaced still works
    poster.retry_within_s = timeout_s
    if on_wait is not None:
        poster.on_wait = on_wait

    async def run() -> None:
        await poster.start()
        await poster.produce(checked, on_sent=on_sent)

    task = asyncio.ensure_future(run())
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if task in done:
            exc = task.exception()
            if isinstance(exc, TopicError | KafkaError):
                summary.error = str(exc) if isinstance(exc, TopicError) else f"Kafka: {exc}"
            elif exc is not None:
                raise exc
        else:
            summary.error = f"no answer from the broker within {timeout_s:g}s (--timeout)"
            if poster.last_problem is not None and poster._producer is None:
                summary.error += f"; last attempt: {poster.last_problem}"
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_GRACE_S)
            task.add_done_callback(_retrieved)
    finally:
        await _bounded_stop(poster)
        tally(summary, checked)
    if summary.not_sent and summary.error is None:
        summary.error = "the broker did not confirm every record"
    return summary


async def _bounded_stop(poster: Poster) -> None:
    """Close the producer; after a failure it may wait on a dead broker, so not for long."""
    stopping = asyncio.ensure_future(poster.stop())
    done, _ = await asyncio.wait({stopping}, timeout=STOP_GRACE_S)
    if stopping not in done:
        stopping.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait({stopping}, timeout=1)
        if stopping.done() and not stopping.cancelled():
            stopping.exception()  # retrieved: a failed close is not worth a warning


async def _confirmed(futures: list[asyncio.Future[Any]], bootstrap: str) -> None:
    try:
        await asyncio.gather(*futures)
    except KafkaError as exc:
        raise TopicError(f"could not produce to Kafka at {bootstrap}: {exc}") from None


def _reason(message: str, bootstrap: str) -> str:
    """A TopicError's text without the "Kafka at HOST:PORT: " the waiting line already says,
    nor aiokafka's list of resolved addresses."""
    reason = message.removeprefix(f"Kafka at {bootstrap}: ")
    return re.sub(r"(Unable to bootstrap) from \[.*\]$", r"\1", reason)
