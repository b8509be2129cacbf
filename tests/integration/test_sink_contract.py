"""One contract, two stores: the in-memory sink and ClickHouse (real chDB engine)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.signing import Signer
from engine.chain import head_message
from engine.clock import local
from engine.status import build_status
from engine.step import logged_event
from schemas.envelope import UNKNOWN_POSTER, UNKNOWN_RECEIPT, Envelope
from schemas.ledger import DeadLetter, LedgerEntry
from schemas.registry import Registry
from sinks import Batch, MemoryStore, Store, StoreError
from sinks.base import registry_hash
from sinks.faulty import write_drill
from sinks.heads import sign_heads
from tests.builders import BOOKS, REGISTRY, engine, ev, tick
from tests.integration.store_dump import dump, lines_covered
from tracker.ingest import ingest
from tracker.pipeline import Tracker

SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))  # a fixed test key

STREAM = [
    ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="OA"),
    ev("outreach.notice", "2018-03-02T10:00", unit="fz.gl", notice_id="O1", terminals=["a", "b"]),
    # its own due is kept and shown; the clause's 2 weeks (to 2018-03-18T00:00) judge it
    ev(
        "vuln.notice",
        "2018-03-03T10:00",
        unit="fz",
        notice_id="V2",
        system="门户网站",
        due="2018-03-25T18:00",
    ),
    tick("2018-03-20T00:00"),
    ev("vuln.feedback", "2018-03-10T10:00", notice_id="V1"),
]


# who posted each event of STREAM, and when it was received (to the millisecond, as stored)
POSTERS = [
    Envelope(posted_by=poster, received_at=local(datetime(2018, 3, 1, 2, n, 7, 250_000, UTC)))
    for n, poster in enumerate(["centre:fj", "centre:fj", "centre:fj.fz", "ticker", "unit:gat"])
]


def _fill(sink: Store) -> Batch:
    eng = engine()
    batch = Batch()
    head = ""
    for seq, (event, envelope) in enumerate(zip(STREAM, POSTERS, strict=True), start=1):
        out = eng.apply(event)
        batch.entries += out.entries
        batch.deadlines += out.deadlines
        logged = logged_event(event, event.model_dump_json(), 0, seq, envelope, head)
        batch.events.append(logged)
        head = logged.chain
    batch.heads = sign_heads(SIGNER, batch.events, batch.entries)
    batch.dead_letters.append(
        DeadLetter(
            letter_id="d1",
            origin="f:1",
            raw="{bad",
            reason="malformed JSON",
            posted_by="unit:fz.gl",
            received_at=local(datetime(2018, 3, 1, tzinfo=UTC)),
        )
    )
    sink.save_config(REGISTRY, BOOKS)
    sink.write(batch)
    return batch


def test_round_trip_of_every_record(sink: Store) -> None:
    batch = _fill(sink)
    assert [e.model_dump_json() for e in sink.ledger()] == [
        e.model_dump_json() for e in sorted(batch.entries, key=lambda e: (e.unit, e.year, e.seq))
    ]
    latest = {(d.unit, d.kind, d.ref): d for d in batch.deadlines}
    assert [d.model_dump_json() for d in sink.deadlines()] == [
        latest[k].model_dump_json() for k in sorted(latest)
    ]
    assert [d.reason for d in sink.dead_letters()] == ["malformed JSON"]
    assert [e.event_id for e in sink.logged_events()] == [e.event_id for e in STREAM]
    assert sink.next_seq() == len(STREAM) + 1
    assert sink.load_config() == (REGISTRY, BOOKS)


def test_the_envelopes_round_trip(sink: Store) -> None:
    batch = _fill(sink)
    assert [e.model_dump_json() for e in sink.logged_events()] == [
        e.model_dump_json() for e in batch.events
    ]
    assert [e.model_dump_json() for e in sink.logged_events_after(0, 3, 10)] == [
        e.model_dump_json() for e in batch.events[3:]
    ]
    assert [d.model_dump_json() for d in sink.dead_letters()] == [
        d.model_dump_json() for d in batch.dead_letters
    ]
    assert [(e.posted_by, e.received_at) for e in sink.logged_events()] == [
        (p.posted_by, p.received_at) for p in POSTERS
    ]


def test_posters_of_logged_events(sink: Store) -> None:
    _fill(sink)
    ids = [e.event_id for e in STREAM]
    assert sink.posters([ids[4], "nope", ids[0], ids[0]]) == {
        ids[0]: ("centre:fj", POSTERS[0].received_at),
        ids[4]: ("unit:gat", POSTERS[4].received_at),
    }
    assert sink.posters([]) == {}
    # every event of every ledger entry has its poster: what `tracker ledger` shows
    cited = sorted({i for entry in sink.ledger() for i in entry.event_ids})
    assert set(sink.posters(cited)) == set(cited)


def test_ingest_stamps_events_and_dead_letters(sink: Store) -> None:
    """Through the pipeline into the store: the tool and its clock by default, or the envelope
    each line came with."""
    now = datetime(2018, 3, 25, 1, 2, 3, 456_789, UTC)
    tracker = Tracker(sink, REGISTRY, BOOKS, engine().calendar, clock=lambda: now)
    tracker.feed_lines(LINES[:3], "f.jsonl")
    tracker.feed_lines(LINES[3:], "api", envelope=POSTERS[1])
    stored = local(now.replace(microsecond=456_000))
    assert [(e.posted_by, e.received_at) for e in sink.logged_events()] == [
        ("ingest:f.jsonl", stored),
        ("ingest:f.jsonl", stored),
        *[("centre:fj", POSTERS[1].received_at)] * 3,
    ]
    assert sorted((d.origin, d.posted_by, d.received_at) for d in sink.dead_letters()) == [
        ("api:2", "centre:fj", POSTERS[1].received_at),
        ("f.jsonl:3", "ingest:f.jsonl", stored),
    ]


def test_a_replay_of_the_log_reproduces_it_byte_for_byte(new_store: Callable[[], Store]) -> None:
    """The same stream with the same envelopes into a fresh store, and a restore of a store whose
    outputs were never written, give the same log and ledger rows, envelopes included."""

    def feed(sink: Store, clock: datetime) -> Tracker:
        sink.save_config(REGISTRY, BOOKS)
        tracker = Tracker(
            sink, REGISTRY, BOOKS, engine().calendar, clock=lambda: clock, signer=SIGNER
        )
        tracker.feed_lines(LINES[:3], "f.jsonl")
        tracker.feed_lines(LINES[3:], "api", envelope=POSTERS[1])
        return tracker

    def rows(sink: Store) -> tuple[list[str], ...]:
        """The log and the ledger with their signatures and hashes, and the last signed head
        of every chain (a restore signs per page, so it may sign fewer heads in between)."""
        last = {(h.chain, h.key): h for h in sink.chain_heads()}
        return (
            [e.model_dump_json() for e in sink.logged_events()],
            [e.model_dump_json() for e in sink.ledger()],
            [last[k].model_dump_json() for k in sorted(last)],
        )

    now = datetime(2018, 3, 25, 1, 2, 3, 456_789, UTC)
    first, second = feed(new_store(), now).store, feed(new_store(), now).store
    assert rows(first) == rows(second)
    log_only = new_store()
    log_only.save_config(REGISTRY, BOOKS)
    # the events are logged, the commit mark is not: restore derives and writes everything else
    with write_drill("error", 1, table="batches"), contextlib.suppress(StoreError):
        log_only.write(Batch(events=list(first.logged_events())))
    later = Tracker(
        log_only,
        REGISTRY,
        BOOKS,
        engine().calendar,
        clock=lambda: now + timedelta(days=2),
        signer=SIGNER,
    )
    assert later.restore() == len(rows(first)[0])
    assert rows(log_only) == rows(first)


def test_signed_heads_round_trip(sink: Store) -> None:
    """Each write stores the signed head of every chain it extends; the same batch written again
    leaves the same heads; the rows carry their hashes, so the store does not predate chains."""
    batch = _fill(sink)
    assert {(h.chain, h.key) for h in batch.heads} == {("events", "0")} | {
        ("ledger", f"{e.unit}/{e.year}") for e in batch.entries
    }
    assert [h.model_dump_json() for h in sink.chain_heads()] == [
        h.model_dump_json() for h in sorted(batch.heads, key=lambda h: (h.chain, h.key))
    ]
    sink.write(batch)
    assert sink.chain_heads() == sorted(batch.heads, key=lambda h: (h.chain, h.key))
    verifier = SIGNER.verifier
    for h in sink.chain_heads():
        assert verifier.valid(head_message(h.chain, h.key, h.through_seq, h.head), h.signature)
    assert not sink.predates_chains()
    assert [e.chain for e in sink.ledger()] and all(e.digest for e in sink.logged_events())


def test_writing_the_same_batch_twice_changes_nothing(sink: Store) -> None:
    batch = _fill(sink)
    before = (
        sink.ledger(),
        sink.deadlines(),
        sink.dead_letters(),
        list(sink.logged_events()),
        sink.totals(),
    )
    sink.write(batch)
    after = (
        sink.ledger(),
        sink.deadlines(),
        sink.dead_letters(),
        list(sink.logged_events()),
        sink.totals(),
    )
    assert before == after


def test_a_write_commits_the_outputs_of_its_events(sink: Store) -> None:
    assert sink.committed_seq() == 0
    _fill(sink)
    assert sink.committed_seq() == len(STREAM)  # the mark is written last, after the outputs
    assert sink.committed_seq(partition=1) == 0
    assert [e.seq for e in sink.logged_events_after(0, 2, limit=2)] == [3, 4]
    assert sink.logged_events_after(0, len(STREAM), limit=10) == []


def test_every_registry_change_is_recorded(sink: Store) -> None:
    other = Registry.model_validate(
        {"assessments": REGISTRY.assessments, "units": REGISTRY.units[:-1]}
    )
    for registry in (REGISTRY, REGISTRY, other, REGISTRY):  # the repeated save is no change
        sink.save_config(registry, BOOKS)
    changes = sink.registry_changes()
    first, second = (
        registry_hash(REGISTRY.model_dump_json()),
        registry_hash(other.model_dump_json()),
    )
    assert [(c.old_hash, c.new_hash) for c in changes] == [
        ("", first),
        (first, second),
        (second, first),
    ]
    assert Registry.model_validate_json(changes[1].registry) == other
    assert changes[0].changed_at <= changes[1].changed_at <= changes[2].changed_at
    assert changes[0].changed_at.tzinfo is not None


def test_known_events_are_those_in_the_log(sink: Store) -> None:
    _fill(sink)
    ids = [e.event_id for e in STREAM]
    assert sink.known_events([ids[0], "nope", ids[-1]]) == {ids[0], ids[-1]}
    assert sink.known_events([]) == set()


def test_logged_ids_are_the_ids_of_every_logged_event(sink: Store) -> None:
    assert set(sink.logged_ids()) == set()
    _fill(sink)
    _fill(sink)  # written twice: an id given twice at most, the same set
    assert set(sink.logged_ids()) == {e.event_id for e in sink.logged_events()}
    assert set(sink.logged_ids()) >= {STREAM[0].event_id, STREAM[-1].event_id}


def test_logged_through_is_each_partitions_highest_seq(sink: Store) -> None:
    assert sink.logged_through() == {}
    _fill(sink)
    _fill(sink)  # written twice: the same seqs
    highest: dict[int, int] = {}
    for e in sink.logged_events():
        highest[e.partition] = max(e.seq, highest.get(e.partition, e.seq))
    assert sink.logged_through() == highest
    assert set(sink.logged_through()) == {e.partition for e in sink.logged_events()}


# ids that a text-built look-up would get wrong: quotes, backslashes (alone, before a quote, at
# the end), what closes the array, NUL and other control characters, non-ASCII; each stored id
# has near misses that are not stored (the same text escaped, doubled or cut)
HOSTILE_IDS = [
    "it's", "'", "\\", "\\'", "a\\", "x') OR 1=1 --", "', '", "']", "`tick`", 'dq"uote',
    "tab\there", "new\nline", "cr\rlf", "nul\x00byte", "\x00", "esc\x1b[0m", "事件-门户网站",
    "emoji-\U0001f600", "\u202eright-to-left", "\\N", "[1, 2]", "{ids:String}", " spaced ",
]  # fmt: skip
NEAR_MISSES = [
    "it\\'s", "it''s", "its", "''", "\\\\", "a", "x", "nul", "nul\\0byte", "nul\\x00byte",
    "tab\\there", "new\\nline", "\\\\N", "", "spaced", "事件", "\\`tick\\`", "dq\\\"uote",
]  # fmt: skip


@pytest.mark.parametrize("chunk", [10_000, 3])
def test_known_events_of_hostile_ids(
    sink: Store, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Event ids are untrusted text: the look-up finds exactly the stored ones, whatever their
    characters, in one query or in chunks."""
    monkeypatch.setattr("sinks.clickhouse_reads._LOOKUP_CHUNK", chunk)
    first = tick("2018-03-01T00:00")
    batch, head = Batch(), ""
    for seq, event_id in enumerate(HOSTILE_IDS, start=1):
        event = first.model_copy(update={"event_id": event_id})
        logged = logged_event(event, event.model_dump_json(), 0, seq, POSTERS[0], head)
        batch.events.append(logged)
        head = logged.chain
    sink.write(batch)
    assert sink.known_events(sorted(HOSTILE_IDS + NEAR_MISSES)) == set(HOSTILE_IDS)
    assert sink.known_events(sorted(NEAR_MISSES)) == set()
    for event_id in HOSTILE_IDS:
        assert sink.known_events([event_id]) == {event_id}


def test_filters_and_totals(sink: Store) -> None:
    _fill(sink)
    assert {e.unit for e in sink.ledger(unit="fz")} == {"fz"}
    assert sink.ledger(year=2019) == []
    totals = sink.totals()
    assert str(totals[("fz", 2018, "sys")]) == "2.2"  # V2 notice + overdue, O1 from the county
    assert str(totals[("gat", 2018, "net")]) == "1"  # V1 overdue reversed by on-time feedback
    assert sink.event_unit_years() == {("gat", 2018), ("fz", 2018), ("fz.gl", 2018)}
    assert (
        sink.watermark() is not None and sink.watermark().isoformat() == "2018-03-20T00:00:00+08:00"
    )


def _ledger_sums(entries: Sequence[LedgerEntry]) -> dict[tuple[str, int, str], Decimal]:
    sums: dict[tuple[str, int, str], Decimal] = {}
    for e in entries:
        key = (e.unit, e.year, e.indicator)
        sums[key] = sums.get(key, Decimal(0)) + e.applied
    return sums


def test_the_totals_are_kept_through_every_rewrite(sink: Store) -> None:
    """`totals` and `event_unit_years` are kept as the ledger and the log are written
    (sinks/clickhouse_totals.py), and a batch may be written again, whole or in part (crash
    recovery, redelivery, two writers): after each rewrite they are still the ledger's sums,
    with its keys (one whose entries are all capped at 0 too), and the log's unit-years."""
    batch = _fill(sink)
    capped = batch.entries[0].model_copy(
        update={"entry_id": "c1", "indicator": "capped-only", "applied": Decimal(0)}
    )
    later = batch.entries[0].model_copy(update={"entry_id": "c2", "year": 2019})
    half = len(batch.entries) // 2
    rewrites = [
        batch,
        Batch(entries=batch.entries[:half]),  # a write that stopped half-way, then again
        Batch(events=batch.events[1:], entries=batch.entries[::-1]),
        Batch(entries=[capped, later]),  # new entries: a key of zeros, another year
        Batch(entries=[later, capped, *batch.entries], events=batch.events),
    ]
    for n, again in enumerate(rewrites):
        sink.write(again)
        ledger = sink.ledger()
        assert sink.totals() == _ledger_sums(ledger), n
        logged = {(e.unit, e.year) for e in sink.logged_events() if e.unit}
        assert sink.event_unit_years() == logged, n
    totals = sink.totals()
    assert str(totals[("fz", 2018, "sys")]) == "2.2"  # as before any rewrite
    assert totals[(capped.unit, 2018, "capped-only")] == 0
    assert totals[(later.unit, 2019, later.indicator)] == later.applied != 0


def test_status_is_built_from_the_store_alone(sink: Store) -> None:
    _fill(sink)
    registry, books = sink.load_config()  # type: ignore[misc]
    rows = build_status(
        registry, books, sink.totals(), sink.deadlines(), sink.event_unit_years(), unit="fz"
    )
    assert [(r.unit, r.year, r.rulebook, str(r.deducted)) for r in rows] == [
        ("fz", 2018, "t-city", "2.2")
    ]
    assert [d.model_dump(mode="json") for d in rows[0].deadlines] == [
        {
            "ref": "V2",
            "due": "2018-03-18T00:00:00+08:00",
            "status": "overdue",
            "notice_due": "2018-03-25T18:00:00+08:00",
        }
    ]


def test_a_store_made_before_notice_due_gains_the_column(chdb_dsn: str) -> None:
    from sinks.clickhouse import ClickHouseStore, connect, split_dsn

    _, db = split_dsn(chdb_dsn)
    client = connect(chdb_dsn)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    # the deadlines table and its reader view as contract v1 made them
    client.command(
        f"""CREATE TABLE {db}.deadlines (
            unit String, kind LowCardinality(String), ref String, year UInt16, event_id String,
            noticed_at DateTime64(3, 'Asia/Shanghai'), due DateTime64(3, 'Asia/Shanghai'),
            status LowCardinality(String), feedback_at Nullable(DateTime64(3, 'Asia/Shanghai')),
            updated_at DateTime64(3, 'Asia/Shanghai'), version UInt64
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (unit, kind, ref)"""
    )
    client.command(
        f"CREATE VIEW {db}.deadlines_v AS SELECT * EXCEPT version FROM {db}.deadlines FINAL"
    )
    client.close()
    store = ClickHouseStore(chdb_dsn)
    try:
        batch = _fill(store)
        latest = {(d.unit, d.kind, d.ref): d for d in batch.deadlines}
        assert store.deadlines() == [latest[k] for k in sorted(latest)]
        for view in ("deadlines_v", "deadlines_now"):
            columns = store.client.query(f"SELECT * FROM {db}.{view} LIMIT 0").column_names
            assert "notice_due" in columns, view
    finally:
        store.close()


_OLD_EVENTS = """CREATE TABLE {db}.events (
    event_id String, partition UInt16, seq UInt64, unit String,
    type LowCardinality(String), at DateTime64(3, 'Asia/Shanghai'), year UInt16, raw String
) ENGINE = ReplacingMergeTree ORDER BY event_id"""
_OLD_LETTERS = """CREATE TABLE {db}.dead_letters (
    letter_id String, origin String, raw String, reason String,
    received_at DateTime64(3, 'Asia/Shanghai')
) ENGINE = ReplacingMergeTree ORDER BY letter_id"""


def test_a_store_made_before_envelopes_opens_and_gains_the_columns(chdb_dsn: str) -> None:
    """The event log and dead letters as they were before issue 10, with a row each: the store
    opens, the old rows read as unenveloped, new rows keep their envelopes, and the tables are
    those of a store made new."""
    from sinks.clickhouse import ClickHouseStore, connect, split_dsn

    _, db = split_dsn(chdb_dsn)
    old_event = STREAM[0]
    client = connect(chdb_dsn)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(_OLD_EVENTS.format(db=db))
    client.command(_OLD_LETTERS.format(db=db))
    client.command(f"CREATE VIEW {db}.dead_letters_v AS SELECT * FROM {db}.dead_letters FINAL")
    client.insert(
        f"{db}.events",
        [["old", 0, 1, "gat", old_event.type, old_event.at, 2018, "{}"]],
        column_names=["event_id", "partition", "seq", "unit", "type", "at", "year", "raw"],
    )
    client.insert(
        f"{db}.dead_letters",
        [["old", "f:9", "{", "malformed JSON", datetime(2018, 3, 2, tzinfo=UTC)]],
        column_names=["letter_id", "origin", "raw", "reason", "received_at"],
    )
    client.close()
    store = ClickHouseStore(chdb_dsn)
    try:
        [old] = list(store.logged_events())
        assert (old.posted_by, old.received_at) == (UNKNOWN_POSTER, UNKNOWN_RECEIPT)
        assert store.posters([old.event_id]) == {old.event_id: (UNKNOWN_POSTER, UNKNOWN_RECEIPT)}
        [letter] = store.dead_letters()
        assert (letter.letter_id, letter.posted_by) == ("old", UNKNOWN_POSTER)
        batch = _fill(store)
        logged = {e.event_id: e for e in store.logged_events()}
        assert [logged[e.event_id] for e in batch.events] == batch.events
        assert logged["old"] == old
        columns = store.client.query(f"SELECT * FROM {db}.dead_letters_v LIMIT 0").column_names
        assert "posted_by" in columns
        made_new = ClickHouseStore(chdb_dsn.replace(db, db + "_new"))
        try:
            for table in ("events", "dead_letters"):
                assert _columns(store, db, table) == _columns(made_new, db + "_new", table)
        finally:
            made_new.client.command(f"DROP DATABASE IF EXISTS {db}_new")
            made_new.close()
    finally:
        store.close()


def test_a_reader_of_a_store_made_before_envelopes_reads_them_as_unknown(chdb_dsn: str) -> None:
    """`tracker ledger|rejects` on an old store no writer has opened since: a reader changes
    nothing, so the envelope columns are missing, and the rows read as unenveloped."""
    from sinks.clickhouse import ClickHouseStore, connect, split_dsn
    from sinks.ddl import TABLES

    _, db = split_dsn(chdb_dsn)
    client = connect(chdb_dsn)
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(_OLD_EVENTS.format(db=db))
    client.command(_OLD_LETTERS.format(db=db))
    for name in ("meta", "ledger", "deadlines"):
        client.command(TABLES[name].format(db=db))
    client.insert(
        f"{db}.events",
        [["old", 0, 1, "gat", "vuln.notice", datetime(2018, 3, 1, tzinfo=UTC), 2018, "{}"]],
        column_names=["event_id", "partition", "seq", "unit", "type", "at", "year", "raw"],
    )
    client.insert(
        f"{db}.dead_letters",
        [["d", "f:9", "{", "malformed JSON", datetime(2018, 3, 2, tzinfo=UTC)]],
        column_names=["letter_id", "origin", "raw", "reason", "received_at"],
    )
    client.close()
    reader = ClickHouseStore(chdb_dsn, create=False)
    try:
        [old] = list(reader.logged_events())
        assert (old.posted_by, old.received_at) == (UNKNOWN_POSTER, UNKNOWN_RECEIPT)
        assert [e.event_id for e in reader.logged_events_after(0, 0, 10)] == ["old"]
        assert reader.posters(["old"]) == {"old": (UNKNOWN_POSTER, UNKNOWN_RECEIPT)}
        [letter] = reader.dead_letters()
        assert (letter.posted_by, letter.received_at) == (
            UNKNOWN_POSTER,
            local(datetime(2018, 3, 2, tzinfo=UTC)),
        )
        assert "posted_by" not in {c[0] for c in _columns(reader, db, "events")}  # not altered
    finally:
        reader.close()


def _columns(store: Any, db: str, table: str) -> list[tuple[str, str, str]]:
    rows = store.client.query(
        "SELECT name, type, default_expression FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY position",
        parameters={"db": db, "t": table},
    ).result_rows
    return [tuple(map(str, r)) for r in rows]


@pytest.mark.parametrize(
    "batch_size", [1, 3, 1000]
)  # flushing mid-stream must not change the result
def test_tracker_restores_from_the_log_and_continues(sink: Store, batch_size: int) -> None:
    lines = [e.model_dump_json() for e in STREAM]
    sink.save_config(REGISTRY, BOOKS)
    first = Tracker(sink, REGISTRY, BOOKS, engine().calendar, batch_size=batch_size)
    first.feed_lines(lines[:2], "part1")
    second = Tracker(sink, REGISTRY, BOOKS, engine().calendar, batch_size=batch_size)
    assert second.restore() == 2
    summary = second.feed_lines(lines, "full")  # the first two are duplicates now
    assert summary.as_dict() == {"accepted": 3, "rejected": 0, "duplicates": 2}
    one_go = Tracker(_fresh(sink), REGISTRY, BOOKS, engine().calendar)
    one_go.feed_lines(lines, "one")
    assert [e.entry_id for e in sink.ledger()] == [e.entry_id for e in one_go.store.ledger()]


def _fresh(sink: Store) -> Store:
    from sinks import MemoryStore

    return MemoryStore()


# The contract stream with bad lines between its events, written in batches of BATCH records.
# Three batches: the first (dead letters, events, unit-years, two ledger tables, ...), a second
# with a dead letter and a third ledger table, a third with neither, then the checkpoint. So
# the store-error drill below hits every kind of gap between two writes - in the open, inside
# each kind of batch, batch -> batch both with and without dead letters, batch -> checkpoint -
# in 30 writes of a MemoryStore; batches of 3 made a fourth batch that only repeated the second
# batch's gaps (38 writes).
BATCH = 5
LINES = [e.model_dump_json() for e in STREAM]
LINES[2:2] = ["{not json"]
LINES[4:4] = [
    '{"event_id": "x", "type": "vuln.notice", "unit": "nobody", "at": "2018-03-03T10:00:00+08:00", "notice_id": "N", "system": "s"}'
]


def _ingest(sink: Store, lines: Sequence[str], signer: Signer | None = None) -> None:
    ingest(
        sink, REGISTRY, BOOKS, engine().calendar, lines, "f.jsonl", batch_size=BATCH, signer=signer
    )


def _expected(lines: Sequence[str], signer: Signer | None = None) -> dict[str, Any]:
    sink = MemoryStore()
    _ingest(sink, lines, signer)
    return dump(sink)


def _outputs(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "letters"}


@pytest.mark.parametrize(
    ("new_store", "signer"),
    [
        # without a key: no checkpoints, each run replays the log
        ("memory", None),
        # with a key: each run ends with a checkpoint, and its write is among the N
        ("memory", SIGNER),
        # chDB with a key only: its writes are the unsigned run's plus the checkpoint's, and the
        # drill costs a minute a variant there (two fresh databases a write)
        ("clickhouse", SIGNER),
    ],
    ids=["memory-unsigned", "memory-checkpointed", "clickhouse-checkpointed"],
    indirect=["new_store"],
)
def test_a_store_error_at_any_write_is_recovered_by_the_next_run(
    new_store: Callable[[], Store], signer: Signer | None
) -> None:
    """An insert fails (disk full, store down) at write N: the next run - with the same file, or
    with an empty one and then the same file - leaves the store as an uninterrupted run does.
    Signed, each run also ends with a checkpoint (its write among the N), which the next starts
    from."""
    full = _expected(LINES, signer)
    failures = []
    for n in itertools.count(1):
        same, empty = new_store(), new_store()
        with write_drill("error", n) as drill, contextlib.suppress(StoreError):
            _ingest(same, LINES, signer)
        if drill.writes < n:
            break  # n is past the last write
        with write_drill("error", n), pytest.raises(StoreError):
            _ingest(empty, LINES, signer)

        _ingest(same, LINES, signer)
        if dump(same) != full:
            failures.append(f"write {n}: re-run with the same lines differs")
        _ingest(empty, [], signer)
        got = dump(empty)
        want = _expected(LINES[: lines_covered(got, LINES)], signer)
        if _outputs(got) != _outputs(want) or not (
            set(map(tuple, want["letters"])) <= set(map(tuple, got["letters"]))
        ):
            failures.append(f"write {n}: re-run with no lines differs")
        _ingest(empty, LINES, signer)
        if dump(empty) != full:
            failures.append(f"write {n}: the same lines after an empty re-run differ")
    assert n > 6, "the stream should take several writes"
    assert failures == [], f"{len(failures)} of {3 * (n - 1)} re-runs differ: {failures}"


def test_a_checkpoint_round_trips_and_replaces_the_partitions_others(sink: Store) -> None:
    from sinks.checkpoint import Checkpoint

    assert sink.load_checkpoint(0) is None
    at = local(datetime(2026, 1, 1, tzinfo=UTC))
    state = '{"engine": {"text": "福州 \\u0000 ok"}}'
    made = [Checkpoint(p, seq, "ab" * 32, state, f"sig{seq}", at) for p, seq in ((0, 5), (1, 7))]
    for cp in made:
        sink.save_checkpoint(cp)
    assert [sink.load_checkpoint(0), sink.load_checkpoint(1)] == made
    # a partition's new checkpoint is its one, whatever the seq of the one it replaces
    lower = Checkpoint(0, 3, "cd" * 32, state, "sig3", at)
    sink.save_checkpoint(lower)
    assert sink.load_checkpoint(0) == lower
    assert sink.load_checkpoint(1) == made[1]
    assert sink.load_checkpoint(2) is None


def test_a_checkpoints_parts_round_trip_and_go_with_their_row(sink: Store) -> None:
    """The parts of a checkpoint's text (sinks/checkpoint.py), read from an iterator: the store
    holds them in order under their write; a partition's new row drops every other write's."""
    from sinks.checkpoint import Checkpoint

    at = local(datetime(2026, 1, 1, tzinfo=UTC))
    texts = [f'["福州 {n}",'.encode() for n in range(19)]  # more than one insert's worth
    sink.save_checkpoint_parts(0, 5, "aa11", iter(texts))
    sink.save_checkpoint_parts(0, 5, "bb22", iter(texts[:2]))  # a write its row never followed
    sink.save_checkpoint_parts(0, 3, "cc33", iter(texts[:3]))
    sink.save_checkpoint_parts(1, 5, "dd44", iter(texts[:4]))
    assert sink.load_checkpoint_parts(0, 5, "aa11") == texts
    assert sink.load_checkpoint_parts(0, 5, "bb22") == texts[:2]
    header = '{"format":"tracker-checkpoint-parts/1","write":"aa11"}'
    sink.save_checkpoint(Checkpoint(0, 5, "ab" * 32, header, "sig", at))
    assert sink.load_checkpoint_parts(0, 5, "aa11") == texts
    assert sink.load_checkpoint_parts(0, 5, "bb22") == []
    assert sink.load_checkpoint_parts(0, 3, "cc33") == []
    assert sink.load_checkpoint_parts(1, 5, "dd44") == texts[:4]  # another partition's


def test_a_store_made_before_chains_reads_as_such_and_gains_the_columns(chdb_dsn: str) -> None:
    """A store whose event log and ledger have no hash columns (before issue 11): a reader reads
    the rows with empty hashes and says the store predates chains; a writer adds the columns, as
    a store made new has them, and the old rows still predate chains."""
    from sinks.clickhouse import ClickHouseStore, split_dsn

    _, db = split_dsn(chdb_dsn)
    store = ClickHouseStore(chdb_dsn)
    _fill(store)
    for sql in (
        f"ALTER TABLE {db}.events DROP COLUMN signature, DROP COLUMN digest, DROP COLUMN chain",
        f"ALTER TABLE {db}.ledger DROP COLUMN digest, DROP COLUMN chain",
        f"DROP TABLE {db}.chain_heads",
    ):
        store.client.command(sql)
    store.close()
    reader = ClickHouseStore(chdb_dsn, create=False)
    try:
        assert reader.predates_chains()
        assert reader.chain_heads() == []
        assert {e.chain for e in reader.ledger()} == {""}
        assert {(e.signature, e.digest) for e in reader.logged_events()} == {("", "")}
    finally:
        reader.close()
    writer = ClickHouseStore(chdb_dsn)
    made_new = ClickHouseStore(chdb_dsn.replace(db, db + "_new"))
    try:
        assert writer.predates_chains()
        for table in ("events", "ledger", "chain_heads"):
            assert _columns(writer, db, table) == _columns(made_new, db + "_new", table)
    finally:
        made_new.client.command(f"DROP DATABASE IF EXISTS {db}_new")
        made_new.close()
        writer.close()


def test_known_events_asked_ahead_hold_the_log_as_it_was_asked(sink: Store) -> None:
    """An answer asked before a write holds every id logged before the ask; one logged after it
    may or may not be in it (the caller adds what it logged itself meanwhile)."""
    _fill(sink)
    ids = [e.event_id for e in STREAM]
    later = sink.known_events_later([ids[0], "nope", "after-the-ask"])
    empty = sink.known_events_later([])
    event = tick("2018-12-01T00:00").model_copy(update={"event_id": "after-the-ask"})
    batch = Batch()
    seq = len(STREAM) + 1
    batch.events.append(logged_event(event, event.model_dump_json(), 0, seq, POSTERS[0], ""))
    sink.write(batch)
    assert {ids[0]} <= later() <= {ids[0], "after-the-ask"}
    assert empty() == set()
    assert sink.known_events(["after-the-ask"]) == {"after-the-ask"}
