"""Benchmark: the pure engine and `ingest` into chDB on a generated multi-year stream.

    python bench/engine_bench.py --events 1000000

Prints events/s of (a) contract parsing, (b) the pure engine alone, (c) ingest end to end (parse,
engine, batched chDB writes), and the process's resident memory every 10% of the stream, which
shows whether state stays flat as the stream grows (years close one year after they end).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine import Engine
from schemas.events import parse_event
from tracker import demo
from tracker.cli import tune_gc


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stream(count: int, seed: int, scale: float) -> list[str]:
    registry = load_registry(DEMO_REGISTRY)
    years = (2017, 2018, 2020)  # the years the rulebooks assess; denser by `scale`, cut at `count`
    return list(
        itertools.islice(
            demo.lines(demo.generate(registry, seed=seed, years=years, scale=scale)), count
        )
    )


def bench_engine(lines: list[str]) -> None:
    registry, books, calendar = load_registry(DEMO_REGISTRY), load_rulebooks(), official_calendar()
    t0 = time.perf_counter()
    events = [parse_event(line) for line in lines]
    parse_s = time.perf_counter() - t0
    print(f"parse:   {len(lines) / parse_s:>10,.0f} events/s  ({parse_s:.1f} s)")
    del events

    eng = Engine(registry, books, calendar)
    step = max(1, len(lines) // 10)
    engine_s = 0.0
    entries = 0
    print("engine:  memory as the stream grows (events -> RSS MiB, open years):")
    for i, line in enumerate(lines, start=1):
        event = parse_event(line)
        t0 = time.perf_counter()
        out = eng.apply(event)
        engine_s += time.perf_counter() - t0
        entries += len(out.entries)
        if i % step == 0:
            print(f"         {i:>10,} -> {rss_mib():7.0f} MiB   clock {eng.watermark:%Y-%m-%d}")
    print(
        f"engine:  {len(lines) / engine_s:>10,.0f} events/s  ({engine_s:.1f} s, {entries:,} ledger entries)"
    )


def bench_ingest(lines: list[str]) -> None:
    from tracker.ingest import ingest

    registry, books, calendar = (
        load_registry(DEMO_REGISTRY),
        dict(load_rulebooks()),
        official_calendar(),
    )
    with tempfile.TemporaryDirectory(prefix="bench-chdb-") as folder:
        from sinks.clickhouse import ClickHouseStore

        sink = ClickHouseStore(f"chdb://{folder}?database=bench")
        t0 = time.perf_counter()
        summary = ingest(sink, registry, books, calendar, lines, "bench")
        ingest_s = time.perf_counter() - t0
        rows = sink.client.query("SELECT count() FROM bench.ledger").result_rows[0][0]
        sink.close()
    print(
        f"ingest:  {len(lines) / ingest_s:>10,.0f} events/s  ({ingest_s:.1f} s; {summary.as_dict()}, {rows:,} ledger rows)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})  # the target is one core
    tune_gc()  # as the CLI does
    t0 = time.perf_counter()
    lines = stream(args.events, args.seed, args.scale)
    print(
        f"stream:  {len(lines):,} lines generated in {time.perf_counter() - t0:.1f} s (seed {args.seed}, scale {args.scale})"
    )
    bench_engine(lines)
    if not args.skip_ingest:
        bench_ingest(lines)
    print(
        f"peak RSS of the whole run: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
