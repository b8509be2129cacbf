"""`Tracker.feed_lines` reads each chunk, and asks the event log about its ids, before the chunk
before it is applied (tracker/pipeline.py): a duplicate is still found whatever was logged
between the ask and the answer, on each kind of store (a writer process answers beside the
engine, as the store was at the ask)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from config.holidays import official_calendar
from config.registry import load_registry
from config.rulebooks import load_rulebooks
from sinks import MemoryStore, open_store
from sinks.base import Store
from sinks.clickhouse import ClickHouseStore
from sinks.writer_process import WriterClient
from tests.integration.test_ingest_crash import UNITS
from tracker.lines import LinesRead
from tracker.pipeline import Tracker


def _tick(event_id: str, day: int) -> str:
    # ticks, each later than the last: the engine remembers no tick id and takes any tick that
    # moves its clock, so only the event log knows a repeat of an id
    at = f"2018-03-{day:02d}T00:00:00+08:00"
    return json.dumps({"event_id": event_id, "type": "clock.tick", "at": at})


# batch size 2: a chunk is two lines, a write is two records
LINES = [
    _tick("A", 1), _tick("A", 2),  # chunk 1: A logged, its repeat a duplicate; A not written yet
    _tick("B", 3), _tick("C", 4),  # chunk 2, asked before chunk 1 was applied: B makes the
    #                                first write (A, B); C waits
    _tick("A", 5), _tick("C", 6),  # chunk 3, asked while A was not written yet and before B, C
    #                                were accepted: both repeats, in no answer of the store
    _tick("B", 7), _tick("D", 8),  # chunk 4, asked after the first write: B in the store's answer
    _tick("D", 9),  # chunk 5: the last, one line, a repeat of the chunk before
]  # fmt: skip


@pytest.fixture(params=["memory", "inline", "process"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    found = open_store(f"chdb://{tmp_path / 'store'}?database=ahead", writer=str(request.param))
    assert isinstance(found, ClickHouseStore)
    assert found.makes_event_rows == (request.param == "process")
    yield found
    found.close()


def _lines(store: Store, read_in_waits: bool) -> Iterable[bytes] | LinesRead:
    lines = [line.encode() for line in LINES]
    if not read_in_waits:
        return lines
    # as `tracker ingest` reads a file: ahead, in the waits for its writer process
    read = LinesRead(iter(lines), "ticks.jsonl", 2, piece_lines=1)
    if isinstance(store, ClickHouseStore) and isinstance(store.client, WriterClient):
        store.client.idle = read.read_some
    return read


@pytest.mark.parametrize("read_in_waits", [False, True])
def test_a_repeat_is_a_duplicate_whatever_was_logged_between_the_ask_and_the_answer(
    store: Store, tmp_path: Path, read_in_waits: bool
) -> None:
    units = tmp_path / "units.yaml"
    units.write_text(UNITS, encoding="utf-8")
    tracker = Tracker(
        store,
        load_registry(units),
        dict(load_rulebooks()),
        official_calendar(),
        batch_size=2,
    )
    tracker.restore()
    summary = tracker.feed_lines(_lines(store, read_in_waits), "ticks.jsonl")
    assert summary.as_dict() == {"accepted": 4, "rejected": 0, "duplicates": 5}
    assert [e.event_id for e in store.logged_events()] == ["A", "B", "C", "D"]
    # a second run: every line a repeat, found in the store's answers alone
    again = Tracker(
        store, load_registry(units), dict(load_rulebooks()), official_calendar(), batch_size=2
    )
    again.restore()
    summary = again.feed_lines(_lines(store, read_in_waits), "ticks.jsonl")
    assert summary.as_dict() == {"accepted": 0, "rejected": 0, "duplicates": 9}
