"""Benchmark: `tracker ingest` end to end, as a whole CLI process (issue 12, target 1: 30,000
events/s), with a bare-driver anchor in the same run.

    python bench/ingest_bench.py                 # 200k lines, 3 runs, min / median / max

Stream: the issue's "realistic province stream", the one engine_cpu_bench.py applies: the seeded
demo generator (seed 7) over the three assessed years at 20x the province's density, cut at
200,000 lines (cached under /tmp/ingest-bench). Each run is `python -m tracker ingest FILE
--units config/data/units-fujian.yaml --store chdb://FRESH_DIR` started as a user starts it;
events/s = lines / the process's wall time. Beside it, the process's CPU time (user + system,
its threads included) and its peak resident memory, from wait4.

Anchor, in the same run: a bare Python process that imports clickhouse-connect, opens a fresh
chDB store, creates the store's tables (sinks/ddl.py), and inserts the very rows the first run
stored in them (read back from its store), in inserts of the CLI's batch
size: what the store writes alone cost. Its rows are loaded from a JSON file before its clock
starts; the whole process's wall time is printed beside the insert time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.proc_tree import measure  # noqa: E402
from config.registry import DEMO_REGISTRY, load_registry  # noqa: E402
from sinks.ddl import TABLES as DDL  # noqa: E402
from tracker import demo  # noqa: E402

CACHE = Path("/tmp/ingest-bench")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
# what a store write inserts (the registry's tables are written once, when a store is made)
TABLES = tuple(
    t for t in DDL if t not in {"meta", "registry_changes", "units", "indicators", "items"}
)

ANCHOR = """
import json, sys, time
from datetime import datetime
from decimal import Decimal
t0 = time.perf_counter()
import clickhouse_connect

def typed(o):
    if "$dt" in o:
        return datetime.fromisoformat(o["$dt"])
    if "$dec" in o:
        return Decimal(o["$dec"])
    return o

dump = json.loads(open(sys.argv[2], encoding="utf-8").read(), object_hook=typed)
batch = int(sys.argv[3])
client = clickhouse_connect.get_client(dsn=sys.argv[1])
client.command("CREATE DATABASE IF NOT EXISTS bench")
loaded = time.perf_counter()
rows = 0
for table in dump:
    client.command(table["create"])
    for start in range(0, len(table["rows"]), batch):
        part = table["rows"][start : start + batch]
        client.insert(table["name"], part, column_names=table["columns"], database="bench")
        rows += len(part)
done = time.perf_counter()
print(json.dumps({"rows": rows, "insert_s": done - loaded, "until_inserts_s": loaded - t0}))
"""


def loadavg() -> str:
    return " / ".join(Path("/proc/loadavg").read_text(encoding="ascii").split(" ", 3)[:3])


def stream(lines: int, seed: int, scale: float) -> Path:
    path = CACHE / f"stream-{lines}-{seed}-{scale}.jsonl"
    return demo_stream(path, lines, seed, (2017, 2018, 2020), scale)


def demo_stream(path: Path, lines: int, seed: int, years: tuple[int, ...], scale: float) -> Path:
    """The seeded demo stream's first `lines` lines in `path`, written once (a cache)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        gen = demo.generate(load_registry(DEMO_REGISTRY), seed=seed, years=years, scale=scale)
        tmp = path.with_suffix(".part")
        with tmp.open("w", encoding="utf-8") as out:
            for line in itertools.islice(demo.lines(gen), lines):
                out.write(line + "\n")
        tmp.replace(path)
    return path


def run(argv: list[str], cwd: Path | None = None) -> tuple[float, float, float, str]:
    """Wall s, CPU s (user + system, children included), peak RSS MiB of the process and its
    children summed (bench/proc_tree.py: `tracker ingest` has a writer process), and stdout."""
    m = measure(argv, cwd=cwd)
    return m.wall_s, m.cpu_s, m.peak_mib, m.stdout


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def dump_rows(dsn: str, into: Path) -> int:
    """The rows the tracker stored in `TABLES`, with their tables' DDL, as JSON for the anchor."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=dsn)
    tables, count = [], 0
    for name in TABLES:
        create = DDL[name].format(db="bench")
        result = client.query(f"SELECT * FROM bench.{name}")
        rows = [[_plain(v) for v in row] for row in result.result_rows]
        count += len(rows)
        tables.append(
            {
                "name": name,
                "create": create,
                "columns": list(result.column_names),
                "rows": rows,
            }
        )
    client.close()
    into.write_text(json.dumps(tables), encoding="utf-8")
    return count


def triple(values: list[float], fmt: str = "{:,.0f}") -> str:
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=20_000, help="the CLI's default")
    parser.add_argument("--dump", nargs=2, metavar=("DSN", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        print(dump_rows(args.dump[0], Path(args.dump[1])))
        return
    source = stream(args.lines, args.seed, args.scale)
    work = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    print(f"stream:  {source} ({args.lines:,} lines)")
    print(f"load:    {loadavg()} (1, 5, 15 min) before")
    cli: dict[str, list[float]] = {"rate": [], "wall": [], "cpu": [], "rss": []}
    bare: dict[str, list[float]] = {"rate": [], "insert": [], "wall": []}
    try:
        for i in range(args.runs):
            dsn = f"chdb://{work / f'cli-{i}'}?database=bench"
            argv = [PYTHON, "-m", "tracker", "ingest", "--units", str(DEMO_REGISTRY),
                    "--store", dsn, "--batch-size", str(args.batch_size), "--json", str(source)]  # fmt: skip
            wall, cpu, rss, out = run(argv)
            summary = json.loads(out.strip().splitlines()[-1])
            for key, value in (("rate", args.lines / wall), ("wall", wall), ("cpu", cpu), ("rss", rss)):  # fmt: skip
                cli[key].append(value)
            print(
                f"run {i + 1}: tracker ingest {wall:.1f} s wall, {cpu:.1f} s CPU, {rss:,.0f} MiB; {summary}"
            )
            if i == 0:
                rows_file = work / "rows.json"
                # in a process of its own: a child's peak RSS (wait4) starts from its parent's
                # at the fork, so the parent must not grow by the rows it hands the anchor
                dumped = subprocess.run(
                    [PYTHON, __file__, "--dump", dsn, str(rows_file)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                rows = int(dumped.stdout)
            shutil.rmtree(work / f"cli-{i}", ignore_errors=True)
            anchor_dsn = f"chdb://{work / f'bare-{i}'}"
            wall, cpu, rss, out = run(
                [PYTHON, "-c", ANCHOR, anchor_dsn, str(rows_file), str(args.batch_size)]
            )
            figures = json.loads(out)
            bare["rate"].append(figures["rows"] / figures["insert_s"])
            bare["insert"].append(figures["insert_s"])
            bare["wall"].append(wall)
            print(f"run {i + 1}: anchor {figures['rows']:,} rows inserted in {figures['insert_s']:.2f} s "
                  f"({wall:.1f} s the whole process, {rss:,.0f} MiB)")  # fmt: skip
            shutil.rmtree(work / f"bare-{i}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load:    {loadavg()} (1, 5, 15 min) after")
    print(f"\nmin / median / max over {args.runs} runs")
    print(f"  tracker ingest, whole process: {triple(cli['rate'])} events/s (target >= 30,000)")
    print(f"    wall {triple(cli['wall'], '{:.1f}')} s; CPU {triple(cli['cpu'], '{:.1f}')} s; "
          f"peak RSS {triple(cli['rss'])} MiB")  # fmt: skip
    print(f"  anchor, bare clickhouse-connect insert of the same {rows:,} rows: "
          f"{triple(bare['rate'])} rows/s; insert {triple(bare['insert'], '{:.2f}')} s of a "
          f"{triple(bare['wall'], '{:.1f}')} s process")  # fmt: skip
    print(f"  the anchor's inserts are {statistics.median(bare['insert']) / statistics.median(cli['wall']):.0%} "
          "of the CLI's wall time (medians)")  # fmt: skip


if __name__ == "__main__":
    main()
