"""`Tracker(remember_log=True)` (what `tracker serve`'s embedded backend runs): the ids of the
whole event log, every partition's, are read by `restore` and kept as events are logged, so
duplicates are told without asking the store, with the same answers as the asking pipeline."""

from __future__ import annotations

import json
from typing import Any

from config.holidays import official_calendar
from engine.step import read_record
from sinks.memory import MemoryStore
from tests.serve_kit import BOOKS, REGISTRY, event
from tracker.pipeline import Tracker


class CountingStore(MemoryStore):
    asked = 0

    def known_events(self, event_ids: Any) -> set[str]:
        self.asked += 1
        return super().known_events(event_ids)


def lines(*ids: str) -> list[str]:
    return [json.dumps(event("vuln.notice", "fj.gat", i, notice_id=f"V-{i}")) for i in ids]


def test_duplicates_are_told_from_memory_as_the_store_would_tell_them() -> None:
    store = CountingStore()
    store.save_config(REGISTRY, BOOKS)
    first = Tracker(store, REGISTRY, BOOKS, official_calendar())
    first.feed_lines(lines("a", "b"), "one.jsonl")
    # an event logged by another partition's processor: known to `known_events` too
    other = Tracker(store, REGISTRY, BOOKS, official_calendar(), partition=1)
    other.feed_lines(lines("c"), "two.jsonl")

    remembering = Tracker(store, REGISTRY, BOOKS, official_calendar(), remember_log=True)
    remembering.restore()
    store.asked = 0
    again = [read_record(raw, first=False) for raw in lines("a", "c", "d", "d")]
    parsed = [(f"api:x:{n}", p) for n, p in enumerate(again, start=1)]
    assert remembering.feed_read(parsed, "api:x") == {"a", "c"}  # "d" is logged by this call
    remembering.flush()
    assert remembering.feed_read(parsed[2:3], "api:x") == {"d"}
    assert store.asked == 0
    assert remembering.summary.as_dict() == {"accepted": 1, "rejected": 0, "duplicates": 4}
