"""The batch path of `--role all`: the input topic -> the engine -> the store, a batch at a time,
with no intermediate topics (issue 12, item 3).

The per-record path (`--role processor` + `--role sink`, streams/agents.py's agents) produced ~1.5
output records per input record and consumed them again before the sink wrote them; Faust's and
aiokafka's per-message machinery was ~76% of the CPU. Here one aiokafka consumer (group
`<p>-worker`) takes a batch of records (`getmany`: up to `--sink-batch` records or
`--sink-within-s`), applies each through the processor (the step `tracker ingest` uses; the same
rebuild by replay), writes the batch's rows - event log, ledger, when entries were seen, deadline
states, dead letters, signed chain heads - in one store write, produces the batch's deadline
warnings, and only then commits the batch's offsets.

At-least-once: an offset is committed only after every row of every record before it is stored
(and its warnings acknowledged by the broker). A crash anywhere before the commit redelivers the
batch; the rebuilt engine makes the same rows with the same ids and the replacing tables absorb
them. A rebalance drops the revoked partitions' engines (rebuilt if they come back: from the
partition's checkpoint and the records after it, streams/checkpoints.py, or else by replay);
offsets are committed only for partitions still assigned, so a commit never claims records this
worker did not store. At most one write is in flight (on the store thread), and commits stay in
batch order. A write is queued on the store thread as soon as its batch is applied (and the one
before it stored), so that it runs while the next batch is applied: a task would start it only
when the event loop next ran, and behind the stream the next poll returns fetched records at once,
so every write waited for the next apply. An embedded store's blocks are made here first, on the
loop's thread (sinks/clickhouse_prepared.py), so that the store thread needs the interpreter only
to start each insert; started at once with the blocks still to make there, the write fought the
apply for the interpreter and was no faster (BENCHMARKS.md, "The live worker's write, prepared").
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from engine.warnings import DeadlineWarning
from sinks.base import Batch
from sinks.checkpoint import Prepared
from sinks.heads import sign_heads
from streams.checkpoints import WorkerCheckpoints
from streams.kafka_auth import aiokafka_kwargs
from streams.partition import Outputs, Record
from streams.processor import Processor
from streams.settings import WorkerSettings
from streams.sink_agent import SinkStats, StoreThread, write_until_done

log = logging.getLogger(__name__)
MAX_RETRY_S = 10.0
STOP_WRITE_S = 10.0  # how long a stop or a revoke waits for the batch being stored

# The producer's send(topic, key, value, partition, timestamp, headers) -> a future resolved when
# the broker has the record (streams/emitter.py): the batch's warnings go through it.
Send = Callable[..., Awaitable["asyncio.Future[Any]"]]
Fetched = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


@dataclass
class Made:
    """What one batch of input records made: the rows to store, the warnings to produce, and
    per input partition the offset to commit once both are durable."""

    batch: Batch = field(default_factory=Batch)
    warnings: list[DeadlineWarning] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    records: int = 0
    checkpoints: list[Prepared] = field(default_factory=list)  # saved after the commit

    def add(self, out: Outputs) -> None:
        out.rows_into(self.batch)
        self.warnings.extend(out.warnings)


class BatchWorker:
    """Consumes the input topic in its group and drives processor, store and commits."""

    def __init__(
        self,
        settings: WorkerSettings,
        processor: Processor,
        store: StoreThread,
        stats: SinkStats,
        send: Send,
        checkpoints: WorkerCheckpoints | None = None,
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.store = store
        self.stats = stats
        self.send = send
        self.checkpoints = checkpoints
        self.writing: asyncio.Task[None] | None = None  # the batch being stored and committed
        self.consumer: AIOKafkaConsumer | None = None
        self.processed: dict[int, int] = {}  # per input partition: the last offset committed
        self.commit_failures = 0

    def assignment(self) -> set[TopicPartition]:
        consumer = self.consumer
        if consumer is None:
            return set()
        try:
            return set(consumer.assignment())
        except Exception:  # not subscribed yet, or stopped
            return set()

    def _consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        session_ms = int(s.session_timeout_s * 1000)
        return AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap,
            group_id=s.app_id,
            client_id=f"{s.app_id}-batch",
            enable_auto_commit=False,  # offsets are committed after the store write only
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=min(3000, session_ms // 4),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **aiokafka_kwargs(s.login),
        )

    async def run(self) -> None:
        """Until cancelled (the worker stops). An uncommitted batch is redelivered on restart."""
        self.store.open_soon()  # while the group is joined, not at the first record
        consumer = self.consumer = self._consumer()
        consumer.subscribe([self.settings.topics.events], listener=_Revoked(self))
        await consumer.start()
        try:
            while True:
                fetched = await consumer.getmany(
                    timeout_ms=int(self.settings.sink_within_s * 1000),
                    max_records=self.settings.sink_max_records,
                )
                if not fetched:
                    await self.stored()  # a quiet stream: finish the last batch now
                    continue
                made = await self.make(fetched)
                await self.stored()  # commits stay in batch order
                started = self.store.start_write(made.batch)  # beside the next batch's apply
                self.writing = asyncio.create_task(self.store_and_commit(made, started))
        finally:
            await self._stop()

    async def stored(self) -> None:
        """Wait for the batch being stored and committed, if any."""
        writing, self.writing = self.writing, None
        if writing is not None:
            await writing

    async def _stop(self) -> None:
        """A clean stop: the batch in flight gets a while to be stored and committed (else it
        is redelivered to the next owner), then the partitions whose every applied record is
        stored are checkpointed, so that their next owner starts from there."""
        writing, self.writing = self.writing, None
        if writing is not None and not writing.done():
            try:
                await asyncio.wait_for(writing, STOP_WRITE_S)
            except (Exception, asyncio.CancelledError) as exc:
                log.warning("the last batch was not stored before the stop (%r)", exc)
        with _suppressed("checkpointing at the stop"):
            await self.checkpoint_now({tp.partition for tp in self.assignment()})
        with _suppressed("stopping the input consumer"):
            if self.consumer is not None:
                await self.consumer.stop()  # leaves the group; commits nothing
        self.consumer = None

    async def checkpoint_now(self, partitions: set[int]) -> None:
        """Checkpoint these partitions' engines that are at a stored position (revoke, stop)."""
        keeper = self.checkpoints
        if keeper is None:
            return
        made = []
        for p in sorted(partitions):
            state = self.processor.state(p)
            if state is not None and (cp := keeper.take(state, now=True)) is not None:
                made.append(cp)
        await keeper.save(made)

    async def make(self, fetched: Fetched) -> Made:
        """The batch's outputs. Engine failures are dead letters already; anything else
        (reading a partition for a rebuild) is retried with backoff, the partitions' engines
        rebuilt, for the partitions still assigned."""
        delay = 0.2
        while True:
            assigned = self.assignment()
            mine = {tp: rs for tp, rs in fetched.items() if tp in assigned and rs}
            try:
                return await self._make(mine)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("processing a batch failed; retrying in %.1fs", delay)
            self.processor.forget({tp.partition for tp in mine})
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_S)

    async def _make(self, fetched: Fetched) -> Made:
        made = Made()
        for tp, records in fetched.items():
            polled = [
                Record(r.topic, r.partition, r.offset, r.timestamp, r.value, r.headers)
                for r in records
            ]
            for out in await self.processor.handle_batch(polled):
                made.add(out)
            made.offsets[tp] = records[-1].offset + 1
            made.records += len(records)
            if self.checkpoints is not None:
                self.checkpoints.count(tp.partition, len(records))
                state = self.processor.state(tp.partition)
                if state is not None and (cp := self.checkpoints.take(state)) is not None:
                    made.checkpoints.append(cp)
        signer = self.settings.engine_config.signer
        if signer is not None:
            made.batch.heads = sign_heads(signer, made.batch.events, made.batch.entries)
        return made

    async def store_and_commit(
        self, made: Made, started: asyncio.Future[None] | None = None
    ) -> None:
        await write_until_done(self.store, made.batch, self.stats, started=started)
        if self.checkpoints is not None:
            for tp, offset in made.offsets.items():
                self.checkpoints.note_stored(tp.partition, offset - 1)
        await self._warn(made.warnings)
        await self._commit(made.offsets)
        if self.checkpoints is not None:
            await self.checkpoints.save(made.checkpoints)

    async def _warn(self, warnings: list[DeadlineWarning]) -> None:
        if not warnings:
            return
        topic = self.settings.topics.warnings
        futures = [
            await self.send(topic, w.unit.encode(), _json(w.as_json()), None, None, None)
            for w in warnings
        ]
        try:
            await asyncio.gather(*futures)
        except Exception as exc:
            # As the per-record path does: stop before the offsets are committed.
            log.critical("deadline warnings could not be produced (%s); stopping", exc)
            os.kill(os.getpid(), signal.SIGTERM)
            raise

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self.consumer
        assigned = self.assignment()
        mine = {tp: o for tp, o in offsets.items() if tp in assigned}
        if consumer is None or not mine:
            return
        try:
            await consumer.commit(mine)
        except KafkaError as exc:
            # The rows are stored; the partitions' next owner processes them again (absorbed).
            self.commit_failures += 1
            log.warning("committing %s failed: %s", _names(mine), exc)
            return
        for tp, offset in mine.items():
            self.processed[tp.partition] = offset - 1

    def progress(self) -> dict[str, Any]:
        return {
            "assigned": sorted(f"{tp.topic}/{tp.partition}" for tp in self.assignment()),
            "processed": {str(p): o for p, o in sorted(self.processed.items())},
            "rebuilds": self.processor.rebuilds,
            "commit_failures": self.commit_failures,
            "replayed": self.processor.replayed,
            "checkpoints": {
                "written": 0 if self.checkpoints is None else self.checkpoints.written,
                "resumed": 0 if self.checkpoints is None else self.checkpoints.resumed,
            },
        }


class _Revoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """Revoked partitions' engines are checkpointed when every record they applied is stored
    (the batch in flight is waited for), then dropped: another worker may apply records
    meanwhile, so a partition that comes back is rebuilt (from its latest checkpoint)."""

    def __init__(self, worker: BatchWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        worker, partitions = self.worker, {tp.partition for tp in revoked}
        if revoked and worker.checkpoints is not None:
            with _suppressed("checkpointing revoked partitions"):
                writing = worker.writing
                if writing is not None and not writing.done():
                    await asyncio.wait({writing}, timeout=STOP_WRITE_S)
                await worker.checkpoint_now(partitions)
            worker.checkpoints.forget(partitions)
        worker.processor.forget(partitions)
        if revoked:
            log.info("partitions revoked: %s", _names(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", _names(assigned) or "none")


def _names(tps: Mapping[TopicPartition, Any] | set[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(tps))


class _suppressed:
    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, Exception):
            log.warning("%s failed: %s", self.what, exc)
            return True
        return False


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
