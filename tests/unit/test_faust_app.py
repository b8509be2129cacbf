"""The worker is a module-level Faust app with module-level agents, by Faust's conventions
(issue 9, item 6): `faust -A streams.app worker` finds it, its configuration comes from the
environment (config/settings.py) or from the WorkerSettings `tracker worker` built, and its agents
run under `agent.test_context()` with no broker.

A Kafka-free test of the wiring: the emitter's send is injected and records are put straight into
the agents' test channels. The live path (acks, holds, rebalances, crashes) stays covered by the
integration tests on the real broker (tests/integration/test_stream_*.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP, Message

import streams.agents
import streams.app
import streams.faust_app
from config.settings import Settings
from engine.warnings import WarningPolicy
from schemas.envelope import UNKNOWN_POSTER, Envelope
from schemas.ledger import DeadLetter, DeadlineState, LedgerEntry, LoggedEvent
from streams.partition import Record
from streams.processor import Processor
from streams.settings import Config, WorkerSettings
from streams.topics import Topics
from tests import builders

ROOT = Path(__file__).resolve().parents[2]
FAUST = Path(sys.executable).parent / "faust"
CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
TOPICS = Topics("unit-faust")
SETTINGS = WorkerSettings(config=CONFIG, topics=TOPICS, partitions=1, store="memory://")
# The agents are the per-record path of split roles (`--role all` is the batch path, no agents).
PROCESSOR = replace(SETTINGS, role="processor")
SINK = replace(SETTINGS, role="sink")
STAMP_S = datetime(2018, 12, 31, tzinfo=UTC).timestamp()  # the broker's append time of every record

NOTICE = {"event_id": "n1", "type": "vuln.notice", "unit": "fz.gl",
          "at": "2018-02-01T10:00:00+08:00", "notice_id": "V-1", "system": "s"}  # fmt: skip
TICK = {"event_id": "t1", "type": "clock.tick", "at": "2018-04-01T00:00:00+08:00"}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    return {**env, **extra}


def _python(code: str, env: dict[str, str]) -> str:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


# --- the app, as Faust's command line and `tracker worker` find it --------------------------------


def test_faust_command_line_finds_the_app_without_a_broker_or_units() -> None:
    # no TRACKER_UNITS, no broker: the registry is loaded at worker startup, not at import
    run = subprocess.run(
        [str(FAUST), "-A", "streams.app", "worker", "--help"],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "--web-port" in run.stdout


def test_the_app_is_configured_from_the_environment() -> None:
    code = (
        "import streams.app\n"  # what `faust -A streams.app` imports: the agents configure the app
        "from streams.faust_app import Worker, app\n"
        "app.finalize()\n"
        "c = app.conf\n"
        "print(c.id, c.broker[0], c.web_port, c.broker_commit_interval, c.datadir,"
        " c.Worker is Worker)\n"
    )
    env = _clean_env(
        TRACKER_TOPIC_PREFIX="envp",
        TRACKER_ROLE="sink",
        TRACKER_KAFKA="kafka.example:9093",
        TRACKER_WEB_PORT="7123",
        TRACKER_COMMIT_INTERVAL_S="0.25",
        TRACKER_DATA="/tmp/tracker-env-data",
    )
    assert _python(code, env).split() == [
        "envp-sink",
        "kafka://kafka.example:9093",
        "7123",
        "0.25",
        "/tmp/tracker-env-data/faust/envp-sink",
        "True",
    ]


def test_worker_settings_given_by_the_command_line_win_over_the_environment() -> None:
    # what `tracker worker` does through run_worker: its flags, not the environment, configure
    # the module-level app (imported earlier, e.g. by a test hook at interpreter start)
    code = (
        "import streams.app\n"
        "import streams.faust_app as m\n"
        "from pathlib import Path\n"
        "from streams.settings import WorkerSettings\n"
        "from streams.topics import Topics\n"
        "m.configure(WorkerSettings(topics=Topics('flagp'), role='processor',"
        " bootstrap='b.example:1', web_port=7200, data_dir=Path('/tmp/d')))\n"
        "c = m.app.conf\n"
        "print(c.id, c.broker[0], c.web_port, c.datadir)\n"
        # Faust built the transport at import, from the environment: the clients must not use it
        "print(m.app.producer.transport.url[0], m.app.consumer.transport.url[0])\n"
    )
    env = _clean_env(TRACKER_TOPIC_PREFIX="envp", TRACKER_WEB_PORT="7123")
    assert _python(code, env).split() == [
        "flagp-processor",
        "kafka://b.example:1",
        "7200",
        "/tmp/d/faust/flagp-processor",
        "kafka://b.example:1",
        "kafka://b.example:1",
    ]


def test_worker_settings_from_the_environment_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # every flag of `tracker worker` has its TRACKER_ variable, with the same default; run in an
    # empty directory, since a local broker's files under ./.data change the default bootstrap
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TRACKER_")]:
        monkeypatch.delenv(name)
    assert WorkerSettings.from_settings(Settings(units=Path("u.yaml"))) == WorkerSettings(
        bootstrap="127.0.0.1:9092",
        store=Settings().store_dsn(),
        data_dir=Path(".data").resolve(),
        units=Path("u.yaml"),
    )
    given = Settings(
        topic_prefix="p",
        role="processor",
        kafka="h:1",
        partitions=8,
        web_port=7000,
        sink_batch=10,
        sink_within_s=0.1,
        commit_interval_s=0.2,
        session_timeout_s=6.0,
        warn_leads="2",
        fault_file=Path("f"),
        store="memory://",
    )
    ws = WorkerSettings.from_settings(given)
    assert (ws.topics, ws.role, ws.bootstrap, ws.partitions, ws.web_port) == (
        Topics("p"), "processor", "h:1", 8, 7000
    )  # fmt: skip
    assert (ws.sink_max_records, ws.sink_within_s, ws.commit_interval_s, ws.session_timeout_s) == (
        10, 0.1, 0.2, 6.0
    )  # fmt: skip
    assert (ws.warnings, ws.fault_file, ws.store) == (
        WarningPolicy.parse("2"), Path("f"), "memory://"
    )  # fmt: skip


def test_the_registry_is_loaded_at_startup_with_a_clear_error_without_units() -> None:
    with pytest.raises(ValueError, match="TRACKER_UNITS"):
        WorkerSettings().loaded()
    assert SETTINGS.loaded() is SETTINGS


# --- the agents under test_context() ---------------------------------------------------------


class Producer:
    """Stands in for the app's producer: records what the emitter sends; each send's future
    resolves when the test says so (the broker's acknowledgement)."""

    def __init__(self, *, acknowledge: bool = True) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.acknowledge = acknowledge

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None, *_: Any
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, partition))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.acknowledge:
            future.set_result(None)
        self.futures.append(future)
        return future

    def on(self, topic: str) -> list[bytes]:
        return [value for t, _, value, _ in self.sent if t == topic]


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2_000):  # generous: a wait for the agent's task, not a speed target
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def producer() -> AsyncIterator[Producer]:
    yield Producer()


@pytest.fixture
async def runtime(producer: Producer) -> AsyncIterator[streams.agents.Runtime]:
    run = streams.app.prepare(PROCESSOR, partitions=1, send=producer.send)
    try:
        yield run
    finally:
        run.close()


def _raw_channel() -> Any:
    """An in-memory channel that hands records over as they came (bytes, not JSON decoded)."""
    return streams.faust_app.app.channel(
        schema=faust.Schema(key_serializer="raw", value_serializer="raw")
    )


async def test_the_processor_agent_produces_an_events_outputs(
    runtime: streams.agents.Runtime, producer: Producer
) -> None:
    emitter = runtime.emitter
    assert emitter is not None
    async with streams.agents.process.test_context(channel=_raw_channel()) as agent:
        await agent.put(json.dumps(NOTICE).encode(), partition=0, timestamp=STAMP_S)
        await until(lambda: emitter.processed.get(0) == 0, "the notice")
        accepted = [LoggedEvent.model_validate_json(v) for v in producer.on(TOPICS.accepted)]
        assert [(e.event_id, e.partition, e.seq) for e in accepted] == [("n1", 0, 0)]
        deadlines = [DeadlineState.model_validate_json(v) for v in producer.on(TOPICS.deadlines)]
        assert deadlines and {d.unit for d in deadlines} == {"fz.gl"}
        entries = [LedgerEntry.model_validate_json(v) for v in producer.on(TOPICS.ledger)]
        assert [e.reason for e in entries] == ["major vulnerability notice V-1 (s) of fz.gl"]

        await agent.put(b"{not json", partition=0, timestamp=STAMP_S)
        await until(lambda: emitter.processed.get(0) == 1, "the bad record")
        letters = [DeadLetter.model_validate_json(v) for v in producer.on(TOPICS.dead_letters)]
        assert [(d.origin, d.raw) for d in letters] == [(f"kafka:{TOPICS.events}/0/1", "{not json")]
        # an input's own partition for its accepted event and dead letter, the unit as key else
        assert {p for t, _, _, p in producer.sent if t == TOPICS.dead_letters} == {0}
        assert {k for t, k, _, _ in producer.sent if t == TOPICS.deadlines} == {b"fz.gl"}

        await agent.put(json.dumps(TICK).encode(), partition=0, timestamp=STAMP_S)
        await until(lambda: emitter.processed.get(0) == 2, "the tick")
        accepted = [LoggedEvent.model_validate_json(v) for v in producer.on(TOPICS.accepted)]
        assert [(e.event_id, e.seq) for e in accepted] == [("n1", 0), ("t1", 2)]


@pytest.mark.parametrize("form", [list, dict])  # aiokafka's pairs, or a mapping Faust allows
async def test_the_processor_agent_takes_the_envelope_from_the_headers(
    runtime: streams.agents.Runtime, producer: Producer, form: type
) -> None:
    """Who posted a record and when it was received are its headers: the live path reads them as
    the rebuild does (tests/unit/test_envelope.py), and a record without them is the broker's."""
    centre = Envelope(posted_by="centre:fj", received_at=datetime(2018, 3, 1, 2, 0, 1, tzinfo=UTC))
    emitter = runtime.emitter
    assert emitter is not None
    async with streams.agents.process.test_context(channel=_raw_channel()) as agent:
        headers = form(centre.headers())
        await agent.put(json.dumps(NOTICE).encode(), partition=0, timestamp=STAMP_S,
                        headers=headers)  # fmt: skip
        await agent.put(b"{not json", partition=0, timestamp=STAMP_S, headers=headers)
        await agent.put(json.dumps(TICK).encode(), partition=0, timestamp=STAMP_S)
        await until(lambda: emitter.processed.get(0) == 2, "the three records")
    accepted = [LoggedEvent.model_validate_json(v) for v in producer.on(TOPICS.accepted)]
    assert [(e.event_id, e.posted_by, e.received_at) for e in accepted] == [
        ("n1", "centre:fj", centre.received_at),
        ("t1", UNKNOWN_POSTER, datetime.fromtimestamp(STAMP_S, UTC)),
    ]
    [letter] = [DeadLetter.model_validate_json(v) for v in producer.on(TOPICS.dead_letters)]
    assert (letter.posted_by, letter.received_at) == ("centre:fj", centre.received_at)


async def test_a_record_counts_as_processed_only_once_its_outputs_are_acknowledged(
    producer: Producer,
) -> None:
    producer.acknowledge = False
    run = streams.app.prepare(PROCESSOR, partitions=1, send=producer.send)
    assert run.emitter is not None
    try:
        async with streams.agents.process.test_context(channel=_raw_channel()) as agent:
            await agent.put(json.dumps(NOTICE).encode(), partition=0, timestamp=STAMP_S)
            await until(lambda: len(producer.sent) >= 2, "the notice's outputs")
            run.emitter.release()
            assert run.emitter.processed == {}  # the broker has not acknowledged them yet
            for future in producer.futures:
                future.set_result(None)
            run.emitter.release()
            assert run.emitter.processed == {0: 0}
    finally:
        run.close()


def _outputs_of(*events: dict[str, str]) -> list[tuple[str, bytes]]:
    """What the processor would have produced for these events, as (topic, value) records."""

    async def outputs() -> list[tuple[str, bytes]]:
        async def no_replay(partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
            raise AssertionError("no rebuild expected")
            yield []

        proc = Processor(CONFIG, TOPICS.events, 1, no_replay)
        records: list[tuple[str, bytes]] = []
        for offset, event in enumerate([*events, "{bad"]):
            value = (event if isinstance(event, str) else json.dumps(event)).encode()
            record = Record(TOPICS.events, 0, offset, int(STAMP_S * 1000), value)
            for out in await proc.handle(record):
                if out.logged is not None:
                    records.append((TOPICS.accepted, out.logged.model_dump_json().encode()))
                records += [(TOPICS.ledger, e.model_dump_json().encode()) for e in out.entries]
                records += [(TOPICS.deadlines, d.model_dump_json().encode()) for d in out.deadlines]
                if out.letter is not None:
                    records.append((TOPICS.dead_letters, out.letter.model_dump_json().encode()))
        return records

    return asyncio.run(outputs())


@pytest.fixture
async def sink_runtime() -> AsyncIterator[streams.agents.Runtime]:
    run = streams.app.prepare(SINK, partitions=1)
    try:
        yield run
    finally:
        run.close()


async def test_the_sink_agent_writes_a_batch_into_the_store(
    sink_runtime: streams.agents.Runtime,
) -> None:
    runtime = sink_runtime
    records = await asyncio.to_thread(_outputs_of, NOTICE, TICK)
    assert runtime.store is not None and runtime.stats is not None
    stats = runtime.stats
    async with streams.agents.sink.test_context(channel=_raw_channel()) as agent:
        channel = agent.stream().channel
        for offset, (topic, value) in enumerate(records):
            message = Message(topic, 0, offset, time.time(), 0, None, None, value, None,
                              tp=TP(topic, 0), generation_id=streams.faust_app.app.consumer_generation_id)  # fmt: skip
            await channel.put(await channel.decode(message))
        await until(lambda: stats.records == len(records), "the batch to be written")

    def stored(store: Any) -> tuple[list[str], int, bool, int]:
        return (sorted(e.event_id for e in store.logged_events()), len(store.ledger()),
                bool(store.deadlines()), len(store.dead_letters()))  # fmt: skip

    kinds = [topic for topic, _ in records]
    assert await runtime.store.call(stored) == (["n1", "t1"], kinds.count(TOPICS.ledger), True, 1)
    assert kinds.count(TOPICS.ledger) > 0
    assert stats.failures == 0 and stats.skipped == 0


def test_role_all_runs_the_batch_path_without_faust_consumer_or_agents() -> None:
    """`--role all` reads the input in batches itself (streams/batch.py): Faust's consumer would
    join the same group with its own assignor, and its agents would read the per-record topics."""
    run = streams.app.prepare(SETTINGS, partitions=1)
    try:
        assert run.batch is not None and run.emitter is None and run.decoder is None
        assert streams.faust_app.app.boot_strategy.enable_kafka_consumer is False
        progress = run.progress()
        assert progress["assigned"] == [] and progress["processed"] == {}
        assert progress["sink"]["records"] == 0
    finally:
        run.close()
    run = streams.app.prepare(PROCESSOR, partitions=1)
    try:  # split roles: the per-record agents, on Faust's consumer
        assert run.batch is None
        assert streams.faust_app.app.boot_strategy.enable_kafka_consumer is None
    finally:
        run.close()


def test_the_batch_path_writes_larger_batches_by_default() -> None:
    # `--role all` writes up to 20,000 records at once (fewer inserts, each a data part per
    # table); the per-record sink keeps 5,000; `--sink-batch` wins for every role
    from streams.settings import BATCH_PATH_SINK_BATCH, SINK_BATCH, sink_batch

    assert (BATCH_PATH_SINK_BATCH, SINK_BATCH) == (20_000, 5_000)
    assert sink_batch("all", None) == 20_000
    assert sink_batch("sink", None) == sink_batch("processor", None) == 5_000
    assert [sink_batch(role, 200) for role in ("all", "sink", "processor")] == [200, 200, 200]
    assert WorkerSettings().sink_max_records == 5_000  # built without the CLI: as before
