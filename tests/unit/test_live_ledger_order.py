"""Ledger `seq` in the live pipeline versus `ingest` (issue 7, item 15).

`seq` numbers a (unit, year)'s entries in the order its engine made them. `ingest` runs one
engine with one event clock; the live processor runs one engine, with its own clock, per input
partition. A deadline expires when its engine's clock passes the due instant: in `ingest` that
can be an event of another subtree, live only the partition's own next event or tick. For events
in time order that is the same place in the unit's sequence; an event delivered late (its `at`
behind other subtrees' events) can make an expiry and the late event's own entry swap places.
Entries, ids, amounts and totals stay the same: only `seq` differs (docs/streaming.md), and with
it the hashes that cover it (engine/chain.py): `tracker audit verify` replays each partition with
its own engine, as the worker ran it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from engine.warnings import WarningPolicy
from schemas.events import ClockTick, parse_event
from schemas.ledger import LedgerEntry
from sinks import MemoryStore
from streams.partition import PartitionState, Record
from streams.settings import Config
from streams.topics import partition_for
from tests import builders
from tracker.pipeline import Tracker

CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
PARTITIONS = 4  # gat and fz hash to different partitions
STAMP = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp() * 1000)


def notice(event_id: str, unit: str, at: str, ref: str) -> str:
    return json.dumps({"event_id": event_id, "type": "vuln.notice", "unit": unit, "at": at,
                       "notice_id": ref, "system": "s"})  # fmt: skip


def feedback(event_id: str, unit: str, at: str, ref: str) -> str:
    return json.dumps({"event_id": event_id, "type": "vuln.feedback", "unit": unit, "at": at,
                       "notice_id": ref})  # fmt: skip


def tick(at: str) -> str:
    return json.dumps({"event_id": f"t-{at}", "type": "clock.tick", "at": at})


def ingest(lines: list[str]) -> list[LedgerEntry]:
    sink = MemoryStore()
    Tracker(sink, builders.REGISTRY, builders.BOOKS, builders.calendar()).feed_lines(lines, "t")
    return sink.ledger()


def live(lines: list[str]) -> list[LedgerEntry]:
    """The worker's processing: each event to its root unit's partition, ticks to all."""
    states = [PartitionState(CONFIG, p, PARTITIONS, WarningPolicy()) for p in range(PARTITIONS)]
    offsets = [0] * PARTITIONS
    entries = []
    for line in lines:
        event = parse_event(line)
        if isinstance(event, ClockTick):
            targets = list(range(PARTITIONS))
        else:
            targets = [partition_for(builders.REGISTRY.root(event.unit), PARTITIONS)]
        for p in targets:
            out = states[p].apply(Record("in", p, offsets[p], STAMP, line.encode()))
            offsets[p] += 1
            assert out.letter is None, out.letter
            entries += out.entries
    return entries


def by_id(entries: list[LedgerEntry]) -> dict[str, LedgerEntry]:
    return {e.entry_id: e for e in entries}


def stream(late_feedback_at: str) -> list[str]:
    """Two notices of fz.gl (city fz counts them, jurisdiction rules), due at 24:00 of the 14th
    day after receipt; the first expires at a tick; an event of another root unit (gat, another
    partition) then moves the clock past the second's due; then V-1's feedback arrives, dated
    `late_feedback_at`."""
    return [
        notice("n1", "fz.gl", "2018-02-01T10:00:00+08:00", "V-1"),  # due 02-16 00:00
        notice("n2", "fz.gl", "2018-02-02T10:00:00+08:00", "V-2"),  # due 02-17 00:00
        tick("2018-02-16T12:00:00+08:00"),  # V-1 overdue everywhere
        notice("g1", "gat", "2018-02-17T11:00:00+08:00", "G-1"),  # past V-2's due
        feedback("f1", "fz.gl", late_feedback_at, "V-1"),
        tick("2018-02-20T00:00:00+08:00"),
    ]


def test_in_time_order_live_and_ingest_ledgers_are_equal_seq_included() -> None:
    lines = stream(late_feedback_at="2018-02-17T12:00:00+08:00")  # after g1: in time order
    want, got = ingest(lines), live(lines)
    assert len(want) >= 5
    assert by_id(got) == by_id(want)


def test_a_late_event_can_swap_seq_but_nothing_else() -> None:
    # The repair was on time (before V-1's due) but is delivered after g1: ingest has already
    # expired V-2 when it arrives, fz's partition has not (its clock is at the tick, 02-16).
    lines = stream(late_feedback_at="2018-02-15T09:00:00+08:00")
    want, got = by_id(ingest(lines)), by_id(live(lines))
    assert want.keys() == got.keys()
    differ = sorted(k for k in want if want[k].seq != got[k].seq)
    assert differ, "expected the expiry and the late feedback's reversal to swap seq"
    for k in want:
        # only seq differs, and the hashes that cover it: the entry's digest, and the chain of
        # its (unit, year) from the swap on (each path's chain is its own emission order)
        hashes = {"seq": got[k].seq, "digest": got[k].digest, "chain": got[k].chain}
        assert want[k].model_copy(update=hashes) == got[k]
    assert {want[k].seq for k in differ} == {got[k].seq for k in differ}  # swapped places
    assert sum(e.applied for e in want.values()) == sum(e.applied for e in got.values())
