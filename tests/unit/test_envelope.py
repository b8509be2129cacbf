"""Who posted an event and when it was received (issue 10, item 2): the envelope travels beside the
event body through ingest and the processor into the event log and the dead letters, and a
replay of the log reproduces it. Pure logic: a MemoryStore, a list playing the input partition."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.signing import Signer
from engine.clock import local
from engine.step import logged_event
from engine.warnings import WarningPolicy
from schemas.envelope import (
    HEADER_POSTED_BY,
    HEADER_RECEIVED_AT,
    HEADER_SIGNATURE,
    UNKNOWN_POSTER,
    UNKNOWN_RECEIPT,
    Envelope,
    from_headers,
    header_parts,
)
from schemas.events import parse_event
from sinks import Batch, MemoryStore
from sinks.heads import intake_signed
from streams.partition import Outputs, PartitionState, Record
from streams.processor import Processor
from streams.settings import Config
from streams.sink_agent import BatchDecoder, SinkStats
from streams.topics import Topics
from tests import builders
from tracker.pipeline import Tracker

CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar())
STAMP = int(datetime(2018, 12, 31, 1, 2, 3, tzinfo=UTC).timestamp() * 1000)
BROKER_TIME = datetime(2018, 12, 31, 1, 2, 3, tzinfo=UTC)
NOW = datetime(2018, 12, 31, 9, 0, 0, 123456, tzinfo=UTC)  # µs: the store keeps ms
CENTRE = Envelope(posted_by="centre:fj", received_at=datetime(2018, 3, 1, 2, 0, 0, 5000, UTC))


def line(event_id: str, **fields: object) -> str:
    body = {"event_id": event_id, "type": "vuln.notice", "unit": "fz.gl",
            "at": "2018-02-01T10:00:00+08:00", "notice_id": f"V-{event_id}", "system": "s"}  # fmt: skip
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}, ensure_ascii=False)


FEEDBACK = line("f1", type="vuln.feedback", system=None, notice_id="V-n1",
                at="2018-02-03T10:00:00+08:00")  # fmt: skip
STREAM = [line("n1"), "{not json", FEEDBACK, line("n2"), line("n1")]  # the last: a duplicate


def tracker(store: MemoryStore | None = None, clock: datetime = NOW) -> Tracker:
    return Tracker(
        store or MemoryStore(),
        builders.REGISTRY,
        builders.BOOKS,
        builders.calendar(),
        clock=lambda: clock,
    )


def ms(at: datetime) -> datetime:
    """An instant as the store keeps it: to the millisecond, shown at +08:00."""
    return local(at.replace(microsecond=at.microsecond // 1000 * 1000))


# -- ingest ------------------------------------------------------------------------------------


def test_ingest_stamps_the_tool_and_its_clock_by_default() -> None:
    t = tracker()
    t.feed_lines(STREAM, "f.jsonl")
    logged = list(t.store.logged_events())
    assert [(e.event_id, e.posted_by, e.received_at) for e in logged] == [
        ("n1", "ingest:f.jsonl", ms(NOW)),
        ("f1", "ingest:f.jsonl", ms(NOW)),
        ("n2", "ingest:f.jsonl", ms(NOW)),
    ]
    [letter] = t.store.dead_letters()
    assert (letter.origin, letter.posted_by, letter.received_at) == (
        "f.jsonl:2",
        "ingest:f.jsonl",
        ms(NOW),
    )


def test_a_given_envelope_is_stored_as_given() -> None:
    t = tracker()
    t.feed_lines(STREAM[:2], "api", envelope=CENTRE)
    t.feed(line("n3"), "api:3", envelope=Envelope(posted_by="unit:fz.gl", received_at=NOW))
    t.feed("[1]", "api:4", envelope=Envelope(posted_by="unit:fz.gl", received_at=NOW))
    t.flush()
    assert [(e.event_id, e.posted_by, e.received_at) for e in t.store.logged_events()] == [
        ("n1", "centre:fj", ms(CENTRE.received_at)),
        ("n3", "unit:fz.gl", ms(NOW)),
    ]
    assert sorted((d.origin, d.posted_by, d.received_at) for d in t.store.dead_letters()) == [
        ("api:2", "centre:fj", ms(CENTRE.received_at)),
        ("api:4", "unit:fz.gl", ms(NOW)),
    ]


def test_one_line_fed_without_an_envelope_is_the_tools() -> None:
    t = tracker()
    t.feed(line("n1"), "cli")
    t.flush()
    [logged] = t.store.logged_events()
    assert (logged.posted_by, logged.received_at) == ("ingest:cli", ms(NOW))


def test_posters_name_who_posted_each_logged_event() -> None:
    t = tracker()
    t.feed_lines(STREAM[:1], "a.jsonl", envelope=CENTRE)
    t.feed_lines(STREAM[2:4], "b.jsonl")
    assert t.store.posters(["f1", "n1", "nope", "n1"]) == {
        "n1": ("centre:fj", ms(CENTRE.received_at)),
        "f1": ("ingest:b.jsonl", ms(NOW)),
    }
    assert t.store.posters([]) == {}


# -- replay ------------------------------------------------------------------------------------


def rows(store: MemoryStore) -> tuple[list[str], list[str], list[str]]:
    return (
        [e.model_dump_json() for e in store.logged_events()],
        [e.model_dump_json() for e in store.ledger()],
        [d.model_dump_json() for d in store.dead_letters()],
    )


def test_a_restore_continues_with_the_logged_envelopes() -> None:
    store = MemoryStore()
    tracker(store).feed_lines(STREAM[:2], "a", envelope=CENTRE)
    # a later run, at a later time: the restored log keeps who posted what and when
    later = tracker(store, clock=NOW + timedelta(days=3))
    assert later.restore() == 1
    later.feed_lines(STREAM, "b")
    one_go = tracker(clock=NOW + timedelta(days=3))
    one_go.feed_lines(STREAM[:2], "a", envelope=CENTRE)
    one_go.feed_lines(STREAM, "b")
    assert rows(store) == rows(one_go.store)  # type: ignore[arg-type]
    assert [e.posted_by for e in store.logged_events()] == ["centre:fj", "ingest:b", "ingest:b"]


def test_a_second_ingest_into_a_fresh_store_is_byte_identical() -> None:
    first, second = tracker(), tracker()
    for t in (first, second):
        t.feed_lines(STREAM[:2], "a", envelope=CENTRE)
        t.feed_lines(STREAM[2:], "b")
    assert rows(first.store) == rows(second.store)  # type: ignore[arg-type]


def test_rewriting_the_tail_after_a_crash_keeps_the_envelopes() -> None:
    """Events logged after the last commit mark are written again by restore, from the log."""
    store = MemoryStore()
    tracker(store).feed_lines(STREAM, "a", envelope=CENTRE)
    store._committed.clear()  # as if the run died after logging its events
    before = rows(store)
    assert tracker(store, clock=NOW + timedelta(days=1)).restore() == 3
    assert rows(store) == before


# -- the processor -----------------------------------------------------------------------------


def record(offset: int, value: str, headers: list[tuple[str, bytes | None]] | None) -> Record:
    return Record("in", 0, offset, STAMP, value.encode(), headers)


def test_a_record_without_headers_still_makes_a_record() -> None:
    """Records made before envelopes (and by callers that pass none) keep working."""
    assert Record("in", 0, 0, STAMP, b"{}").headers is None


def test_a_record_without_envelope_or_broker_time_was_received_at_an_unknown_time() -> None:
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    out = state.apply(Record("in", 0, 0, None, line("n1").encode()))
    assert out.logged is not None
    assert (out.logged.posted_by, out.logged.received_at) == (UNKNOWN_POSTER, UNKNOWN_RECEIPT)


def test_the_processor_takes_the_envelope_from_the_record_headers() -> None:
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    good = state.apply(record(0, line("n1"), CENTRE.headers()))
    bad = state.apply(record(1, "{not json", CENTRE.headers()))
    assert good.logged is not None and bad.letter is not None
    assert (good.logged.posted_by, good.logged.received_at) == (
        "centre:fj",
        ms(CENTRE.received_at),
    )
    assert (bad.letter.posted_by, bad.letter.received_at) == ("centre:fj", ms(CENTRE.received_at))


NAIVE = datetime(2018, 3, 1, 10, 0).isoformat().encode()
HEADERS: list[tuple[str, list[tuple[str, bytes | None]] | None]] = [
    # (why the record has no usable envelope, its headers)
    # produced directly, by an operator's tool or before envelopes existed
    ("none", None),
    # headers, but none of the envelope's
    ("unrelated", [("trace", b"x")]),
    # only the poster, no receipt time
    ("half", [(HEADER_POSTED_BY, b"centre:fj")]),
    # a receipt time without an offset: not an instant
    ("naive", [(HEADER_POSTED_BY, b"centre:fj"), (HEADER_RECEIVED_AT, NAIVE)]),
    # not a time at all
    ("not-a-time", [(HEADER_POSTED_BY, b"centre:fj"), (HEADER_RECEIVED_AT, b"yesterday")]),
    # a poster that is not UTF-8
    ("not-utf8", [(HEADER_POSTED_BY, b"\xff"), *CENTRE.headers()[1:]]),
    # Kafka allows a header without a value
    ("null-value", [(HEADER_POSTED_BY, None), *CENTRE.headers()[1:]]),
    # two posters: which one posted it is unknowable, so neither is believed
    ("two-posters", [*CENTRE.headers(), (HEADER_POSTED_BY, b"unit:fz.gl")]),
    # a poster longer than any principal id
    ("too-long", [(HEADER_POSTED_BY, b"x" * 201), *CENTRE.headers()[1:]]),
    # a signature longer than any proof (the poster and receipt alone were fine: validated and
    # remembered apart from it, the envelope is still refused whole)
    ("long-signature", [*CENTRE.headers(), (HEADER_SIGNATURE, b"s" * 1025)]),
    # a signature that is not ASCII
    ("non-ascii-signature", [*CENTRE.headers(), (HEADER_SIGNATURE, "签名".encode())]),
    # two receipt times
    ("two-receipts", [*CENTRE.headers(), (HEADER_RECEIVED_AT, NOW.isoformat().encode())]),
    # a receipt time without a value
    ("null-receipt", [CENTRE.headers()[0], (HEADER_RECEIVED_AT, None)]),
    # the poster once without a value and once with one: two values
    ("null-and-poster", [(HEADER_POSTED_BY, None), *CENTRE.headers()]),
    # the poster twice without a value: one value, and it is none
    (
        "null-poster-twice",
        [(HEADER_POSTED_BY, None), (HEADER_POSTED_BY, None), *CENTRE.headers()[1:]],
    ),
    # the names are case-sensitive: these are unrelated headers
    ("other-case", [(k.upper(), v) for k, v in CENTRE.headers()]),
]

SIGNED = Envelope(posted_by=CENTRE.posted_by, received_at=CENTRE.received_at, signature="m2:proof")
USABLE: list[tuple[str, list[tuple[str, bytes | None]], Envelope]] = [
    # (why, the headers, the envelope they carry)
    ("as-the-intake-writes-them", SIGNED.headers(), SIGNED),
    ("unsigned", CENTRE.headers(), CENTRE),
    ("any-order", SIGNED.headers()[::-1], SIGNED),
    ("among-others", [("trace", b"x"), *SIGNED.headers(), ("trace", None)], SIGNED),
    # a header named twice with the same value says one thing
    ("same-poster-twice", [*SIGNED.headers(), SIGNED.headers()[0]], SIGNED),
    ("same-receipt-twice", [SIGNED.headers()[1], *SIGNED.headers()], SIGNED),
    ("same-signature-twice", [*SIGNED.headers(), SIGNED.headers()[2]], SIGNED),
    # a signature named twice with two values, or without a value, is no signature
    ("two-signatures", [*SIGNED.headers(), (HEADER_SIGNATURE, b"m2:other")], CENTRE),
    ("null-signature", [*CENTRE.headers(), (HEADER_SIGNATURE, None)], CENTRE),
    ("null-signature-twice", [*CENTRE.headers(), *[(HEADER_SIGNATURE, None)] * 2], CENTRE),
    ("null-and-signature", [*SIGNED.headers(), (HEADER_SIGNATURE, None)], CENTRE),
    ("empty-signature", [*CENTRE.headers(), (HEADER_SIGNATURE, b"")], CENTRE),
    (
        "longest-signature",
        [*CENTRE.headers(), (HEADER_SIGNATURE, b"s" * 1024)],
        Envelope(posted_by=CENTRE.posted_by, received_at=CENTRE.received_at, signature="s" * 1024),
    ),
]


@pytest.mark.parametrize(
    ("headers", "expected"), [u[1:] for u in USABLE], ids=[u[0] for u in USABLE]
)
def test_the_envelope_a_record_carries(
    headers: list[tuple[str, bytes | None]], expected: Envelope
) -> None:
    assert from_headers(headers) == expected
    assert from_headers(tuple(headers)) == expected  # any sequence of pairs
    assert from_headers(iter(headers)) == expected  # or any iterable


def reference_from_headers(
    headers: list[tuple[str, bytes | None]] | None,
) -> Envelope | None:
    """The rules of `from_headers`, spelled out with the values of each name as a set."""
    names = (HEADER_POSTED_BY, HEADER_RECEIVED_AT, HEADER_SIGNATURE)
    values = {name: {v for k, v in headers or () if k == name} for name in names}
    posters, receipts, signatures = (values[name] for name in names)
    if len(posters) != 1 or len(receipts) != 1:
        return None
    (poster,), (received,) = posters, receipts
    if not isinstance(poster, bytes) or not isinstance(received, bytes):
        return None
    try:
        base = Envelope(
            posted_by=poster.decode(), received_at=datetime.fromisoformat(received.decode())
        )
    except ValueError:  # UnicodeDecodeError and pydantic's ValidationError are ValueErrors
        return None
    signature = signatures.pop() if len(signatures) == 1 else None
    if not isinstance(signature, bytes):
        return base
    try:
        return base.model_copy(update={"signature": signature.decode("ascii")})
    except UnicodeDecodeError:
        return None


HEADER_VALUES = st.sampled_from(
    [None, b"", b"centre:fj", b"unit:fz.gl", b"\xff", b"x" * 201, CENTRE.headers()[1][1],
     NOW.isoformat().encode(), NAIVE, b"m2:proof", b"s" * 1025, "签名".encode()]
)  # fmt: skip
HEADER_LISTS = st.lists(
    st.tuples(
        st.sampled_from([HEADER_POSTED_BY, HEADER_RECEIVED_AT, HEADER_SIGNATURE, "trace"]),
        HEADER_VALUES,
    ),
    max_size=7,
)


@given(HEADER_LISTS)
@settings(max_examples=400)
def test_from_headers_follows_its_rules(headers: list[tuple[str, bytes | None]]) -> None:
    expected = reference_from_headers(headers)
    if expected is not None and len(expected.signature) > 1024:
        expected = None  # the model refuses it; the reference's model_copy does not validate
    assert from_headers(headers) == expected


@given(HEADER_LISTS)
@settings(max_examples=400)
def test_header_parts_are_the_envelope_in_two(headers: list[tuple[str, bytes | None]]) -> None:
    parts, whole = header_parts(headers), from_headers(headers)
    if parts is None:
        assert whole is None
        return
    base, signature = parts
    assert base.signature == ""
    assert whole == base.model_copy(update={"signature": signature})


# What the worker logs: a record's headers signed, unsigned, broken or none; with and without
# its own key. `streams.partition` logs a signed (or, keyless, an unsigned) envelope from the
# headers' fields and stamps and signs any other first.
LOGGED_HEADERS = [
    ("signed", SIGNED.headers()),
    ("unsigned", CENTRE.headers()),
    ("none", None),
    ("broken", [(HEADER_POSTED_BY, b"\xff"), (HEADER_RECEIVED_AT, b"x")]),
    ("signature too long", [*CENTRE.headers(), (HEADER_SIGNATURE, b"s" * 1025)]),
]  # fmt: skip


@pytest.mark.parametrize("keyed", [False, True], ids=["no key", "key"])
@pytest.mark.parametrize(
    "headers", [h for _, h in LOGGED_HEADERS], ids=[n for n, _ in LOGGED_HEADERS]
)
def test_the_worker_logs_the_envelope_a_record_came_with(
    headers: list[tuple[str, bytes | None]] | None, keyed: bool
) -> None:
    signer = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32)))) if keyed else None
    config = Config(CONFIG.registry, CONFIG.rulebooks, CONFIG.calendar, signer)
    state = PartitionState(config, 0, 1, WarningPolicy())
    head = ""
    for offset, raw in enumerate([line("n1"), FEEDBACK]):
        rec = record(offset, raw, headers)
        out = state.apply(rec)
        envelope = intake_signed(signer, rec.envelope(), raw)
        expected = logged_event(parse_event(raw), raw, 0, offset, envelope, head)
        assert out.logged is not None
        assert out.logged.model_dump_json() == expected.model_dump_json()
        head = expected.chain


@pytest.mark.parametrize("headers", [h for _, h in HEADERS], ids=[name for name, _ in HEADERS])
def test_a_record_without_a_usable_envelope_is_the_brokers(
    headers: list[tuple[str, bytes | None]] | None,
) -> None:
    assert from_headers(headers) is None
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    good = state.apply(record(0, line("n1"), headers))
    bad = state.apply(record(1, "{not json", headers))
    assert good.logged is not None and bad.letter is not None  # the envelope refuses nothing
    assert (good.logged.posted_by, good.logged.received_at) == (UNKNOWN_POSTER, ms(BROKER_TIME))
    assert (bad.letter.posted_by, bad.letter.received_at) == (UNKNOWN_POSTER, ms(BROKER_TIME))


class ListReader:
    def __init__(self, records: list[Record]) -> None:
        self.records = records

    async def __call__(self, partition: int, start: int, end: int) -> AsyncIterator[list[Record]]:
        for i in range(start, end, 3):
            yield self.records[i : min(i + 3, end)]


def key(out: Outputs) -> tuple[object, ...]:
    return (out.logged, out.entries, out.deadlines, out.letter)


def test_a_rebuild_re_emits_the_same_envelopes() -> None:
    unit = Envelope(posted_by="unit:fz.gl", received_at=NOW)
    envelopes = [CENTRE.headers(), None, unit.headers()]
    records = [record(i, value, envelopes[i % 3]) for i, value in enumerate(STREAM * 2)]
    straight = PartitionState(CONFIG, 0, 1, WarningPolicy())
    expected = [key(straight.apply(r)) for r in records]

    async def go() -> list[tuple[object, ...]]:
        proc = Processor(CONFIG, "in", 1, ListReader(records))
        got = []
        for rec in records[6:]:  # a worker that starts at offset 6 rebuilds 0..5
            got += [key(o) for o in await proc.handle(rec, fetched_from=2)]
        return got

    assert asyncio.run(go()) == expected[2:]
    posters = [o[0].posted_by for o in expected if o[0] is not None]  # type: ignore[attr-defined]
    assert posters == ["centre:fj", "unit:fz.gl", "centre:fj"]


# -- the internal topics -----------------------------------------------------------------------


def test_a_sink_reads_outputs_a_worker_wrote_before_envelopes() -> None:
    """Records already on the internal topics when a worker is upgraded carry no envelope
    fields: they are stored as unenveloped, not skipped (skipping would lose an event)."""
    topics = Topics("t")
    old_event = {"event_id": "n1", "partition": 0, "seq": 4, "unit": "fz.gl",
                 "type": "vuln.notice", "at": "2018-02-01T10:00:00+08:00", "year": 2018,
                 "raw": line("n1")}  # fmt: skip
    old_letter = {"letter_id": "d1", "origin": "kafka:in/0/3", "raw": "{", "reason": "malformed",
                  "received_at": "2018-02-01T10:00:00+08:00"}  # fmt: skip
    stats = SinkStats()
    batch = BatchDecoder(topics, stats).decode(
        [
            (topics.accepted, json.dumps(old_event).encode()),
            (topics.dead_letters, json.dumps(old_letter).encode()),
        ]
    )
    assert stats.skipped == 0
    [event], [letter] = batch.events, batch.dead_letters
    assert (event.posted_by, event.received_at) == (UNKNOWN_POSTER, UNKNOWN_RECEIPT)
    received = datetime(2018, 2, 1, 2, tzinfo=UTC)
    assert (letter.posted_by, letter.received_at) == (UNKNOWN_POSTER, received)


def test_a_sink_still_skips_what_is_not_an_output() -> None:
    topics = Topics("t")
    stats = SinkStats()
    batch = BatchDecoder(topics, stats).decode(
        [(topics.accepted, b'{"event_id": "n1"}'), (topics.dead_letters, b"[]")]
    )
    assert stats.skipped == 2 and not len(batch)


# -- properties --------------------------------------------------------------------------------

POSTERS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(local)
ENVELOPES = st.builds(Envelope, posted_by=POSTERS, received_at=INSTANTS)


@given(ENVELOPES, st.text(st.characters(codec="ascii"), max_size=1024))
def test_an_envelope_survives_its_headers(envelope: Envelope, signature: str) -> None:
    assert from_headers(envelope.headers()) == envelope
    signed = Envelope(
        posted_by=envelope.posted_by, received_at=envelope.received_at, signature=signature
    )
    assert from_headers(signed.headers()) == signed


@given(st.lists(st.tuples(st.sampled_from(STREAM), st.none() | ENVELOPES), max_size=12))
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_every_path_stores_the_envelope_each_record_came_with(
    stream: list[tuple[str, Envelope | None]],
) -> None:
    """Ingest (line by line, each with its envelope) and the processor (the envelope in the
    headers) log and reject the same records with the same envelopes; a replay of the log
    into a fresh store reproduces the log byte for byte."""
    t = tracker()
    for n, (value, envelope) in enumerate(stream):
        t.feed(value, f"kafka:in/0/{n}", envelope=envelope or Envelope(
            posted_by=UNKNOWN_POSTER, received_at=BROKER_TIME))  # fmt: skip
    t.flush()
    state = PartitionState(CONFIG, 0, 1, WarningPolicy())
    outs = [
        state.apply(record(n, value, envelope.headers() if envelope else None))
        for n, (value, envelope) in enumerate(stream)
    ]
    by_ingest = [(e.event_id, e.posted_by, e.received_at) for e in t.store.logged_events()]
    by_processor = [
        (o.logged.event_id, o.logged.posted_by, o.logged.received_at)
        for o in outs
        if o.logged is not None
    ]
    assert by_ingest == by_processor
    letters = sorted((d.origin, d.posted_by, d.received_at) for d in t.store.dead_letters())
    assert letters == sorted(
        (o.letter.origin, o.letter.posted_by, o.letter.received_at)
        for o in outs
        if o.letter is not None
    )
    # the log alone, in a fresh store, as if the run died before writing any output
    fresh = MemoryStore()
    fresh.write(Batch(events=list(t.store.logged_events())))
    fresh._committed.clear()
    tracker(fresh, clock=NOW + timedelta(days=9)).restore()
    assert rows(fresh)[:2] == rows(t.store)[:2]  # type: ignore[arg-type]
