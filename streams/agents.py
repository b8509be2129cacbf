"""What the worker runs on the Faust app (streams/faust_app.py): the agents of the per-record
path (`--role processor`: the processor agent, input topic -> engine -> output topics;
`--role sink`: the sink agent, output topics -> store), the task of the batch path (`--role all`,
streams/batch.py), and the Runtime they all work with. Declaring them registers them on the app,
so they are declared at import: streams/app.py imports this module, and its startup (`prepare`)
builds the Runtime, binds the agents to their topics and drops those the role does not run.

Delivery is at-least-once with idempotency end to end (faust-streaming's `exactly_once` has
open bugs):

- processor: an input record is acked only after every output it produced is acknowledged by
  the broker (a `noack()` stream, acks in offset order); Faust commits acked offsets only. A
  crash re-delivers the uncommitted records; the engine is rebuilt by replay and each record
  re-emits its outputs with the same ids.
- sink: a batch (`take_events`, size and time bounded) is acked only after the store write
  succeeded; writes are retried forever and are idempotent, so a redelivered batch is absorbed.
- both: Faust also acks records it skips around rebalances; `streams/holds.py` keeps those acks
  from letting a commit pass unprocessed records.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import TP, Message, StreamT

from streams.batch import BatchWorker
from streams.emitter import Emitter
from streams.faust_app import app, holds
from streams.partition import Record, header_pairs
from streams.processor import Processor
from streams.settings import WorkerSettings
from streams.sink_agent import BatchDecoder, SinkStats, StoreThread, write_until_done

log = logging.getLogger("streams.app")  # the name operators filter the worker's lines by
MAX_RETRY_S = 10.0


@dataclass
class Runtime:
    """What the agents work with, built at worker startup (`streams.app.prepare`)."""

    settings: WorkerSettings
    partitions: int
    emitter: Emitter | None = None
    processor: Processor | None = None
    store: StoreThread | None = None
    stats: SinkStats | None = None
    decoder: BatchDecoder | None = None
    batch: BatchWorker | None = None  # role `all`: the batch path (streams/batch.py)

    def close(self) -> None:
        if self.store is not None:
            self.store.close_now()

    def progress(self) -> dict[str, Any]:
        settings = self.settings
        out: dict[str, Any] = {"role": settings.role, "app_id": settings.app_id}
        if self.batch is not None:
            out.update(self.batch.progress())
            if self.stats is not None:
                out["sink"] = self.stats.as_json()
            return out
        try:
            assigned = app.consumer.assignment()
        except Exception:  # not started yet
            assigned = set()
        out["assigned"] = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        if self.emitter is not None and self.processor is not None:
            out["processed"] = {str(p): o for p, o in sorted(self.emitter.processed.items())}
            out["rebuilds"] = self.processor.rebuilds
        if self.stats is not None:
            out["sink"] = self.stats.as_json()
        return out


@dataclass
class Current:
    """The worker's Runtime once it is set up (`streams.app.prepare` sets it), else None."""

    runtime: Runtime | None = None


current = Current()


def runtime() -> Runtime:
    if current.runtime is None:
        raise RuntimeError("the worker is not set up (streams.app.prepare)")
    return current.runtime


async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    revoked: set[TP] = args[0]
    holds.forget(revoked)
    run = current.runtime
    if run is not None and run.processor is not None:
        events = run.settings.topics.events
        run.processor.forget({tp.partition for tp in revoked if tp.topic == events})


app.on_partitions_revoked.connect(cast(Any, _on_revoked))  # stubs reject async receivers


async def _outputs_of(
    run: Runtime, msg: Message, record: Record
) -> list[asyncio.Future[Any]] | None:
    """Produce the outputs of `record` (and of records Faust skipped before it). Nothing may
    make the agent crash: Faust would restart it at the next record, whose release would
    commit this one without its outputs. So a failure (engine failures are dead letters
    already: this is producing, or reading the partition for a rebuild) is retried with
    backoff, the partition's engine rebuilt, until it succeeds or the partition has moved to a
    new generation (None: the record is not acked)."""
    proc, emitter = run.processor, run.emitter
    assert proc is not None and emitter is not None
    delay = 0.2
    while True:
        try:
            futures: list[asyncio.Future[Any]] = []
            for out in await proc.handle(record, holds.lowest(msg.tp)):
                futures += await emitter.emit(out, msg.partition)
            return futures
        except Exception:
            log.exception(
                "%s/%d/%d: processing failed; retrying in %.1fs",
                msg.topic,
                msg.partition,
                msg.offset,
                delay,
            )
        proc.forget({msg.partition})  # the engine may be half-way through the record
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_S)
        if emitter.failed or msg.generation_id != app.consumer_generation_id:
            return None


@app.agent(name="processor")  # its channel, the held input topic, is bound by `prepare`
async def process(stream: StreamT[Any]) -> None:
    run = runtime()
    proc, emitter = run.processor, run.emitter
    assert proc is not None and emitter is not None
    manual = cast("faust.Stream[Any]", stream).noack()
    async for event in manual.events():
        if emitter.failed:
            continue  # the worker is stopping; leave the record unacked
        msg = event.message
        ts = round(msg.timestamp * 1000) if msg.timestamp is not None else None
        # the headers carry who posted the record (schemas/envelope.py), as on a rebuild
        headers = header_pairs(msg.headers)
        record = Record(msg.topic, msg.partition, msg.offset, ts, msg.value, headers)
        futures = await _outputs_of(run, msg, record)
        if futures is None:
            continue  # the partition moved meanwhile: its next owner processes it
        emitter.hold(msg.tp, proc.covered_from[msg.partition], msg.offset, futures)
        emitter.release()


@app.timer(0.05)  # type: ignore[untyped-decorator]
async def release_acks() -> None:
    run = current.runtime
    if run is not None and run.emitter is not None:
        run.emitter.release()  # the last records of a quiet stream


@app.task  # type: ignore[untyped-decorator]
async def batch_path() -> None:
    """Role `all`: input -> engine -> store a batch at a time (streams/batch.py)."""
    run = current.runtime
    if run is not None and run.batch is not None:
        try:
            await run.batch.run()
        except asyncio.CancelledError:
            log.info("the batch path stops (the worker stops)")
            raise
        except Exception as exc:  # e.g. the group's login refused: nothing would be processed
            log.critical("the batch path stopped: %s", exc, exc_info=True)
            await app.crash(exc)  # the worker exits rather than run on, processing nothing


@app.agent(name="sink")  # its channel, the held output topics, is bound by `prepare`
async def sink(stream: StreamT[Any]) -> None:
    run = runtime()
    settings, store, stats, decoder = run.settings, run.store, run.stats, run.decoder
    assert store is not None and stats is not None and decoder is not None
    async for events in cast("faust.Stream[Any]", stream).take_events(
        settings.sink_max_records, within=settings.sink_within_s
    ):
        # take_events acks the batch when the generator resumes or is closed - also when this
        # task is cancelled mid-retry at shutdown; the hold (holds.py) keeps those acks from
        # being final until the write has succeeded.
        messages = [e.message for e in events]
        batch = decoder.decode((m.topic, m.value) for m in messages)
        await write_until_done(store, batch, stats)
        # Records Faust fetched and skipped before this batch: it would not fetch them again,
        # and its commit would pass a single one (holds.py). Their values are here: write them
        # too before the batch's release lets a commit pass them.
        skipped = holds.skipped(messages)
        if skipped:
            log.warning(
                "%d records were fetched but never reached the sink (%s); writing them",
                len(skipped),
                ", ".join(f"{m.topic}/{m.partition}/{m.offset}" for m in skipped[:5]),
            )
            extra = decoder.decode((m.topic, m.value) for m in skipped)
            await write_until_done(store, extra, stats)
        holds.release([*skipped, *messages])
