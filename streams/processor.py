"""The processor: one engine per input partition, its state a pure function of the partition's
prefix, so it is rebuilt by replaying the partition from offset 0 instead of being stored.

No engine snapshots go through Kafka (they were pickles in a changelog topic, so whoever could
write that topic could run code in the worker). A rebuild starts from offset 0, or, given a
`Resumer` (streams/checkpoints.py: the batch worker's signed checkpoints of plain data in the
store, trusted by the rules of sinks/checkpoint.py), from the engine state through a logged
event and replays only the records after it.

Every record's outputs are a deterministic function of that prefix and the record itself (the
"processing wall clock" of the 10-minutes-ahead check is the broker's append timestamp, stored
with the record), so a record processed again after a crash or a rebalance re-emits exactly the
outputs it produced before, with the same ids, and the idempotent sink absorbs them.

A record is read and applied by the step `tracker ingest` uses (engine/step.py), so the same
input makes the same dead letter on both paths; a record is a whole text (a leading byte order
mark is dropped, as on a file's first line).

Who posted a record and when it was received come from its headers (schemas/envelope.py: the
intake stamps them); a record without a usable envelope is posted by no one (`UNKNOWN_POSTER`)
and was received when the broker appended it. The envelope is part of the record, so a rebuild
re-emits it too; it never makes a record a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from engine import Engine
from engine.step import (
    Parsed,
    Refusal,
    apply_event,
    dead_letter,
    logged_event,
    one_line,
    read_record,
)
from engine.warnings import DeadlineWarning, Warner, WarningPolicy
from schemas.envelope import UNKNOWN_POSTER, UNKNOWN_RECEIPT, Envelope, from_headers
from schemas.events import ClockTick
from schemas.ledger import (
    DeadLetter,
    DeadlineState,
    EntrySeen,
    LedgerEntry,
    LoggedEvent,
    trusted,
)
from sinks.base import Batch
from sinks.heads import intake_signed
from streams.kafka_auth import KafkaLogin, aiokafka_kwargs
from streams.settings import Config
from streams.topics import partition_for

log = logging.getLogger(__name__)


class RebuildError(RuntimeError):
    """A partition's engine cannot be rebuilt (its input records are gone)."""


Headers = Sequence[tuple[str, bytes | None]]  # a Kafka record's headers, as aiokafka gives them


class Record(NamedTuple):
    """What the processor needs of one input record (a tuple: made per record read, it costs
    ~1 us less than a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    value: bytes | None
    headers: Headers | None = None

    def envelope(self) -> Envelope:
        """Who posted the record and when it was received (module docstring)."""
        found = from_headers(self.headers)
        if found is not None:
            return found
        received = stamp(self.timestamp_ms) or UNKNOWN_RECEIPT
        return trusted(
            Envelope, {"posted_by": UNKNOWN_POSTER, "received_at": received, "signature": ""}
        )


@dataclass(slots=True)
class Outputs:
    logged: LoggedEvent | None = None
    entries: tuple[LedgerEntry, ...] = ()
    deadlines: tuple[DeadlineState, ...] = ()
    seen: tuple[EntrySeen, ...] = ()
    letter: DeadLetter | None = None
    warnings: list[DeadlineWarning] = field(default_factory=list)

    def rows_into(self, batch: Batch) -> None:
        """Add this record's rows to a store write (its warnings go to the warnings topic)."""
        if self.logged is not None:
            batch.events.append(self.logged)
        batch.entries.extend(self.entries)
        batch.seen.extend(self.seen)
        batch.deadlines.extend(self.deadlines)
        if self.letter is not None:
            batch.dead_letters.append(self.letter)


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a rebuild may start instead of offset 0: the engine state after the partition's
    records through offset `seq` (a logged event, whose chain value is `head`)."""

    seq: int
    head: str
    engine: Callable[[], Engine]  # a fresh engine in that state at every call


# (partition, before) -> a trusted start with seq < before, or None: replay from offset 0
Resumer = Callable[[int, int], Awaitable[Resume | None]]


class PartitionState:
    """The engine and the warning tracker of one input partition, and the last offset applied.

    `failed` maps the offsets of records whose application failed after the engine had started
    on them to their dead letters: such a record is not applied again, so a state rebuilt with
    it is that of the partition without those records. After a new failure `tainted` is set:
    the engine may hold part of that record, and must be rebuilt before it is used again."""

    def __init__(
        self,
        config: Config,
        partition: int,
        partitions: int,
        policy: WarningPolicy,
        failed: dict[int, Outputs] | None = None,
        homes: dict[str, int | None] | None = None,
        resume: Resume | None = None,
    ) -> None:
        self.engine = (
            Engine(config.registry, config.rulebooks, config.calendar)
            if resume is None
            else resume.engine()
        )
        # unit -> the partition its root hashes to (None: not in the registry); shared by the
        # states of one processor, whose registry and partition count never change
        self.homes: dict[str, int | None] = {} if homes is None else homes
        self.signer = config.signer
        self.head = ""  # the chain value of the partition's last logged event (engine/chain.py)
        self.warner = Warner(config.calendar, policy)
        self.partition = partition
        self.partitions = partitions
        self.offset = -1
        self.logged = -1  # the offset of the last record logged (a checkpoint's position)
        if resume is not None:
            self.head, self.offset, self.logged = resume.head, resume.seq, resume.seq
            # The warner holds no state of its own worth saving: open deadlines and the
            # instants not reached yet, which the engine's open deadlines and watermark give
            # back. Their warnings up to the watermark were produced before the checkpoint.
            self.warner.feed(self.engine.open_deadlines(), self.engine.watermark)
        self.failed: dict[int, Outputs] = {} if failed is None else failed
        self.tainted = False
        self._engaged = False

    def apply(self, rec: Record) -> Outputs:
        """The outputs of one record; never raises (any failure is the record's dead letter)."""
        self.offset = rec.offset
        known = self.failed.get(rec.offset)
        if known is not None:
            return known
        self._engaged = False
        read = read_record(rec.value or b"", first=True)
        if read is None:
            return Outputs()  # blank records are skipped, not rejected (spec section 2)
        if isinstance(read, Refusal):
            return self._refuse(rec, read)
        try:
            return self._apply(rec, read)
        except Exception as exc:  # making its outputs failed: the record's, not the partition's
            return self._refuse(rec, Refusal(read.raw, f"cannot be applied: {one_line(exc)}", exc))

    def _apply(self, rec: Record, read: Parsed) -> Outputs:
        event = read.event
        if not isinstance(event, ClockTick):
            misplaced = self._misplaced(event.unit)
            if misplaced:
                return self._refuse(rec, Refusal(read.raw, misplaced))
        self._engaged = True  # from here on a failure may leave the engine changed
        applied = apply_event(self.engine, event, read.raw, stamp(rec.timestamp_ms))
        if applied.refusal is not None:
            return self._refuse(rec, applied.refusal)
        if applied.outcome.status == "duplicate":
            return Outputs()
        envelope = intake_signed(self.signer, rec.envelope(), read.raw)
        logged = logged_event(event, read.raw, self.partition, rec.offset, envelope, self.head)
        self.head, self.logged = logged.chain, rec.offset
        return Outputs(
            logged=logged,
            entries=applied.outcome.entries,
            deadlines=applied.outcome.deadlines,
            seen=applied.outcome.seen,
            warnings=self.warner.feed(applied.outcome.deadlines, self.engine.watermark),
        )

    def _misplaced(self, unit: str) -> str | None:
        """Jurisdiction roll-up needs every event of a root unit's subtree in one partition."""
        try:
            expected = self.homes[unit]
        except KeyError:
            expected = self.homes[unit] = self._home(unit)
        if expected is None or expected == self.partition:
            return None  # an unknown unit is the engine's to reject
        root = self.engine.registry.root(unit)
        return (
            f"record in partition {self.partition}, but unit {unit} belongs to partition "
            f"{expected}: produce it with key {root!r} (its root unit), as `tracker post` does"
        )

    def _home(self, unit: str) -> int | None:
        registry = self.engine.registry
        if registry.unit(unit) is None:
            return None
        return partition_for(registry.root(unit), self.partitions)

    def _refuse(self, rec: Record, refusal: Refusal) -> Outputs:
        """The record's dead letter. After a failure once the engine had started on the record,
        the engine must be rebuilt without it (`tainted`), and every rebuild skips it (`failed`)."""
        origin = f"kafka:{rec.topic}/{rec.partition}/{rec.offset}"
        out = Outputs(letter=dead_letter(origin, refusal, rec.envelope()))
        if refusal.failure is not None:
            log.error(
                "%s/%d/%d: %s; the record is a dead letter",
                rec.topic,
                rec.partition,
                rec.offset,
                refusal.reason,
                exc_info=refusal.failure,
            )
            if self._engaged:
                self.tainted = True
                self.failed[rec.offset] = out
        return out


def header_pairs(headers: Headers | Mapping[str, bytes | None] | None) -> Headers | None:
    """A consumed message's headers as the (name, value) pairs a `Record` keeps: aiokafka gives
    pairs, Faust also allows a mapping."""
    if isinstance(headers, Mapping):
        return list(headers.items())
    return headers


@lru_cache(maxsize=1024)  # a produce batch's records share the broker's append time
def stamp(timestamp_ms: int | None) -> datetime | None:
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):  # not a broker's timestamp
        return None


Reader = Callable[[int, int, int], AsyncGenerator[list[Record], None]]


@dataclass(slots=True)
class Replayed:
    state: PartitionState
    emitted: list[Outputs]  # the outputs of the records from `emit_from` on
    records: int  # records read
    passes: int  # 1, plus one per failure met for the first time


async def replay_partition(
    config: Config,
    partition: int,
    partitions: int,
    policy: WarningPolicy,
    reader: Reader,
    end: int,
    *,
    emit_from: int | None = None,
    failed: dict[int, Outputs] | None = None,
    homes: dict[str, int | None] | None = None,
    resume: Resume | None = None,
) -> Replayed:
    """The state after applying the partition's records [0, end), or, from `resume`, those after
    its position. A record failing halfway for the first time is added to `failed` and the
    replay starts again, without it."""
    failed = {} if failed is None else failed
    passes, records = 0, 0
    start = 0 if resume is None else resume.seq + 1
    while True:
        passes += 1
        state = PartitionState(config, partition, partitions, policy, failed, homes, resume)
        emitted: list[Outputs] = []
        if end > start:
            async with contextlib.aclosing(reader(partition, start, end)) as batches:
                async for batch in batches:
                    for rec in batch:
                        out = state.apply(rec)
                        if state.tainted:
                            break
                        if emit_from is not None and rec.offset >= emit_from:
                            emitted.append(out)
                    records += len(batch)
                    if state.tainted:
                        break
                    await asyncio.sleep(0)  # keep heartbeats and the web server responsive
        if not state.tainted:
            state.offset = end - 1
            return Replayed(state, emitted, records, passes)


class Processor:
    """Routes records to their partition's state; rebuilds a state whenever the next record is
    not the one right after the last applied (first record after start or a rebalance, a
    redelivery after a crash, or records another worker processed meanwhile)."""

    def __init__(
        self,
        config: Config,
        topic: str,
        partitions: int,
        reader: Reader,
        *,
        policy: WarningPolicy | None = None,
        resumer: Resumer | None = None,
    ) -> None:
        self.config = config
        self.topic = topic
        self.partitions = partitions
        self.reader = reader
        self.policy = policy or WarningPolicy()
        self.rebuilds = 0
        self.replayed = 0  # records read again by rebuilds
        self.resumer = resumer
        self._states: dict[int, PartitionState] = {}
        self._failed: dict[int, dict[int, Outputs]] = {}  # per partition, see PartitionState
        self._homes: dict[str, int | None] = {}  # see PartitionState
        self.covered_from: dict[int, int] = {}

    async def handle(self, rec: Record, fetched_from: int | None = None) -> list[Outputs]:
        """The outputs of `rec`, preceded by those of records Faust fetched but skipped before
        it (`fetched_from`: the lowest offset of this partition the consumer has fetched and not
        yet released; see streams/holds.py). Updates `covered_from[partition]`: from there up to
        `rec` every record's outputs have now been produced by this worker."""
        p = rec.partition
        state = self._states.get(p)
        skipped: list[Outputs] = []
        if state is None or rec.offset != state.offset + 1:
            if state is None:
                # First record since the assignment: records fetched before it were skipped.
                gap_from = (
                    fetched_from if fetched_from is not None and fetched_from < rec.offset else None
                )
            elif rec.offset > state.offset + 1:
                # A gap after records we processed: Faust skipped the ones in between.
                gap_from = state.offset + 1
                log.info(
                    "partition %d: record %d after %d, rebuilding", p, rec.offset, state.offset
                )
            else:
                gap_from = None  # a redelivery: the records before it were processed
                log.info("partition %d: record %d again, rebuilding", p, rec.offset)
            start = gap_from if gap_from is not None else rec.offset
            self.covered_from[p] = start if state is None else min(self.covered_from[p], start)
            state, skipped = await self.rebuild(p, rec.offset, gap_from)
        out = state.apply(rec)
        if state.tainted:
            await self._without(rec)
        return [*skipped, out]

    async def handle_batch(self, records: Sequence[Record]) -> list[Outputs]:
        """`handle` for each record in turn (the batch path: no fetched-but-skipped records),
        without a coroutine per record while each follows the last one applied (~1 us each)."""
        states, outs = self._states, []
        for rec in records:
            state = states.get(rec.partition)
            if state is None or rec.offset != state.offset + 1:
                outs.extend(await self.handle(rec))
                continue
            outs.append(state.apply(rec))
            if state.tainted:
                await self._without(rec)
        return outs

    async def _without(self, rec: Record) -> None:
        """The record failed halfway: its partition's engine is rebuilt without it."""
        log.info("partition %d: record %d failed, rebuilding without it", rec.partition, rec.offset)
        await self.rebuild(rec.partition, rec.offset + 1)

    async def rebuild(
        self, partition: int, offset: int, emit_from: int | None = None
    ) -> tuple[PartitionState, list[Outputs]]:
        """The state after applying every record of `partition` before `offset`. Outputs are
        dropped (they were emitted when those records were first processed, before their
        commit), except for records from `emit_from` on, which were never processed."""
        started = time.monotonic()
        failed = self._failed.setdefault(partition, {})
        resume = None if self.resumer is None else await self.resumer(partition, offset)
        if resume is not None and emit_from is not None and emit_from <= resume.seq:
            resume = None  # records it covers were never processed: their outputs are due
        done = await replay_partition(
            self.config,
            partition,
            self.partitions,
            self.policy,
            self.reader,
            offset,
            emit_from=emit_from,
            failed=failed,
            homes=self._homes,
            resume=resume,
        )
        self._states[partition] = done.state
        self.rebuilds += 1
        self.replayed += done.records
        log.info(
            "partition %d rebuilt up to offset %d: %d records replayed "
            "(%d of them never processed before) in %.2fs, from %s",
            partition,
            offset - 1,
            done.records,
            len(done.emitted),
            time.monotonic() - started,
            "offset 0" if resume is None else f"its checkpoint through offset {resume.seq}",
        )
        return done.state, done.emitted

    def state(self, partition: int) -> PartitionState | None:
        return self._states.get(partition)

    def forget(self, partitions: set[int]) -> None:
        for p in partitions:
            self._states.pop(p, None)
            self.covered_from.pop(p, None)


class KafkaReader:
    """Reads an input partition's records [start, end) with a plain consumer (no group)."""

    def __init__(self, bootstrap: str, topic: str, login: KafkaLogin | None = None) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.login = login  # the worker's: it may read the input topic

    async def __call__(
        self, partition: int, start: int, end: int
    ) -> AsyncGenerator[list[Record], None]:
        tp = TopicPartition(self.topic, partition)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            **aiokafka_kwargs(self.login),
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            first = (await consumer.beginning_offsets([tp]))[tp]
            if first > start:
                raise RebuildError(
                    f"{self.topic}/{partition} starts at offset {first}: records {start}..{first - 1} "
                    "were deleted, so its engine cannot be rebuilt (keep retention.ms=-1)"
                )
            consumer.seek(tp, start)
            position, idle_since = start, time.monotonic()
            while position < end:
                got = (await consumer.getmany(tp, timeout_ms=500, max_records=5_000)).get(tp, [])
                batch = [
                    Record(r.topic, r.partition, r.offset, r.timestamp, r.value, r.headers)
                    for r in got
                    if r.offset < end
                ]
                if batch:
                    position, idle_since = batch[-1].offset + 1, time.monotonic()
                    yield batch
                elif got:
                    position = end
                elif time.monotonic() - idle_since > 60:
                    raise RebuildError(
                        f"{self.topic}/{partition}: no records after offset {position}"
                    )
        finally:
            await consumer.stop()
