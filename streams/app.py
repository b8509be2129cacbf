"""The Faust worker: the processor agent (input topic -> engine -> output topics) and the sink
agent (output topics -> store), in one process (role `all`) or apart.

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

Run it with `tracker worker ...`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections import deque
from typing import Any, cast

import faust
from faust.types import TP, Message, StreamT

from sinks import Store, open_store
from sinks.faulty import FaultyStore
from streams.holds import Holds
from streams.processor import KafkaReader, Outputs, Processor, Record
from streams.settings import WorkerSettings
from streams.sink_agent import BatchDecoder, SinkStats, StoreThread, write_until_done
from streams.topics import OUTPUT_MAX_BYTES, ensure_topics, quiet_kafka
from streams.web import register

log = logging.getLogger(__name__)
MAX_RETRY_S = 10.0


class Emitter:
    """Sends a record's outputs and acks input records, in order, once their outputs are
    durable. A send that fails for good stops the worker before its record is acked."""

    def __init__(self, app: faust.App, settings: WorkerSettings, holds: Holds) -> None:
        self.app = app
        self.topics = settings.topics
        self.holds = holds
        self.pending: deque[tuple[TP, int, int, list[asyncio.Future[Any]]]] = deque()
        self.failed = False
        self.processed: dict[int, int] = {}
        self.stuck: dict[TP, int] = {}

    async def emit(self, out: Outputs, partition: int) -> list[asyncio.Future[Any]]:
        """Hand the outputs to the producer; the futures resolve when the broker has them."""
        send, t = self.app.producer.send, self.topics
        futures: list[Any] = []
        if out.logged is not None:
            value = out.logged.model_dump_json().encode()
            futures.append(await send(t.accepted, None, value, partition, None, None))
        for entry in out.entries:
            key, value = entry.unit.encode(), entry.model_dump_json().encode()
            futures.append(await send(t.ledger, key, value, None, None, None))
        for state in out.deadlines:
            key, value = state.unit.encode(), state.model_dump_json().encode()
            futures.append(await send(t.deadlines, key, value, None, None, None))
        if out.letter is not None:
            value = out.letter.model_dump_json().encode()
            futures.append(await send(t.dead_letters, None, value, partition, None, None))
        for warning in out.warnings:
            key, value = warning.unit.encode(), _json(warning.as_json())
            futures.append(await send(t.warnings, key, value, None, None, None))
        return futures

    def hold(
        self, tp: TP, covered_from: int, offset: int, futures: list[asyncio.Future[Any]]
    ) -> None:
        """Release the input records `covered_from`..`offset` once `futures` are done."""
        self.pending.append((tp, covered_from, offset, futures))

    def release(self) -> None:
        while self.pending and not self.failed:
            tp, covered_from, offset, futures = self.pending[0]
            if not all(f.done() for f in futures):
                return
            errors = [
                "cancelled" if f.cancelled() else f.exception()
                for f in futures
                if f.cancelled() or f.exception() is not None
            ]
            if errors:
                self.failed = True
                log.critical(
                    "outputs of %s/%d/%d could not be produced (%s); stopping before acking it",
                    tp.topic,
                    tp.partition,
                    offset,
                    errors[0],
                )
                os.kill(os.getpid(), signal.SIGTERM)
                return
            self.pending.popleft()
            self.processed[tp.partition] = offset
            stuck = self.holds.release_through(tp, covered_from, offset)
            if stuck is not None and self.stuck.get(tp) != stuck:
                self.stuck[tp] = stuck
                log.error(
                    "%s/%d: record %d was fetched but never processed; its partition commits "
                    "nothing past it until it is fetched again (rebalance or restart)",
                    tp.topic,
                    tp.partition,
                    stuck,
                )


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _open_store(settings: WorkerSettings) -> Store:
    """The store with the registry and rulebooks recorded (status needs nothing but the store)."""
    sink: Store = open_store(settings.store)
    try:
        sink.save_config(settings.config.registry, settings.config.rulebooks)
    except Exception:
        sink.close()  # opened again on the next attempt
        raise
    if settings.fault_file is not None:
        sink = FaultyStore(sink, settings.fault_file)
    return sink


def build_app(settings: WorkerSettings, partitions: int) -> tuple[faust.App, StoreThread | None]:
    topics = settings.topics
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        # No tables: engine state is rebuilt from the input topic, never read back from a
        # changelog (streams/processor.py).
        store="memory://",
        datadir=str(settings.faust_dir),
        autodiscover=False,
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 4),
        # Acks wait for the store while it is down; a rebalance must not wait for them.
        stream_wait_empty=False,
        producer_acks=-1,
        # Outputs of many records share a produce request; records are acked only once their
        # outputs are delivered, so this only adds a few ms of latency.
        producer_linger=0.005,
        producer_max_request_size=OUTPUT_MAX_BYTES,
        web_enabled=True,
        # Only our own views (streams/web.py): Faust's table pages serve table contents to
        # anyone who reaches the port, its router pages the cluster's layout.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=settings.web_port,
    )
    progress: dict[str, Any] = {"role": settings.role, "app_id": settings.app_id, "app": app}
    store: StoreThread | None = None
    holds = Holds(app)
    held_topic = holds.topic_class()

    async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0]
        holds.forget(revoked)
        if processor is not None:
            processor.forget({tp.partition for tp in revoked if tp.topic == topics.events})

    app.on_partitions_revoked.connect(cast(Any, on_revoked))  # stubs reject async receivers
    processor: Processor | None = None

    if settings.runs_processor:
        emitter = Emitter(app, settings, holds)
        proc = processor = Processor(
            settings.config,
            topics.events,
            partitions,
            KafkaReader(settings.bootstrap, topics.events),
            policy=settings.warnings,
        )
        source = held_topic(
            app,
            topics=[topics.events],
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )

        async def outputs_of(msg: Message, record: Record) -> list[asyncio.Future[Any]] | None:
            """Produce the outputs of `record` (and of records Faust skipped before it). Nothing
            may make the agent crash: Faust would restart it at the next record, whose release
            would commit this one without its outputs. So a failure (engine failures are dead
            letters already: this is producing, or reading the partition for a rebuild) is
            retried with backoff, the partition's engine rebuilt, until it succeeds or the
            partition has moved to a new generation (None: the record is not acked)."""
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

        @app.agent(source, name="processor")
        async def process(stream: StreamT[Any]) -> None:
            manual = cast("faust.Stream[Any]", stream).noack()
            async for event in manual.events():
                if emitter.failed:
                    continue  # the worker is stopping; leave the record unacked
                msg = event.message
                ts = round(msg.timestamp * 1000) if msg.timestamp is not None else None
                record = Record(msg.topic, msg.partition, msg.offset, ts, msg.value)
                futures = await outputs_of(msg, record)
                if futures is None:
                    continue  # the partition moved meanwhile: its next owner processes it
                emitter.hold(msg.tp, proc.covered_from[msg.partition], msg.offset, futures)
                emitter.release()

        @app.timer(0.05)  # type: ignore[untyped-decorator]
        async def release_acks() -> None:
            emitter.release()  # the last records of a quiet stream

        progress["processed"] = emitter.processed
        progress["processor"] = processor

    if settings.runs_sink:
        store = StoreThread(lambda: _open_store(settings))
        stats = SinkStats()
        decoder = BatchDecoder(topics, stats)
        sink_source = held_topic(
            app, topics=list(topics.sink_inputs), key_serializer="raw", value_serializer="raw"
        )

        @app.agent(sink_source, name="sink")
        async def sink(stream: StreamT[Any]) -> None:
            async for events in cast("faust.Stream[Any]", stream).take_events(
                settings.sink_max_records, within=settings.sink_within_s
            ):
                # take_events acks the batch when the generator resumes or is closed - also
                # when this task is cancelled mid-retry at shutdown; the hold (holds.py) keeps
                # those acks from being final until the write has succeeded.
                messages = [e.message for e in events]
                batch = decoder.decode((m.topic, m.value) for m in messages)
                await write_until_done(store, batch, stats)
                # Records Faust fetched and skipped before this batch: it would not fetch them
                # again, and its commit would pass a single one (holds.py). Their values are
                # here: write them too before the batch's release lets a commit pass them.
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

        progress["sink"] = stats

    register(app, store, lambda: _progress(progress))
    return app, store


def _progress(parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": parts["role"], "app_id": parts["app_id"]}
    try:
        assigned = parts["app"].consumer.assignment()
    except Exception:  # not started yet
        assigned = set()
    out["assigned"] = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
    if "processed" in parts:
        out["processed"] = {str(p): o for p, o in sorted(parts["processed"].items())}
        out["rebuilds"] = parts["processor"].rebuilds
    if "sink" in parts:
        out["sink"] = parts["sink"].as_json()
    return out


class Worker(faust.Worker):
    """Faust's worker without its terminal spinner: to spin on every log record, the spinner sets
    the root logger to DEBUG, so every library debug call builds a record (a third of the CPU)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        pass


def run_worker(settings: WorkerSettings, loglevel: str = "info") -> int:
    """Create the topics, then run the Faust worker until SIGTERM/SIGINT."""
    settings.faust_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with quiet_kafka():
        partitions = loop.run_until_complete(
            ensure_topics(settings.bootstrap, settings.topics, settings.partitions)
        )
    if partitions != settings.partitions:
        log.warning("%s has %d partitions; using them", settings.topics.events, partitions)
    app, store = build_app(settings, partitions)
    worker = Worker(app, loop=loop, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        if store is not None:
            store.close_now()
    return 0
