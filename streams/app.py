"""The Faust worker. `--role all` (the default): the batch path (streams/batch.py: input topic ->
engine -> store a batch at a time, run by the app's task `batch_path`; Faust's own consumer is
off). `--role processor` / `--role sink`: the per-record path, the processor agent (input topic
-> engine -> output topics) and the sink agent (output topics -> store) in processes of their own.

A module-level Faust app with module-level agents, by Faust's conventions: run it with
`tracker worker ...` or `faust -A streams.app worker`, test the agents with `agent.test_context()`.

Configuration (docs/streaming.md, "The worker app"). Faust configures an app when its first
agent is declared, so at import: from `worker_settings()`, i.e. the environment's TRACKER_
variables (config/settings.py, `WorkerSettings.from_settings`): that is all `faust -A` needs.
`tracker worker` builds a WorkerSettings from its flags and calls `run_worker(settings)`, which
`configure()`s the app again from them (`config_from_object(force=True)`, and a new broker
transport, the one thing built from the configuration at import) before it starts. The app id
(= consumer group: per topic prefix and role) is set in Faust's `on_configured` hook.
Nothing at import or configuration needs the broker or the unit registry, so
`faust -A streams.app worker --help` needs neither. They are needed at worker startup: `run_worker`
creates the topics and calls `start()` before the Faust worker runs; under `faust -A` the
Worker's first start does the same, before the app starts. `start()` loads the registry and
rulebooks, builds the processor, the emitter and the store thread (`prepare`, which unit tests
call with a stand-in producer), binds the agents to the held topics of the prefix (an agent's
channel is resolved lazily, for configuration late like this), drops the agent the role does
not run and adds the web views (streams/web.py).

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

Faust's data directory is one per app id (`WorkerSettings.faust_dir`); the Worker runs without
Faust's terminal spinner (QuietWorker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust import transport
from faust.exceptions import AlreadyConfiguredWarning
from faust.types import TP, Message, StreamT

from config.settings import settings as env_settings
from sinks import Store, open_store
from sinks.event_log import EventLogWriter, claim_store
from sinks.faulty import FaultyStore
from sinks.worker_token import make_token_file
from streams.batch import BatchWorker
from streams.checkpoints import worker_checkpoints
from streams.emitter import Emitter, Send
from streams.holds import Holds
from streams.kafka_auth import faust_credentials
from streams.partition import Record, header_pairs
from streams.processor import KafkaReader, Processor, Reader
from streams.settings import WorkerSettings
from streams.sink_agent import BatchDecoder, SinkStats, StoreThread, write_until_done
from streams.topics import OUTPUT_MAX_BYTES, ensure_topics, quiet_kafka
from streams.web import register

log = logging.getLogger(__name__)
MAX_RETRY_S = 10.0


def _open_store(settings: WorkerSettings) -> Store:
    """The store with the registry and rulebooks recorded (status needs nothing but the store)."""
    store: Store = open_store(settings.store)
    config = settings.engine_config
    try:
        store.save_config(config.registry, config.rulebooks)
    except Exception:
        store.close()  # opened again on the next attempt
        raise
    if settings.fault_file is not None:
        store = FaultyStore(store, settings.fault_file)
    return store


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner: to spin on every log record, the spinner sets
    the root logger to DEBUG, so every library debug call builds a record (a third of the CPU)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        pass


class Worker(QuietWorker):
    """The worker of this app (its `Worker` setting, so `faust -A streams.app worker` runs it
    too): on its first start, before the app starts, the worker is set up unless `run_worker`
    has done it already."""

    async def on_first_start(self) -> None:
        if _state.runtime is None:
            try:
                await _startup(worker_settings())
            except Exception as exc:  # Faust would stop without a word (aiokafka is quieted)
                log.critical("the worker cannot start: %s", exc)
                raise
        await super().on_first_start()


# --- configuration ----------------------------------------------------------------------------


@dataclass
class _Chosen:
    settings: WorkerSettings | None = None
    runtime: Runtime | None = None


_state = _Chosen()


def worker_settings() -> WorkerSettings:
    """The settings the app runs with: those given to `configure`, else the environment's."""
    if _state.settings is not None:
        return _state.settings
    return WorkerSettings.from_settings(env_settings())


def configure(settings: WorkerSettings) -> None:
    """Run the app with these settings instead of the environment's (`tracker worker`), before
    it starts. Faust configures the app at import already (declaring an agent reads its
    configuration and builds the broker transport), from the environment: this configures it
    again from `settings` (`config_from_object(force=True)`) and replaces the transport, the
    one thing built from the configuration at import."""
    if app.started:
        raise RuntimeError("the Faust app runs already; configure() it before it starts")
    _state.settings = settings
    with warnings.catch_warnings():
        # Faust warns that parts of the program may still use the old configuration: the
        # transport, replaced below, and the agents' class (`conf.Agent`, the same in both).
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.config_from_object(_Options(), force=True)
    brokers = app.conf.broker_consumer
    app.transport = transport.by_url(brokers[0])(brokers, app)


def faust_options(settings: WorkerSettings) -> dict[str, Any]:
    """The app's settings that depend on the worker's (the app id is set in `_set_id`)."""
    return {
        "broker": f"kafka://{settings.bootstrap}",
        # its consumer, producer and topic-creating admin client all log in as the worker
        "broker_credentials": faust_credentials(settings.login),
        "datadir": str(settings.faust_dir),
        "topic_partitions": settings.partitions,
        "broker_commit_interval": settings.commit_interval_s,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": min(3.0, settings.session_timeout_s / 4),
        "web_port": settings.web_port,
    }


class _Options(Mapping[str, Any]):
    """The app's config source, read each time Faust configures the app: the settings of then."""

    def _now(self) -> dict[str, Any]:
        return faust_options(worker_settings())

    def __getitem__(self, key: str) -> Any:
        return self._now()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())


app = faust.App(
    "tracker",  # replaced by the worker's app id in `_set_id`
    config_source=_Options(),
    Worker=Worker,
    # No tables: engine state is rebuilt from the input topic, never read back from a
    # changelog (streams/processor.py).
    store="memory://",
    autodiscover=False,
    topic_replication_factor=1,
    consumer_auto_offset_reset="earliest",
    # Acks wait for the store while it is down; a rebalance must not wait for them.
    stream_wait_empty=False,
    producer_acks=-1,
    # Outputs of many records share a produce request; records are acked only once their
    # outputs are delivered, so this only adds a few ms of latency.
    producer_linger=0.005,
    producer_max_request_size=OUTPUT_MAX_BYTES,
    web_enabled=True,
    # Only our own views (streams/web.py), which require the worker's token: Faust's table
    # pages serve table contents to anyone who reaches the port, its router pages the
    # cluster's layout, its graph, stats and metrics pages the worker's internals.
    web_tables_enabled=False,
    web_router_enabled=False,
    web_graph_enabled=False,
    web_stats_enabled=False,
    web_metrics_enabled=False,
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
)


def _set_id(sender: Any, conf: Any, **kwargs: Any) -> None:
    conf.id = worker_settings().app_id  # the consumer group: per topic prefix and role


app.on_configured.connect(cast(Any, _set_id))
holds = Holds(app)
HeldTopic = holds.topic_class()


# --- what runs: set up at startup -------------------------------------------------------------


@dataclass
class Runtime:
    """What the agents work with, built at worker startup (`prepare`)."""

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


def runtime() -> Runtime:
    if _state.runtime is None:
        raise RuntimeError("the worker is not set up (streams.app.prepare)")
    return _state.runtime


async def _produce(*args: Any) -> Any:
    return await app.producer.send(*args)


def prepare(
    settings: WorkerSettings,
    partitions: int,
    *,
    send: Send | None = None,
    reader: Reader | None = None,
) -> Runtime:
    """Build what the agents work with and bind them to their topics (`partitions`: of the
    input topic as it exists). `send` and `reader` replace the producer and the partition
    reader of rebuilds (unit tests)."""
    settings = settings.loaded()
    topics = settings.topics
    run = Runtime(settings, partitions)
    if settings.role == "all":
        return _prepare_batch(run, send, reader)
    app.boot_strategy.enable_kafka_consumer = None  # Faust's consumer runs the agents
    if settings.runs_processor:
        run.emitter = Emitter(send or _produce, topics, holds)
        run.processor = Processor(
            settings.engine_config,
            topics.events,
            partitions,
            reader or KafkaReader(settings.bootstrap, topics.events, settings.login),
            policy=settings.warnings,
        )
        process.channel = HeldTopic(
            app,
            topics=[topics.events],
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )
    else:
        app.agents.pop(process.name, None)
    if settings.runs_sink:
        run.store = StoreThread(lambda: _open_store(settings))
        run.stats = SinkStats()
        run.decoder = BatchDecoder(topics, run.stats, settings.engine_config.signer)
        sink.channel = HeldTopic(
            app, topics=list(topics.sink_inputs), key_serializer="raw", value_serializer="raw"
        )
    else:
        app.agents.pop(sink.name, None)
    _state.runtime = run
    return run


def _prepare_batch(run: Runtime, send: Send | None, reader: Reader | None) -> Runtime:
    """Role `all`: the batch path (streams/batch.py) instead of the agents. Faust's own consumer
    is not started (it would join the group with Faust's assignor); Faust keeps the web views,
    the producer (deadline warnings) and the worker's life cycle."""
    settings, topics = run.settings, run.settings.topics
    for name in (process.name, sink.name):
        app.agents.pop(name, None)
    app.boot_strategy.enable_kafka_consumer = False
    run.store = StoreThread(lambda: _open_store(settings))
    run.stats = SinkStats()
    keeper = worker_checkpoints(settings, run.store)
    run.processor = Processor(
        settings.engine_config,
        topics.events,
        run.partitions,
        reader or KafkaReader(settings.bootstrap, topics.events, settings.login),
        policy=settings.warnings,
        resumer=None if keeper is None else keeper.resume,
    )
    run.batch = BatchWorker(settings, run.processor, run.store, run.stats, send or _produce, keeper)
    _state.runtime = run
    return run


def web_token(settings: WorkerSettings) -> str:
    """The token the web views require (sinks/worker_token.py): the operator's
    (TRACKER_WORKER_TOKEN), else a new one made now, in the file where readers look."""
    path = settings.token_path
    if settings.web_token is not None:
        with contextlib.suppress(OSError):  # an earlier start's token would mislead a reader
            path.unlink(missing_ok=True)
        return settings.web_token.get_secret_value()
    token = make_token_file(path)
    log.info("the web views' token is in %s", path)
    return token


def start(settings: WorkerSettings, partitions: int) -> Runtime:
    """Set the worker up (its topics exist): `prepare`, and the web views with their token."""
    if settings.runs_sink:  # the store's event log is this topic's, or the worker stops here
        claim_store(settings.store, EventLogWriter.kafka(settings.topics.events, partitions))
    run = prepare(settings, partitions)
    register(app, run.store, run.progress, web_token(settings))
    return run


async def _startup(settings: WorkerSettings) -> Runtime:
    """`run_worker`'s setup, for a worker started by `faust -A streams.app worker`."""
    settings = settings.loaded()
    settings.faust_dir.mkdir(parents=True, exist_ok=True)
    return start(settings, await _topics_ready(settings))


async def _topics_ready(settings: WorkerSettings) -> int:
    """Create the worker's topics (granting its ACLs where it may); their partition count."""
    with quiet_kafka():
        partitions = await ensure_topics(
            settings.bootstrap,
            settings.topics,
            settings.partitions,
            login=settings.login,
            admin=settings.admin,
        )
    if partitions != settings.partitions:
        log.warning("%s has %d partitions; using them", settings.topics.events, partitions)
    return partitions


async def _on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
    revoked: set[TP] = args[0]
    holds.forget(revoked)
    run = _state.runtime
    if run is not None and run.processor is not None:
        events = run.settings.topics.events
        run.processor.forget({tp.partition for tp in revoked if tp.topic == events})


app.on_partitions_revoked.connect(cast(Any, _on_revoked))  # stubs reject async receivers


# --- the agents -------------------------------------------------------------------------------


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
    run = _state.runtime
    if run is not None and run.emitter is not None:
        run.emitter.release()  # the last records of a quiet stream


@app.task  # type: ignore[untyped-decorator]
async def batch_path() -> None:
    """Role `all`: input -> engine -> store a batch at a time (streams/batch.py)."""
    run = _state.runtime
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


def run_worker(settings: WorkerSettings, loglevel: str = "info") -> int:
    """`tracker worker`: configure the app with `settings`, create the topics, set the worker
    up, then run the Faust worker until SIGTERM/SIGINT."""
    configure(settings)
    settings.faust_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    run = start(settings, loop.run_until_complete(_topics_ready(settings)))
    worker = Worker(app, loop=loop, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        run.close()
    return 0
