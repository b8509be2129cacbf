"""What the ClickHouse store holds after an insert (issue 12 item 4): nothing of the rows.

The driver's insert context refers to itself (a bound method kept on the instance), so it is
freed only by the cyclic collector, and it kept the rows it was given: a checkpoint is written
with the collector paused (engine/snapshot.py `gc_paused`), and every part it had inserted stayed
in memory until the end, ~the whole text of a big state (267 MB at 1M events).
"""

from __future__ import annotations

import gc
import tracemalloc

from sinks.clickhouse import ClickHouseStore

PART_BYTES = 256 << 10
PARTS = 32  # 8 MiB in all, inserted 8 parts at a time (sinks/clickhouse_checkpoint.py)


def test_inserted_checkpoint_parts_are_not_held_while_the_collector_is_paused(
    chdb_dsn: str,
) -> None:
    store = ClickHouseStore(chdb_dsn)
    try:
        store.save_checkpoint_parts(0, 1, "warm", [b"{}"])  # the driver's first-use caches
        parts = (bytes([65 + n % 26]) * PART_BYTES for n in range(PARTS))
        gc.disable()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            store.save_checkpoint_parts(0, 2, "w", parts)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            gc.enable()
        # before: the 8 MiB of parts (and their rows) were all still held here
        assert held < PARTS * PART_BYTES // 8, f"{held / 2**20:.1f} MiB held after the insert"
        assert [len(p) for p in store.load_checkpoint_parts(0, 2, "w")] == [PART_BYTES] * PARTS
    finally:
        store.close()
