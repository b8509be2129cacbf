"""Benchmark: the pure engine's CPU time on one core (issue 12, target 2: 100,000 events/s).

    taskset -c 0 python bench/engine_cpu_bench.py                # 200k events, 3 runs
    python bench/engine_cpu_bench.py --profile /tmp/engine.prof  # and a cProfile of one more run

The stream is engine_bench.py's (the seeded demo generator, seed 7, the three assessed years at
20x the province's density, cut at 200,000 events): parsed once, up front; each run applies it to
a fresh engine. The figure is events / process CPU seconds of the `apply` loop alone, so that
other processes on a shared box slow the wall clock but not the figure; the wall clock and the
load average are printed beside it. The cyclic collector is off, as in a `tracker ingest`
process (tracker/cli.py `main`); `--collector` runs it as the other commands do (`tune_gc`).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine import Engine
from schemas.events import Event, parse_event
from tracker import demo
from tracker.cli import tune_gc


def events(count: int, seed: int, scale: float) -> list[Event]:
    registry = load_registry(DEMO_REGISTRY)
    stream = demo.generate(registry, seed=seed, years=(2017, 2018, 2020), scale=scale)
    return [parse_event(line) for line in itertools.islice(demo.lines(stream), count)]


def one_run(stream: list[Event], engine: Engine) -> tuple[float, float, int]:
    """CPU seconds and wall seconds of applying `stream` to a fresh `engine`, and its entries."""
    apply = engine.apply
    entries = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for event in stream:
        entries += len(apply(event).entries)
    return time.process_time() - cpu, time.perf_counter() - wall, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE", help="also profile one run into FILE")
    parser.add_argument(
        "--collector",
        action="store_true",
        help="run the cyclic collector as a worker or a server does (tracker/cli.py tune_gc); "
        "by default it is off, as in a `tracker ingest` process",
    )
    args = parser.parse_args()
    if args.collector:
        tune_gc()
    else:
        gc.disable()  # as `tracker ingest` runs (tracker/cli.py main)
    stream = events(args.events, args.seed, args.scale)
    collector = "on (tune_gc)" if args.collector else "off, as in `tracker ingest`"
    print(
        f"stream: {len(stream):,} events (seed {args.seed}, scale {args.scale}); collector {collector}"
    )
    print(f"cores allowed: {sorted(os.sched_getaffinity(0))}; load before {os.getloadavg()}")
    registry, books, calendar = load_registry(DEMO_REGISTRY), load_rulebooks(), official_calendar()
    rates = []
    for run in range(1, args.runs + 1):
        cpu, wall, entries = one_run(stream, Engine(registry, books, calendar))
        rates.append(len(stream) / cpu)
        print(
            f"run {run}: {rates[-1]:>9,.0f} events/s of CPU ({cpu:.2f} s CPU, {wall:.2f} s wall,"
            f" {entries:,} ledger entries; load {os.getloadavg()[0]:.2f})"
        )
    print(
        f"engine: min / median / max {min(rates):,.0f} / {statistics.median(rates):,.0f} /"
        f" {max(rates):,.0f} events/s of CPU; load after {os.getloadavg()}"
    )
    if args.profile:
        engine = Engine(registry, books, calendar)
        profiler = cProfile.Profile()
        profiler.enable()
        one_run(stream, engine)
        profiler.disable()
        profiler.dump_stats(args.profile)
        print(f"profile of one more run: {args.profile}")


if __name__ == "__main__":
    main()
