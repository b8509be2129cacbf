"""Probe: how much compiling engine/ with mypyc gains on issue 12's target 2 (not shipped).

    python bench/engine_mypyc_probe.py                 # compile a scratch copy, then 3 rounds
    python bench/engine_mypyc_probe.py --build DIR     # reuse DIR from an earlier --keep
    python bench/engine_mypyc_probe.py --keep DIR --rounds 0   # only compile, into DIR

The copy of engine/ and schemas/ is compiled in a scratch directory, never in the source tree:
an extension module next to engine/*.py would shadow the sources, and an edit to them would then
silently do nothing. Each round runs bench/engine_cpu_bench.py twice, each a whole child process
pinned to core 0: once on the sources, once with the scratch directory first on sys.path (the
child prints which file `engine.core` came from, and refuses to run unless it is an extension).
Figures are engine_cpu_bench's (events per CPU second of the `apply` loop); the load average is
printed with every round because the box is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
MYPYC = str(ROOT / ".venv" / "bin" / "mypyc")
BENCH = str(ROOT / "bench" / "engine_cpu_bench.py")

# The child for the compiled engine: import it from the build first (later imports of `engine`
# find it in sys.modules), then run the bench script as its own __main__.
COMPILED = """
import runpy, sys
build, script = sys.argv[1], sys.argv[2]
sys.path.insert(0, build)
import engine.core
if not engine.core.__file__.endswith(".so"):
    sys.exit(f"engine.core is not compiled: {engine.core.__file__}")
print(f"engine.core from {engine.core.__file__}", flush=True)
sys.path.remove(build)
sys.path.append(build)  # the build's shared library is loaded already
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""
SUMMARY = re.compile(r"^engine: min / median / max ([\d,]+) / ([\d,]+) / ([\d,]+)", re.M)


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def compile_copy(build: Path) -> None:
    build.mkdir(parents=True, exist_ok=True)
    for package in ("engine", "schemas"):
        shutil.copytree(ROOT / package, build / package, dirs_exist_ok=True)
    cpu = os.times()
    wall = time.perf_counter()
    done = subprocess.run([MYPYC, "engine"], cwd=build, capture_output=True, text=True)
    after = os.times()
    if done.returncode:
        sys.exit(f"mypyc failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    child_cpu = (after.children_user - cpu.children_user) + (
        after.children_system - cpu.children_system
    )
    print(
        f"compiled engine/ into {build}: {time.perf_counter() - wall:.0f} s wall,"
        f" {child_cpu:.0f} s CPU (load {load()})",
        flush=True,
    )


def bench(command: list[str]) -> tuple[int, int, int]:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    found = SUMMARY.search(done.stdout)
    if done.returncode or found is None:
        sys.exit(f"bench failed ({done.returncode}):\n{done.stderr[-4000:]}")
    low, mid, high = (int(g.replace(",", "")) for g in found.groups())
    return low, mid, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, help="a directory compiled by an earlier --keep")
    parser.add_argument("--keep", type=Path, help="compile into this directory and keep it")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})  # the children inherit core 0, as `taskset -c 0` gives them
    scratch = None
    if args.build is not None:
        build = args.build
    elif args.keep is not None:
        build = args.keep
        compile_copy(build)
    else:
        scratch = tempfile.mkdtemp(prefix="engine-mypyc-")
        build = Path(scratch)
        compile_copy(build)
    extra = ["--events", str(args.events)]
    pure, compiled = [], []
    try:
        for round_ in range(1, args.rounds + 1):
            print(f"== round {round_}, pure, load {load()}", flush=True)
            pure.append(bench([PYTHON, BENCH, *extra]))
            print(f"== round {round_}, compiled, load {load()}", flush=True)
            compiled.append(bench([PYTHON, "-c", COMPILED, str(build.resolve()), BENCH, *extra]))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if pure:
        p = statistics.median(m for _, m, _ in pure)
        c = statistics.median(m for _, m, _ in compiled)
        print(
            f"median of the rounds' medians: pure {p:,.0f}, compiled {c:,.0f} events per CPU"
            f" second ({c / p:.2f}x); load after {load()}"
        )


if __name__ == "__main__":
    main()
