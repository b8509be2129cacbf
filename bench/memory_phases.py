"""Probe: where a `tracker ingest` holds its memory, phase by phase (issue 12 item 4).

    python bench/memory_phases.py FILE [--trace]

Runs `tracker ingest FILE --units ... --store chdb://FRESH --json` in this process, as the CLI
does, with its phases marked: the store opened, every line applied and stored, the state
numbered (engine/snapshot.py `streamed`), the checkpoint's parts stored, its row written. At each
mark it prints the resident memory now and its high-water mark so far (VmRSS, VmHWM from
/proc/self/status), the CPU time so far and, with --trace, tracemalloc's traced memory now and
its peak since the last mark (tracemalloc inflates RSS and CPU: read its figures apart).
Streams: bench/memory_bench.py caches them under /tmp/memory-bench (`head -200000` of the
one-year stream is the quick one).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinks import clickhouse_checkpoint  # noqa: E402
from tracker import checkpoints, cli, pipeline  # noqa: E402

UNITS = str(ROOT / "config" / "data" / "units-fujian.yaml")


def status() -> dict[str, int]:
    found = {}
    with open("/proc/self/status", encoding="ascii") as lines:
        for line in lines:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) // 1024  # kB -> MiB
    return found


def mark(phase: str) -> None:
    now = status()
    traced = ""
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        traced = f"  traced {current / 2**20:7.1f} MiB, peak since last {peak / 2**20:7.1f}"
    print(
        f"{phase:<34} RSS {now['VmRSS']:6,} MiB  high-water {now['VmHWM']:6,} MiB"
        f"  CPU {time.process_time():6.1f} s{traced}",
        file=sys.stderr,
        flush=True,
    )


def wrap(owner: Any, name: str, before: str | None, after: str | None) -> None:
    real: Callable[..., Any] = getattr(owner, name)

    def marked(*args: Any, **kwargs: Any) -> Any:
        if before:
            mark(before)
        result = real(*args, **kwargs)
        if after:
            mark(after)
        return result

    setattr(owner, name, marked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--trace", action="store_true", help="tracemalloc on (inflates RSS)")
    args = parser.parse_args()
    print(f"load before {os.getloadavg()}", file=sys.stderr)
    if args.trace:
        tracemalloc.start()
    wrap(pipeline.Tracker, "_resume", "store opened", None)
    wrap(pipeline.checkpoints, "save", "all lines applied and stored", "the row written")
    wrap(checkpoints, "streamed", None, "state numbered (streamed)")
    mixin = clickhouse_checkpoint.CheckpointTables
    wrap(mixin, "save_checkpoint", "parts stored", None)
    folder = Path(tempfile.mkdtemp(prefix="memory-phases-"))
    try:
        cli.main(
            ["ingest", args.file, "--units", UNITS, "--store", f"chdb://{folder}/store", "--json"]
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    mark("end")
    print(f"load after {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
