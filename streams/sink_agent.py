"""The sink side: output records -> `sinks.Batch` -> the store, on one thread, retried forever.

chDB must be called from one thread (the one that opened it), and a store call must never block
the event loop (heartbeats, commits and the web views run there), so every store call - writes
from the sink agent and reads from the web views - goes through one single-thread executor.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from config.signing import Signer
from schemas.envelope import UNKNOWN_POSTER, UNKNOWN_RECEIPT
from schemas.ledger import DeadLetter, DeadlineState, EntrySeen, LedgerEntry, LoggedEvent
from sinks.base import Batch, Store
from sinks.dsn import mask
from sinks.heads import sign_heads
from streams.topics import Topics

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF_S = 10.0


class StoreThread:
    """Runs every call against the store on one dedicated thread; opens the store lazily there
    (and again on the next call if opening failed, e.g. a ClickHouse server still down)."""

    def __init__(self, opener: Callable[[], Store]) -> None:
        self._opener = opener
        self._sink: Store | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def call(self, fn: Callable[[Store], T]) -> T:
        return await self.submit(fn)

    def submit(self, fn: Callable[[Store], T]) -> asyncio.Future[T]:
        """`fn` queued on the store's thread now (`call` queues it when awaited)."""
        return asyncio.get_running_loop().run_in_executor(self._pool, self._run, fn)

    def start_write(self, batch: Batch) -> asyncio.Future[None]:
        """The batch's write, queued on the store's thread now, not when the event loop next
        runs (the batch worker applies its next batch meanwhile). The blocks of an embedded
        store's write are made here, on the caller's thread (sinks/clickhouse_prepared.py),
        so that the store's thread holds the interpreter only to start each insert; a store
        that cannot prepare it (not open yet, a server's, ...) writes it whole there."""
        prepare = getattr(self._sink, "prepare", None)
        prepared = None
        if prepare is not None:
            try:
                prepared = prepare(batch)
            except Exception as exc:  # the whole write, on the store's thread, says it again
                log.debug("preparing a write failed (%s); writing it on the store's thread", exc)
        if prepared is None:
            return self.submit(lambda sink: sink.write(batch))
        return self.submit(lambda sink: sink.write_prepared(prepared))  # type: ignore[attr-defined]

    def _run(self, fn: Callable[[Store], T]) -> T:
        if self._sink is None:
            self._sink = self._opener()
        return fn(self._sink)

    def open_soon(self) -> None:
        """Open the store now, on its thread, without waiting: opening an embedded store takes
        0.2-2 s, which the first record's rebuild would otherwise wait for. A failure is only
        logged; the next call opens it again."""

        def opened(done: Future[None]) -> None:
            if not done.cancelled() and (exc := done.exception()) is not None:
                log.warning("opening the store at start failed (%s); opening it on first use", exc)

        self._pool.submit(self._run, lambda _: None).add_done_callback(opened)

    def close_now(self) -> None:
        """Close the store on its thread (after any queued call) and stop the thread."""

        def _close() -> None:
            if self._sink is not None:
                self._sink.close()
                self._sink = None

        try:
            self._pool.submit(_close).result(timeout=60)
        except Exception as exc:  # closing is best effort: every write is already durable
            log.warning("closing the store failed: %s", exc)
        self._pool.shutdown(wait=False)


@dataclass
class SinkStats:
    batches: int = 0
    records: int = 0
    failures: int = 0
    skipped: int = 0
    failing: bool = False
    last_error: str | None = None
    last_write: float | None = None  # wall clock of the last successful write
    by_kind: dict[str, int] = field(default_factory=dict)
    # per input partition, the highest input offset whose accepted event is in the store (the
    # accepted topic is consumed in order, so everything before it is stored too)
    stored_through: dict[int, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "batches": self.batches,
            "records": self.records,
            "failures": self.failures,
            "skipped": self.skipped,
            "failing": self.failing,
            "last_error": self.last_error,
            "last_write": self.last_write,
            "by_kind": dict(self.by_kind),
            "stored_through": {str(p): o for p, o in sorted(self.stored_through.items())},
        }


# The ledger topic carries, beside the entries, when an entry not seen at its effective_at was
# (schemas.ledger.EntrySeen). Its JSON has this key; an entry's cannot: inside a JSON string a
# quote is escaped, so `"seen_at":` with a bare quote before the colon is a key.
SEEN_MARK = b'"seen_at":'


class BatchDecoder:
    """Output records (topic, JSON value) -> one Batch. Values are JSON of the schema models."""

    def __init__(self, topics: Topics, stats: SinkStats, signer: Signer | None = None) -> None:
        self.stats = stats
        self.signer = signer  # signs the chain heads of each batch (sinks/heads.py)
        self._kinds = {
            topics.accepted: "events",
            topics.ledger: "entries",
            topics.deadlines: "deadlines",
            topics.dead_letters: "dead_letters",
        }

    def decode(self, records: Iterable[tuple[str, bytes | None]]) -> Batch:
        batch = Batch()
        for topic, value in records:
            kind = self._kinds.get(topic)
            try:
                if kind == "events":
                    batch.events.append(_enveloped(LoggedEvent, value))
                elif kind == "entries" and value and SEEN_MARK in value:
                    kind = "seen"
                    batch.seen.append(EntrySeen.model_validate_json(value))
                elif kind == "entries":
                    batch.entries.append(LedgerEntry.model_validate_json(value or b""))
                elif kind == "deadlines":
                    batch.deadlines.append(DeadlineState.model_validate_json(value or b""))
                elif kind == "dead_letters":
                    batch.dead_letters.append(_enveloped(DeadLetter, value))
                else:
                    raise ValueError(f"unexpected topic {topic}")
            except (ValidationError, ValueError) as exc:
                # Only the processor writes these topics; anything else is not ours to store.
                self.stats.skipped += 1
                log.error("skipping a record on %s that is not a %s: %s", topic, kind, exc)
                continue
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        if self.signer is not None:
            batch.heads = sign_heads(self.signer, batch.events, batch.entries)
        return batch


M = TypeVar("M", bound=BaseModel)
# What an output written by a worker from before envelopes (issue 10) lacks: such records may be
# on the internal topics when the workers are upgraded, and skipping them would lose events.
_NO_ENVELOPE: dict[str, Any] = {"posted_by": UNKNOWN_POSTER, "received_at": UNKNOWN_RECEIPT}


def _enveloped(model: type[M], value: bytes | None) -> M:
    try:
        return model.model_validate_json(value or b"")
    except ValidationError as exc:
        missing = {str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and e["loc"]}
        if not missing or not missing <= set(_NO_ENVELOPE):
            raise
    old = json.loads(value or b"")  # an object: only envelope fields were missing
    return model.model_validate({**old, **{k: _NO_ENVELOPE[k] for k in missing}})


async def write_until_done(
    store: StoreThread,
    batch: Batch,
    stats: SinkStats,
    first_backoff_s: float = 0.2,
    started: asyncio.Future[None] | None = None,
) -> None:
    """Write the batch, retrying with capped exponential backoff for as long as the store fails.
    Writes are idempotent, so a retry after a write that half-happened is harmless. `started`:
    its first attempt, already under way (`StoreThread.start_write`)."""
    delay, attempt = first_backoff_s, 0
    while True:
        attempt += 1
        try:
            if started is not None and attempt == 1:
                await started
            else:
                await store.call(lambda sink: sink.write(batch))
        except Exception as exc:  # any store failure: the batch must not be dropped
            stats.failures += 1
            stats.failing = True
            stats.last_error = mask((str(exc).splitlines() or [type(exc).__name__])[0][:300])
            log.warning(
                "store write of %d records failed (attempt %d), retrying in %.1fs: %s",
                len(batch),
                attempt,
                delay,
                stats.last_error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            continue
        stats.failing = False
        for event in batch.events:
            if event.seq > stats.stored_through.get(event.partition, -1):
                stats.stored_through[event.partition] = event.seq
        stats.batches += 1
        stats.records += len(batch)
        stats.last_write = time.time()
        if attempt > 1:
            log.info("store write succeeded after %d attempts", attempt)
        return
