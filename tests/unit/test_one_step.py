"""`tracker ingest` and the Faust processor read and apply a record with the same step (issue 9,
item 1): the same raw input makes the same dead letters - the same `raw`, the same `reason` -
whichever path it takes. Only the origin differs (FILE:LINE versus kafka:TOPIC/PARTITION/OFFSET).
Pure logic: a MemoryStore, a list playing the input partition, and an engine subclass for the one
row whose event makes the engine raise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from engine import Engine, Outcome
from engine import step as step_module
from engine.step import Parsed, Refusal, apply_event, read_record
from schemas.events import Event, parse_event
from sinks import MemoryStore
from streams import partition as partition_module
from streams.partition import Record
from streams.processor import Processor
from streams.settings import Config
from tests import builders
from tracker import pipeline as pipeline_module
from tracker.pipeline import Tracker

CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
STAMP = int(datetime(2018, 12, 31, tzinfo=UTC).timestamp() * 1000)
POISON = "boom"
BOM = "\ufeff".encode()


def event(event_id: str, **fields: object) -> bytes:
    body = {"event_id": event_id, "type": "vuln.notice", "unit": "fz.gl",
            "at": "2018-02-01T10:00:00+08:00", "notice_id": f"V-{event_id}", "system": "s"}  # fmt: skip
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}, ensure_ascii=False).encode()


GOOD = event("e1")
UNKNOWN_FEEDBACK = event("e4", type="vuln.feedback", system=None, notice_id="V-never")

ROWS: list[tuple[str, list[bytes], bool, int]] = [
    # (name, input values in order, with the raising engine, dead letters expected)
    # a valid event: accepted, no dead letter on either path
    ("valid", [GOOD], False, 0),
    # not JSON at all
    ("not-json", [b"{not json"], False, 1),
    # JSON, but an array rather than an event object
    ("not-an-object", [b"[1, 2]"], False, 1),
    # an object whose type the contract does not know
    ("unknown-type", [event("e2", type="vuln.rumour")], False, 1),
    # bytes that are not UTF-8 (a Latin-1 "e acute" inside a JSON string): nothing may be lost
    ("not-utf8", [event("e3", system="caf\u00e9").replace("\u00e9".encode(), b"\xe9")], False, 1),
    # a UTF-8 byte order mark before the first (or only) event: not content
    ("bom-first", [BOM + GOOD], False, 0),
    # a blank line (spaces and a tab) is skipped, not rejected
    ("blank", [b" \t ", GOOD], False, 0),
    # the engine rejects it: feedback for a notice the unit never received
    ("engine-rejects", [UNKNOWN_FEEDBACK], False, 1),
    # the engine raises half-way through the event (a two-line message): one dead letter, and
    # the run goes on without it
    ("engine-raises", [GOOD, event(POISON), event("e5")], True, 1),
    # the same event twice: the second is a duplicate, not a dead letter
    ("duplicate", [GOOD, GOOD], False, 0),
]


class HalfwayEngine(Engine):
    """Applies the poison event, then fails: the engine is left changed by a failed record."""

    def apply(self, event: Event, *, now: datetime | None = None) -> Outcome:
        outcome = super().apply(event, now=now)
        if event.event_id == POISON:
            raise RuntimeError("injected failure\nsecond line of the message")
        return outcome


class ListReader:
    def __init__(self, records: list[Record]) -> None:
        self.records = records

    async def __call__(self, partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
        for i in range(start, end, 5):
            yield self.records[i : min(i + 5, end)]


Seen = tuple[list[tuple[str, str]], list[str]]  # (raw, reason) of each dead letter, logged raws


def by_ingest(values: list[bytes]) -> Seen:
    store = MemoryStore()
    tracker = Tracker(store, builders.REGISTRY, builders.BOOKS, builders.calendar())
    tracker.feed_lines([v + b"\n" for v in values], "in.jsonl")
    letters = sorted(store.dead_letters(), key=lambda d: int(d.origin.removeprefix("in.jsonl:")))
    logged = [e.raw for e in store.logged_events()]
    return [(d.raw, d.reason) for d in letters], logged


def by_processor(values: list[bytes]) -> Seen:
    records = [Record("in", 0, i, STAMP, v) for i, v in enumerate(values)]
    proc = Processor(CONFIG, "in", 1, ListReader(records))

    async def go() -> Seen:
        letters, logged = [], []
        for rec in records:
            for out in await proc.handle(rec):
                if out.letter is not None:
                    assert out.letter.origin == f"kafka:in/0/{rec.offset}"
                    letters.append((out.letter.raw, out.letter.reason))
                if out.logged is not None:
                    logged.append(out.logged.raw)
        return letters, logged

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("values", "fake", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_ingest_and_the_processor_make_the_same_dead_letters(
    monkeypatch: pytest.MonkeyPatch, values: list[bytes], fake: bool, expected: int
) -> None:
    if fake:
        monkeypatch.setattr(pipeline_module, "Engine", HalfwayEngine)
        monkeypatch.setattr(partition_module, "Engine", HalfwayEngine)
    ingested = by_ingest(values)
    processed = by_processor(values)
    assert processed == ingested
    assert len(ingested[0]) == expected
    # every value is either logged once, a dead letter, blank or a duplicate of a logged one
    assert len(ingested[1]) == len({v for v in values if v.strip()}) - expected


READS: list[tuple[bytes | str, bool, str | None, tuple[str, str] | None]] = [
    # (record, first, event_id read, (raw, reason) refused); neither: a blank record
    # a byte order mark starting the text is dropped ...
    (BOM + GOOD, True, "e1", None),
    # ... anywhere else it is content: not JSON
    (BOM + GOOD, False, None, (BOM.decode() + GOOD.decode(), "malformed JSON: Invalid JSON: expected value at line 1 column 1")),
    # a record of only a byte order mark and a line end is blank
    (BOM + b"\r\n", True, None, None),
    # not UTF-8: the dead letter keeps the bytes without the line end, the reason the 0-based byte
    (b"ab\xff\r\n", False, None, ("YWL/", "malformed: not UTF-8 text (byte 2); raw is the line in base64")),
    # text holding a lone surrogate cannot be UTF-8 either
    ("\ud800x", False, None, ("7aCAeA==", "malformed: not UTF-8 text (byte 0); raw is the line in base64")),
    # surrounding white space is not part of the raw text
    (b"  " + GOOD + b"\n", False, "e1", None),
]  # fmt: skip


@pytest.mark.parametrize(("data", "first", "event_id", "refused"), READS)
def test_reading_a_record(
    data: bytes | str, first: bool, event_id: str | None, refused: tuple[str, str] | None
) -> None:
    read = read_record(data, first=first)
    if event_id is not None:
        assert isinstance(read, Parsed) and read.event.event_id == event_id
        assert read.raw == GOOD.decode()
    elif refused is not None:
        assert isinstance(read, Refusal) and (read.raw, read.reason) == refused
    else:
        assert read is None


def test_a_parser_failure_is_the_record_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(raw: str | bytes) -> Event:
        raise RecursionError("maximum recursion depth exceeded\nwhile decoding")

    monkeypatch.setattr(step_module, "parse_event", broken)
    read = read_record(GOOD, first=True)
    assert isinstance(read, Refusal)
    assert read.reason == "cannot be read: RecursionError: maximum recursion depth exceeded"
    assert isinstance(read.failure, RecursionError)


def test_an_engine_failure_taints_the_engine() -> None:
    poison = parse_event(event(POISON))
    halfway = HalfwayEngine(builders.REGISTRY, builders.BOOKS, builders.calendar())
    applied = apply_event(halfway, poison, "raw", None)
    assert applied.tainted and applied.outcome.status == "rejected"
    assert applied.refusal == Refusal("raw", "cannot be applied: RuntimeError: injected failure")
    refused = apply_event(builders.engine(), parse_event(UNKNOWN_FEEDBACK), "raw", None)
    assert not refused.tainted and refused.refusal is not None
    assert refused.refusal.reason.startswith("vuln.feedback for unknown notice")
