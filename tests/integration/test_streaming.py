"""The live pipeline on a real broker: `post` -> Faust worker -> chDB, compared with `ingest`.

Workers run as subprocesses (`python -m tracker worker`), each with its own chDB directory; the
test reads their stores through the worker's web views, as the CLI does while a worker runs.
The helpers here are shared with the other `test_stream_*` modules.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import pytest

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine.status import build_status
from sinks import MemoryStore
from sinks.base import StoreError
from sinks.remote import RemoteStore, held_by_another_process
from streams.post import Poster, PostSummary
from streams.topics import Topics, wait_drained
from tests.integration.kafka_fixture import (  # noqa: F401
    free_ports,
    kafka_broker,
    local_kafka,
    login,
    unique_topic,
)
from tracker import demo
from tracker.pipeline import Tracker

pytestmark = pytest.mark.integration

REGISTRY = load_registry(DEMO_REGISTRY)
BOOKS = dict(load_rulebooks())
FAST = (
    "--commit-interval-s",
    "0.2",
    "--sink-within-s",
    "0.2",
    "--session-timeout-s",
    "6",
)


def demo_lines(seed: int, scale: float = 0.05) -> list[str]:
    """The seeded demo stream for 2018 (small scale, daily ticks): about 1,500 events."""
    events = demo.generate(REGISTRY, seed=seed, years=(2018,), scale=scale, tick_hours=24)
    return list(demo.lines(events))


@dataclass
class Worker:
    """`python -m tracker worker` as a subprocess with its own data dir and chDB store."""

    bootstrap: str
    prefix: str
    workdir: Path
    role: str = "all"
    extra: Sequence[str] = FAST
    store: str | None = None
    data: Path | None = None  # TRACKER_DATA (default: its own, under workdir)
    env: dict[str, str] = field(default_factory=dict)  # more environment variables
    web_port: int = field(default_factory=lambda: free_ports(1)[0])
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def dsn(self) -> str:
        return self.store or f"chdb://{self.workdir / 'chdb'}"

    @property
    def data_dir(self) -> Path:
        return self.data or self.workdir / "data"

    @property
    def log(self) -> Path:
        return self.workdir / "worker.log"

    def start(self) -> Worker:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "tracker", "worker", "--bootstrap", self.bootstrap]
        cmd += ["--topic-prefix", self.prefix, "--units", str(DEMO_REGISTRY)]
        cmd += ["--role", self.role, "--web-port", str(self.web_port), "--store", self.dsn]
        cmd += [*self.extra]
        env = {**os.environ, "TRACKER_DATA": str(self.data_dir), "TRACKER_STORE": "", **self.env}
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts} ===\n".encode())
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.starts += 1
        return self

    def wait_web(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            try:
                self.remote(timeout_s=2).progress()
                return
            except StoreError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"worker web not up\n{self.tail()}") from None
                time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else 0
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker ignored SIGTERM\n{self.tail()}") from None

    def remote(self, timeout_s: float = 30.0) -> RemoteStore:
        """Its views, with its token: the one its environment gives, else the file it made."""
        token = self.env.get("TRACKER_WORKER_TOKEN")
        return RemoteStore(self.url, timeout_s, token=token, dsn=self.dsn, data_dir=self.data_dir)

    def tail(self, lines: int = 40) -> str:
        if not self.log.is_file():
            return "(no worker log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running(*workers: Worker) -> Iterator[None]:
    """Start the workers; whatever happens, none is left running."""
    try:
        for w in workers:
            w.start()
        yield
    finally:
        for w in workers:
            w.kill()


def post(bootstrap: str, prefix: str, lines: Sequence[str]) -> PostSummary:
    async def run() -> PostSummary:
        # as `tracker post` does on a developer's machine: the intake's login, and the admin's
        # to grant the prefix's ACLs if no worker has yet
        poster = Poster(
            bootstrap, Topics(prefix), REGISTRY, login=login("intake"), admin=login("admin")
        )
        await poster.start()
        try:
            return await poster.post(enumerate(lines, 1))
        finally:
            await poster.stop()

    return asyncio.run(run())


def drain(bootstrap: str, prefix: str, role: str = "all", timeout_s: float = 180) -> None:
    topics = Topics(prefix)
    groups = (
        (topics.group("all"),) * 2
        if role == "all"
        else (topics.group("processor"), topics.group("sink"))
    )
    drained = wait_drained(bootstrap, topics, groups, timeout_s, login=login("worker"))
    assert asyncio.run(drained), "pipeline stuck"


def reference(lines: Sequence[str]) -> MemoryStore:
    """What `tracker ingest` makes of the same lines (one engine, in-process)."""
    sink = MemoryStore()
    sink.save_config(REGISTRY, BOOKS)
    Tracker(sink, REGISTRY, BOOKS, official_calendar()).feed_lines(lines, "reference")
    return sink


def status_of(sink: MemoryStore) -> list[dict[str, Any]]:
    rows = build_status(REGISTRY, BOOKS, sink.totals(), sink.deadlines(), sink.event_unit_years())
    return [r.model_dump(mode="json") for r in rows]


def assert_same_as_ingest(live: RemoteStore, ref: MemoryStore) -> None:
    """Same ledger rows (every field, seq included), deadlines and status as `ingest`."""
    got, want = live.ledger(), ref.ledger()
    missing = {e.entry_id for e in want} - {e.entry_id for e in got}
    extra = {e.entry_id for e in got} - {e.entry_id for e in want}
    assert not missing and not extra, (
        [(e.unit, e.rule, e.event_ids) for e in want if e.entry_id in missing][:10],
        [(e.unit, e.rule, e.event_ids) for e in got if e.entry_id in extra][:10],
    )
    assert len(got) == len(want)
    assert {(e.entry_id, e.applied) for e in got} == {(e.entry_id, e.applied) for e in want}
    assert got == want
    # Deadline versions come from one counter per engine: per partition here, global in ingest.
    fields = ("unit", "kind", "ref", "year", "event_id", "due", "status", "feedback_at")
    strip = lambda rows: [tuple(getattr(d, f) for f in fields) for d in rows]  # noqa: E731
    assert strip(live.deadlines()) == strip(ref.deadlines())
    assert live.status() == status_of(ref)


def test_post_worker_status_equals_ingest(
    kafka_broker: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    prefix = unique_topic("eq")
    lines = demo_lines(seed=11)
    stream = tmp_path / "events.jsonl"
    stream.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ingest_data = tmp_path / "ingest"
    ingested = _tracker_cli("ingest", "--units", str(DEMO_REGISTRY), "--json", str(stream),
                            data=ingest_data)  # fmt: skip
    assert json.loads(ingested.splitlines()[-1])["rejected"] == 0
    want_status = _tracker_cli("status", "--json", data=ingest_data)
    want_ledger = _tracker_cli("ledger", "--json", data=ingest_data)
    worker = Worker(kafka_broker, prefix, tmp_path / "w")
    with running(worker):
        worker.wait_web()
        cmd = [sys.executable, "-m", "tracker", "post", "--direct", "--bootstrap", kafka_broker]
        cmd += ["--json"]
        cmd += ["--topic-prefix", prefix, "--units", str(DEMO_REGISTRY), "--file", str(stream)]
        posting = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Reading while the worker writes: every read goes through the worker's store thread.
        live, reads = worker.remote(), 0
        while posting.poll() is None or live.progress()["sink"]["records"] < len(lines):
            live.status()
            live.ledger(unit="fj.gat")
            reads += 1
        out, err = posting.communicate(timeout=120)
        assert posting.returncode == 0, err
        summary = json.loads(out.splitlines()[-1])
        assert summary["sent"] == len(lines) and summary["rejected"] == 0
        drain(kafka_broker, prefix)
        assert reads > 1

        assert live.status() == json.loads(want_status)
        assert_same_as_ingest(live, reference(lines))

        # The worker holds its chDB directory: `tracker status|ledger|deadlines|rejects` on it
        # fall back to reading through the worker (tracker.commands.open_store).
        assert held_by_another_process(worker.dsn)
        env = {"TRACKER_WORKER_URL": worker.url}
        held = ("--store", worker.dsn, "--json")
        status = _tracker_cli("status", *held, data=tmp_path, check=False, env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout) == json.loads(want_status)
        ledger = _tracker_cli("ledger", *held, data=tmp_path, check=False, env=env)
        # the same entries; who posted their events differs: `tracker post` produces directly
        # (an operator's tool: no envelope), `ingest` names itself and its file (issue 10)
        live_ledger, ingested_ledger = _posters(ledger.stdout), _posters(want_ledger)
        assert live_ledger[0] == ingested_ledger[0]
        assert set(live_ledger[1]) == {""} and set(ingested_ledger[1]) == {"ingest:events.jsonl"}
        for name in ("deadlines", "rejects"):
            done = _tracker_cli(name, *held, data=tmp_path, check=False, env=env)
            assert done.returncode == 0 and json.loads(done.stdout) is not None, done.stderr
        # as of an instant mid-stream (issue 11): the live store answers as ingest's does
        mid = ("--as-of", "2018-07-01T00:00:00+08:00")
        want_then = json.loads(_tracker_cli("status", "--json", *mid, data=ingest_data))
        then = _tracker_cli("status", *held, *mid, data=tmp_path, check=False, env=env)
        assert then.returncode == 0, then.stderr
        assert json.loads(then.stdout) == want_then != json.loads(want_status)

        replay = _streams("replay", "--from-kafka", "--bootstrap", kafka_broker, "--topic-prefix",
                          prefix, "--worker-url", worker.url)  # fmt: skip
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "differences: 0" in replay.stdout
        assert worker.stop() == 0
    # both stores verify: the worker signed what `tracker post` sent unsigned and the heads of
    # its writes; the replay of its log, one engine per partition, gives its ledger (issue 11)
    for store in (("--store", worker.dsn), ()):
        verified = _tracker_cli("audit", "verify", *store, data=ingest_data)
        assert verified.startswith("audit: clean: "), verified


def _posters(ledger_jsonl: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`tracker ledger --json` lines: the entries, and who posted their events."""
    entries, posters = [], []
    for line in ledger_jsonl.splitlines():
        entry = json.loads(line)
        posters += entry.pop("posted_by")
        entries.append(entry)
    return entries, posters


def _streams(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "tracker", *args, "--units", str(DEMO_REGISTRY)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@overload
def _tracker_cli(*args: str, data: Path) -> str: ...


@overload
def _tracker_cli(
    *args: str, data: Path, check: Literal[False], env: dict[str, str]
) -> subprocess.CompletedProcess[str]: ...


def _tracker_cli(
    *args: str, data: Path, check: bool = True, env: dict[str, str] | None = None
) -> Any:
    environ = {**os.environ, "TRACKER_DATA": str(data), "TRACKER_STORE": "", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "tracker.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    return done.stdout
