"""Benchmark: `tracker serve` end to end, as a user runs it, against an anchor in the same run.

    python bench/serve_bench.py                       # embedded backend (chDB) and the anchor
    python bench/serve_bench.py --backends embedded,kafka   # also the Kafka backend (own broker)

Each run starts every server afresh as a subprocess: `tracker serve` exactly as a user would
(`tracker principals add --role centre` tokens in a real principals file, a chDB store in a
temp dir, default limits), and the ANCHOR: a minimal uvicorn + FastAPI app, run with the same
uvicorn settings, that reads the same body, parses it as JSON and answers 200 without doing
anything else. The anchor shows the HTTP stack's ceiling on this box; the same client drives
both. Two phases per server:

1. throughput: the centre's share of the seeded demo stream (notices, findings, warnings,
   incidents and retractions; the units' feedback and the ticker's ticks are other principals'),
   posted in JSON arrays of --batch events over --clients keep-alive connections; events/s =
   events answered 200 / time from the first send to the last answer.
2. latency: single-event posts at a fixed --rate (open loop: each request has a scheduled send
   time, and its latency is measured from that time, so a stall shows up in every request it
   delays); p50 / p99 / max over --seconds, after one second of warm-up. The posts go
   round-robin through four centre tokens, as several posters would, so that no principal is
   over the default rate limit (50 requests/s each).

The embedded backend answers a post once it is in its intake journal and applies the journal
afterwards, so phase 2 runs while it is still applying phase 1's events. With --settle it waits
between the phases until a read is answered (reads wait until everything accepted before them
is applied) and reports that time as `caught_up_s`.

Event ids are unique per run and server (a prefix), so nothing is a duplicate. Three runs by
default; min / median / max of each figure are printed at the end, and the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from config.registry import DEMO_REGISTRY, load_registry
from tests.integration.kafka_fixture import free_ports, kafka_lib_cache
from tracker import demo
from tracker.serve.authz import CENTRE_TYPES

TOKENS = 4  # centre principals the latency phase posts through, round-robin
CENTRE_POSTS = CENTRE_TYPES | {"event.retracted"}


def anchor_app() -> Any:
    """The anchor: the same HTTP stack, the same body read and parsed, nothing else done."""
    app = FastAPI()

    @app.post("/v1/events")
    async def post_events(request: Request) -> JSONResponse:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"detail": "no token"}, status_code=401)
        doc = json.loads(await request.body())
        items = doc if isinstance(doc, list) else [doc]
        return JSONResponse(
            {"accepted": len(items), "duplicates": 0, "rejected": [], "backend": "anchor"}
        )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "backend": "anchor"}

    return app


def serve_anchor(port: int) -> None:
    import uvicorn

    # the settings `tracker serve` runs uvicorn with (tracker/serve_cli.py)
    uvicorn.run(anchor_app(), host="127.0.0.1", port=port, log_level="info", timeout_keep_alive=5)


# -- events --------------------------------------------------------------------------------------


def centre_events(count: int, scale: float) -> list[dict[str, Any]]:
    """The first `count` events of the demo stream that the province's centre posts."""
    registry = load_registry(DEMO_REGISTRY)
    out: list[dict[str, Any]] = []
    for event in demo.generate(registry, years=(2018,), scale=scale):
        if event["type"] in CENTRE_POSTS:
            out.append(dict(event))
            if len(out) >= count:
                return out
    raise SystemExit(f"the demo stream at --scale {scale} has fewer than {count} centre events")


def tagged(events: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """The events with ids unique to this run and server (retractions follow their targets)."""
    out = []
    for event in events:
        event = {**event, "event_id": f"{tag}-{event['event_id']}"}
        if event["type"] == "event.retracted":
            event["target_event_id"] = f"{tag}-{event['target_event_id']}"
        out.append(event)
    return out


def body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events, ensure_ascii=False, separators=(",", ":")).encode()


# -- servers -------------------------------------------------------------------------------------


class Server:
    """One server process on a free loopback port, its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log: Path):
        self.name, self.port, self.log = name, port, log
        self.base = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited {self.proc.returncode}: see {log}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start: see {log}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux): steadier than
    wall-clock figures on a shared box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sampled(server: Server, out_dir: str, work: Path, name: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the server (every thread, without pausing it) during the latency phase:
    its collapsed stacks, one file per server and run, to break the CPU of a post down."""
    out = Path(out_dir) / f"{name}-{work.name}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    cmd = [spy, "record", "--pid", str(server.proc.pid), "--format", "raw", "--output", str(out)]
    cmd += ["--rate", "500", "--threads", "--nonblocking"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached before the first post
    return proc


def tracker_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tracker", *args]


def make_tokens(env: dict[str, str], count: int) -> list[str]:
    tokens = []
    for i in range(count):
        made = subprocess.run(
            tracker_cmd("principals", "add", "--role", "centre", "--name", f"bench {i}"),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        tokens.append(made.stdout.strip())
    return tokens


# -- the client ----------------------------------------------------------------------------------


async def throughput(
    base: str, token: str, events: list[dict[str, Any]], batch: int, clients: int
) -> dict[str, Any]:
    bodies = [body(events[i : i + batch]) for i in range(0, len(events), batch)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    counts = {"answered": 0, "accepted": 0, "rejected": 0, "duplicates": 0}
    failures: list[str] = []
    queue: Iterator[bytes] = iter(bodies)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def worker() -> None:
            for content in queue:
                answer = await client.post("/v1/events", content=content, headers=headers)
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                    continue
                doc = answer.json()
                counts["answered"] += doc["accepted"] + doc["duplicates"] + len(doc["rejected"])
                counts["accepted"] += doc["accepted"]
                counts["duplicates"] += doc["duplicates"]
                counts["rejected"] += len(doc["rejected"])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {
        **counts,
        "requests": len(bodies),
        "failed_requests": len(failures),
        "first_failures": failures[:3],
        "seconds": round(elapsed, 3),
        "events_per_s": round(counts["answered"] / elapsed, 1),
    }


async def latency(
    base: str, tokens: list[str], events: list[dict[str, Any]], rate: float, warmup: int
) -> dict[str, Any]:
    """Open loop: request i is due at start + i / rate whatever became of the others."""
    bodies = [json.dumps(e, ensure_ascii=False).encode() for e in events]
    # round-robin, but a retraction goes with its target's poster (a centre may retract only
    # what it posted; the throughput phase posted with the first token)
    poster: dict[str, int] = {}
    which = []
    for i, event in enumerate(events):
        k = (
            poster.get(event.get("target_event_id", ""), 0)
            if event["type"] == "event.retracted"
            else i % len(tokens)
        )
        poster[event["event_id"]] = k
        which.append(k)
    heads = [{"Authorization": f"Bearer {t}", "Content-Type": "application/json"} for t in tokens]
    results: list[tuple[int, float, int]] = []  # (index, latency s, status)
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
    # The load generator's own pauses must not count as the server's latency: a full collection
    # of this process's pending requests took 83-107 ms (a gc.callbacks probe), and every post
    # due in it was measured late, the anchor's too. So the client collects nothing while it
    # times; what it makes in that window (~3,000 requests) is freed after.
    gc.collect()
    gc.freeze()
    gc.disable()
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.2

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                answer = await client.post("/v1/events", content=bodies[i], headers=heads[which[i]])
                status = answer.status_code
            except httpx.HTTPError:
                status = 0
            results.append((i, loop.time() - due, status))

        try:
            await asyncio.gather(*(one(i) for i in range(len(bodies))))
        finally:
            gc.enable()
            gc.unfreeze()
    measured = [(lat, status) for i, lat, status in results if i >= warmup]
    lat_ms = sorted(lat * 1000 for lat, _ in measured)
    bad = sum(1 for _, status in measured if status != 200)
    statuses: dict[str, int] = {}
    for _, status in measured:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": len(measured),
        "non_200": bad,
        "statuses": statuses,
        "p50_ms": round(statistics.median(lat_ms), 2),
        "p99_ms": round(lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))], 2),
        "max_ms": round(lat_ms[-1], 2),
    }


async def caught_up(base: str, token: str) -> float:
    """Seconds from now until a read is answered: the embedded backend answers a read once
    everything accepted before it is applied (its journal drained into the store)."""
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        while time.perf_counter() - start < 600:
            answer = await client.get("/v1/status", headers={"Authorization": f"Bearer {token}"})
            if answer.status_code == 200:
                break
    return round(time.perf_counter() - start, 2)


# -- a run ---------------------------------------------------------------------------------------


def one_server(
    name: str,
    server_cmd: list[str],
    env: dict[str, str],
    port: int,
    work: Path,
    tokens: list[str],
    events: list[dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    server = Server(name, server_cmd, env, port, work / f"{name}.log")
    try:
        bulk, single = events[: args.events], events[args.events :]
        cpu_before = cpu_s(server.proc.pid)
        out: dict[str, Any] = {
            "throughput": asyncio.run(
                throughput(server.base, tokens[0], bulk, args.batch, args.clients)
            )
        }
        # the server's CPU per event answered (the embedded backend's applier keeps working
        # after the answers: its share of that is not in this figure)
        cpu = cpu_s(server.proc.pid) - cpu_before
        answered = max(1, out["throughput"]["answered"])
        out["throughput"]["server_cpu_us_per_event"] = round(cpu / answered * 1e6, 1)
        if args.settle and name == "embedded":
            out["caught_up_s"] = asyncio.run(caught_up(server.base, tokens[0]))
        spy = sampled(server, args.py_spy, work, name) if args.py_spy else None
        cpu_before = cpu_s(server.proc.pid)
        out["latency"] = asyncio.run(
            latency(server.base, tokens, single, args.rate, int(args.rate))
        )
        cpu = cpu_s(server.proc.pid) - cpu_before
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its samples when interrupted
            spy.wait(timeout=60)
        out["latency"]["server_cpu_us_per_post"] = round(cpu / max(1, len(single)) * 1e6, 1)
    finally:
        server.stop()
    out["exit_code"] = server.proc.returncode
    return out


def run(
    number: int, events: list[dict[str, Any]], args: argparse.Namespace, bootstrap: str | None
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"serve-bench-{number}-", dir="/tmp"))
    stamp = uuid.uuid4().hex[:6]
    try:
        env = {
            **os.environ,
            "TRACKER_DATA": str(work / "data"),
            "TRACKER_PRINCIPALS": str(work / "principals.json"),
        }
        env.update(args.server_env)
        tokens = make_tokens(env, TOKENS)
        result: dict[str, Any] = {}
        for name in ["anchor", *args.backends]:
            (port,) = free_ports(1)
            if name == "anchor":
                cmd = [sys.executable, __file__, "--serve-anchor", str(port)]
            else:
                cmd = tracker_cmd("serve", "--port", str(port), "--units", str(DEMO_REGISTRY))
                cmd += ["--store", f"chdb://{work / name / 'chdb'}"]
                if name == "kafka":
                    assert bootstrap is not None
                    cmd += ["--bootstrap", bootstrap, "--topic-prefix", f"bench{stamp}{number}"]
            tag = f"r{stamp}{number}{name[0]}"
            result[name] = one_server(name, cmd, env, port, work, tokens, tagged(events, tag), args)
            print(f"run {number} {name}: {json.dumps(result[name])}", flush=True)
        return result
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def spread(values: list[float]) -> str:
    return f"{min(values):,.1f} / {statistics.median(values):,.1f} / {max(values):,.1f}"


def summary(runs: list[dict[str, Any]]) -> None:
    print("\nmin / median / max over", len(runs), "runs")
    for name in runs[0]:
        tp = [r[name]["throughput"]["events_per_s"] for r in runs]
        p50 = [r[name]["latency"]["p50_ms"] for r in runs]
        p99 = [r[name]["latency"]["p99_ms"] for r in runs]
        mx = [r[name]["latency"]["max_ms"] for r in runs]
        cpu_tp = [r[name]["throughput"]["server_cpu_us_per_event"] for r in runs]
        cpu_lat = [r[name]["latency"]["server_cpu_us_per_post"] for r in runs]
        label = "anchor (HTTP stack only)" if name == "anchor" else f"tracker serve, {name}"
        print(f"  {label}")
        print(f"    batches: {spread(tp)} events/s (target >= 10,000 for tracker serve)")
        print(
            f"    server CPU: {spread(cpu_tp)} us per event in batches; {spread(cpu_lat)} us per single post"
        )
        print(
            f"    single posts at rate: p50 {spread(p50)} ms; p99 {spread(p99)} ms; max {spread(mx)} ms"
        )
        bad = sum(
            r[name]["latency"]["non_200"] + r[name]["throughput"]["failed_requests"] for r in runs
        )
        if bad:
            print(f"    NOT 200: {bad} requests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve-anchor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="embedded", help="embedded,kafka")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=50_000, help="events posted in batches")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="keep-alive connections (1 keeps the stream in order)",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="single posts per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="of the latency phase")
    parser.add_argument("--scale", type=float, default=4.0, help="demo stream density")
    parser.add_argument("--server-env", action="append", default=[], metavar="K=V")
    parser.add_argument("--keep", action="store_true", help="keep the work dirs (logs)")
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="sample each server with py-spy during the latency phase (collapsed stacks in DIR)",
    )
    parser.add_argument(
        "--settle",
        action="store_true",
        help="embedded: between the phases, wait until a read is answered (the journal applied)",
    )
    args = parser.parse_args()
    # stopped: still stop the servers and the broker (the `finally` blocks)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    if args.serve_anchor:
        serve_anchor(args.serve_anchor)
        return
    args.backends = [b for b in args.backends.split(",") if b]
    args.server_env = dict(kv.split("=", 1) for kv in args.server_env)
    singles = int(args.rate * (args.seconds + 1))
    events = centre_events(args.events + singles, args.scale)
    broker = None
    broker_dir = None
    bootstrap = None
    if "kafka" in args.backends:
        from streams.broker import LocalKafka

        broker_dir = Path(tempfile.mkdtemp(prefix="serve-bench-kafka-", dir="/tmp"))
        port, controller = free_ports(2)
        broker = LocalKafka(
            broker_dir, port=port, controller_port=controller, lib_dir=kafka_lib_cache()
        )
        broker.start(timeout_s=180)
        bootstrap = broker.bootstrap
        # the servers log in as the intake with the broker's own credentials (SASL/SCRAM)
        os.environ["TRACKER_KAFKA_CREDENTIALS"] = str(broker.credentials.folder)
    try:
        runs = [run(n, events, args, bootstrap) for n in range(1, args.runs + 1)]
    finally:
        if broker is not None:
            broker.stop()
        if broker_dir is not None:
            shutil.rmtree(broker_dir, ignore_errors=True)
    print(
        json.dumps(
            {"args": {k: v for k, v in vars(args).items() if k != "serve_anchor"}, "runs": runs}
        )
    )
    summary(runs)


if __name__ == "__main__":
    main()
