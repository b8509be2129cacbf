"""Benchmark: the ClickHouse store's writes alone, two source trees interleaved (issue 12, target 1).

    python bench/store_write_ab.py BEFORE_TREE AFTER_TREE [--runs 3]

Once per invocation, the batches `tracker ingest` of ingest_bench.py's 200k stream hands
`ClickHouseStore.write` are recorded (this tree's CLI) into a private temporary directory that
this process makes and removes: pickles its own child wrote, read by nothing else and never kept
in a shared place another user could write (~40 s a run). Then each tree, with its own .venv, writes those batches into a
fresh chDB store, one tree after the other, run after run, and prints the CPU seconds of its
writes: the calling thread's, the part of it inside chDB's `Connection.query` (the insert
itself), their difference (the Python side: rows, columns, the driver's serialisation), and the
process's (chDB's own threads too). The collector is tuned as the CLI tunes it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_bench import loadavg, stream, triple
from config.registry import DEMO_REGISTRY

ROOT = Path(__file__).resolve().parents[1]

RECORD = """
import pickle, sys
from sinks import clickhouse
out = open(sys.argv[1], "wb")
write = clickhouse.ClickHouseStore.write
def recorded(self, batch):
    pickle.dump(batch, out, protocol=5)
    return write(self, batch)
clickhouse.ClickHouseStore.write = recorded
from tracker.cli import main
rc = main(sys.argv[2:])
out.close()
sys.exit(rc)
"""

REPLAY = """
import gc, json, os, pickle, sys, time
sys.path.insert(0, os.getcwd())
import chdb.state.sqlitelike as sqlitelike
from sinks.clickhouse import ClickHouseStore
batches = []
with open(sys.argv[1], "rb") as f:
    while True:
        try:
            batches.append(pickle.load(f))
        except EOFError:
            break
gc.freeze()
gc.set_threshold(100_000, 50, 100)
query, inside = sqlitelike.Connection.query, [0.0]
def timed(self, *args, **kwargs):
    start = time.thread_time()
    try:
        return query(self, *args, **kwargs)
    finally:
        inside[0] += time.thread_time() - start
sqlitelike.Connection.query = timed
store = ClickHouseStore(f"chdb://{sys.argv[2]}?database=bench")
inside[0] = 0.0
thread, process = time.thread_time(), time.process_time()
for batch in batches:
    store.write(batch)
thread, process = time.thread_time() - thread, time.process_time() - process
store.close()
print(json.dumps({"thread": thread, "chdb": inside[0], "python": thread - inside[0],
                  "process": process, "batches": len(batches)}))
"""


def recorded(private: Path) -> Path:
    path = private / "batches.pkl"
    source = stream(200_000, 7, 20.0)  # ingest_bench.py's stream, written once if missing
    argv = ["ingest", "--units", str(DEMO_REGISTRY), "--store",
            f"chdb://{private}/s?database=bench", str(source)]  # fmt: skip
    subprocess.run([sys.executable, "-c", RECORD, str(path), *argv], check=True, cwd=ROOT)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as private:  # mode 0700, removed at the end
        compare(args, recorded(Path(private)))


def compare(args: argparse.Namespace, batches: Path) -> None:
    got: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for n in range(1, args.runs + 1):
        for label, tree in (("before", args.before), ("after", args.after)):
            with tempfile.TemporaryDirectory() as tmp:
                python = str(tree.resolve() / ".venv" / "bin" / "python")
                out = subprocess.run([python, "-c", REPLAY, str(batches), f"{tmp}/s"],
                                     cwd=tree, check=True, capture_output=True, text=True)  # fmt: skip
            one = json.loads(out.stdout.splitlines()[-1])
            got[label].append(one)
            print(f"run {n} {label:6}: " + ", ".join(f"{k} {v:.2f}" for k, v in one.items())
                  + f" (load {loadavg()})")  # fmt: skip
    print("min / median / max, CPU seconds of the writes")
    for label, runs in got.items():
        parts = [
            f"{key} {triple([r[key] for r in runs], '{:.2f}')}"
            for key in ("python", "chdb", "thread", "process")
        ]
        print(f"  {label}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
