"""The Kafka backend of `tracker serve`: check and authorize, then produce to the events topic.

Records are keyed and partitioned as `tracker post` does (streams/post.py: by root unit, ticks to
every partition) and carry the envelope as headers (`tracker-posted-by`, `tracker-received-at`);
the worker applies them and keeps the engine's rejections as dead letters. The answer comes once
the broker has confirmed every record (acks=all, idempotent producer); a line the broker did not
confirm within the request timeout is `not_sent` (503), and sending the request again is safe:
the worker ignores a repeated `event_id` (contract 2), and the intake does not even send the ids
it sent recently (answered as duplicates).

Reads go through the store (`tracker.commands.open_for_reading`): the worker's web views while a
worker holds an embedded store, else the store itself, opened per request (never held, so that a
worker can take it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError

from schemas.events import ClockTick, Event, EventRetracted
from schemas.registry import Registry
from schemas.rulebook import Rulebook
from sinks.base import StoreError, StoreReader
from streams.kafka_auth import KafkaLogin
from streams.post import Poster
from streams.topics import DEFAULT_PARTITIONS, TopicError, Topics, partition_for, quiet_kafka
from tracker.principals import Principal
from tracker.serve.authz import PostedByOf
from tracker.serve.service import (
    Clock,
    Door,
    LineResult,
    LineStatus,
    Service,
    ServiceUnavailable,
    SubmitResult,
    _Checked,
    wall_clock,
)
from tracker.serve.signing import intake_signer, signed_batch_headers

# One record to produce: the event's text, the event, its headers (the envelope).
Record = tuple[str, Event, list[tuple[str, bytes]]]
# The producer's batches: a request of 500 events is ~60 KB per partition of the default four,
# so that it goes in one produce request (aiokafka's default, 16 KB, took four round trips per
# partition, one after the other). Under the broker's limit on a batch (1 MB by default).
MAX_BATCH_BYTES = 256 * 1024
# A request's records for one partition go as a batch of their own from this many on; fewer go
# one `send` each, into the producer's open batch, with the records of concurrent requests (a
# batch of our own waits, the lock held, while the partition has one queued already).
OWN_BATCH_FROM = 16


class EnvelopePoster(Poster):
    """`tracker post`'s producer and partitioning, with the envelope headers on every record."""

    async def send_all(
        self, records: Sequence[Record], handed: dict[int, tuple[asyncio.Future[Any], ...]]
    ) -> None:
        """Hand a request's records to the producer in order: each partition's as one batch
        (`create_batch`/`send_batch`; a new one when it is full) when there are many, which
        saves the per-record work of `send` (a metadata wait, a partition check, a future).
        `handed[i]`: the delivery futures of record `i` (every partition's for a tick), set
        once all are handed over; a record missing from it when this raises was not."""
        producer = self._producer
        assert producer is not None, "start() first"
        topic = self.topics.events
        # partition -> (record, key, value, headers) in order
        parts: dict[int, list[tuple[int, bytes | None, bytes, list[tuple[str, bytes]]]]] = {}
        for i, (raw, event, headers) in enumerate(records):
            value = raw.encode("utf-8")
            if isinstance(event, ClockTick):
                # Event time must advance in every partition: each has its own engine.
                for p in range(self.partitions):
                    parts.setdefault(p, []).append((i, None, value, headers))
            else:
                root = self.registry.root(event.unit)
                partition = partition_for(root, self.partitions)
                parts.setdefault(partition, []).append((i, root.encode(), value, headers))
        futures: list[list[asyncio.Future[Any]]] = [[] for _ in records]
        try:
            for partition, entries in parts.items():
                if len(entries) < OWN_BATCH_FROM:
                    for i, key, value, headers in entries:
                        futures[i].append(
                            await producer.send(
                                topic, value, key=key, partition=partition, headers=headers
                            )
                        )
                    continue
                batch, members = producer.create_batch(), list[int]()
                for i, key, value, headers in entries:
                    # a full batch refuses the record (None): it goes, and a new one takes it
                    if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                        sent = await producer.send_batch(batch, topic, partition=partition)
                        for member in members:
                            futures[member].append(sent)
                        batch, members = producer.create_batch(), []
                        batch.append(timestamp=None, key=key, value=value, headers=headers)
                    members.append(i)
                batch.close()  # nothing else goes in it
                sent = await producer.send_batch(batch, topic, partition=partition)
                for member in members:
                    futures[member].append(sent)
        finally:
            for i, (_, event, _) in enumerate(records):
                if len(futures[i]) == (self.partitions if isinstance(event, ClockTick) else 1):
                    handed[i] = tuple(futures[i])


@dataclass(frozen=True)
class _Sending:
    """The records of one event handed to the producer, and who posted it."""

    poster: str
    futures: tuple[asyncio.Future[Any], ...]

    def confirmed(self) -> bool:
        return bool(self.futures) and all(
            f.done() and not f.cancelled() and f.exception() is None for f in self.futures
        )


class KafkaService(Service):
    backend = "kafka"

    def __init__(
        self,
        bootstrap: str,
        registry: Registry,
        rulebooks: Mapping[str, Rulebook],
        store_dsn: str,
        *,
        topics: Topics | None = None,
        partitions: int = DEFAULT_PARTITIONS,
        clock: Clock = wall_clock,
        lock_timeout_s: float = 30.0,
        login: KafkaLogin | None = None,
        admin: KafkaLogin | None = None,
    ) -> None:
        """`login`: the intake's Kafka login (the one principal that may write the events
        topic); `admin`: the local broker's super user, to grant the prefix's ACLs first."""
        super().__init__(registry, rulebooks, clock=clock, lock_timeout_s=lock_timeout_s)
        self.store_dsn = store_dsn
        self.topics = topics or Topics()
        # found once: finding it reads the settings, which would cost every record milliseconds
        self._signer = intake_signer()
        # the order of the requests' records (held on the producer's loop, from the checks
        # until the records are handed to the producer)
        self._order = asyncio.Lock()
        # event id -> its records handed to the producer by a request that waits for the broker
        self._in_flight: dict[str, _Sending] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tracker-serve-kafka", daemon=True
        )
        self._thread.start()
        # No linger: a single post is sent at once; records handed over while a produce request
        # is on its way go together in the next one.
        self.poster = EnvelopePoster(
            bootstrap,
            self.topics,
            registry,
            partitions,
            login=login,
            admin=admin,
            linger_ms=0,
            max_batch_bytes=MAX_BATCH_BYTES,
        )
        try:
            with quiet_kafka():
                self._run(self.poster.start(), lock_timeout_s)
        except (TopicError, KafkaError, concurrent.futures.TimeoutError) as exc:
            self.close()
            said = str(exc) or "no answer"
            where = "" if said.startswith(f"Kafka at {bootstrap}") else f"Kafka at {bootstrap}: "
            raise ServiceUnavailable(f"{where}{said}") from None

    def _run(self, coro: Any, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def submit(
        self, raws: Sequence[str], principal: Principal, *, wait_applied: bool = False
    ) -> SubmitResult:
        """(`wait_applied` is not for this backend: the worker applies the records later, and
        its rejections are read at `/v1/rejects`.) From any thread but the producer's."""
        door = self.read_lines(raws)
        try:
            # the request bounds each of its own waits (the lock, the producer, the broker)
            result: SubmitResult = self._run(self._pass(door, principal), self.lock_timeout_s * 4)
        except concurrent.futures.TimeoutError:
            raise self._busy() from None
        return result

    async def submit_async(self, raws: Sequence[str], principal: Principal) -> SubmitResult:
        """`submit` from an event loop (the HTTP server's): the request goes to the producer's
        loop and its answer comes back, with no worker thread between them. A worker thread
        that then hands over to the producer's loop and waits for it twice cost a single post
        more CPU than its checks, signature and record (BENCHMARKS.md, issue 10). The checks
        run on the calling loop: for a small request they cost less than a hand-over (the
        API sends big ones through `submit` on a worker thread)."""
        door = self.read_lines(raws)
        done = asyncio.run_coroutine_threadsafe(self._pass(door, principal), self._loop)
        return await asyncio.wrap_future(done)

    async def _pass(self, door: Door, principal: Principal) -> SubmitResult:
        """On the producer's loop: authorized, then handed to the producer under the lock (so
        that the records of concurrent requests keep the order of their checks); the broker's
        confirmation is awaited outside it, so that the next request is produced meanwhile and
        rides in the same produce requests."""
        results: dict[int, LineResult] = {}
        others: list[tuple[_Checked, _Sending]] = []  # sent by a request still waiting
        posters = await self._posters_of(door, principal)
        try:
            async with asyncio.timeout(self.lock_timeout_s):
                await self._order.acquire()
        except TimeoutError:
            raise self._busy() from None
        try:
            self.authorize(door, principal, posters)
            if door.refused:
                return SubmitResult(tuple(door.refused), self.backend)
            fresh: list[_Checked] = []
            seen: set[str] = set()
            for item in door.passed:
                event_id = item.event.event_id
                sending = self._in_flight.get(event_id)
                if event_id in seen or self.recent_poster(event_id) is not None:
                    results[item.line] = LineResult(item.line, "duplicate", event_id)
                elif sending is not None:
                    others.append((item, sending))
                else:
                    fresh.append(item)
                    seen.add(event_id)
            sent, error = await self._send(fresh, principal)
        finally:
            self._order.release()
        error = await self._confirm(sent, others, principal, results) or error
        if error is None and any(r.status == "not_sent" for r in results.values()):
            error = "the broker did not confirm every record"
        return SubmitResult(tuple(results[k] for k in sorted(results)), self.backend, error)

    async def _send(
        self, items: list[_Checked], principal: Principal
    ) -> tuple[list[tuple[_Checked, _Sending]], str | None]:
        """Hand the items to the producer (its buffer; nothing waits for the broker here)."""
        envelope = self.envelope(principal)
        records: list[Record] = []
        # one signature for the request's records, each record's proof in its header
        signed = signed_batch_headers(self._signer, envelope, [item.raw for item in items])
        for item, headers in zip(items, signed, strict=True):
            records.append((item.raw, item.event, headers))
        handed: dict[int, tuple[asyncio.Future[Any], ...]] = {}
        error = None
        if items:
            # not cancelled at the timeout (as when it was awaited from another thread): what
            # it hands over later is not counted as sent, and sending it again is safe
            handing = asyncio.ensure_future(self.poster.send_all(records, handed))
            await asyncio.wait([handing], timeout=self.lock_timeout_s)
            if not handing.done():
                error = f"the producer did not take every record within {self.lock_timeout_s:g}s"
            else:
                try:
                    handing.result()
                except (KafkaError, TopicError) as exc:
                    error = f"Kafka: {exc}"
        sent = []
        for i, item in enumerate(items):
            futures = handed.get(i)
            if futures is None:
                sent.append((item, _Sending(principal.id, ())))  # not handed over: not sent
                continue
            sending = _Sending(principal.id, futures)
            self._in_flight[item.event.event_id] = sending
            sent.append((item, sending))
        return sent, error

    async def _confirm(
        self,
        sent: list[tuple[_Checked, _Sending]],
        others: list[tuple[_Checked, _Sending]],
        principal: Principal,
        results: dict[int, LineResult],
    ) -> str | None:
        """Wait for the broker (acks=all) on the records of this request and on those of the
        earlier requests that sent the same events; remember what was confirmed."""
        futures = [f for _, s in sent + others for f in s.futures]
        error = None
        if futures:
            _, pending = await asyncio.wait(futures, timeout=self.lock_timeout_s)
            if pending:
                error = f"the broker did not confirm every record within {self.lock_timeout_s:g}s"
        for item, sending in sent:
            event_id = item.event.event_id
            if sending.confirmed():
                results[item.line] = LineResult(item.line, "accepted", event_id)
                self.remember(event_id, principal)  # before it leaves the in-flight records
            else:
                results[item.line] = LineResult(item.line, "not_sent", event_id)
            if self._in_flight.get(event_id) is sending:
                del self._in_flight[event_id]
        for item, sending in others:
            # as if this request had come after the one that sent it: a duplicate once
            # confirmed; not confirmed, it is not sent (sending it again is safe)
            status: LineStatus = "duplicate" if sending.confirmed() else "not_sent"
            results[item.line] = LineResult(item.line, status, item.event.event_id)
        return error

    async def _posters_of(self, door: Door, principal: Principal) -> PostedByOf:
        """Who posted an event, for the retractions of one request: the intake's own memory
        first (what it sent, confirmed or on its way), then the store (through the worker while
        it holds an embedded one), asked once, on a worker thread, for every retraction target
        of the request that the memory does not place: opening the store costs tens of
        milliseconds, and it was opened for every such line. Only retractions ask; a store that
        cannot be read refuses the request (503) rather than let a retraction through
        unchecked."""
        # the targets the checks will ask about and the memory does not place: found by the
        # checks themselves, run once with the memory alone (a target posted earlier in the
        # same request, or a line refused before its target is asked about, asks nothing)
        asked: list[str] = []

        def from_memory(event_id: str) -> str | None:
            known = self._known_poster(event_id)
            if known is None:
                asked.append(event_id)
            return known

        if any(isinstance(c.event, EventRetracted) for c in door.passed):
            self.authorize(Door(list(door.passed)), principal, from_memory)
        wanted = list(dict.fromkeys(asked))
        logged: dict[str, str | None] = {}
        if wanted:
            found = await asyncio.get_running_loop().run_in_executor(
                None, self._logged_posters, wanted
            )
            logged.update((t, found.get(t)) for t in wanted)

        def posted_by_of(event_id: str) -> str | None:
            known = self._known_poster(event_id)
            if known is not None or event_id in logged:
                return known if known is not None else logged[event_id]
            # known when asked above, forgotten since (the memory holds RECENT_EVENTS): the
            # store knows it now, asked here (rare: the memory turned over within a request)
            found = self._logged_posters([event_id])
            logged[event_id] = found.get(event_id)
            return logged[event_id]

        return posted_by_of

    def _known_poster(self, event_id: str) -> str | None:
        recent = self.recent_poster(event_id)
        if recent is not None:
            return recent
        sending = self._in_flight.get(event_id)
        return None if sending is None else sending.poster

    def _logged_posters(self, event_ids: list[str]) -> dict[str, str]:
        reader = self.reader()
        try:
            return {k: poster for k, (poster, _) in reader.posters(event_ids).items()}
        except StoreError as exc:
            shown = ", ".join(repr(e) for e in event_ids[:3]) + (
                " ..." if len(event_ids) > 3 else ""
            )
            raise ServiceUnavailable(f"cannot tell who posted {shown}: {exc}") from None
        finally:
            reader.close()

    def reader(self) -> StoreReader:
        from tracker.commands import UserError, open_for_reading

        try:
            return open_for_reading(self.store_dsn)
        except UserError as exc:
            raise ServiceUnavailable(str(exc)) from None

    def close(self) -> None:
        if self._loop.is_running():
            # closing after a broker failure: nothing more to do
            with contextlib.suppress(Exception):
                self._run(self.poster.stop(), 10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
