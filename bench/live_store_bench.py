"""The live worker's store writes alone, offline: CPU and wall per table (a part of the live path).

    cd TREE && python bench/live_store_bench.py [RECORDS_PER_PARTITION_PER_BATCH ...]

The batches `bench/live_apply_bench.py` makes (the records `bench/stream_bench.py` produces,
through `Processor.handle_batch`, with their signed heads, as `BatchWorker._make` makes them)
are written, one `ClickHouseStore.write` each as the worker's store thread writes them, into a
fresh embedded (chDB) store per size given (default 1250: batches of 5,000 records, the
worker's default `--sink-batch`). Reported: the process's CPU seconds (every thread: chDB's
own too) and wall seconds of the writes, per table, and per record. No broker; the apply step is
not timed. Each insert of a table is a data part, so the fixed cost of a write (an insert per
table with rows: ~4-10 ms of chDB's CPU each on the shared box) falls with fewer, larger
batches; how large the worker's batches are comes from `--sink-batch` and from how far behind
the stream it is.
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
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path[:0] = [os.getcwd(), os.path.join(os.getcwd(), "bench")]

import live_apply_bench as lab  # noqa: E402

from config.registry import DEMO_REGISTRY  # noqa: E402
from config.signing import signer_at  # noqa: E402
from sinks import Batch, open_store  # noqa: E402
from sinks.heads import sign_heads  # noqa: E402
from streams.batch import Made  # noqa: E402
from streams.partition import Record  # noqa: E402
from streams.processor import Processor  # noqa: E402
from streams.settings import Config  # noqa: E402


async def batches(config: Config, parts: dict[int, list[Record]], per: int) -> list[Batch]:
    assert config.signer is not None
    processor = Processor(config, "t.events", 4, lab.nothing)
    out = []
    for start in range(0, max(map(len, parts.values())), per):
        made = Made()
        for p in range(4):
            for o in await processor.handle_batch(parts[p][start : start + per]):
                made.add(o)
        made.batch.heads = sign_heads(config.signer, made.batch.events, made.batch.entries)
        out.append(made.batch)
    return out


def write_all(work: Path, written: list[Batch]) -> tuple[float, float, dict[str, list[float]]]:
    store: Any = open_store(f"chdb://{work}")
    tables: dict[str, list[float]] = {}
    insert = store._insert

    def timed(table: str, columns: list[str], rows: Sequence[Any], **kw: Any) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        insert(table, columns, rows, **kw)
        got = tables.setdefault(table, [0.0, 0.0, 0])
        got[0] += time.process_time() - cpu
        got[1] += time.perf_counter() - wall
        got[2] += len(rows)

    store._insert = timed
    cpu, wall = time.process_time(), time.perf_counter()
    for batch in written:
        store.write(batch)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    store.close()
    return cpu, wall, tables


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [lab.PER_PARTITION]
    work = Path(tempfile.mkdtemp(prefix="live-store-"))
    parts = lab.records(work)
    records = sum(map(len, parts.values()))
    loaded = Config.load(DEMO_REGISTRY)
    signer = signer_at(None, work / "worker")
    config = Config(loaded.registry, loaded.rulebooks, loaded.calendar, signer)
    for per in sizes:
        written = asyncio.run(batches(config, parts, per))
        gc.collect()
        cpu, wall, tables = write_all(work / f"chdb-{per}", written)
        print(
            f"{os.getcwd()} {per * 4} records a batch, {len(written)} writes: CPU {cpu:.2f} s, "
            f"wall {wall:.2f} s, {cpu / records * 1e6:.1f} µs of CPU per record"
        )
        for table, (t_cpu, t_wall, rows) in sorted(tables.items(), key=lambda kv: -kv[1][0]):
            print(f"  {table:18s} CPU {t_cpu:.3f} s  wall {t_wall:.3f} s  {int(rows)} rows")


if __name__ == "__main__":
    main()
