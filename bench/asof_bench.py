"""Benchmark: `tracker status --as-of ... --unit X --json` on a store holding 1M events (issue
11 item 2), and `tracker status --json` for every unit (issue 12 item 4).

    python bench/asof_bench.py [--events 1010000] [--scale 25] [--runs 3] [--store DIR]

Builds the store once with `tracker ingest` of the first `--events` lines of the demo stream
(2017, 2018 and 2020 at 25x density: 1.01M lines, of which about 1.005M are logged events; the
rest are redeliveries, which the log does not keep twice; cached under /tmp/asof-bench,
keyed by the stream's arguments and the store's schema), then times, each as a whole CLI process
(3 runs, min/median/max), `tracker status --as-of T --unit U --json` for the busiest unit, and in
the same run three anchors: the same command without --as-of, and two bare processes that start
Python, open the store and run one query (the unit's as-of totals): through clickhouse-connect's
chdb:// and through chDB's own API (which `tracker status` reads an embedded store with, since
issue 12: sinks/rows.py). Then every
unit: `tracker status --json` (latest) and `tracker status --json --as-of T`. Each figure is the
wall time and the process's CPU time (user + system, its threads included: chDB runs a query on
several), min/median/max. Prints the load average (/proc/loadavg) before and after: the box is
shared, and on a loaded box the CPU time is the steadier figure. `--store DIR` times a copy of a
built store (`cp -a` of a cached one) instead of the cache: a chDB directory is opened by one
process at a time, and every open may merge and clean its parts.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.registry import DEMO_REGISTRY, load_registry  # noqa: E402
from sinks.ddl import TABLES  # noqa: E402
from tracker import demo  # noqa: E402

CACHE = Path("/tmp/asof-bench")
PYTHON = str(ROOT / ".venv" / "bin" / "python")
AS_OF = "2020-06-30T00:00:00+08:00"

# the unit's as-of totals by indicator, as the bare anchors ask for them
AS_OF_SQL = (
    "SELECT l.indicator, sum(l.applied) FROM bench.ledger AS l FINAL "
    "LEFT JOIN (SELECT entry_id, seen_at, after FROM bench.ledger_seen FINAL "
    "WHERE unit = {u:String}) AS s ON s.entry_id = l.entry_id "
    "WHERE l.unit = {u:String} AND if(s.entry_id = '', "
    "l.effective_at <= fromUnixTimestamp64Milli({t:Int64}, 'Asia/Shanghai'), "
    "s.seen_at <= fromUnixTimestamp64Milli({t:Int64}, 'Asia/Shanghai')) GROUP BY l.indicator"
)
BARE = f"""
import sys, clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])
rows = client.query(
    {AS_OF_SQL!r},
    parameters={{"u": sys.argv[2], "t": int(sys.argv[3])}},
).result_rows
print(len(rows))
"""
# the same query through chDB's own API, without the driver (sinks/chdb_rows.py reads so)
BARE_CHDB = f"""
import os, sys
from chdb import _chdb
conn = _chdb.connect(os.path.realpath(sys.argv[1].removeprefix("chdb://").partition("?")[0]))
answer = conn.query(
    {AS_OF_SQL!r},
    "TabSeparatedWithNamesAndTypes",
    params={{"u": sys.argv[2], "t": sys.argv[3]}},
)
print(len(answer.bytes().split(b"\\n")) - 3)
conn.close()
"""


def loadavg() -> str:
    return Path("/proc/loadavg").read_text(encoding="ascii").split(" ", 3)[:3].__str__()


def build(events: int, seed: int, scale: float) -> str:
    schema = hashlib.sha256("".join(TABLES.values()).encode()).hexdigest()[:8]
    folder = CACHE / f"store-{events}-{seed}-{scale}-{schema}"
    dsn = f"chdb://{folder}?database=bench"
    done = folder.parent / f"{folder.name}.done"
    if done.exists():
        print(f"store:   reusing {folder} ({done.read_text(encoding='utf-8').strip()})")
        return dsn
    CACHE.mkdir(parents=True, exist_ok=True)
    stream = CACHE / f"stream-{events}-{seed}-{scale}.jsonl"
    if not stream.exists():
        registry = load_registry(DEMO_REGISTRY)
        gen = demo.generate(registry, seed=seed, years=(2017, 2018, 2020), scale=scale)
        with stream.open("w", encoding="utf-8") as out:
            for line in itertools.islice(demo.lines(gen), events):
                out.write(line + "\n")
    t0 = time.perf_counter()
    subprocess.run(
        [PYTHON, "-m", "tracker", "ingest", "--units", str(DEMO_REGISTRY), "--store", dsn,
         "--json", str(stream)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    took = f"built by tracker ingest in {time.perf_counter() - t0:.0f} s"
    done.write_text(took + "\n", encoding="utf-8")
    print(f"store:   {folder} {took}")
    return dsn


Times = tuple[list[float], list[float]]  # wall, CPU (user + system) of each run, in seconds


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(argv: list[str], runs: int) -> tuple[Times, str]:
    walls, cpus, out = [], [], ""
    for _ in range(runs):
        c0, t0 = _children_cpu(), time.perf_counter()
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - c0)
        out = done.stdout
    return (walls, cpus), out


def show(label: str, times: Times) -> None:
    walls, cpus = times
    print(
        f"{label:<44} wall {min(walls):.2f} / {statistics.median(walls):.2f} / "
        f"{max(walls):.2f} s   cpu {min(cpus):.2f} / {statistics.median(cpus):.2f} / "
        f"{max(cpus):.2f} s"
    )


def busiest_unit(dsn: str) -> str:
    script = (
        "import sys, clickhouse_connect\n"
        "c = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
        "print(c.query('SELECT unit FROM bench.ledger GROUP BY unit ORDER BY count() DESC "
        "LIMIT 1').result_rows[0][0])\n"
    )
    return subprocess.run(
        [PYTHON, "-c", script, dsn], check=True, capture_output=True, text=True
    ).stdout.strip()


def logged(dsn: str) -> int:
    script = (
        "import sys, clickhouse_connect\n"
        "c = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
        "print(c.query('SELECT count() FROM bench.events').result_rows[0][0])\n"
    )
    done = subprocess.run([PYTHON, "-c", script, dsn], check=True, capture_output=True, text=True)
    return int(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_010_000, help="lines of the stream")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=25.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--as-of", default=AS_OF)
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--store", type=Path, help="a built store's directory (a copy) to time")
    args = parser.parse_args()
    if args.store is not None:
        dsn = f"chdb://{args.store.resolve()}?database=bench"
        print(f"store:   {args.store.resolve()} (given)")
    else:
        dsn = build(args.events, args.seed, args.scale)
    if args.build_only:
        return
    unit = busiest_unit(dsn)
    print(f"store:   {logged(dsn):,} logged events")
    print(f"load:    {loadavg()} (1, 5, 15 min) before; unit {unit}, as of {args.as_of}")
    cli = [PYTHON, "-m", "tracker", "status", "--store", dsn, "--unit", unit, "--json"]
    as_of, out = timed([*cli, "--as-of", args.as_of], args.runs)
    rows = json.loads(out)
    show("tracker status --as-of T --unit U --json", as_of)
    print(f"         -> {len(rows)} unit-years, deducted {[r['deducted'] for r in rows]}")
    latest, _ = timed(cli, args.runs)
    show("anchor: tracker status --unit U --json", latest)
    millis = str(int(datetime.fromisoformat(args.as_of).timestamp() * 1000))
    bare, _ = timed([PYTHON, "-c", BARE, dsn, unit, millis], args.runs)
    show("anchor: bare clickhouse-connect chdb:// query", bare)
    bare_chdb, _ = timed([PYTHON, "-c", BARE_CHDB, dsn, unit, millis], args.runs)
    show("anchor: bare chDB API query", bare_chdb)
    every = [PYTHON, "-m", "tracker", "status", "--store", dsn, "--json"]
    latest_all, out = timed(every, args.runs)
    show("tracker status --json (every unit)", latest_all)
    rows = json.loads(out)
    deadlines = sum(len(r["deadlines"]) for r in rows)
    print(f"         -> {len(rows)} unit-years, {deadlines:,} deadlines, {len(out):,} bytes")
    as_of_all, _ = timed([*every, "--as-of", args.as_of], args.runs)
    show("tracker status --json --as-of T (every unit)", as_of_all)
    print(f"load:    {loadavg()} after; cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
