"""The processor's rebuild-by-replay and re-emission, without a broker: a list plays the input
partition."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine.warnings import WarningPolicy
from streams.partition import Outputs, PartitionState, Record
from streams.processor import Processor
from streams.settings import Config
from streams.topics import partition_for
from tests import builders

CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
STAMP = int(datetime(2018, 12, 31, tzinfo=UTC).timestamp() * 1000)


def stream() -> list[Record]:
    """A partition's records: notices, feedback, findings, ticks and a duplicate."""
    lines = []
    for day in range(1, 29):
        at = f"2018-02-{day:02d}T10:00:00+08:00"
        lines.append({"event_id": f"n{day}", "type": "vuln.notice", "unit": "fz.gl", "at": at,
                      "notice_id": f"V-{day}", "system": "s"})  # fmt: skip
        if day % 3:
            lines.append({"event_id": f"f{day}", "type": "vuln.feedback", "unit": "fz.gl",
                          "at": at.replace("T10", "T18"), "notice_id": f"V-{day}"})  # fmt: skip
        lines.append({"event_id": f"t{day}", "type": "clock.tick", "at": at.replace("T10", "T23")})
    lines.insert(5, dict(lines[0]))  # redelivered by the producer
    lines.append({"event_id": "t-end", "type": "clock.tick", "at": "2018-04-01T00:00:00+08:00"})
    return [Record("in", 0, i, STAMP, json.dumps(e).encode()) for i, e in enumerate(lines)]


RECORDS = stream()


class ListReader:
    def __init__(self, records: list[Record]) -> None:
        self.records = records
        self.calls: list[tuple[int, int, int]] = []

    async def __call__(self, partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
        self.calls.append((partition, start, end))
        for i in range(start, end, 7):
            yield self.records[i : min(i + 7, end)]


def processor() -> Processor:
    return Processor(CONFIG, "in", 1, ListReader(RECORDS))


def key(out: Outputs) -> tuple[object, ...]:
    return (
        out.logged,
        out.entries,
        out.deadlines,
        out.letter,
        [w.warning_id for w in out.warnings],
    )


def straight() -> list[Outputs]:
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    return [state.apply(r) for r in RECORDS]


def run(proc: Processor, records: list[Record], fetched_from: int | None = None) -> list[Outputs]:
    async def go() -> list[Outputs]:
        out = []
        for i, rec in enumerate(records):
            out += await proc.handle(rec, fetched_from if i == 0 else None)
        return out

    return asyncio.run(go())


def test_one_pass_matches_the_engine_and_produces_everything() -> None:
    expected = straight()
    got = run(processor(), RECORDS)
    assert [key(o) for o in got] == [key(o) for o in expected]
    assert sum(len(o.entries) for o in got) > 20
    assert any(o.warnings for o in got)


@pytest.mark.parametrize("crash_at", [0, 1, 9, 10, 11, 40, len(RECORDS) - 1])
def test_a_restart_re_emits_exactly_what_was_emitted_before(crash_at: int) -> None:
    expected = straight()
    run(processor(), RECORDS[: crash_at + 5])  # processed further than was committed
    reader = ListReader(RECORDS)
    again = run(Processor(CONFIG, "in", 1, reader), RECORDS[crash_at:])  # redelivered
    assert reader.calls == ([(0, 0, crash_at)] if crash_at else [])  # rebuilt from offset 0
    assert [key(o) for o in again] == [key(o) for o in expected[crash_at:]]


def test_redelivery_within_one_assignment() -> None:
    proc, expected = processor(), straight()
    run(proc, RECORDS[:30])
    assert [key(o) for o in run(proc, RECORDS[25:31])] == [key(o) for o in expected[25:31]]


def test_records_skipped_by_faust_are_emitted_with_the_next_one() -> None:
    proc, expected = processor(), straight()
    run(proc, RECORDS[:12])
    got = run(proc, RECORDS[16:18])  # 12..15 never reached the agent
    assert [key(o) for o in got] == [key(o) for o in expected[12:18]]
    assert proc.covered_from[0] == 0
    # after an assignment: fetched from 20, the agent first sees 23
    fresh = processor()
    got = run(fresh, RECORDS[23:25], fetched_from=20)
    assert [key(o) for o in got] == [key(o) for o in expected[20:25]]
    assert fresh.covered_from[0] == 20


def test_dead_letters_and_the_processing_clock() -> None:
    state = PartitionState(CONFIG, 0, 4, WarningPolicy())
    gat = partition_for("gat", 4)
    state.partition = gat
    at = "2018-03-01T10:20:00+08:00"
    event = {"event_id": "m1", "type": "mlps.finding", "unit": "gat", "system": "s", "at": at}
    early = int(datetime(2018, 3, 1, 2, 5, tzinfo=UTC).timestamp() * 1000)  # 10:05 in Shanghai
    out = state.apply(Record("in", gat, 0, early, json.dumps(event).encode()))
    assert out.letter is not None and "10 minutes ahead" in out.letter.reason
    assert out.letter.origin == f"kafka:in/{gat}/0"
    assert out.letter.received_at == datetime(2018, 3, 1, 2, 5, tzinfo=UTC)
    late = early + 6 * 60_000  # appended at 10:11: now only 9 minutes ahead
    assert state.apply(Record("in", gat, 1, late, json.dumps(event).encode())).logged is not None
    assert state.apply(Record("in", gat, 2, late, b"  ")).letter is None  # blank: skipped
    bad = state.apply(Record("in", gat, 3, late, b"\xff{"))
    assert bad.letter is not None
    assert bad.letter.reason == "malformed: not UTF-8 text (byte 0); raw is the line in base64"
    assert base64.b64decode(bad.letter.raw) == b"\xff{"  # the record's bytes, nothing lost
    elsewhere = (gat + 1) % 4
    state.partition = elsewhere
    misplaced = state.apply(Record("in", elsewhere, 4, late, json.dumps(event).encode()))
    assert misplaced.letter is not None and "produce it with key 'gat'" in misplaced.letter.reason
