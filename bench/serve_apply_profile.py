"""Profile: the embedded backend of `tracker serve` without HTTP, its door and its applier apart.

    python bench/serve_apply_profile.py                   # CPU per event of the door and applier
    python bench/serve_apply_profile.py --profile 25      # and the applier's cProfile, top 25

The same code path as `tracker serve` without a broker (`open_embedded` on a chDB store in a
temp dir, the intake journal beside it): the centre's share of the seeded demo stream (as
bench/serve_bench.py posts it) submitted in requests of --batch events from this thread, which
is the door, while the service's applier thread applies the journal. Printed: the CPU time of
each thread (time.thread_time) per event, and with --profile the applier's cProfile (enabled
inside the applier thread around each applied group), so that two commits can be compared in
the same session (run it from each one's tree, with this tree's venv).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.getcwd())  # the tree it is run from (another commit's, to compare)

from bench.serve_bench import centre_events, tagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--profile", type=int, default=0, metavar="TOP")
    parser.add_argument("--singles", type=int, default=300, help="posted at --rate in the burst")
    parser.add_argument("--rate", type=float, default=100.0, help="single posts per second")
    parser.add_argument("--switch-ms", type=float, default=0, help="sys.setswitchinterval")
    args = parser.parse_args()
    if args.switch_ms:
        sys.setswitchinterval(args.switch_ms / 1000)

    work = Path(tempfile.mkdtemp(prefix="serve-apply-profile-", dir="/tmp"))
    os.environ["TRACKER_DATA_DIR"] = str(work / "data")
    from config.registry import DEMO_REGISTRY
    from tracker.principals import Principal
    from tracker.serve.backends import open_embedded
    from tracker.serve.embedded import EmbeddedService

    events = tagged(centre_events(args.events + args.singles, args.scale), "p")
    every = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in events]
    raws, singles = every[: args.events], every[args.events :]
    principal = Principal("bench-centre", "centre", None)

    profile = cProfile.Profile()
    applier_cpu = [0.0]
    original = EmbeddedService._apply_group

    def measured(self: EmbeddedService, group: Any) -> Any:
        started = time.thread_time()
        if args.profile:
            profile.enable()
        try:
            return original(self, group)
        finally:
            if args.profile:
                profile.disable()
            applier_cpu[0] += time.thread_time() - started

    EmbeddedService._apply_group = measured  # type: ignore[method-assign]
    service = open_embedded(f"chdb://{work / 'chdb'}", DEMO_REGISTRY)
    try:
        applier_cpu[0] = 0.0  # what restoring an empty store cost is not the events'
        wall, door_cpu, cpu = time.perf_counter(), time.thread_time(), time.process_time()
        for start in range(0, len(raws), args.batch):
            service.submit(raws[start : start + args.batch], principal)
        door_cpu = time.thread_time() - door_cpu
        door_wall = time.perf_counter() - wall
        latencies = single_posts(service, singles, principal, args.rate)
        service.settle(600)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    finally:
        service.close()
    n = len(raws)
    print(
        json.dumps(
            {
                "events": n,
                "wall_s": round(wall, 2),
                "door_events_per_s": round(n / door_wall),
                "events_per_s": round(n / wall),
                "process_cpu_us_per_event": round(cpu / n * 1e6, 1),
                "door_cpu_us_per_event": round(door_cpu / n * 1e6, 1),
                "applier_cpu_us_per_event": round(applier_cpu[0] / n * 1e6, 1),
                "groups": service.groups,
                "burst_single_ms": percentiles(latencies),
                "load": os.getloadavg(),
            }
        )
    )
    if args.profile:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())


def single_posts(service: Any, raws: list[str], principal: Any, rate: float) -> list[float]:
    """One event a request at `rate`, open loop (latency from each one's scheduled time), while
    the applier still applies the burst: what a single post waits for behind it."""
    out, start = [], time.perf_counter()
    for i, raw in enumerate(raws):
        due = start + i / rate
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        service.submit([raw], principal)
        out.append((time.perf_counter() - due) * 1000)
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(at(0.5), 1), "p99": round(at(0.99), 1), "max": round(ordered[-1], 1)}


if __name__ == "__main__":
    main()
