"""A partition rebuilt from a checkpoint (streams/checkpoints.py: the engine's plain-data state
through a logged event) gives the same outputs - rows and deadline warnings - as one replayed
from offset 0, and reads only the records after the checkpoint (issue 12, item 4). Pure logic:
a list plays the input partition."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine import Engine
from engine.snapshot import restore, snapshot
from engine.warnings import WarningPolicy
from streams.partition import PartitionState, Record, Resume
from streams.processor import Processor
from tests.unit.test_processor_failures import CONFIG, POISON, RECORDS, handle_all, key

# the stream without its poison record (another test's): notices, feedback and ticks of one
# unit, whose deadlines make "approaching" and "overdue" warnings
STREAM = [r if POISON.encode() not in (r.value or b"") else Record("in", 0, r.offset, r.timestamp_ms, b"{") for r in RECORDS]  # fmt: skip


class CountingReader:
    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.read = 0

    async def __call__(self, partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
        for i in range(start, end, 5):
            batch = self.records[i : min(i + 5, end)]
            self.read += len(batch)
            yield batch


def _checkpoint_at(cut: int) -> Resume:
    """The checkpoint a worker would write after applying the records through `cut`."""
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    for rec in STREAM[: cut + 1]:
        state.apply(rec)
    plain = snapshot(state.engine)
    config = (CONFIG.registry, CONFIG.rulebooks, CONFIG.calendar)

    def engine() -> Engine:
        return restore(plain, *config)

    return Resume(state.logged, state.head, engine)


@pytest.mark.parametrize(
    "cut",
    [
        5,  # early: few deadlines open
        12,  # right after the malformed record (a dead letter, not logged)
        30,  # deadlines open with warning instants both passed and pending
        len(STREAM) - 2,  # just before the last tick
    ],
)
def test_a_rebuild_from_a_checkpoint_is_a_rebuild_from_offset_0(cut: int) -> None:
    full = handle_all(Processor(CONFIG, "in", 1, CountingReader(STREAM)), STREAM)
    assert any(o.warnings for o in full[cut + 1 :]) or cut > 30  # warnings are compared too
    resume = _checkpoint_at(cut)

    async def resumer(partition: int, before: int) -> Resume | None:
        return resume if resume.seq < before else None

    reader = CountingReader(STREAM)
    # a new worker takes the partition at the record after `cut` (its committed offset)
    again = handle_all(Processor(CONFIG, "in", 1, reader, resumer=resumer), STREAM[cut + 1 :])
    assert [key(o) for o in again] == [key(o) for o in full[cut + 1 :]]
    assert [o.letter for o in again] == [o.letter for o in full[cut + 1 :]]
    assert reader.read == cut - resume.seq  # only the records after the checkpoint


def test_a_checkpoint_beyond_the_record_is_not_used() -> None:
    """A redelivery of records the checkpoint covers (their offsets were not committed): the
    partition is replayed from offset 0."""
    resume = _checkpoint_at(30)

    async def resumer(partition: int, before: int) -> Resume | None:
        return resume if resume.seq < before else None

    full = handle_all(Processor(CONFIG, "in", 1, CountingReader(STREAM)), STREAM)
    reader = CountingReader(STREAM)
    again = handle_all(Processor(CONFIG, "in", 1, reader, resumer=resumer), STREAM[20:])
    assert [key(o) for o in again] == [key(o) for o in full[20:]]
    assert reader.read == 20
