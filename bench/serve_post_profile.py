"""Profile: where the server's CPU of a single post goes, `tracker serve` against the anchor.

    python bench/serve_post_profile.py                      # Kafka backend (own broker)
    python bench/serve_post_profile.py --backend embedded   # the embedded one
    python bench/serve_post_profile.py --top 40             # and the top functions by own CPU

Starts each server as bench/serve_bench.py does (`tracker serve` as a user starts it, with four
centre tokens; the anchor: the bare FastAPI/uvicorn app), but inside yappi with its CPU clock,
which profiles every thread (the event loop, the worker threads a request is handed to, the
producer's loop). Posts --warm events in batches first, as the bench does, then profiles only
the single posts at --rate for --seconds (SIGUSR1 clears the profile before them, SIGUSR2 writes
it after). Prints the server's CPU per post (from /proc: with the profiler's own overhead, so
higher than the bench's) and its breakdown into the intake's steps (the CPU of each step's
function, its callees included, per post), the anchor's beside it. The shares matter, not the
microseconds: yappi slows pure-Python code more than C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, os.getcwd())  # the tree it is run from (another commit's, to compare)

from bench.serve_bench import (
    DEMO_REGISTRY,
    Server,
    centre_events,
    cpu_s,
    free_ports,
    kafka_lib_cache,
    latency,
    make_tokens,
    serve_anchor,
    tagged,
    throughput,
)

# The intake's steps: (label, file suffix, function name); CPU of the function with its callees.
STEPS = [
    ("token check (current_principal)", "tracker/serve/deps.py", "current_principal"),
    ("rate limit", "tracker/serve/limits.py", "RateLimiter.take"),
    ("body read", "tracker/serve/bodies.py", "read_body"),
    ("body parse (split_body)", "tracker/serve/bodies.py", "split_body"),
    ("hand-over to a worker thread", "starlette/concurrency.py", "run_in_threadpool"),
    ("submit, all of it (worker thread)", "tracker/serve/kafka_backend.py", "KafkaService.submit"),
    ("  contract checks (read_lines)", "tracker/serve/service.py", "Service.read_lines"),
    ("  authorization (authorize)", "tracker/serve/service.py", "Service.authorize"),
    ("  envelope", "tracker/serve/service.py", "Service.envelope"),
    ("  signing (signed_batch_headers)", "tracker/serve/signing.py", "signed_batch_headers"),
    ("  hand to producer (_send)", "tracker/serve/kafka_backend.py", "KafkaService._send"),
    ("  wait for the broker (_confirm)", "tracker/serve/kafka_backend.py", "KafkaService._confirm"),
    # a small request's whole submit on the producer's loop (`submit_async`), a big one's too
    (
        "submit on the producer's loop (_pass)",
        "tracker/serve/kafka_backend.py",
        "KafkaService._pass",
    ),
    ("submit (embedded)", "tracker/serve/embedded.py", "EmbeddedService.submit"),
    (
        "producer: send_all (Kafka loop)",
        "tracker/serve/kafka_backend.py",
        "EnvelopePoster.send_all",
    ),
    ("producer: aiokafka sender", "aiokafka/producer/sender.py", "Sender._sender_routine"),
    (
        "producer: aiokafka sender requests",
        "aiokafka/producer/sender.py",
        "SendProduceReqHandler.do",
    ),
    ("response (JSONResponse)", "starlette/responses.py", "JSONResponse.__init__"),
    ("route + dependencies (FastAPI)", "fastapi/routing.py", "get_request_handler.<locals>.app"),
    ("ASGI app (FastAPI.__call__)", "fastapi/applications.py", "FastAPI.__call__"),
    (
        "uvicorn h11 parsing (data_received)",
        "uvicorn/protocols/http/h11_impl.py",
        "H11Protocol.data_received",
    ),
    (
        "uvicorn httptools parsing (data_received)",
        "uvicorn/protocols/http/httptools_impl.py",
        "HttpToolsProtocol.data_received",
    ),
    ("access log", "logging/__init__.py", "Logger.info"),
]


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """User and system CPU time (s) of each thread of a process, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def serve_profiled(out: str, argv: list[str]) -> None:
    """The server process: yappi (CPU clock, every thread) around `tracker serve` or the anchor
    (without yappi when `out` is "-": the threads' CPU from /proc only)."""
    if out == "-":
        if argv[0] == "--anchor":
            serve_anchor(int(argv[1]))
            return
        from tracker.cli import main

        sys.exit(main(argv))
    import yappi

    yappi.set_clock_type("cpu")

    def dump(signum: int, frame: Any) -> None:
        stats = yappi.get_func_stats()
        funcs = {}
        for f in stats:
            name = f"{f.module}::{f.name}"
            ttot, tsub, ncall = funcs.get(name, (0.0, 0.0, 0))
            funcs[name] = (ttot + f.ttot, tsub + f.tsub, ncall + f.ncall)
        threads = [(t.name, t.ttot) for t in yappi.get_thread_stats()]
        Path(out).write_text(json.dumps({"funcs": funcs, "threads": threads}))

    signal.signal(signal.SIGUSR1, lambda signum, frame: yappi.clear_stats())
    signal.signal(signal.SIGUSR2, dump)
    yappi.start(builtins=False, profile_threads=True)
    if argv[0] == "--anchor":
        serve_anchor(int(argv[1]))
        return
    from tracker.cli import main

    sys.exit(main(argv))


def step_cpu(funcs: dict[str, list[float]], suffix: str, name: str) -> float:
    """The CPU (s) of a function with its callees: yappi's ttot, summed over its entries (a
    recursive or re-entered coroutine counts once per entry; none of the steps recurse)."""
    return sum(
        v[0]
        for k, v in funcs.items()
        if k.split("::")[0].endswith(suffix) and k.split("::")[1] == name
    )


def profile_one(
    name: str, cmd: list[str], env: dict[str, str], work: Path, tokens: list[str], args: Any
) -> dict[str, Any]:
    (port,) = free_ports(1)
    out = work / f"{name}-profile.json"
    if args.no_yappi:
        out = Path("-")
    argv = ["--anchor", str(port)] if name == "anchor" else [*cmd, "--port", str(port)]
    server_cmd = [sys.executable, __file__, "--serve-profiled", str(out), "--", *argv]
    server = Server(name, server_cmd, env, port, work / f"{name}.log")
    events = tagged(centre_events(args.warm + args.posts, args.scale), f"p{uuid.uuid4().hex[:6]}")
    try:
        asyncio.run(throughput(server.base, tokens[0], events[: args.warm], 500, 1))
        if not args.no_yappi:
            server.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        before, threads_before = cpu_s(server.proc.pid), thread_cpu(server.proc.pid)
        if args.closed:
            lat = closed_loop(server.base, tokens, events[args.warm :])
        else:
            lat = asyncio.run(latency(server.base, tokens, events[args.warm :], args.rate, 0))
        cpu = cpu_s(server.proc.pid) - before
        threads_after = thread_cpu(server.proc.pid)
        if args.no_yappi:
            return {
                "server_cpu_us_per_post_proc": round(cpu / args.posts * 1e6, 1),
                "threads_user_sys_us_per_post": by_thread(
                    server.proc.pid, threads_before, threads_after, args.posts
                ),
                "latency": lat,
            }
        server.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 120
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # written whole
    finally:
        server.stop()
    doc = json.loads(out.read_text())
    posts = max(1, args.posts)
    steps = {
        label: round(step_cpu(doc["funcs"], suffix, fn) / posts * 1e6, 1)
        for label, suffix, fn in STEPS
    }
    threads: dict[str, float] = {}
    for tname, ttot in doc["threads"]:
        key = "worker threads" if "Thread" in tname and tname != "_MainThread" else tname
        threads[key] = threads.get(key, 0.0) + ttot
    top = sorted(doc["funcs"].items(), key=lambda kv: -kv[1][1])[: args.top]
    return {
        "server_cpu_us_per_post_proc": round(cpu / posts * 1e6, 1),
        "profiled_cpu_us_per_post": round(sum(threads.values()) / posts * 1e6, 1),
        "threads_us_per_post": {k: round(v / posts * 1e6, 1) for k, v in threads.items()},
        "steps_us_per_post": {k: v for k, v in steps.items() if v},
        "latency": lat,
        "top_own_cpu_us_per_post": [(k, round(v[1] / posts * 1e6, 1), v[2]) for k, v in top],
    }


def closed_loop(base: str, tokens: list[str], events: list[dict[str, Any]]) -> dict[str, Any]:
    """One post at a time on one connection: the server's CPU per post without the extra work
    of a queue (new connections, more wake-ups), steadier on a shared box than the open loop."""
    import httpx

    statuses: dict[str, int] = {}
    failures: list[str] = []
    poster: dict[str, int] = {}  # a retraction goes with its target's poster (as the bench)
    with httpx.Client(base_url=base, timeout=60) as client:
        started = time.perf_counter()
        for i, item in enumerate(events):
            # under the four tokens' rate limit (50/s each): never more than 150 posts a second
            time.sleep(max(0.0, started + i / 150 - time.perf_counter()))
            k = i % len(tokens)
            if item["type"] == "event.retracted":
                k = poster.get(item["target_event_id"], 0)
            poster[item["event_id"]] = k
            headers = {"Authorization": f"Bearer {tokens[k]}"}
            headers["Content-Type"] = "application/json"
            answer = client.post("/v1/events", content=json.dumps(item), headers=headers)
            statuses[str(answer.status_code)] = statuses.get(str(answer.status_code), 0) + 1
            if answer.status_code != 200 and len(failures) < 3:
                failures.append(f"{answer.status_code} {answer.text[:300]} <- {item}")
        wall = time.perf_counter() - started
    return {
        "requests": len(events),
        "statuses": statuses,
        "mean_ms": wall / len(events) * 1e3,
        "first_failures": failures,
    }


def by_thread(
    pid: int,
    before: dict[int, tuple[float, float]],
    after: dict[int, tuple[float, float]],
    posts: int,
) -> list[tuple[str, float, float]]:
    """(thread, user us, system us) per post, the busiest first; the main thread (the event
    loop) named, the others by id."""
    rows = []
    for tid, (user, system) in after.items():
        u0, s0 = before.get(tid, (0.0, 0.0))
        name = "main (event loop)" if tid == pid else f"thread {tid}"
        rows.append(
            (name, round((user - u0) / posts * 1e6, 1), round((system - s0) / posts * 1e6, 1))
        )
    rows.sort(key=lambda r: -(r[1] + r[2]))
    return [r for r in rows if r[1] + r[2] > 0]


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-profiled":
        serve_profiled(sys.argv[2], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="kafka", choices=["kafka", "embedded"])
    parser.add_argument("--warm", type=int, default=5_000, help="events posted in batches first")
    parser.add_argument("--posts", type=int, default=2_000, help="single posts profiled")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument(
        "--no-yappi", action="store_true", help="no profiler: the threads' CPU from /proc only"
    )
    parser.add_argument(
        "--closed", action="store_true", help="one post at a time (not at --rate): CPU per post"
    )
    parser.add_argument("--top", type=int, default=0, help="functions by own CPU to print")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="serve-post-profile-", dir="/tmp"))
    env = {
        **os.environ,
        "TRACKER_DATA": str(work / "data"),
        "TRACKER_PRINCIPALS": str(work / "principals.json"),
    }
    broker = None
    cmd = [
        "serve",
        "--units",
        str(DEMO_REGISTRY),
        "--store",
        f"chdb://{work / 'chdb'}",
    ]
    try:
        if args.backend == "kafka":
            from streams.broker import LocalKafka

            port, controller = free_ports(2)
            broker = LocalKafka(
                work / "kafka", port=port, controller_port=controller, lib_dir=kafka_lib_cache()
            )
            broker.start(timeout_s=180)
            env["TRACKER_KAFKA_CREDENTIALS"] = str(broker.credentials.folder)
            cmd += [
                "--bootstrap",
                broker.bootstrap,
                "--topic-prefix",
                f"prof{uuid.uuid4().hex[:6]}",
            ]
        tokens = make_tokens(env, 4)
        result = {
            "load_before": os.getloadavg(),
            "anchor": profile_one("anchor", [], env, work, tokens, args),
            args.backend: profile_one(args.backend, cmd, env, work, tokens, args),
            "load_after": os.getloadavg(),
        }
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
