"""Hash chains and signatures on every path that writes (issue 11): the engine's ledger chains,
ingest's and the processor's event chains and intake signatures, the signed heads, a restore
that continues a chain, and the verifier's pure checks on in-memory data."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.intake_signatures import IntakeSignatures
from config.signing import Signer
from engine.chain import GENESIS, entry_digest, event_digest, event_message, link
from engine.warnings import WarningPolicy
from schemas.envelope import HEADER_SIGNATURE, Envelope, from_headers
from schemas.events import Event
from sinks import Batch, MemoryStore
from sinks.heads import sign_heads
from streams.partition import PartitionState, Record
from streams.settings import Config
from tests import builders
from tests.unit.test_engine_properties import streams
from tracker.audit import AuditData, verify
from tracker.pipeline import Tracker
from tracker.serve.signing import signed_headers

SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
OTHER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
CONFIG = Config(builders.REGISTRY, builders.BOOKS, builders.calendar(), signer=SIGNER)
NOW = datetime(2018, 12, 31, 9, 0, 0, 123456, tzinfo=UTC)
STAMP = int(datetime(2018, 12, 31, 1, 2, 3, tzinfo=UTC).timestamp() * 1000)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tracker(store: MemoryStore, signer: Signer | None = SIGNER, batch_size: int = 20) -> Tracker:
    store.save_config(builders.REGISTRY, builders.BOOKS)
    return Tracker(
        store,
        builders.REGISTRY,
        builders.BOOKS,
        builders.calendar(),
        clock=lambda: NOW,
        batch_size=batch_size,
        signer=signer,
    )


def audit(store: MemoryStore, signer: Signer = SIGNER) -> list[str]:
    data = AuditData(
        builders.REGISTRY,
        builders.BOOKS,
        builders.calendar(),
        list(store.logged_events()),
        store.ledger(),
        store.chain_heads(),
    )
    return [f.line() for f in verify(data, signer.verifier).findings]


def lines(stream: list[Event]) -> list[str]:
    return [e.model_dump_json() for e in stream]


def chain_ok(rows: list[Any], digest: Any) -> bool:
    previous = GENESIS
    for r in rows:
        if digest(r.__dict__) != r.digest or link(previous, r.digest) != r.chain:
            return False
        previous = r.chain
    return True


@PROPERTY
@given(streams())
def test_every_ledger_chain_links_and_replays_byte_for_byte(stream: list[Event]) -> None:
    outcomes = builders.apply_all(builders.engine(), stream)
    by_chain: dict[tuple[str, int], list[Any]] = {}
    for e in builders.entries(outcomes):
        by_chain.setdefault((e.unit, e.year), []).append(e)
    for chain in by_chain.values():
        assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
        assert chain_ok(chain, entry_digest)
    again = builders.apply_all(builders.engine(), stream)
    assert builders.serialize(outcomes) == builders.serialize(again)


@PROPERTY
@given(streams())
def test_ingest_and_the_processor_sign_and_chain_alike(stream: list[Event]) -> None:
    """The same records through ingest and through the processor (the worker as their intake):
    the same ledger hashes; the event signatures verify on both paths (ingest signs each write's
    events together, the worker each record on its own); the processor re-emits the same bytes
    on a rebuild; ingest's store verifies clean."""
    store = MemoryStore()
    tracker(store).feed_lines(lines(stream), "f")
    envelope = Envelope(posted_by="ingest:f", received_at=NOW)

    def process() -> list[Any]:
        state = PartitionState(CONFIG, 0, 1, WarningPolicy())
        records = [Record("in", 0, n, STAMP, v.encode(), envelope.headers()) for n, v in enumerate(lines(stream))]  # fmt: skip
        return [state.apply(r) for r in records]

    outs = process()
    logged = [o.logged for o in outs if o.logged is not None]
    ingested = list(store.logged_events())
    signatures = IntakeSignatures(SIGNER.verifier)
    for e in [*logged, *ingested]:
        assert signatures.valid(event_message(e.raw, e.posted_by, e.received_at), e.signature)
    assert [(e.event_id, e.raw, e.received_at) for e in logged] == [
        (e.event_id, e.raw, e.received_at) for e in ingested
    ]
    assert chain_ok(logged, event_digest) and chain_ok(ingested, event_digest)
    entries = {e.entry_id: (e.digest, e.chain) for o in outs for e in o.entries}
    assert entries == {e.entry_id: (e.digest, e.chain) for e in store.ledger()}
    again = process()
    assert [o.logged for o in again] == [o.logged for o in outs]
    assert audit(store) == []


def test_a_restore_continues_the_event_chain() -> None:
    """Two runs (the second restoring from the store) make the rows one run makes, chained on
    from the first run's last row (their signatures differ: each run's writes sign their own
    batches)."""
    stream = lines(builders_stream())
    split, whole = MemoryStore(), MemoryStore()
    tracker(split).feed_lines(stream[:3], "f")
    later = tracker(split)
    later.restore()
    later.feed_lines(stream[3:], "f")
    tracker(whole).feed_lines(stream, "f")
    rows = list(split.logged_events())
    assert [(e.event_id, e.seq) for e in rows] == [
        (e.event_id, e.seq) for e in whole.logged_events()
    ]
    assert chain_ok(rows, event_digest)
    assert audit(split) == [] and audit(whole) == []


def test_heads_are_the_last_row_of_each_chain_and_the_same_when_signed_again() -> None:
    store = MemoryStore()
    tracker(store, batch_size=10_000).feed_lines(lines(builders_stream()), "f")
    events, entries = list(store.logged_events()), store.ledger()
    heads = sign_heads(SIGNER, events, entries)
    assert heads == sign_heads(SIGNER, reversed(events), reversed(entries))  # Ed25519: same bytes
    assert {(h.chain, h.key, h.through_seq) for h in heads} == {
        ("events", "0", events[-1].seq),
        *{("ledger", f"{e.unit}/{e.year}", e.seq) for e in entries if e.seq == max(
            x.seq for x in entries if (x.unit, x.year) == (e.unit, e.year))},
    }  # fmt: skip
    assert store.chain_heads() == sorted(heads, key=lambda h: (h.chain, h.key, h.through_seq))


def test_a_store_written_without_a_key_has_no_signature_to_check() -> None:
    store = MemoryStore()
    tracker(store, signer=None).feed_lines(lines(builders_stream()), "f")
    found = audit(store)
    assert (
        found[0].startswith("events partition 0 position 1 ") and "no intake signature" in found[0]
    )
    assert any("no signed head covers this row" in f for f in found)


def test_another_key_is_refused() -> None:
    store = MemoryStore()
    tracker(store).feed_lines(lines(builders_stream()), "f")
    assert any("signature does not match" in f for f in audit(store, OTHER))


def test_the_intake_signature_travels_in_a_header_and_is_logged_by_the_worker() -> None:
    """`tracker serve`'s Kafka backend signs the record as the worker will log it (a BOM and
    surrounding blanks dropped); the worker logs that signature as it came, and it verifies."""
    raw = lines(builders_stream())[0]
    envelope = Envelope(posted_by="centre:fj", received_at=NOW)
    headers = signed_headers(SIGNER, envelope, "\ufeff " + raw + "\n")
    assert [k for k, _ in headers].count(HEADER_SIGNATURE) == 1
    unsigned = dataclasses.replace(CONFIG, signer=None)  # the worker signs nothing itself here
    out = PartitionState(unsigned, 0, 1, WarningPolicy()).apply(
        Record("in", 0, 0, STAMP, ("\ufeff " + raw + "\n").encode(), headers)
    )
    assert out.logged is not None and out.logged.signature
    message = event_message(out.logged.raw, out.logged.posted_by, out.logged.received_at)
    assert SIGNER.verifier.valid(message, out.logged.signature)
    # a signature named twice is none (verify reports the event unsigned)
    twice = [*headers, (HEADER_SIGNATURE, b"AAAA")]
    found = from_headers(twice)
    assert found is not None and found.signature == ""


@given(st.binary(max_size=100), st.text(max_size=100))
def test_a_signature_that_is_not_one_never_raises(signature: bytes, text: str) -> None:
    assert not SIGNER.verifier.valid(b"message", signature.decode("latin-1"))
    assert not SIGNER.verifier.valid(text.encode(), text)


def builders_stream() -> list[Event]:
    ev = builders.ev
    return [
        ev("vuln.notice", "2018-03-01T10:00", notice_id="V1", system="OA"),
        ev("outreach.notice", "2018-03-02T10:00", unit="fz.gl", notice_id="O1", terminals=["a"]),
        ev("vuln.notice", "2018-03-03T10:00", unit="fz", notice_id="V2", system="门户网站"),
        builders.tick("2018-03-20T00:00"),
        ev("vuln.feedback", "2018-03-10T10:00", notice_id="V1"),
        ev("outreach.notice", "2018-03-21T10:00", unit="fz.gl", notice_id="O2", terminals=["b"]),
    ]


def test_a_batch_without_rows_signs_nothing() -> None:
    assert sign_heads(SIGNER, [], []) == []
    assert Batch().heads == []


def test_serve_signs_what_it_accepts_with_the_settings_key(tmp_path: Any, signing_key: Any) -> None:
    """`tracker serve` (embedded backend) logs each accepted event signed with the settings' key
    (the session's, tests/conftest.py), under the poster's principal; the store verifies clean."""
    from config.signing import load_verifier
    from tests.serve_kit import BOOKS as DEMO_BOOKS
    from tests.serve_kit import REGISTRY as DEMO
    from tests.serve_kit import serve

    store = MemoryStore()
    served = serve(store, tmp_path)
    events = [
        {"event_id": f"n{i}", "type": "vuln.notice", "unit": "fj.gat", "notice_id": f"V-{i}",
         "system": "OA", "at": f"2018-03-0{i}T10:00:00+08:00"}
        for i in (1, 2)
    ]  # fmt: skip
    assert served.post("centre", events).status_code == 200
    served.service.settle()  # the store read directly: once the applier applied the journal
    verifier = load_verifier(signing_key)
    logged = list(store.logged_events())
    assert [e.event_id for e in logged] == ["n1", "n2"]
    for e in logged:
        assert e.posted_by.startswith("centre:")
        message = event_message(e.raw, e.posted_by, e.received_at)
        assert IntakeSignatures(verifier).valid(message, e.signature)
    data = AuditData(
        DEMO, DEMO_BOOKS, builders.calendar(), logged, store.ledger(), store.chain_heads()
    )
    assert verify(data, verifier).findings == []


@PROPERTY
@given(
    raw=st.text(),
    posted_by=st.text(),
    received_at=st.datetimes(timezones=st.just(UTC)),
)
def test_the_signed_message_of_an_event_is_its_json(
    raw: str, posted_by: str, received_at: datetime
) -> None:
    """`event_message` spells the JSON out (issue 12): the same bytes as the encoder's, for any
    text (quotes, backslashes, control characters, U+2028, non-ASCII)."""
    from engine.chain import _dumps, instant

    whole = _dumps(["tracker-event", raw, posted_by, instant(received_at)]).encode("utf-8")
    assert event_message(raw, posted_by, received_at) == whole


def test_engine_entries_are_whole_models_sharing_one_fields_set_nothing_changes() -> None:
    """The engine builds its entries without validation (schemas.ledger.whole): each must still
    be a whole model, its fields set every field. The set is shared between entries, so what
    copies one with changes (pydantic's model_copy) must leave the shared set as it was."""
    from schemas.ledger import LedgerEntry
    from tests.builders import apply_all, engine, entries, ev

    made = entries(
        apply_all(
            engine(),
            [
                ev("vuln.notice", f"2018-03-0{i + 1}T10:00", notice_id=f"V{i}", system="s")
                for i in range(5)
            ],
        )
    )
    every = set(LedgerEntry.model_fields)
    assert len(made) == 5 and any(e.capped for e in made)
    for entry in made:
        assert entry.model_fields_set == every
        assert entry.model_dump(exclude_unset=True) == entry.model_dump()
        assert LedgerEntry.model_validate(entry.model_dump()) == entry
    shared = made[0].model_fields_set
    changed = made[0].model_copy(update={"reason": "x"})
    assert changed.model_fields_set is not shared and changed.reason == "x"
    assert shared == every and made[-1].model_fields_set == every
    with pytest.raises(ValidationError):
        made[0].reason = "y"  # type: ignore[misc]
    assert shared == every


def test_instant_text_is_isoformat_to_the_millisecond() -> None:
    """engine.chain makes an instant's text from its parts: the same text as
    `isoformat(timespec="milliseconds")` at +08:00, for any instant and any zone it came in."""
    import random
    from datetime import UTC, datetime, timedelta, timezone

    from engine.chain import instant, instant_field
    from engine.clock import SHANGHAI

    rng = random.Random(12)
    zones = (SHANGHAI, UTC, timezone(timedelta(hours=-5, minutes=-30)), UTC)
    edges = [datetime(1, 1, 2, 8), datetime(9999, 12, 30, 23, 59, 59, 999999)]
    made = [e.replace(tzinfo=SHANGHAI) for e in edges]
    for _ in range(5000):
        seconds = rng.randrange(-(10**10), 10**10)
        at = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
        made.append(at.replace(microsecond=rng.choice((0, 999, 1000, 123456, 999999))))
    for at in made:
        zoned = at.astimezone(rng.choice(zones))
        want = at.astimezone(SHANGHAI).isoformat(timespec="milliseconds")
        assert instant(zoned) == want
        assert instant_field(zoned) == f"{len(want)}:{want}"
