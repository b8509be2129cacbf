"""Benchmark: `tracker ingest` end to end, two source trees interleaved (issue 12, target 1).

    python bench/ingest_ab.py BEFORE_TREE AFTER_TREE       # 3 runs each, alternating

On a shared box the wall clock of runs minutes apart says little: this runs the same command as
ingest_bench.py (`python -m tracker ingest STREAM --store chdb://FRESH ...`, each tree with its
own .venv) for one tree and then the other, run after run, so that both see the same load, and
prints each process's wall time, CPU time (user + system, its threads included, from wait4) and
peak RSS, with the 1-minute load average at its start. The stream is ingest_bench.py's (cached
under /tmp/ingest-bench).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_bench import loadavg, run, stream, triple

T = "{:.1f}"  # seconds to a tenth


def one_run(tree: Path, source: Path, store: Path) -> tuple[float, float, float]:
    argv = [str(tree / ".venv" / "bin" / "python"), "-m", "tracker", "ingest", "--units",
            str(tree / "config" / "data" / "units-fujian.yaml"), "--store",
            f"chdb://{store}?database=bench", "--json", str(source)]  # fmt: skip
    wall, cpu, rss, _ = run(argv, cwd=tree)  # in the tree: `-m tracker` is that tree's code
    return wall, cpu, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    source = stream(args.lines, 7, 20.0)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trees}
    work = Path(tempfile.mkdtemp(prefix="ingest-ab-"))
    print(f"stream: {source} ({args.lines:,} lines); load {loadavg()} before")
    try:
        for i in range(args.runs):
            for name, tree in trees.items():
                load = loadavg().split(" / ")[0]
                wall, cpu, rss = one_run(tree, source, work / f"{name}-{i}")
                figures[name].append((wall, cpu, rss))
                print(f"run {i + 1} {name:6}: wall {wall:5.1f} s, CPU {cpu:5.1f} s, "
                      f"{rss:,.0f} MiB (load {load})", flush=True)  # fmt: skip
                shutil.rmtree(work / f"{name}-{i}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load {loadavg()} after\nmin / median / max over {args.runs} runs")
    for name, runs in figures.items():
        walls, cpus, rsss = ([r[k] for r in runs] for k in range(3))
        print(f"  {name}: wall {triple(walls, T)} s, CPU {triple(cpus, T)} s, peak RSS "
              f"{triple(rsss, '{:,.0f}')} MiB; {args.lines / statistics.median(walls):,.0f} "
              "events/s (median wall)")  # fmt: skip


if __name__ == "__main__":
    main()
