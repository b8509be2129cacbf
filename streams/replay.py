"""`tracker replay --from-kafka`: re-consume the input topic from the beginning into a scratch
store, with the same per-partition processing as the worker, and diff the ledger (and deadline
states) against the live store. Zero differences is the expected answer: it shows that the live
pipeline - crashes, redeliveries and rebalances included - produced exactly what one clean pass
over the log produces.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from engine.warnings import WarningPolicy
from sinks import MemoryStore, StoreReader, open_store
from sinks.base import Batch
from sinks.remote import RemoteStore, connect_worker, held_by_another_process
from streams.kafka_auth import KafkaLogin
from streams.partition import Record
from streams.processor import KafkaReader, Reader, replay_partition
from streams.settings import Config
from streams.topics import Topics, end_offsets, group_lag, wait_drained


@dataclass
class Diff:
    missing: list[str] = field(default_factory=list)  # in the replay, not in the live store
    extra: list[str] = field(default_factory=list)  # in the live store, not in the replay
    changed: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed)


async def replay_topic(
    config: Config,
    bootstrap: str,
    topics: Topics,
    on_replayed: Callable[[int], None] | None = None,
    login: KafkaLogin | None = None,
) -> tuple[MemoryStore, int]:
    """Every input partition from offset 0 to its current end; returns the store and the number
    of records read. `on_replayed(n)` hears of every `n` records read (a progress display).
    `login`: the worker's, the one principal that may read the input topic."""
    ends = await end_offsets(bootstrap, [topics.events], login)
    scratch = MemoryStore()
    scratch.save_config(config.registry, config.rulebooks)
    reader: Reader = KafkaReader(bootstrap, topics.events, login)
    if on_replayed is not None:
        reader = _counted(reader, on_replayed)
    total = 0
    for tp, end in sorted(ends.items()):
        # the worker's own replay: a record that fails is a dead letter here too
        done = await replay_partition(
            config, tp.partition, len(ends), WarningPolicy(), reader, end, emit_from=0
        )
        batch = Batch()
        for out in done.emitted:
            out.rows_into(batch)
        scratch.write(batch)
        total += end
    return scratch, total


def _counted(reader: Reader, on_replayed: Callable[[int], None]) -> Reader:
    """`reader`, telling `on_replayed` how far each partition got: a partition read again (a
    record that failed halfway restarts it) is not counted twice."""
    reached: dict[int, int] = {}

    async def read(partition: int, start: int, end: int) -> AsyncGenerator[list[Record], None]:
        async for batch in reader(partition, start, end):
            if batch:
                position = batch[-1].offset + 1
                before = reached.get(partition, 0)
                if position > before:
                    reached[partition] = position
                    on_replayed(position - before)
            yield batch

    return read


async def live_groups(
    bootstrap: str, topics: Topics, login: KafkaLogin | None = None
) -> tuple[str, str]:
    """(processor group, sink group) of the deployment: one `all` worker group, or split roles."""
    ends = await end_offsets(bootstrap, [topics.events], login)
    worker = topics.group("all")
    if ends and await group_lag(bootstrap, worker, ends, login) < sum(ends.values()):
        return worker, worker
    return topics.group("processor"), topics.group("sink")


def diff(replayed: StoreReader, live: StoreReader) -> tuple[Diff, Diff]:
    ledger = Diff()
    mine = {e.entry_id: e for e in replayed.ledger()}
    theirs = {e.entry_id: e for e in live.ledger()}
    ledger.missing = sorted(mine.keys() - theirs.keys())
    ledger.extra = sorted(theirs.keys() - mine.keys())
    ledger.changed = sorted(k for k in mine.keys() & theirs.keys() if mine[k] != theirs[k])
    deadlines = Diff()
    a = {(d.unit, d.kind, d.ref): d for d in replayed.deadlines()}
    b = {(d.unit, d.kind, d.ref): d for d in live.deadlines()}
    deadlines.missing = sorted("/".join(k) for k in a.keys() - b.keys())
    deadlines.extra = sorted("/".join(k) for k in b.keys() - a.keys())
    deadlines.changed = sorted("/".join(k) for k in a.keys() & b.keys() if a[k] != b[k])
    return ledger, deadlines


def open_live(store: str, url: str | None) -> StoreReader:
    """The live store to compare with: the worker named, else the store itself (an existing
    one only), through the worker that holds it while one does."""
    if url is not None:
        return RemoteStore(url, dsn=store)  # its token file: that of the store's worker
    if held_by_another_process(store):
        return connect_worker(store)  # refuses a worker that holds another store
    return open_store(store, create=False)


def run_replay(
    config: Config,
    *,
    bootstrap: str,
    topics: Topics,
    store: str,
    worker_url: str | None,
    wait_s: float,
    on_replayed: Callable[[int], None] | None = None,
    login: KafkaLogin | None = None,
) -> int:
    """`on_replayed(n)`: told of every `n` records replayed (the CLI's progress display);
    `login`: the worker's."""

    async def replay() -> tuple[MemoryStore, int, bool]:
        groups = await live_groups(bootstrap, topics, login)
        caught_up = await wait_drained(bootstrap, topics, groups, timeout_s=wait_s, login=login)
        scratch, total = await replay_topic(config, bootstrap, topics, on_replayed, login)
        return scratch, total, caught_up

    scratch, total, caught_up = asyncio.run(replay())
    if not caught_up:
        print(
            f"warning: the live pipeline has not caught up after {wait_s:.0f}s; "
            "differences may only mean it is behind"
        )
    live = open_live(store, worker_url)
    try:
        ledger, deadlines = diff(scratch, live)
    finally:
        live.close()
    print(
        f"replayed {total} records of {topics.events}: {len(scratch.ledger())} ledger entries, "
        f"{len(scratch.deadlines())} deadlines"
    )
    for name, d in (("ledger", ledger), ("deadlines", deadlines)):
        if d.count:
            print(
                f"{name}: {len(d.missing)} missing from the live store, {len(d.extra)} only in "
                f"the live store, {len(d.changed)} different"
            )
            for label, ids in (("missing", d.missing), ("extra", d.extra), ("changed", d.changed)):
                for key in ids[:5]:
                    print(f"  {label}: {key}")
    total_diff = ledger.count + deadlines.count
    print(f"differences: {total_diff}")
    return 0 if total_diff == 0 else 1
