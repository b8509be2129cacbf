"""A tick is copied to every input partition (docs/streaming.md): each partition's engine applies
it, but its record is read once per worker, and every partition makes the outputs it made when
each read its own copy. Pure logic: lists play the input partitions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.step import read_record
from engine.warnings import WarningPolicy
from streams import partition as partition_module
from streams.partition import TICKS_KEPT, Outputs, PartitionState, Record
from streams.processor import Processor
from streams.settings import Config
from streams.topics import partition_for
from tests import builders

CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
PARTITIONS = 4
STAMP = int(datetime(2018, 12, 31, tzinfo=UTC).timestamp() * 1000)


def tick(day: int) -> bytes:
    at = f"2018-02-{day:02d}T23:00:00+08:00"
    return json.dumps({"event_id": f"t{day}", "type": "clock.tick", "at": at}).encode()


def notice(unit: str, day: int) -> bytes:
    body = {"event_id": f"{unit}-n{day}", "type": "vuln.notice", "unit": unit, "system": "s",
            "at": f"2018-02-{day:02d}T10:00:00+08:00", "notice_id": f"V-{unit}-{day}"}  # fmt: skip
    return json.dumps(body).encode()


def streams() -> dict[int, list[Record]]:
    """Per partition: its units' notices and every tick, as `tracker post` and the ticker
    produce them."""
    values: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    for day in range(1, 21):
        for unit in ("fz.gl", "gat", "nd.gaj"):
            values[partition_for(builders.REGISTRY.root(unit), PARTITIONS)].append(
                notice(unit, day)
            )
        for p in values:
            values[p].append(tick(day))
    return {p: [Record("in", p, i, STAMP, v) for i, v in enumerate(vs)] for p, vs in values.items()}


class Lists:
    def __init__(self, records: dict[int, list[Record]]) -> None:
        self.records = records

    async def __call__(self, partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
        yield self.records[partition][start:end]


def key(out: Outputs) -> tuple[object, ...]:
    return (out.logged, out.entries, out.deadlines, out.letter, out.warnings)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The values the partitions read."""
    seen: list[bytes] = []

    def counted(data: bytes | str, *, first: bool) -> Any:
        seen.append(data if isinstance(data, bytes) else data.encode())
        return read_record(data, first=first)

    monkeypatch.setattr(partition_module, "read_record", counted)
    return seen


def test_a_tick_is_read_once_for_every_partition(reads: list[bytes]) -> None:
    records = streams()
    apart = {}
    for p, rs in records.items():
        alone = PartitionState(CONFIG, p, PARTITIONS, WarningPolicy())  # reads its own copies
        apart[p] = [key(alone.apply(r)) for r in rs]
    reads.clear()

    async def batches() -> dict[int, list[tuple[object, ...]]]:
        proc = Processor(CONFIG, "in", PARTITIONS, Lists(records))
        got: dict[int, list[tuple[object, ...]]] = {p: [] for p in records}
        for start in range(0, max(map(len, records.values())), 7):  # a few per partition
            for p, rs in records.items():
                got[p] += [key(o) for o in await proc.handle_batch(rs[start : start + 7])]
        return got

    assert asyncio.run(batches()) == apart
    ticks = [v for v in reads if b"clock.tick" in v]
    assert sorted(ticks) == sorted(tick(day) for day in range(1, 21))  # once each
    assert len(reads) - len(ticks) == 60  # every notice, once


def test_a_rebuild_reads_the_ticks_the_other_partitions_read(reads: list[bytes]) -> None:
    records = streams()

    async def go() -> list[tuple[object, ...]]:
        proc = Processor(CONFIG, "in", PARTITIONS, Lists(records))
        for p in range(PARTITIONS - 1):
            await proc.handle_batch(records[p])
        reads.clear()
        last = records[PARTITIONS - 1]
        # the last partition's first record is its 11th: the ten before it are replayed
        return [key(o) for o in await proc.handle_batch(last[10:])]

    state = PartitionState(CONFIG, PARTITIONS - 1, PARTITIONS, WarningPolicy())
    expected = [key(state.apply(r)) for r in records[PARTITIONS - 1]][10:]
    assert asyncio.run(go()) == expected
    assert not [v for v in reads if b"clock.tick" in v]


def test_the_ticks_kept_are_bounded() -> None:
    ticks: dict[bytes, Any] = {}
    state = PartitionState(CONFIG, 0, 1, WarningPolicy(), ticks=ticks)
    days = [datetime(2018, 1, 1, tzinfo=UTC).timestamp() + 3600 * h for h in range(TICKS_KEPT + 5)]
    for i, seconds in enumerate(days):
        at = datetime.fromtimestamp(seconds, UTC).isoformat()
        value = json.dumps({"event_id": f"t{i}", "type": "clock.tick", "at": at}).encode()
        assert state.apply(Record("in", 0, i, STAMP, value)).logged is not None
    assert len(ticks) == TICKS_KEPT
    assert b'"t5"' in next(iter(ticks))  # the oldest went first


def test_what_is_not_a_tick_read_well_is_not_kept(reads: list[bytes]) -> None:
    ticks: dict[bytes, Any] = {}
    values = [
        notice("fz.gl", 1),
        b'{"event_id": "t1", "type": "clock.tick", "at": "yesterday"}',  # a dead letter
        json.dumps(
            {
                "event_id": "n",
                "type": "vuln.notice",
                "unit": "fz.gl",
                "system": "clock.tick",
                "at": "2018-02-01T10:00:00+08:00",
                "notice_id": "V",
            }
        ).encode(),
    ]
    for _ in range(2):
        state = PartitionState(CONFIG, 0, 1, WarningPolicy(), ticks=ticks)
        for i, value in enumerate(values):
            state.apply(Record("in", 0, i, STAMP, value))
    assert ticks == {}
    assert reads == values * 2
