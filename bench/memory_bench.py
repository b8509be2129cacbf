"""Benchmark: peak memory of a 1M-event run, of one year and of four (issue 12 item 4: memory
bounded by open notices and counting keys, not by events).

    python bench/memory_bench.py                     # the pure engine, both streams
    python bench/memory_bench.py --ingest            # and `tracker ingest` into a fresh chDB store
    python bench/memory_bench.py --trace 15          # the engine's 15 biggest allocation sites

Streams (cached under /tmp/memory-bench): the seeded demo generator (seed 7), one year (2018 at
75x the province's density) and four years (2017-2020 at 19x), each cut at 1,000,000 lines.
Each figure is a child process's peak resident memory (its own and its children's peaks summed,
bench/proc_tree.py: `tracker ingest` has a writer process), so one run cannot
inherit another's: `engine` reads the stream line by line and applies it to the pure engine (as
the CLI does, without the store), `ingest` is `python -m tracker ingest FILE --units ... --store
chdb://FRESH` as a user runs it. Prints the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest_bench import demo_stream, run  # noqa: E402  (wall, CPU, peak RSS of a child)

CACHE = Path("/tmp/memory-bench")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
UNITS = str(ROOT / "config" / "data" / "units-fujian.yaml")
STREAMS = {"one year": ((2018,), 75.0), "four years": ((2017, 2018, 2019, 2020), 19.0)}

ENGINE = """
import sys, time, tracemalloc
from config.holidays import official_calendar
from config.registry import DEMO_REGISTRY, load_registry
from config.rulebooks import load_rulebooks
from engine import Engine
from schemas.events import parse_event
from tracker.cli import tune_gc
tune_gc()
top = int(sys.argv[2])
if top:
    tracemalloc.start()
engine = Engine(load_registry(DEMO_REGISTRY), load_rulebooks(), official_calendar())
apply, n, cpu = engine.apply, 0, time.process_time()
with open(sys.argv[1], encoding="utf-8") as lines:
    for line in lines:
        apply(parse_event(line))
        n += 1
print(f"{n:,} events, {time.process_time() - cpu:.1f} s CPU")
if top:
    for stat in tracemalloc.take_snapshot().statistics("lineno")[:top]:
        print(f"  {stat.size / 2**20:8.1f} MiB {stat.count:>10,} blocks  {stat.traceback[0]}")
"""


def stream(name: str, lines: int) -> Path:
    years, scale = STREAMS[name]
    path = CACHE / f"stream-{lines}-{'-'.join(map(str, years))}-{scale}.jsonl"
    return demo_stream(path, lines, 7, years, scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--ingest", action="store_true", help="also time `tracker ingest`")
    parser.add_argument("--trace", type=int, default=0, metavar="N", help="tracemalloc top N")
    parser.add_argument("--only", choices=sorted(STREAMS), help="one stream only")
    args = parser.parse_args()
    print(f"load before {os.getloadavg()}", flush=True)
    for name in [args.only] if args.only else STREAMS:
        path = stream(name, args.lines)
        wall, cpu, rss, out = run([PYTHON, "-c", ENGINE, str(path), str(args.trace)])
        traced = " (tracemalloc on: RSS inflated)" if args.trace else ""
        print(
            f"{name}: engine  peak RSS {rss:7,.0f} MiB{traced} ({wall:.0f} s wall, {cpu:.0f} s CPU)"
        )
        print("  " + out.strip().replace("\n", "\n  "), flush=True)
        if args.ingest:
            folder = Path(tempfile.mkdtemp(prefix="memory-bench-"))
            try:
                wall, cpu, rss, _ = run(
                    [PYTHON, "-m", "tracker", "ingest", str(path), "--units", UNITS,
                     "--store", f"chdb://{folder}/store", "--json"]
                )  # fmt: skip
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            print(
                f"{name}: ingest  peak RSS {rss:7,.0f} MiB ({wall:.0f} s wall, {cpu:.0f} s CPU)",
                flush=True,
            )
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
