"""The event log's rows made in one pass (issue 12: `engine.step.logged_events`, what `tracker
ingest` runs for each write) are the rows the two passes made before it, byte for byte: sign the
unsigned envelopes as one batch (`sinks.heads.sign_envelopes`), then make each row
(`canonical`'s digest of its fields, chained). Stored digests, chains and signatures depend on
it: a row that came out otherwise would stop verifying."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import TzInfo

from config.intake_signatures import sign_messages
from config.signing import Signer
from engine.chain import EVENT_FIELDS, canonical, event_message, link
from engine.clock import SHANGHAI, local
from engine.step import logged_event, logged_events, receipt, stored_instant
from schemas.envelope import Envelope
from schemas.events import ClockTick, Event, parse_event
from schemas.ledger import LoggedEvent
from sinks.heads import sign_envelopes
from tests import builders

SIGNER = Signer(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
PROPERTY = settings(max_examples=60, deadline=None)

EVENTS = [
    builders.ev("vuln.notice", "2018-03-01T10:00", event_id="n1", notice_id="V1", system="OA"),
    builders.ev("vuln.notice", "2018-03-01T10:00:00.5+00:00", event_id="n2", notice_id="V2",
                system="OA"),
    builders.ev("clock.tick", "2018-12-31T23:59:59.999", unit=None, event_id="t1"),
    builders.ev("vuln.notice", "2019-01-01T00:00", event_id="n3", notice_id="V3", system="中文"),
]  # fmt: skip
RAWS = [e.model_dump_json() for e in EVENTS]
ZONES = st.sampled_from(
    [SHANGHAI, UTC, TzInfo(8 * 3600), timezone(timedelta(hours=-9, minutes=-30))]
)
RECEIPTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=ZONES
)
POSTERS = st.sampled_from(["ingest:f", "centre:fj", "", 'q"uote\\', "单位"])
# an envelope as it comes: unsigned, or signed by an intake before (kept as it is)
ENVELOPES = st.builds(
    lambda poster, at, signature: Envelope(posted_by=poster, received_at=at, signature=signature),
    POSTERS,
    RECEIPTS,
    st.sampled_from(["", "", "c2lnbmVk", "m2:c2ln:0:2:" + "A" * 44]),
)


def two_passes(
    accepted: list[tuple[Event, str, int, Envelope]], previous: str, signer: Signer | None
) -> list[LoggedEvent]:
    """What `tracker ingest` did before the one pass, spelled out from the canonical form."""
    envelopes = [a[3] for a in accepted]
    unsigned = [i for i, env in enumerate(envelopes) if not env.signature]
    if signer is not None and unsigned:
        signed = sign_envelopes(signer, [(envelopes[i], accepted[i][1]) for i in unsigned])
        for i, envelope in zip(unsigned, signed, strict=True):
            envelopes[i] = envelope
    rows = []
    for (event, raw, seq, _), envelope in zip(accepted, envelopes, strict=True):
        at = local(event.at)
        values: dict[str, Any] = {
            "event_id": event.event_id,
            "partition": 3,
            "seq": seq,
            "unit": "" if isinstance(event, ClockTick) else event.unit,
            "type": event.type,
            "at": at,
            "year": at.year,
            "raw": raw,
            "posted_by": envelope.posted_by,
            "received_at": stored_instant(envelope.received_at),
            "signature": envelope.signature,
        }
        values["digest"] = hashlib.sha256(canonical(values, EVENT_FIELDS)).hexdigest()
        values["chain"] = previous = link(previous, values["digest"])
        rows.append(LoggedEvent(**values))
    return rows


def dumped(rows: list[LoggedEvent]) -> list[str]:
    return [r.model_dump_json() for r in rows]


@PROPERTY
@given(envelopes=st.lists(ENVELOPES, min_size=1, max_size=40), keyed=st.booleans())
def test_one_pass_makes_the_rows_of_the_two(envelopes: list[Envelope], keyed: bool) -> None:
    # more events than a tree holds (16), mixed signed and unsigned, receipts in any zone
    accepted = [
        (EVENTS[i % len(EVENTS)], RAWS[i % len(RAWS)], i + 1, envelope)
        for i, envelope in enumerate(envelopes)
    ]
    signer = SIGNER if keyed else None
    sign = None if signer is None else lambda messages: sign_messages(SIGNER, messages)
    rows = logged_events(accepted, 3, "ab" * 32, sign)
    assert dumped(rows) == dumped(two_passes(accepted, "ab" * 32, signer))
    # each row alone, as the live worker makes it, is the same row
    previous = "ab" * 32
    for (event, raw, seq, _), row in zip(accepted, rows, strict=True):
        envelope = Envelope(posted_by=row.posted_by, received_at=row.received_at,
                            signature=row.signature)  # fmt: skip
        alone = logged_event(event, raw, 3, seq, envelope, previous)
        assert alone.model_dump_json() == row.model_dump_json()
        previous = row.chain


def test_rows_are_paused_before_each_and_nothing_is_signed_without_rows() -> None:
    paused: list[int] = []
    signed: list[list[bytes]] = []

    def sign(messages: list[bytes]) -> list[str]:
        signed.append(messages)
        return sign_messages(SIGNER, messages)

    envelope = Envelope(posted_by="p", received_at=datetime(2020, 1, 1, tzinfo=UTC))
    accepted = [(parse_event(RAWS[0]), RAWS[0], 1, envelope)] * 3
    assert logged_events([], 0, "", sign, lambda: paused.append(0)) == []
    assert signed == [] and paused == []
    logged_events(accepted, 0, "", sign, lambda: paused.append(0))
    assert len(paused) == 3 and len(signed) == 1  # one batch for the write
    assert signed[0] == [event_message(RAWS[0], "p", envelope.received_at)] * 3


@PROPERTY
@given(st.lists(RECEIPTS, min_size=1, max_size=6))
def test_a_receipt_is_its_stored_instant_whatever_came_before(times: list[datetime]) -> None:
    # `receipt` remembers the last time it made: equal instants in other offsets, and
    # instants a microsecond apart, must each come out as their own stored instant
    for at in times + [t + timedelta(microseconds=1) for t in times] + times:
        received, text = receipt(at)
        assert received == stored_instant(at) and received.tzinfo is SHANGHAI
        assert text == received.isoformat(timespec="milliseconds")
        assert text.endswith("+08:00") and len(text) == 29


def test_a_receipt_is_one_for_equal_instants_whatever_their_zone_objects() -> None:
    # the receipt last made is kept for the next call; an equal instant in another zone object
    # (a request's envelope parsed again, pydantic's zones, UTC) must give the same receipt
    at = datetime(2020, 1, 1, 1, 2, 3, 4567, tzinfo=timezone(timedelta(hours=8)))
    first = receipt(at)
    assert first == (stored_instant(at), first[1])
    assert first[1] == stored_instant(at).isoformat(timespec="milliseconds")
    again = datetime.fromisoformat(at.isoformat())  # another zone object
    for same in (again, at.astimezone(UTC), at.replace(tzinfo=TzInfo(8 * 3600)), again, at):
        assert receipt(same) == first
    later = at + timedelta(milliseconds=1)
    assert receipt(later) == (stored_instant(later), receipt(later)[1]) != first
    assert receipt(at) == first
