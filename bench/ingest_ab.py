"""Benchmark: `tracker ingest` end to end, two source trees interleaved (issue 12, target 1).

    python bench/ingest_ab.py BEFORE_TREE AFTER_TREE       # 3 runs each, alternating
    python bench/ingest_ab.py . . --after-env NAME=VALUE   # one tree, two settings

On a shared box the wall clock of runs minutes apart says little: this runs the same command as
ingest_bench.py (`python -m tracker ingest STREAM --store chdb://FRESH ...`, each tree with its
own .venv) for one tree and then the other, run after run, so that both see the same load, and
prints each process's wall time, CPU time (user + system, its threads and its reaped children
included, from wait4; and the CLI's own, sampled from /proc) and peak RSS, with the 1-minute
load average at its start. The stream is ingest_bench.py's (cached under /tmp/ingest-bench).

Peak RSS: the sum of the CLI's peak and its child processes' (the store's writer process,
docs/ingest.md), each its own high-water mark (bench/proc_tree.py); wait4's ru_maxrss alone is
the largest of them, not their sum. Printed as the sum, then "CLI + children".
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_bench import loadavg, stream, triple
from bench.proc_tree import measure

T = "{:.1f}"  # seconds to a tenth


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, ...]:
    """Wall s, CPU s (user + system, children included), the peak RSS MiB of the CLI and the
    sum of its children's, and the CLI's own CPU s (bench/proc_tree.py)."""
    m = measure(argv, cwd=cwd, env=env, capture=False)
    return m.wall_s, m.cpu_s, m.own_peak_mib, m.children_peak_mib, m.own_cpu_s


def one_run(tree: Path, source: Path, store: Path, env: dict[str, str]) -> tuple[float, ...]:
    argv = [str(tree / ".venv" / "bin" / "python"), "-m", "tracker", "ingest", "--units",
            str(tree / "config" / "data" / "units-fujian.yaml"), "--store",
            f"chdb://{store}?database=bench", "--json", str(source)]  # fmt: skip
    return run(argv, cwd=tree, env=env)  # in the tree: `-m tracker` is that tree's code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    for side in ("before", "after"):
        parser.add_argument(f"--{side}-env", action="append", default=[], metavar="NAME=VALUE",
                            help=f"a variable set for the {side} tree's runs (repeatable)")  # fmt: skip
    args = parser.parse_args()
    envs = {
        side: {**os.environ, **dict(v.split("=", 1) for v in getattr(args, f"{side}_env"))}
        for side in ("before", "after")
    }
    source = stream(args.lines, 7, 20.0)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    figures: dict[str, list[tuple[float, ...]]] = {name: [] for name in trees}
    work = Path(tempfile.mkdtemp(prefix="ingest-ab-"))
    print(f"stream: {source} ({args.lines:,} lines); load {loadavg()} before")
    try:
        for i in range(args.runs):
            for name, tree in trees.items():
                load = loadavg().split(" / ")[0]
                wall, cpu, cli, kids, own = one_run(tree, source, work / f"{name}-{i}", envs[name])
                figures[name].append((wall, cpu, cli + kids, cli, kids, own))
                print(f"run {i + 1} {name:6}: wall {wall:5.1f} s, CPU {cpu:5.1f} s (the CLI's own "
                      f"{own:5.1f} s), {cli + kids:,.0f} MiB = {cli:,.0f} + {kids:,.0f} "
                      f"(load {load})", flush=True)  # fmt: skip
                shutil.rmtree(work / f"{name}-{i}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load {loadavg()} after\nmin / median / max over {args.runs} runs")
    for name, runs in figures.items():
        walls, cpus, rsss, clis, kids, owns = ([r[k] for r in runs] for k in range(6))
        print(f"  {name}: wall {triple(walls, T)} s, CPU {triple(cpus, T)} s (the CLI's own "
              f"{triple(owns, T)} s), peak RSS "
              f"{triple(rsss, '{:,.0f}')} MiB (CLI {triple(clis, '{:,.0f}')} + children "
              f"{triple(kids, '{:,.0f}')}); {args.lines / statistics.median(walls):,.0f} "
              "events/s (median wall)")  # fmt: skip


if __name__ == "__main__":
    main()
