"""The live worker's apply step alone, offline: CPU µs per record (a part of the live path).

    cd TREE && python /path/to/bench/live_apply_bench.py [ROUNDS]

The records `bench/stream_bench.py` produces (the province demo stream, 2018 and 2020, ticks
copied to each of 4 partitions: 47,174 records, each with the intake's signed envelope in its
headers) go through what `BatchWorker._make` does with a batch (streams/batch.py): per
partition `Processor.handle_batch`, each output's rows into the batch, the batch's signed chain
heads; batches of 1,250 records per partition. No broker, no store, no fetch, no warnings
produced. The tree measured is the working directory's (its modules are imported from there),
so two trees can be measured alternately with the same script. The collector is tuned as
`tracker worker` tunes it (tracker/cli.py `tune_gc`).
"""

from __future__ import annotations

import gc

gc.freeze()
gc.set_threshold(100_000, 50, 100)  # as tracker/cli.py tune_gc, before the worker imports

import asyncio  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "bench")]

import stream_bench as sb  # noqa: E402

from config.registry import DEMO_REGISTRY  # noqa: E402
from config.signing import signer_at  # noqa: E402
from sinks.heads import sign_heads  # noqa: E402
from streams.batch import Made  # noqa: E402
from streams.partition import Record  # noqa: E402
from streams.processor import Processor  # noqa: E402
from streams.settings import Config  # noqa: E402
from tracker import demo  # noqa: E402

PER_PARTITION = 1_250  # records of each partition per batch: 5,000 a batch, the worker's default


def records(work: Path) -> dict[int, list[Record]]:
    sb.INTAKE["signer"] = signer_at(None, work / "intake")
    years = (2018, 2020)
    lines = list(demo.lines(demo.generate(sb.REGISTRY, seed=7, years=years, scale=1.0)))
    parts: dict[int, list[Record]] = {p: [] for p in range(4)}
    appended_ms = 1_764_000_000_000  # 50 records share a broker append time
    for i, (value, _key, partitions, headers) in enumerate(sb.keyed(lines, 4)):
        for p in partitions:
            parts[p].append(
                Record("t.events", p, len(parts[p]), appended_ms + i // 50, value, headers)
            )
    return parts


async def nothing(partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
    return
    yield []  # an async generator: the first record of each partition is at offset 0


async def one_round(config: Config, parts: dict[int, list[Record]]) -> tuple[float, int]:
    assert config.signer is not None
    processor = Processor(config, "t.events", 4, nothing)
    count = 0
    started = time.process_time()
    for start in range(0, max(map(len, parts.values())), PER_PARTITION):
        made = Made()
        for p in range(4):
            batch = parts[p][start : start + PER_PARTITION]
            if batch:
                for out in await processor.handle_batch(batch):
                    made.add(out)
                made.records += len(batch)
        made.batch.heads = sign_heads(config.signer, made.batch.events, made.batch.entries)
        count += made.records
    return (time.process_time() - started) / count * 1e6, count


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    work = Path(tempfile.mkdtemp(prefix="live-apply-"))
    parts = records(work)
    loaded = Config.load(DEMO_REGISTRY)
    signer = signer_at(None, work / "worker")
    config = Config(loaded.registry, loaded.rulebooks, loaded.calendar, signer)
    for r in range(rounds):
        gc.collect()
        us, count = asyncio.run(one_round(config, parts))
        print(f"{os.getcwd()} round {r}: {us:.1f} µs of CPU per record, {count} records")


if __name__ == "__main__":
    main()
