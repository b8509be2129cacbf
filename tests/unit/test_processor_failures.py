"""A record whose application fails in any way becomes a dead letter and its partition goes on,
the same way at every rebuild (issue 7, item 2). Pure logic: a list plays the input partition,
an engine subclass injects the failure."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import Engine, Outcome
from engine.warnings import WarningPolicy
from schemas.events import Event
from streams import partition as partition_module
from streams.partition import Outputs, PartitionState, Record
from streams.processor import Processor
from streams.settings import Config
from tests import builders

CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
STAMP = int(datetime(2018, 12, 31, tzinfo=UTC).timestamp() * 1000)
POISON = "boom"


def _events() -> list[dict[str, str]]:
    """Notices, feedback and ticks of one unit, with the poison record in the middle."""
    events = []
    for day in range(1, 21):
        at = f"2018-02-{day:02d}T10:00:00+08:00"
        events.append({"event_id": f"n{day}", "type": "vuln.notice", "unit": "fz.gl", "at": at,
                       "notice_id": f"V-{day}", "system": "s"})  # fmt: skip
        if day % 3:
            events.append({"event_id": f"f{day}", "type": "vuln.feedback", "unit": "fz.gl",
                           "at": at.replace("T10", "T18"), "notice_id": f"V-{day}"})  # fmt: skip
        events.append({"event_id": f"t{day}", "type": "clock.tick", "at": at.replace("T10", "T23")})
    # the poison: a notice that would count (and so change the caps) had it been applied
    events.insert(12, {"event_id": POISON, "type": "vuln.notice", "unit": "fz.gl",
                       "at": "2018-02-05T11:00:00+08:00", "notice_id": "V-X", "system": "s"})  # fmt: skip
    events.append({"event_id": "t-end", "type": "clock.tick", "at": "2018-04-01T00:00:00+08:00"})
    return events


def _records(events: list[dict[str, str]]) -> list[Record]:
    return [Record("in", 0, i, STAMP, json.dumps(e).encode()) for i, e in enumerate(events)]


EVENTS = _events()
RECORDS = _records(EVENTS)
AT = next(i for i, e in enumerate(EVENTS) if e["event_id"] == POISON)


class HalfwayEngine(Engine):
    """Applies the poison event, then fails: the engine is left changed by a failed record."""

    calls = 0

    def apply(self, event: Event, *, now: datetime | None = None) -> Outcome:
        outcome = super().apply(event, now=now)
        if event.event_id == POISON:
            HalfwayEngine.calls += 1
            raise RuntimeError("injected failure")
        return outcome


@pytest.fixture
def failing_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    HalfwayEngine.calls = 0
    monkeypatch.setattr(partition_module, "Engine", HalfwayEngine)


def key(out: Outputs) -> tuple[object, ...]:
    return (out.logged, out.entries, out.deadlines, [w.warning_id for w in out.warnings])


def without_poison() -> list[Outputs]:
    """What the partition gives when the poison record is blank (skipped): as if it were not
    there, with the same offsets."""
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    records = [r if r.offset != AT else Record("in", 0, AT, STAMP, b" ") for r in RECORDS]
    return [state.apply(r) for r in records]


class ListReader:
    def __init__(self, records: list[Record]) -> None:
        self.records = records

    async def __call__(self, partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
        for i in range(start, end, 5):
            yield self.records[i : min(i + 5, end)]


def handle_all(proc: Processor, records: list[Record]) -> list[Outputs]:
    async def go() -> list[Outputs]:
        out = []
        for rec in records:
            out += await proc.handle(rec)
        return out

    return asyncio.run(go())


def test_the_failing_record_is_a_dead_letter(failing_engine: None) -> None:
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    outs = [state.apply(r) for r in RECORDS[: AT + 1]]
    letter = outs[-1].letter
    assert letter is not None
    assert letter.reason == "cannot be applied: RuntimeError: injected failure"
    assert letter.origin == f"kafka:in/0/{AT}"
    assert json.loads(letter.raw)["event_id"] == POISON
    assert key(outs[-1]) == (None, (), (), [])  # no output of the half-applied event escapes


@pytest.mark.parametrize(
    "restart_at",
    [
        None,  # no restart: the failure in the live run
        AT,  # redelivered from the poison record itself
        AT + 1,  # redelivered after it: the rebuild meets the failure
        len(RECORDS) - 1,
    ],
)
def test_the_partition_goes_on_as_if_the_record_were_not_there(
    failing_engine: None, restart_at: int | None
) -> None:
    expected = without_poison()
    reader = ListReader(RECORDS)
    outs = handle_all(Processor(CONFIG, "in", 1, reader), RECORDS)
    if restart_at is not None:  # a new worker from the committed offset, the engine rebuilt
        again = handle_all(Processor(CONFIG, "in", 1, reader), RECORDS[restart_at:])
        assert [key(o) for o in again] == [key(o) for o in outs[restart_at:]]
        assert [o.letter for o in again] == [o.letter for o in outs[restart_at:]]
    letters = [o.letter for o in outs if o.letter is not None]
    assert [d.reason for d in letters] == ["cannot be applied: RuntimeError: injected failure"]
    # every other record's outputs: exactly those of the stream without the poison
    assert [key(o) for i, o in enumerate(outs) if i != AT] == [
        key(o) for i, o in enumerate(expected) if i != AT
    ]
    assert sum(len(o.entries) for o in outs) > 10


def test_a_rebuild_that_meets_the_failure_gives_the_same_letter(failing_engine: None) -> None:
    proc = Processor(CONFIG, "in", 1, ListReader(RECORDS))
    # records AT-2.. were fetched but never reached the agent: their outputs come with the next
    got = asyncio.run(proc.handle(RECORDS[AT + 3], fetched_from=AT - 2))
    first = handle_all(Processor(CONFIG, "in", 1, ListReader(RECORDS)), RECORDS[: AT + 4])
    assert [key(o) for o in got] == [key(o) for o in first[AT - 2 :]]
    assert [o.letter for o in got] == [o.letter for o in first[AT - 2 :]]


# Poison the engine really met (issue 7): instants whose UTC or Shanghai time is outside the
# years datetime can hold. Whether the model rejects them (a schema dead letter) or the engine
# fails on them (a "cannot be applied" dead letter), the partition goes on.
REAL_POISON: list[dict[str, Any]] = [
    # a due instant in year 1: converting it to Shanghai time overflows
    {"event_id": "p-due", "type": "vuln.notice", "unit": "fz.gl", "notice_id": "V-P",
     "system": "s", "at": "2018-02-03T12:00:00+08:00", "due": "0001-01-01T00:00:00+08:00"},
    # the last instant of year 9999 west of UTC: year 10000 in Shanghai
    {"event_id": "p-at", "type": "vuln.notice", "unit": "fz.gl", "notice_id": "V-Q",
     "system": "s", "at": "9999-12-31T23:59:59-12:00"},
    # a tick there
    {"event_id": "p-tick", "type": "clock.tick", "at": "9999-12-31T23:59:59-12:00"},
]  # fmt: skip


@pytest.mark.parametrize("poison", REAL_POISON, ids=lambda e: e["event_id"])
def test_out_of_range_instants_are_dead_letters(poison: dict[str, Any]) -> None:
    records = _records([poison if i == AT else e for i, e in enumerate(EVENTS)])
    outs = handle_all(Processor(CONFIG, "in", 1, ListReader(records)), records)
    assert outs[AT].letter is not None and outs[AT].logged is None
    expected = without_poison()
    assert [key(o) for i, o in enumerate(outs) if i != AT] == [
        key(o) for i, o in enumerate(expected) if i != AT
    ]


def handle_batches(proc: Processor, records: list[Record], size: int) -> list[Outputs]:
    async def go() -> list[Outputs]:
        out = []
        for i in range(0, len(records), size):
            out += await proc.handle_batch(records[i : i + size])
        return out

    return asyncio.run(go())


@pytest.mark.parametrize(
    "size, restart_at",
    [
        (1, None),  # a record at a time: `handle` for each
        (7, None),  # the poison inside a batch, the batch goes on after its rebuild
        (AT, None),  # the poison first in a batch
        (7, AT + 1),  # a new worker redelivered the batch after it: rebuilt at its first record
        (len(RECORDS), 3),  # one batch from an offset the new worker never applied
    ],
)
def test_a_batch_gives_what_its_records_give_one_by_one(
    failing_engine: None, size: int, restart_at: int | None
) -> None:
    reader = ListReader(RECORDS)
    expected = handle_all(Processor(CONFIG, "in", 1, reader), RECORDS)
    got = handle_batches(Processor(CONFIG, "in", 1, reader), RECORDS, size)
    assert [key(o) for o in got] == [key(o) for o in expected]
    assert [o.letter for o in got] == [o.letter for o in expected]
    if restart_at is not None:
        again = handle_batches(Processor(CONFIG, "in", 1, reader), RECORDS[restart_at:], size)
        assert [key(o) for o in again] == [key(o) for o in expected[restart_at:]]
        assert [o.letter for o in again] == [o.letter for o in expected[restart_at:]]
