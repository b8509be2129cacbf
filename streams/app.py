"""The Faust worker. `--role all` (the default): the batch path (streams/batch.py: input topic ->
engine -> store a batch at a time, run by the app's task `batch_path`; Faust's own consumer is
off). `--role processor` / `--role sink`: the per-record path, the processor agent (input topic
-> engine -> output topics) and the sink agent (output topics -> store) in processes of their own.

A module-level Faust app with module-level agents, by Faust's conventions: run it with
`tracker worker ...` or `faust -A streams.app worker`, test the agents with `agent.test_context()`.
The app and its configuration are streams/faust_app.py, the agents and the task
streams/agents.py; this module sets the worker up and runs it. Importing it declares the agents
on the app, which `faust -A streams.app` finds here (`app`).

Nothing at import or configuration needs the broker or the unit registry, so
`faust -A streams.app worker --help` needs neither. They are needed at worker startup: `run_worker`
creates the topics and calls `start()` before the Faust worker runs; under `faust -A` the
Worker's first start does the same (`first_start`), before the app starts. `start()` loads the
registry and rulebooks, builds the processor, the emitter and the store thread (`prepare`, which
unit tests call with a stand-in producer), binds the agents to the held topics of the prefix (an
agent's channel is resolved lazily, for configuration late like this), drops the agent the role
does not run and adds the web views (streams/web.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from sinks import Store, open_store
from sinks.event_log import EventLogWriter, claim_store
from sinks.faulty import FaultyStore
from sinks.worker_token import make_token_file
from streams.agents import Runtime, current, process, sink
from streams.batch import BatchWorker
from streams.checkpoints import worker_checkpoints
from streams.emitter import Emitter, Send
from streams.faust_app import HeldTopic, Worker, app, configure, holds, worker_settings
from streams.processor import KafkaReader, Processor, Reader
from streams.settings import WorkerSettings
from streams.sink_agent import BatchDecoder, SinkStats, StoreThread
from streams.topics import end_offsets, ensure_topics, quiet_kafka
from streams.web import register

log = logging.getLogger(__name__)


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
    current.runtime = run
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
    current.runtime = run
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


def start(
    settings: WorkerSettings, partitions: int, ends: Mapping[int, int] | None = None
) -> Runtime:
    """Set the worker up (its topics exist): `prepare`, and the web views with their token.
    `ends`: the input topic's end offsets per partition, checked against the store's event log
    (sinks/event_log.py `claim_event_log`)."""
    if settings.runs_sink:  # the store's event log is this topic's, or the worker stops here
        writer = EventLogWriter.kafka(settings.topics.events, partitions)
        claim_store(settings.store, writer, ends)
    run = prepare(settings, partitions)
    register(app, run.store, run.progress, web_token(settings))
    return run


async def _startup(settings: WorkerSettings) -> Runtime:
    """`run_worker`'s setup, for a worker started by `faust -A streams.app worker`."""
    settings = settings.loaded()
    settings.faust_dir.mkdir(parents=True, exist_ok=True)
    return start(settings, *await _topics_ready(settings))


async def first_start() -> None:
    """The Worker's first start (streams/faust_app.py), before the app starts: set the worker up
    from `worker_settings()` unless `run_worker` has done it already."""
    if current.runtime is None:
        try:
            await _startup(worker_settings())
        except Exception as exc:  # Faust would stop without a word (aiokafka is quieted)
            log.critical("the worker cannot start: %s", exc)
            raise


async def _topics_ready(settings: WorkerSettings) -> tuple[int, dict[int, int] | None]:
    """Create the worker's topics (granting its ACLs where it may); their partition count, and
    for a worker that writes the store, the input topic's end offsets per partition."""
    with quiet_kafka():
        partitions = await ensure_topics(
            settings.bootstrap,
            settings.topics,
            settings.partitions,
            login=settings.login,
            admin=settings.admin,
        )
        found = (
            await end_offsets(settings.bootstrap, [settings.topics.events], settings.login)
            if settings.runs_sink
            else None
        )
    if partitions != settings.partitions:
        log.warning("%s has %d partitions; using them", settings.topics.events, partitions)
    ends = None if found is None else {tp.partition: end for tp, end in found.items()}
    return partitions, ends


def run_worker(settings: WorkerSettings, loglevel: str = "info") -> int:
    """`tracker worker`: configure the app with `settings`, create the topics, set the worker
    up, then run the Faust worker until SIGTERM/SIGINT."""
    configure(settings)
    settings.faust_dir.mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    run = start(settings, *loop.run_until_complete(_topics_ready(settings)))
    worker = Worker(app, loop=loop, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        run.close()
    return 0
