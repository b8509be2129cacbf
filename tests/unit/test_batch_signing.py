"""One intake signature per batch (docs/audit.md, "One signature per batch"): the writers that
sign at intake sign once a batch, not once an event; each event still verifies on its own with
the public key alone, in either form, and an event changed after intake is named."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.signing import Signer
from engine.chain import event_digest, event_message, link
from schemas.ledger import LoggedEvent
from sinks import Batch, MemoryStore
from tests import builders
from tests.unit.test_chains import tracker
from tracker.audit import AuditData, verify
from tracker.pipeline import Tracker

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NOW = datetime(2018, 12, 31, 9, 0, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class CountingSigner(Signer):
    """The signer, remembering every message it signed."""

    signed: list[bytes] = field(default_factory=list)

    def sign(self, message: bytes) -> str:
        self.signed.append(message)
        return super().sign(message)

    def intake(self) -> list[bytes]:
        """The messages signed at intake: events or batches of them (not chain heads, nor the
        engine's checkpoint a writer signs when it closes)."""
        return [
            m
            for m in self.signed
            if not m.startswith((b'["tracker-head"', b'["tracker-checkpoint"'))
        ]


class CountingStore(MemoryStore):
    writes = 0

    def write(self, batch: Batch) -> None:
        self.writes += 1
        super().write(batch)


def notices(n: int, prefix: str = "n") -> list[str]:
    return [
        builders.ev(
            "vuln.notice", "2018-03-01T10:00", event_id=f"{prefix}{i}", notice_id=f"V{i}",
            system="OA",
        ).model_dump_json()
        for i in range(n)
    ]  # fmt: skip


def ingest(store: MemoryStore, signer: Signer, lines: list[str], batch_size: int = 20) -> Tracker:
    fed = tracker(store, signer, batch_size)
    fed.feed_lines(lines, "f")
    return fed


def test_ingest_signs_each_write_once_not_every_event() -> None:
    """60 events in writes of 20 rows: one intake signature a write (each ledger entry is a row
    too, so there are more writes than 3), where each event had its own."""
    signer, store = CountingSigner(KEY), CountingStore()
    ingest(store, signer, notices(60))
    logged = list(store.logged_events())
    assert len(logged) == 60
    assert 0 < len(signer.intake()) <= store.writes < 60
    assert all(m.startswith(b'["tracker-batch"') for m in signer.intake())


def test_serve_embedded_signs_a_request_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request of 20 events, applied as one group: one intake signature a tree of
    MAX_TREE_LEAVES (was: one an event)."""
    import tracker.serve.embedded as embedded
    from config.intake_signatures import MAX_TREE_LEAVES
    from tests.serve_kit import event, serve

    signer = CountingSigner(KEY)
    monkeypatch.setattr(embedded, "intake_signer", lambda: signer)
    store = MemoryStore()
    served = serve(store, tmp_path)
    body = [event("vuln.notice", "fj.gat", f"n-{i}", notice_id=f"V-{i}") for i in range(20)]
    assert served.post("centre", body).json()["accepted"] == 20
    served.service.settle()
    served.service.close()
    assert len(list(store.logged_events())) == 20
    assert len(signer.intake()) == -(-20 // MAX_TREE_LEAVES) < 20


# -- verifying either form ------------------------------------------------------------------------


def audit(store: MemoryStore, events: list[LoggedEvent] | None = None) -> list[str]:
    data = AuditData(
        builders.REGISTRY,
        builders.BOOKS,
        builders.calendar(),
        events if events is not None else list(store.logged_events()),
        store.ledger(),
        store.chain_heads(),
    )
    return [f.line() for f in verify(data, Signer(KEY).verifier).findings]


def rehashed(events: list[LoggedEvent], at: int, **changes: Any) -> list[LoggedEvent]:
    """The event log with event `at` changed and every digest and chain recomputed, as a forger
    with write access to the store but without the key would."""
    out, previous = [], ""
    for i, e in enumerate(events):
        values = dict(e.__dict__, **(changes if i == at else {}))
        values["digest"] = event_digest(values)
        values["chain"] = previous = link(previous, values["digest"])
        out.append(LoggedEvent.model_validate(values))
    return out


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        # the body: another system named
        ("raw", None),
        # who posted it
        ("posted_by", "unit:someone-else"),
        # when it was received
        ("received_at", datetime(2019, 1, 1, tzinfo=UTC)),
    ],
)
def test_an_event_changed_and_rehashed_is_named_in_its_batch(field_name: str, value: Any) -> None:
    from config.intake_signatures import MAX_TREE_LEAVES

    store = MemoryStore()
    ingest(store, Signer(KEY), notices(30), batch_size=1000)  # one write, trees of its events
    events = list(store.logged_events())
    roots = {e.signature.split(":")[1] for e in events}
    assert len(roots) == -(-30 // MAX_TREE_LEAVES) < 30  # one root signature a tree
    assert audit(store) == []
    if value is None:
        value = events[6].raw.replace('"OA"', '"HR"')
    found = audit(store, rehashed(events, 6, **{field_name: value}))
    located = [f for f in found if f.startswith("events partition 0 position 7 (seq 7, event n6)")]
    assert located and "intake signature does not match" in located[0], found
    # the other 29 events of the batch still verify: only that one is named
    assert not [f for f in found if f.startswith("events") and "event n6)" not in f]


def test_old_per_event_signatures_still_verify_beside_batches() -> None:
    """A store written before batches (each event signed on its own) verifies, and goes on
    verifying once batches follow; its old events are still named when changed."""
    from sinks.heads import sign_envelope

    store = MemoryStore()
    ingest(store, Signer(KEY), notices(10), batch_size=1000)
    batch = list(store.logged_events())
    old, previous = [], ""
    for e in batch:  # the same rows as an older version wrote them: one signature each
        own = sign_envelope(Signer(KEY), _envelope(e), e.raw).signature
        values = dict(e.__dict__, signature=own)
        values["digest"] = event_digest(values)
        values["chain"] = previous = link(previous, values["digest"])
        old.append(LoggedEvent.model_validate(values))
    assert all(":" not in e.signature for e in old)
    signatures = {e.event_id: e.signature for e in old}
    verifier = Signer(KEY).verifier
    assert all(
        verifier.valid(event_message(e.raw, e.posted_by, e.received_at), signatures[e.event_id])
        for e in old
    )
    from config.intake_signatures import IntakeSignatures

    checker = IntakeSignatures(verifier)
    for e in [*old, *batch]:
        assert checker.valid(event_message(e.raw, e.posted_by, e.received_at), e.signature)
    changed = event_message(old[3].raw, "unit:someone-else", old[3].received_at)
    assert not checker.valid(changed, old[3].signature)


def _envelope(e: LoggedEvent) -> Any:
    from schemas.envelope import Envelope

    return Envelope(posted_by=e.posted_by, received_at=e.received_at)


def test_a_proof_is_bound_to_its_tree_size_and_its_signature() -> None:
    from config.intake_signatures import IntakeSignatures, sign_messages
    from engine.merkle import decode_proof, encode_proof

    messages = [f"event {i}".encode() for i in range(500)]
    fields = sign_messages(Signer(KEY), messages)
    checker = IntakeSignatures(Signer(KEY).verifier)
    assert all(checker.valid(m, f) for m, f in zip(messages, fields, strict=True))
    proof = decode_proof(fields[0])
    assert proof is not None
    # the same path read as one of a tree of 501 leads to the same root: the signed message
    # names the size, so the signature no longer fits
    bigger = encode_proof(proof.signature, 0, 501, proof.path)
    assert not checker.valid(messages[0], bigger)
    # another key's signature of the same root, or another batch's signature
    other = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
    forged = sign_messages(other, messages)[0]
    assert not checker.valid(messages[0], forged)
    elsewhere = sign_messages(Signer(KEY), [b"a", b"b"])[0]
    assert not checker.valid(messages[0], elsewhere)
    # a malformed proof says so; a wrong index leads elsewhere
    assert "well-formed" in (checker.problem(messages[0], "m1:x:0:2:zz") or "")
    wrong = encode_proof(proof.signature, 1, 500, proof.path)
    assert not checker.valid(messages[0], wrong)


def test_a_batch_of_one_keeps_the_per_event_form_and_large_batches_split() -> None:
    from config.intake_signatures import MAX_TREE_LEAVES, sign_messages
    from engine.merkle import decode_proof

    signer = CountingSigner(KEY)
    [single] = sign_messages(signer, [b"only"])
    assert Signer(KEY).verifier.valid(b"only", single)
    fields = sign_messages(signer, [str(i).encode() for i in range(MAX_TREE_LEAVES + 2)])
    proofs = [decode_proof(f) for f in fields]
    assert [p.size for p in proofs if p is not None] == [MAX_TREE_LEAVES] * MAX_TREE_LEAVES + [2, 2]
    assert len(signer.signed) == 1 + 2
    # deterministic: the same batch signs to the same fields (a rewritten batch, the same rows)
    assert sign_messages(signer, [str(i).encode() for i in range(MAX_TREE_LEAVES + 2)]) == fields


def test_ingest_writes_the_same_rows_when_the_same_batches_come_again() -> None:
    first, second = MemoryStore(), MemoryStore()
    ingest(first, Signer(KEY), notices(50))
    ingest(second, Signer(KEY), notices(50))
    assert list(first.logged_events()) == list(second.logged_events())
    assert audit(first) == []


def test_the_signature_field_holds_a_proof_of_the_largest_tree() -> None:
    """The envelope's field (a Kafka header, a column) takes a proof of a full tree."""
    from config.intake_signatures import MAX_TREE_LEAVES
    from schemas.envelope import Envelope, from_headers
    from sinks.heads import sign_envelopes

    envelope = Envelope(posted_by="centre:fj", received_at=NOW)
    signed = sign_envelopes(Signer(KEY), [(envelope, str(i)) for i in range(MAX_TREE_LEAVES)])
    longest = max(signed, key=lambda e: len(e.signature))
    read = from_headers(longest.headers())
    assert read is not None and read.signature == longest.signature


# -- the worker -----------------------------------------------------------------------------------

STAMP = int(datetime(2018, 12, 31, 1, 2, 3, tzinfo=UTC).timestamp() * 1000)


def _written(store: MemoryStore, rows: list[LoggedEvent]) -> None:
    """One worker write of event rows, with the signed heads every write carries."""
    from sinks.heads import sign_heads

    store.write(Batch(events=rows, heads=sign_heads(Signer(KEY), rows, [])))


def test_the_worker_signs_what_came_unsigned_on_its_own_so_a_redelivery_writes_the_same_rows() -> (
    None
):
    """The worker is the intake of records that reach its topic unsigned (`tracker post`, the
    ticker). A record's row must not depend on the poll it came in: after a crash between the
    store write and the offset commit, the next owner gets the records again in other polls,
    and a worker that starts mid-partition rebuilds its chain head by replaying the partition
    in the reader's batches. Signed on its own, a record logs the same row every time. Signed
    in a tree of its poll, it would not: the signature is in the row's digest, so the chain
    values after it change, and the heads the first write signed (kept by `through_seq`) no
    longer match the rows, which verify takes for a rewrite. So the worker does not sign per
    poll (docs/audit.md)."""
    from engine.step import logged_event
    from schemas.events import parse_event
    from sinks.heads import sign_envelopes
    from streams.partition import PartitionState, Record
    from streams.settings import Config

    config = Config(builders.REGISTRY, builders.BOOKS, builders.calendar(), signer=Signer(KEY))
    lines = notices(10)
    records = [Record("in", 0, n, STAMP, v.encode(), None) for n, v in enumerate(lines)]

    def rows(state: Any, polled: list[Record]) -> list[LoggedEvent]:
        return [out.logged for out in map(state.apply, polled) if out.logged is not None]

    from engine.warnings import WarningPolicy

    store = MemoryStore()
    store.save_config(builders.REGISTRY, builders.BOOKS)
    _written(store, rows(PartitionState(config, 0, 1, WarningPolicy()), records[:6]))
    # the worker died before committing; the next owner polls offsets 0..9 at once
    _written(store, rows(PartitionState(config, 0, 1, WarningPolicy()), records))
    assert [f for f in audit(store) if f.startswith("events")] == []

    # the same two writes with one signature per poll: the rows no longer verify
    def per_poll(polled: list[Record]) -> list[LoggedEvent]:
        signed = sign_envelopes(Signer(KEY), [(r.envelope(), lines[r.offset]) for r in polled])
        out, head = [], ""
        for r, envelope in zip(polled, signed, strict=True):
            logged = logged_event(parse_event(lines[r.offset]), lines[r.offset], 0, r.offset, envelope, head)  # fmt: skip
            out.append(logged)
            head = logged.chain
        return out

    store = MemoryStore()
    store.save_config(builders.REGISTRY, builders.BOOKS)
    _written(store, per_poll(records[:6]))
    _written(store, per_poll(records))
    found = [f for f in audit(store) if f.startswith("events")]
    assert found and "partition 0" in found[0], found


def test_a_request_signed_together_is_logged_by_the_worker_as_it_came() -> None:
    """`tracker serve --bootstrap` signs a request's records together; the worker logs each
    record's proof from its header as it came (it signs nothing itself), the same row in any
    poll, and each verifies on its own."""
    from config.intake_signatures import IntakeSignatures
    from engine.merkle import is_proof
    from engine.warnings import WarningPolicy
    from schemas.envelope import Envelope
    from streams.partition import PartitionState, Record
    from streams.settings import Config
    from tracker.serve.signing import signed_batch_headers

    raws = notices(3)
    envelope = Envelope(posted_by="centre:fj", received_at=NOW)
    headers = signed_batch_headers(Signer(KEY), envelope, [f"\ufeff {r}\n" for r in raws])
    config = Config(builders.REGISTRY, builders.BOOKS, builders.calendar(), signer=None)
    records = [
        Record("in", 0, n, STAMP, raw.encode(), h)
        for n, (raw, h) in enumerate(zip(raws, headers, strict=True))
    ]

    def logged() -> list[LoggedEvent]:
        state = PartitionState(config, 0, 1, WarningPolicy())
        return [o.logged for o in map(state.apply, records) if o.logged is not None]

    rows = logged()
    checker = IntakeSignatures(Signer(KEY).verifier)
    assert [e.event_id for e in rows] == ["n0", "n1", "n2"]
    for e in rows:
        assert is_proof(e.signature)
        assert checker.valid(event_message(e.raw, e.posted_by, e.received_at), e.signature)
    assert logged() == rows


def test_a_requests_headers_are_its_envelopes_signed_together() -> None:
    """The Kafka backend's shortcut (the request's shared headers made once) gives what signing
    each record's envelope in the batch gives, a batch of one included."""
    from schemas.envelope import Envelope
    from sinks.heads import sign_envelopes
    from tracker.serve.signing import signed_batch_headers, signed_headers

    envelope = Envelope(posted_by="centre:fj", received_at=NOW)  # microseconds: stored as ms
    raws = [f"\ufeff {r}\n" for r in notices(5)]
    expected = [
        e.headers()
        for e in sign_envelopes(Signer(KEY), [(envelope, r.removeprefix("\ufeff").strip()) for r in raws])
    ]  # fmt: skip
    assert signed_batch_headers(Signer(KEY), envelope, raws) == expected
    [one] = sign_envelopes(Signer(KEY), [(envelope, raws[0].removeprefix("\ufeff").strip())])
    assert signed_headers(Signer(KEY), envelope, raws[0]) == one.headers()


def test_a_store_of_both_forms_verifies_and_names_a_changed_event_of_either() -> None:
    """Written a row at a time (every batch of one: each event's own signature, as every store
    before batches was written), then continued in batches: clean; an event of either part
    changed and the log rehashed is named."""
    store = MemoryStore()
    ingest(store, Signer(KEY), notices(8, "old"), batch_size=1)
    later = tracker(store, Signer(KEY), batch_size=1000)
    later.restore()
    later.feed_lines(notices(8, "new"), "g")
    events = list(store.logged_events())
    assert [":" in e.signature for e in events] == [False] * 8 + [True] * 8
    assert audit(store) == []
    for at, event_id in ((2, "old2"), (11, "new3")):
        found = audit(store, rehashed(events, at, posted_by="unit:someone-else"))
        named = [f for f in found if f.startswith("events")]
        assert len(named) == 1 and f"event {event_id})" in named[0], found
        assert "intake signature does not match" in named[0]
