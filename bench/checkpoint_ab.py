"""Benchmark: the making of `tracker ingest`'s final checkpoint alone, two trees alternating.

    python bench/checkpoint_ab.py BEFORE_TREE AFTER_TREE            # 3 processes each
    python bench/checkpoint_ab.py BEFORE_TREE AFTER_TREE --runs 5 --repeat 3

A PART of the ingest's path, not the whole (bench/ingest_ab.py is the whole CLI): each process
(the tree's own .venv, its code first on the path) builds the pure engine's state from the
cached stream (ingest_bench.py's, 200k lines; not timed), then times `tracker.checkpoints.save`
`--repeat` times into a store that keeps nothing but the parts' length and SHA-256 (no chDB
insert: the writer process does those). Printed per process: the CPU seconds of each save
(`time.process_time`, the collector paused as `save` pauses it), the text's length and digest
(the same in both trees, or the change altered the text), and the load at its start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

CHILD = r"""
import gc, hashlib, json, sys, time
tree, source, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, tree)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from config.signing import Signer
from engine import Engine
from schemas.events import parse_event
from tracker import checkpoints

class Discarding:
    def __init__(self):
        self.digest, self.size = hashlib.sha256(), 0
    def save_checkpoint_parts(self, partition, through_seq, write, parts):
        for part in parts:
            self.digest.update(part)
            self.size += len(part)
    def save_checkpoint(self, cp):
        pass

from pathlib import Path
registry = load_registry(Path(tree) / "config/data/units-fujian.yaml")
engine = Engine(registry, load_rulebooks(), official_calendar())
n = 0
with open(source, encoding="utf-8") as lines:
    for line in lines:
        try:
            engine.apply(parse_event(line))
        except Exception:
            continue
        n += 1
key = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
gc.collect()
times = []
for _ in range(repeat):
    store = Discarding()
    t0 = time.process_time()
    checkpoints.save(store, 0, key, engine, n, "ab" * 32)
    times.append(time.process_time() - t0)
print(json.dumps({"times": times, "bytes": store.size, "sha256": store.digest.hexdigest(),
                  "events": n}))
"""


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as f:
        return f.read().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--stream", type=Path,
                        default=Path("/tmp/ingest-bench/stream-200000-7-20.0.jsonl"))  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="processes per tree, alternating")
    parser.add_argument("--repeat", type=int, default=3, help="saves timed per process")
    args = parser.parse_args()

    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    firsts: dict[str, list[float]] = {name: [] for name in trees}
    bests: dict[str, list[float]] = {name: [] for name in trees}
    texts: dict[str, set[tuple[int, str]]] = {name: set() for name in trees}
    print(f"stream {args.stream}; load {loadavg()} before")
    for i in range(args.runs):
        for name, tree in trees.items():
            load = loadavg()
            argv = [str(tree / ".venv/bin/python"), "-c", CHILD, str(tree), str(args.stream),
                    str(args.repeat)]  # fmt: skip
            out = subprocess.run(argv, cwd=tree, capture_output=True, text=True, check=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            times = got["times"]
            firsts[name].append(times[0])
            bests[name].append(min(times))
            texts[name].add((got["bytes"], got["sha256"]))
            print(f"run {i + 1} {name:6}: save CPU s {' '.join(f'{t:.2f}' for t in times)}; "
                  f"{got['bytes']:,} bytes sha256 {got['sha256'][:16]}; {got['events']:,} "
                  f"events; load {load}", flush=True)  # fmt: skip
    print(f"load {loadavg()} after")
    for name in trees:
        every = sorted(firsts[name])
        print(f"  {name}: first save of each process CPU s min/median/max "
              f"{every[0]:.2f} / {statistics.median(every):.2f} / {every[-1]:.2f}; best of each "
              f"{min(bests[name]):.2f} / {statistics.median(bests[name]):.2f} / "
              f"{max(bests[name]):.2f}")  # fmt: skip
    same = texts["before"] == texts["after"] and len(texts["before"]) == 1
    print("the same text in both trees" if same else f"TEXTS DIFFER: {texts}")


if __name__ == "__main__":
    main()
