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

What one partition holds and how one record is applied to it: streams/partition.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.step import Parsed
from engine.warnings import WarningPolicy
from streams.kafka_auth import KafkaLogin, aiokafka_kwargs
from streams.partition import Outputs, PartitionState, Record, Resume, Resumer
from streams.settings import Config

log = logging.getLogger(__name__)


class RebuildError(RuntimeError):
    """A partition's engine cannot be rebuilt (its input records are gone)."""


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
    ticks: dict[bytes, Parsed] | None = None,
) -> Replayed:
    """The state after applying the partition's records [0, end), or, from `resume`, those after
    its position. A record failing halfway for the first time is added to `failed` and the
    replay starts again, without it."""
    failed = {} if failed is None else failed
    passes, records = 0, 0
    start = 0 if resume is None else resume.seq + 1
    while True:
        passes += 1
        state = PartitionState(config, partition, partitions, policy, failed, homes, resume, ticks)
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
        self._ticks: dict[bytes, Parsed] = {}  # see PartitionState
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
            ticks=self._ticks,
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
