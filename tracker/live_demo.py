"""`tracker demo --live`: the province-scale demo through the live pipeline.

Starts the local broker (left running afterwards: `tracker kafka stop`), a worker (role `all`,
the demo's store: by default the embedded chDB under $TRACKER_DATA; tracker/demo_store.py
readies it) and produces the seeded demo stream (`lines`, made by the caller), keyed like
`tracker post`; waits until the worker's store holds every record; runs the ticker for one
round; prints the ranking read from the worker (it holds the store) and stops worker and ticker.

The demo's events are historical (2018 and 2020) and carry their own event-time ticks every 6
hours. A wall-clock tick moves each partition's clock to today, closing those years, so the
ticker starts only once the historical stream is applied (every demo deadline is resolved by
then, so the live tick changes no deduction).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import IO

from config.registry import DEMO_REGISTRY, load_registry
from config.settings import default_store
from engine.status import build_status
from schemas.points import format_points
from schemas.registry import Registry
from sinks.base import StoreError
from sinks.dsn import mask
from sinks.remote import RemoteStore
from streams.kafka_auth import KafkaLogin
from streams.post import Poster, PostSummary
from streams.topics import Topics, wait_drained
from tracker import tables
from tracker.commands import UserError
from tracker.progress import progress

EMBEDDED = -1  # returned when Java is missing: the caller runs the embedded `ingest` demo
WEB_PORT = 6066
# A login named in the environment would make the demo's worker and ticker log in as it.
_LOGIN_VARIABLES = ("TRACKER_KAFKA_USER", "TRACKER_KAFKA_PASSWORD", "TRACKER_KAFKA_CREDENTIALS")


def java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    return (
        bool(home and (Path(home) / "bin" / "java").is_file()) or shutil.which("java") is not None
    )


def run_live_demo(
    data_dir: Path,
    lines: list[str],
    *,
    store: str | None = None,
    port: int = 9092,
    web_port: int = WEB_PORT,
    out: IO[str] = sys.stdout,
) -> int:
    if not java_available():
        print("demo: Java not found, so no local Kafka: running the embedded ingest path "
              "instead (install Java 17+ for the live pipeline)", file=out)  # fmt: skip
        return EMBEDDED
    from streams.broker import BrokerError, LocalKafka

    started = time.monotonic()
    broker = LocalKafka(data_dir, port=port)
    print(f"demo: starting Kafka on {broker.bootstrap} (data in {broker.home})", file=out)
    try:
        broker.start(timeout_s=180)
    except BrokerError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    registry = load_registry(DEMO_REGISTRY)
    topics = Topics()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    store = store or default_store()  # what `tracker status` reads once the worker is gone
    # The worker and the ticker log in as themselves, from this broker's credentials folder.
    env = {
        **{k: v for k, v in os.environ.items() if k not in _LOGIN_VARIABLES},
        "TRACKER_DATA": str(data_dir),
        "TRACKER_KAFKA_CREDENTIALS": str(broker.credentials.folder),
    }
    common = ["--bootstrap", broker.bootstrap, "--topic-prefix", topics.prefix]
    worker = _spawn(
        ["worker", *common, "--units", str(DEMO_REGISTRY), "--store", store,
         "--web-port", str(web_port)], logs / "worker.log", env,
    )  # fmt: skip
    ticker: subprocess.Popen[bytes] | None = None
    remote = RemoteStore(f"http://127.0.0.1:{web_port}", dsn=store, data_dir=data_dir)
    try:
        _wait_web(remote, worker, logs / "worker.log")
        print(f"demo: worker up (store {mask(store)}, log {logs / 'worker.log'})", file=out)
        intake, admin = broker.login("intake"), broker.login("admin")
        produce_s, summary = asyncio.run(
            _produce(broker.bootstrap, topics, registry, lines, intake, admin)
        )
        print(f"demo: produced {summary.sent} events ({summary.records} records) in "
              f"{produce_s:.1f}s; {summary.rejected} malformed lines reported and not sent",
              file=out)  # fmt: skip
        groups = (topics.group("all"), topics.group("all"))
        wait_started = time.monotonic()
        watcher = broker.login("worker")  # may describe the topics and the worker's group
        while not asyncio.run(
            wait_drained(broker.bootstrap, topics, groups, timeout_s=5, login=watcher)
        ):
            _check_alive(worker, logs / "worker.log")
            if time.monotonic() - wait_started > 1800:
                print("demo: the worker did not catch up within 30 minutes", file=out)
                return 1
        print(f"demo: every record applied and stored {time.monotonic() - wait_started:.1f}s "
              "after the last one was produced", file=out)  # fmt: skip
        ticker = _spawn(["ticker", *common, "--interval-s", "2"], logs / "ticker.log", env)
        _wait_live_tick(remote, worker, logs / "worker.log")
        asyncio.run(wait_drained(broker.bootstrap, topics, groups, timeout_s=120, login=watcher))
        print("demo: the live ticker's first tick is in (every partition's clock is now today)",
              file=out)  # fmt: skip
        _print_ranking(remote, out)
        print(f"\ndemo: {time.monotonic() - started:.0f}s in all. The broker keeps running "
              "(`tracker kafka stop`); `tracker worker` serves the store again.", file=out)  # fmt: skip
        return 0
    finally:
        for proc in (ticker, worker):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in (ticker, worker):
            if proc is not None:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "tracker", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _check_alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        errors = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line]
        raise UserError(
            f"the demo worker exited (code {proc.returncode}): "
            f"{errors[0] if errors else 'see ' + str(log)}"
        )


def _wait_web(remote: RemoteStore, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        _check_alive(proc, log)
        try:
            # up and assigned its partitions (Faust serves the web before joining the group)
            if remote.progress()["assigned"]:
                return
        except StoreError:
            pass
        if time.monotonic() > deadline:
            raise UserError(f"the demo worker did not start within 2 minutes; see {log}")
        time.sleep(0.3)


async def _produce(
    bootstrap: str,
    topics: Topics,
    registry: Registry,
    lines: list[str],
    login: KafkaLogin,
    admin: KafkaLogin,
) -> tuple[float, PostSummary]:
    poster = Poster(bootstrap, topics, registry, login=login, admin=admin)
    await poster.start()
    started = time.monotonic()
    try:
        with progress("posting", total=len(lines)) as advance:
            summary = await poster.post(enumerate(lines, 1), on_sent=advance)
    finally:
        await poster.stop()
    return time.monotonic() - started, summary


def _wait_live_tick(
    remote: RemoteStore, worker: subprocess.Popen[bytes], log: Path, timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _check_alive(worker, log)
        mark = remote.watermark()
        if mark is not None and mark.year >= 2024:
            return
        time.sleep(0.5)
    raise UserError("no live tick reached the store within 2 minutes; see the ticker's log")


def _print_ranking(remote: RemoteStore, out: IO[str]) -> None:
    config = remote.load_config()
    assert config is not None
    registry, books = config
    rows = build_status(
        registry, books, remote.totals(), remote.deadlines(), remote.event_unit_years()
    )
    names = {u.id: u.name for u in registry.units}
    table = []
    for book_id in sorted({r.rulebook for r in rows if r.rulebook}):
        ranked = sorted((r for r in rows if r.rulebook == book_id and r.deducted),
                        key=lambda r: (-r.deducted, r.unit))  # fmt: skip
        table += [
            [book_id, r.unit, names[r.unit], format_points(r.deducted),
             format_points(sum((i.max for i in r.indicators), Decimal(0))),
             sum(d.status == "overdue" for d in r.deadlines)]
            for r in ranked[:3]
        ]  # fmt: skip
    print("\nUnits losing the most points, per rulebook (read from the running worker):", file=out)
    print(tables.render(["rulebook", "unit", "name", "deducted", "of", "overdue"], table), file=out)
