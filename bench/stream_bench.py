"""Benchmark: the live path on the local broker, produce -> queryable rows in chDB (issue 12).

    python bench/stream_bench.py                  # 3 runs; starts its own broker and workers
    python bench/stream_bench.py --roles split    # the per-record path: processor + sink

Per run, each phase on fresh topics with a fresh worker (`tracker worker`, default `--role all`:
the batch path, streams/batch.py) and an embedded chDB store:

1. throughput: the province-scale demo stream (2018 and 2020) is produced as fast as possible;
   sustained events/s = events / (time from the first produce until the worker has committed
   every input record, i.e. every row is in chDB; the committed offsets are polled every 0.1 s),
   with the worker's CPU seconds over the same span (utime + stime from /proc, every thread,
   chDB's included; start-up and the group join left out) and its CPU µs per event.
2. anchors, same run, same records, same measure (first produce -> last record counted): a
   minimal faust-streaming agent that only counts (bench/count_anchor.py faust), and a bare
   aiokafka consumer that counts (bench/count_anchor.py aiokafka), each in a process of its own
   as the worker is.
3. latency: a fresh stream is produced at a steady --rate, open loop; a record counts as
   queryable when the worker reports its (partition, offset) stored (`stored_through`: the event
   log of each partition is written in order); p50/p99 of produce -> queryable.

`--phases ...,scaleout` adds issue 12's item 5, two `all` workers of one group on disjoint
partitions (two each), each writing a chDB store of its own (an embedded store is held by one
process; sharing one needs a ClickHouse server), measured twice:

- backlog (the figure for item 5): one worker, then two, each on fresh topics. The workers start
  and share the partitions out on the empty topic, are frozen (SIGSTOP; a session timeout of
  60 s keeps them in the group), the whole stream is produced, and they are thawed (SIGCONT)
  together: events/s = events / (thaw -> every input record committed, i.e. stored). So the
  producer does not compete for the two cores, and start-up and group joins are not timed.
  Reported with each worker's CPU seconds (utime + stime from /proc) and CPU µs per event (the
  same per event for one and two workers: nothing shared slows them), and the broker's CPU
  seconds over the same interval (it shares the two cores). The stream is keyed by root unit,
  so its four partitions are uneven: each worker's input records are reported, and the
  `balance_bound` they allow (all records / the bigger share: what two workers reach over one
  if an event costs each the same), with the ratio measured against it.
- concurrent (the older measurement, kept for comparison): the throughput phase with two
  workers, the producer running while they consume.

First, `--warmup` throughput phases (default 1) run and are printed but not counted: a fresh
broker spends its first minute compiling its produce and fetch paths, which made the first run's
produce 3x slower than the next two (a user's broker has long been warm). The producer batches as
the intake it stands in for (`producer_batching`).

The load average is recorded before and after each run (the box is shared). The summary gives
min / median / max over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaProducer

from config.registry import DEMO_REGISTRY, load_registry
from config.signing import Signer, signer_at
from schemas.envelope import Envelope
from schemas.events import ClockTick, parse_event
from sinks.heads import sign_envelopes
from streams.broker import LocalKafka
from streams.kafka_auth import KafkaLogin, Principal, aiokafka_kwargs, local_admin, login_for
from streams.post import BATCH_BYTES as POST_BATCH_BYTES
from streams.topics import Topics, ensure_topics, partition_for, wait_drained
from tests.integration.kafka_fixture import free_ports, kafka_lib_cache
from tracker import demo
from tracker.serve.kafka_backend import MAX_BATCH_BYTES as SERVE_MAX_BATCH_BYTES

REGISTRY = load_registry(DEMO_REGISTRY)


Produced = tuple[bytes, bytes | None, list[int], list[tuple[str, bytes]] | None]
INTAKE: dict[str, Signer | None] = {"signer": None}  # set by main(): --intake serve
REQUEST = 500  # events per `tracker serve` request, as issue 10's benchmark posts them


def keyed(lines: list[str], partitions: int) -> list[Produced]:
    """(value, key, partitions, headers) per event, as the intake sends them (checked once
    here, before the timing): `tracker serve` signs each request's events together into the
    headers (requests of `REQUEST` events here), so the worker logs each signature as it came;
    with `--intake direct` (`tracker post --direct`) records carry no headers and the worker
    signs each event itself."""
    signer = INTAKE["signer"]
    received = datetime.now(UTC).replace(microsecond=0)
    signed: list[list[tuple[str, bytes]] | None] = [None] * len(lines)
    if signer is not None:
        envelope = Envelope(posted_by="centre:fj", received_at=received)
        for start in range(0, len(lines), REQUEST):
            request = [(envelope, line.strip()) for line in lines[start : start + REQUEST]]
            for i, done in enumerate(sign_envelopes(signer, request), start=start):
                signed[i] = done.headers()
    out: list[Produced] = []
    for line, headers in zip(lines, signed, strict=True):
        event = parse_event(line)
        if isinstance(event, ClockTick):
            out.append((line.encode(), None, list(range(partitions)), headers))
        else:
            root = REGISTRY.root(event.unit)
            out.append((line.encode(), root.encode(), [partition_for(root, partitions)], headers))
    return out


class Workers:
    """The worker processes of one phase: `--role all` (`count` of them in one group, each with
    a chDB store of its own: an embedded store is held by one process; in production they
    would share a ClickHouse server), or a processor and a sink sharing one store."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        workdir: Path,
        roles: str,
        count: int = 1,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        self.bootstrap, self.prefix, self.workdir = bootstrap, prefix, workdir
        self.extra, self.env = extra, env or {}
        self.roles = ["all"] if roles == "all" else ["processor", "sink"]
        if roles == "all":
            self.members = [(f"all{i}", "all", f"chdb{i}") for i in range(count)]
        else:
            self.members = [("processor", "processor", "chdb"), ("sink", "sink", "chdb")]
        ports = free_ports(len(self.members))
        self.ports = {name: port for (name, _, _), port in zip(self.members, ports, strict=True)}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.token = secrets.token_urlsafe(32)  # the workers' web views want it (their env's)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "TRACKER_DATA": str(self.workdir / "data"),
            "TRACKER_WORKER_TOKEN": self.token,
            **self.env,
        }
        for name, role, store in self.members:
            cmd = [sys.executable, "-m", "tracker", "worker", "--bootstrap", self.bootstrap]
            cmd += ["--topic-prefix", self.prefix, "--units", str(DEMO_REGISTRY), "--role", role]
            cmd += [
                "--web-port",
                str(self.ports[name]),
                "--store",
                f"chdb://{self.workdir / store}",
            ]
            cmd += ["--loglevel", "info", *self.extra]
            log = (self.workdir / f"{name}.log").open("ab")
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
        # up and sharing the input partitions: the group join is not part of the measurement
        deadline = time.monotonic() + 120
        while True:
            try:
                assigned = [progress(port, self.token)["assigned"] for port in self.ports.values()]
                # split roles: each has its topics; `all` workers: all four inputs shared out
                shared = "sink" in self.ports or sum(map(len, assigned)) >= 4
                if all(assigned) and shared:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start")
            time.sleep(0.2)

    @property
    def sink_ports(self) -> list[int]:
        """The workers that write the store."""
        return [port for name, port in self.ports.items() if name != "processor"]

    @property
    def groups(self) -> tuple[str, str]:
        t = Topics(self.prefix)
        return (
            (t.group("all"),) * 2
            if "all" in self.roles
            else (t.group("processor"), t.group("sink"))
        )  # type: ignore[return-value]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def progress(port: int, token: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/tracker/progress")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as r:
        result: dict[str, Any] = json.load(r)
        return result


def kafka_login(role: Principal) -> KafkaLogin | None:
    """The bench logs in as the tracker would: the intake produces, the worker reads (from
    TRACKER_KAFKA_USER/PASSWORD or the credentials folder, as every tracker process)."""
    return login_for(role)


def producer_batching() -> dict[str, int]:
    """The producer's batching, as the intake being stood in for sends: `tracker serve` does not
    linger and lets records handed over while a request is on its way fill batches of up to
    256 KiB (tracker/serve/kafka_backend.py); `tracker post --direct` lingers 5 ms in batches of
    up to 256 KiB too (streams/post.py `Poster`)."""
    if INTAKE["signer"] is not None:
        return {"linger_ms": 0, "max_batch_size": SERVE_MAX_BATCH_BYTES}
    return {"linger_ms": 5, "max_batch_size": POST_BATCH_BYTES}


async def produce_all(bootstrap: str, topic: str, records: list[Produced]) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        **producer_batching(),
        **aiokafka_kwargs(kafka_login("intake")),
    )
    await producer.start()
    sent, pending = 0, []
    try:
        for value, key, partitions, headers in records:
            for p in partitions:
                sending = producer.send(topic, value, key=key, partition=p, headers=headers)
                pending.append(await sending)
                sent += 1
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def throughput(
    bootstrap: str,
    work: Path,
    roles: str,
    scale: float,
    count: int = 1,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    prefix = f"bench-tp-{os.getpid()}-{time.monotonic_ns()}"
    asyncio.run(
        ensure_topics(
            bootstrap, Topics(prefix), 4, login=kafka_login("worker"), admin=local_admin()
        )
    )
    lines = list(demo.lines(demo.generate(REGISTRY, seed=7, years=(2018, 2020), scale=scale)))
    records = keyed(lines, 4)
    workers = Workers(bootstrap, prefix, work / prefix, roles, count)
    workers.start()
    try:
        # the workers' CPU from here (started, in the group) until every record is stored
        before = [cpu_s(proc.pid) or 0.0 for proc in workers.procs]
        broker_before, bench_before = cpu_s(broker_pid), time.process_time()
        started = time.monotonic()
        sent = asyncio.run(produce_all(bootstrap, Topics(prefix).events, records))
        produced = time.monotonic() - started
        drained = wait_drained(
            bootstrap, Topics(prefix), workers.groups, 1800, 0.1, login=kafka_login("worker")
        )
        assert asyncio.run(drained)
        elapsed = time.monotonic() - started
        broker_after, bench_after = cpu_s(broker_pid), time.process_time()
        spent = [
            round((cpu_s(proc.pid) or 0.0) - b, 2)
            for proc, b in zip(workers.procs, before, strict=True)
        ]
        sinks = [progress(p, workers.token)["sink"] for p in workers.sink_ports]
        rows = sum(sink["records"] for sink in sinks)
        writes = sum(sink["batches"] for sink in sinks)
    finally:
        workers.stop()
    return {
        "events": len(lines),
        "records": sent,
        "workers": len(workers.members),
        "rows_written": rows,
        "store_writes": writes,
        "produce_s": round(produced, 2),
        "end_to_end_s": round(elapsed, 2),
        "events_per_s": round(len(lines) / elapsed),
        "records_per_s": round(sent / elapsed),
        # user + sys of the worker processes (every thread: chDB's too), start-up left out
        "worker_cpu_s": spent,
        "worker_cpu_us_per_event": round(sum(spent) / len(lines) * 1e6, 1),
        # the rest of the box's CPU in the same span: the broker, and this process (the
        # producer, then the drain checks)
        "broker_cpu_s": cpu_between(broker_before, broker_after),
        "bench_cpu_s": round(bench_after - bench_before, 2),
    }


def cpu_s(pid: int | None) -> float | None:
    """A process's CPU seconds so far (user + system, all its threads), from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_between(before: float | None, after: float | None) -> float | None:
    """The CPU seconds a process spent between two `cpu_s` readings (None: not read)."""
    return None if before is None or after is None else round(after - before, 2)


def backlog(
    bootstrap: str, work: Path, scale: float, count: int, broker_pid: int | None
) -> dict[str, Any]:
    """`count` workers consume the whole stream, produced while they were frozen (module
    docstring): thaw -> every record stored, and the CPU each process spent meanwhile."""
    prefix = f"bench-bl{count}-{os.getpid()}-{time.monotonic_ns()}"
    topics = Topics(prefix)
    asyncio.run(
        ensure_topics(bootstrap, topics, 4, login=kafka_login("worker"), admin=local_admin())
    )
    lines = list(demo.lines(demo.generate(REGISTRY, seed=7, years=(2018, 2020), scale=scale)))
    records = keyed(lines, 4)
    workers = Workers(
        bootstrap, prefix, work / prefix, "all", count, extra=("--session-timeout-s", "60")
    )
    workers.start()
    try:
        for proc in workers.procs:
            proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        sent = asyncio.run(produce_all(bootstrap, topics.events, records))
        produced = time.monotonic() - started
        pids = [proc.pid for proc in workers.procs]
        before = [cpu_s(pid) or 0.0 for pid in pids]
        broker_before = cpu_s(broker_pid)
        thawed = time.monotonic()
        for proc in workers.procs:
            proc.send_signal(signal.SIGCONT)
        drained = wait_drained(
            bootstrap, topics, workers.groups, 1800, 0.1, login=kafka_login("worker")
        )
        assert asyncio.run(drained)
        elapsed = time.monotonic() - thawed
        after = [cpu_s(pid) or 0.0 for pid in pids]
        broker_after = cpu_s(broker_pid)
        shares = [progress(p, workers.token)["processed"] for p in workers.sink_ports]
    finally:
        for proc in workers.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        workers.stop()
    spent = [round(b - a, 2) for a, b in zip(before, after, strict=True)]
    # Each worker's input records (its partitions' last offsets + 1). The stream is keyed by
    # root unit, so its partitions are uneven: two workers can be at most this many times as
    # fast as one, if an event costs each the same, since the bigger share takes the longest.
    shares_records = [sum(offset + 1 for offset in s.values()) for s in shares]
    return {
        "events": len(lines),
        "records": sent,
        "workers": count,
        "partitions_per_worker": [len(s) for s in shares],
        "records_per_worker": shares_records,
        "balance_bound": round(sent / max(shares_records), 2),
        "produce_s": round(produced, 2),
        "thaw_to_stored_s": round(elapsed, 2),
        "events_per_s": round(len(lines) / elapsed),
        "records_per_s": round(sent / elapsed),
        "worker_cpu_s": spent,
        "worker_cpu_us_per_event": round(sum(spent) / len(lines) * 1e6, 1),
        "worker_cpu_share_of_wall": [round(c / elapsed, 2) for c in spent],
        "broker_cpu_s": cpu_between(broker_before, broker_after),
    }


def restart(bootstrap: str, work: Path, scale: float) -> dict[str, Any]:
    """Issue 12 item 4: a worker stores the whole stream and stops (SIGTERM: it checkpoints its
    partitions), then starts again and one tick is produced to every partition; the restarted
    worker rebuilds each partition's engine to apply it. Twice: with its checkpoints, and with
    another signing key, so that they are not trusted and it replays from offset 0 (as before
    checkpoints). Start -> the tick stored, records replayed, the rebuilds' own seconds."""
    prefix = f"bench-rs-{os.getpid()}-{time.monotonic_ns()}"
    topics = Topics(prefix)
    asyncio.run(
        ensure_topics(bootstrap, topics, 4, login=kafka_login("worker"), admin=local_admin())
    )
    lines = list(demo.lines(demo.generate(REGISTRY, seed=7, years=(2018, 2020), scale=scale)))
    first = Workers(bootstrap, prefix, work / prefix, "all")
    first.start()
    try:
        sent = asyncio.run(produce_all(bootstrap, topics.events, keyed(lines, 4)))
        drained = wait_drained(
            bootstrap, topics, first.groups, 1800, 0.1, login=kafka_login("worker")
        )
        assert asyncio.run(drained)
    finally:
        first.stop()
    signer_at(None, work / prefix / "other-key")  # makes the key file
    out: dict[str, Any] = {"events": len(lines), "records": sent}
    variants = (
        ("checkpoint", {}),
        ("replay", {"TRACKER_SIGNING_KEY": str(work / prefix / "other-key" / "signing.key")}),
    )
    for i, (name, env) in enumerate(variants):
        again = Workers(bootstrap, prefix, work / prefix, "all", env=env)
        log_file = work / prefix / "all0.log"
        offset = log_file.stat().st_size
        started = time.monotonic()
        again.start()
        try:
            tick = json.dumps(
                {
                    "event_id": f"bench-tick-{i}",
                    "type": "clock.tick",
                    "at": "2020-06-01T00:00:00+08:00",
                }
            )
            asyncio.run(
                produce_all(bootstrap, topics.events, [(tick.encode(), None, [0, 1, 2, 3], None)])
            )
            drained = wait_drained(
                bootstrap, topics, again.groups, 600, 0.1, login=kafka_login("worker")
            )
            assert asyncio.run(drained)
            elapsed = time.monotonic() - started
            seen = progress(next(iter(again.ports.values())), again.token)
            cpu = cpu_s(again.procs[0].pid)
        finally:
            again.stop()
        with log_file.open("rb") as f:
            f.seek(offset)
            log = f.read().decode(errors="replace")
        rebuild_s = sum(
            float(x)
            for x in re.findall(
                r"records replayed \(\d+ of them never processed before\) in ([\d.]+)s", log
            )
        )
        out[name] = {
            "start_to_tick_stored_s": round(elapsed, 2),
            "replayed": seen["replayed"],
            "resumed_from_checkpoints": seen["checkpoints"]["resumed"],
            "rebuild_s": round(rebuild_s, 2),
            "worker_cpu_s": cpu,
        }
    return out


def anchor(kind: str, bootstrap: str, work: Path, scale: float) -> dict[str, Any]:
    """The counting anchor `kind` on the throughput phase's records (bench/count_anchor.py)."""
    prefix = f"bench-{kind}-{os.getpid()}-{time.monotonic_ns()}"
    topics = Topics(prefix)
    asyncio.run(ensure_topics(bootstrap, topics, 4, login=local_admin(), admin=local_admin()))
    lines = list(demo.lines(demo.generate(REGISTRY, seed=7, years=(2018, 2020), scale=scale)))
    records = keyed(lines, 4)
    expected = sum(len(ps) for _, _, ps, _ in records)
    ready, done = work / f"{prefix}.ready", work / f"{prefix}.done"
    script = Path(__file__).with_name("count_anchor.py")
    cmd = [sys.executable, str(script), kind, "--bootstrap", bootstrap, "--topic", topics.events]
    cmd += ["--expected", str(expected), "--ready", str(ready), "--done", str(done)]
    with (work / f"{prefix}.log").open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_file(ready, proc, 120)
        started = time.time()
        sent = asyncio.run(produce_all(bootstrap, topics.events, records))
        _wait_file(done, proc, 1800)
        elapsed = float(done.read_text()) - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {
        "records": sent,
        "end_to_end_s": round(elapsed, 2),
        "events_per_s": round(len(lines) / elapsed),
        "records_per_s": round(sent / elapsed),
    }


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the anchor exited ({proc.returncode}); see {path.parent}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {path.name}")
        time.sleep(0.05)


async def paced(bootstrap: str, topic: str, records: list[Produced],
                rate: float, ports: list[int], token: str) -> list[float]:  # fmt: skip
    """Produce at `rate` records/s; return produce -> stored latencies in seconds."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=0,
        **aiokafka_kwargs(kafka_login("intake")),
    )
    await producer.start()
    sent: list[tuple[float, asyncio.Future[Any]]] = []
    done = asyncio.Event()
    latencies: list[float] = []

    async def watch() -> None:
        located: list[tuple[float, int, int]] = []
        index = 0
        while not done.is_set() or index < len(sent) or located:
            while index < len(sent) and sent[index][1].done():
                meta = sent[index][1].result()
                located.append((sent[index][0], meta.partition, meta.offset))
                index += 1
            stored: dict[int, int] = {}
            for port in ports:
                seen = (await asyncio.to_thread(progress, port, token))["sink"]["stored_through"]
                for p, o in seen.items():
                    stored[int(p)] = max(o, stored.get(int(p), -1))
            now = time.monotonic()
            keep = []
            for t0, p, o in located:
                if stored.get(p, -1) >= o:
                    latencies.append(now - t0)
                else:
                    keep.append((t0, p, o))
            located = keep
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        started = time.monotonic()
        for i, (value, key, partitions, headers) in enumerate(records):
            if (delay := started + i / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            sending = producer.send(topic, value, key=key, partition=partitions[0], headers=headers)
            future = await sending
            sent.append((time.monotonic(), future))
        done.set()
        await asyncio.wait_for(watcher, timeout=300)
    finally:
        await producer.stop()
    return latencies


def latency(
    bootstrap: str, work: Path, roles: str, rate: float, seconds: float, count: int = 1
) -> dict[str, Any]:
    prefix = f"bench-lat-{os.getpid()}-{time.monotonic_ns()}"
    asyncio.run(
        ensure_topics(
            bootstrap, Topics(prefix), 4, login=kafka_login("worker"), admin=local_admin()
        )
    )
    events = demo.generate(REGISTRY, seed=8, years=(2018, 2020), scale=1.0, tick_hours=24)
    lines = list(demo.lines(events))
    # ticks go to all partitions as four records; keep the stream in order, cut to the duration
    records = [(v, k, [p], h) for v, k, ps, h in keyed(lines, 4) for p in ps]
    records = records[: int(rate * seconds)]
    workers = Workers(bootstrap, prefix, work / prefix, roles, count)
    workers.start()
    try:
        got = asyncio.run(
            paced(
                bootstrap, Topics(prefix).events, records, rate, workers.sink_ports, workers.token
            )
        )
    finally:
        workers.stop()
    got.sort()
    return {
        "rate_records_per_s": rate,
        "records": len(records),
        "measured": len(got),
        "p50_ms": round(statistics.median(got) * 1000),
        "p99_ms": round(got[int(len(got) * 0.99) - 1] * 1000),
        "max_ms": round(got[-1] * 1000),
    }


def one_run(
    bootstrap: str, work: Path, args: argparse.Namespace, broker_pid: int | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    phases = args.phases.split(",")
    if "throughput" in phases:
        result["worker"] = throughput(
            bootstrap, work, args.roles, args.scale, broker_pid=broker_pid
        )
    if "scaleout" in phases:  # issue 12 item 5: two workers of one group, disjoint partitions
        one = result["backlog_one"] = backlog(bootstrap, work, args.scale, 1, broker_pid)
        two = result["backlog_two"] = backlog(bootstrap, work, args.scale, 2, broker_pid)
        ratio = two["events_per_s"] / one["events_per_s"]
        result["backlog_ratio"] = {
            "events_per_s": round(ratio, 2),
            # the ratio against what the partitions' sizes allow (`balance_bound`)
            "of_balance_bound": round(ratio / two["balance_bound"], 2),
        }
        # the older measurement: the producer runs while the two workers consume
        result["two_workers"] = throughput(bootstrap, work, "all", args.scale, count=2)
    if "restart" in phases:  # issue 12 item 4
        result["restart"] = restart(bootstrap, work, args.scale)
    if "anchors" in phases:
        result["faust_count"] = anchor("faust", bootstrap, work, args.scale)
        result["aiokafka_count"] = anchor("aiokafka", bootstrap, work, args.scale)
    if "latency" in phases:
        result["latency"] = latency(bootstrap, work, args.roles, args.rate, args.seconds)
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


SUMMARY = (
    ("worker", "events_per_s"),
    ("worker", "records_per_s"),
    ("worker", "worker_cpu_us_per_event"),
    ("worker", "broker_cpu_s"),
    ("worker", "bench_cpu_s"),
    ("two_workers", "events_per_s"),
    ("backlog_one", "events_per_s"),
    ("backlog_two", "events_per_s"),
    ("backlog_ratio", "events_per_s"),
    ("backlog_two", "balance_bound"),
    ("backlog_ratio", "of_balance_bound"),
    ("backlog_one", "worker_cpu_us_per_event"),
    ("backlog_two", "worker_cpu_us_per_event"),
    ("backlog_one", "broker_cpu_s"),
    ("restart", "checkpoint.start_to_tick_stored_s"),
    ("restart", "replay.start_to_tick_stored_s"),
    ("restart", "checkpoint.rebuild_s"),
    ("restart", "replay.rebuild_s"),
    ("restart", "checkpoint.replayed"),
    ("restart", "replay.replayed"),
    ("backlog_two", "broker_cpu_s"),
    ("faust_count", "events_per_s"),
    ("faust_count", "records_per_s"),
    ("aiokafka_count", "records_per_s"),
    ("latency", "p50_ms"),
    ("latency", "p99_ms"),
    ("latency", "max_ms"),
)


def _figure(phase: dict[str, Any], path: str) -> Any:
    for name in path.split("."):
        phase = phase[name]
    return phase


def summary(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """min / median / max over the runs of each figure."""
    out: dict[str, list[float]] = {}
    for phase, figure in SUMMARY:
        values = sorted(
            v for r in runs if phase in r and (v := _figure(r[phase], figure)) is not None
        )
        if values:
            out[f"{phase}.{figure}"] = [values[0], statistics.median(values), values[-1]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="an existing broker (default: start one)")
    parser.add_argument("--roles", choices=("all", "split"), default="all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--intake",
        choices=("serve", "direct"),
        default="serve",
        help="records as `tracker serve` produces them (signed envelope headers) or as "
        "`tracker post --direct` does (none: the worker signs each event)",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="demo stream density")
    parser.add_argument("--rate", type=float, default=1000.0, help="latency phase records/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="latency phase duration")
    parser.add_argument(
        "--phases",
        default="throughput,anchors,latency",
        help="comma-separated; also `scaleout`: one and two `all` workers on a backlog, and two "
        "while the producer runs (issue 12, item 5)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="throughput phases run first and not counted, so that the broker's JIT is warm "
        "(default 1)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (worker logs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    broker = None
    try:
        bootstrap = args.bootstrap
        if bootstrap is None:
            port, controller = free_ports(2)
            broker = LocalKafka(
                work / "broker", port=port, controller_port=controller, lib_dir=kafka_lib_cache()
            )
            broker.start(timeout_s=120)
            bootstrap = broker.bootstrap
            # the bench and its workers log in with this broker's logins
            os.environ["TRACKER_KAFKA_CREDENTIALS"] = str(broker.credentials.folder)
        if args.intake == "serve":
            INTAKE["signer"] = signer_at(None, work / "intake")  # a key of its own
        for i in range(args.warmup):
            # A broker's first minute is spent compiling its produce and fetch paths (C2): the
            # first run of a fresh broker produced 3x slower. A user's broker has long been warm.
            warm = throughput(bootstrap, work, args.roles, args.scale)
            print(f"warm-up {i + 1} (not counted): {json.dumps(warm)}", file=sys.stderr, flush=True)
        runs = []
        for i in range(args.runs):
            broker_pid = None if broker is None else broker._pid()
            runs.append(one_run(bootstrap, work, args, broker_pid))
            print(f"run {i + 1}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
        result = {
            "roles": args.roles,
            "intake": args.intake,
            "runs": runs,
            "min_median_max": summary(runs),
        }
        print(json.dumps(result, indent=2))
        return 0
    finally:
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
