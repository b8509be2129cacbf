"""Who posted an event and when it was received: envelope metadata, outside the event body.

The body is the contract's event (section 2) and is never changed; the envelope travels beside
it - as Kafka record headers on the events topic, as columns of the event log and the dead letters -
so that an auditor sees who posted what and when, and a replay of the log reproduces it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from schemas.ledger import trusted

HEADER_POSTED_BY = "tracker-posted-by"
HEADER_RECEIVED_AT = "tracker-received-at"
# The intake's Ed25519 signature of the event with this envelope (issue 11; engine/chain.py
# says what is signed), in base64, or the event's proof in a batch the intake signed (`m2:...`;
# `m1:...` before it: engine/merkle.py); optional: a record without it is logged unsigned.
HEADER_SIGNATURE = "tracker-signature"
# What records that reached the events topic without an envelope (direct produce by an
# operator's tool, or records from before envelopes existed) are attributed to.
UNKNOWN_POSTER = ""
# When a record was received, where nothing says: the event log's rows from before envelopes
# existed, and a Kafka record without a broker timestamp (as the dead letters always had it).
UNKNOWN_RECEIPT = datetime(1970, 1, 1, tzinfo=UTC)
SIGNATURE_MAX = 1024  # characters of a signature or a proof (Envelope.signature)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # A principal id as `tracker principals` names it (e.g. "centre:fj", "unit:fj.gat"), or a
    # tool's own name ("ingest:FILE", "ticker").
    posted_by: str = Field(max_length=200)
    received_at: AwareDatetime
    # An event's own signature (88 characters) or its proof in a signed batch (~270 in trees of
    # 16; records an older intake signed in trees of 1,024 carry up to ~750: still taken).
    signature: str = Field("", max_length=SIGNATURE_MAX)

    def headers(self) -> list[tuple[str, bytes]]:
        pairs = [
            (HEADER_POSTED_BY, self.posted_by.encode()),
            (HEADER_RECEIVED_AT, self.received_at.isoformat().encode()),
        ]
        if self.signature:
            pairs.append((HEADER_SIGNATURE, self.signature.encode()))
        return pairs


def from_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> Envelope | None:
    """The envelope a Kafka record carries, or None when it carries none, or a broken one:
    headers are untrusted input like the body (a header may have no value, and one named twice
    with two values says nothing about which is true; named twice with one value, it says it)."""
    parts = header_parts(headers)
    if parts is None:
        return None
    base, signature = parts
    if not signature:
        return base
    # validated by `header_parts`, piece by piece: skip the model's validation (~20 µs against ~4)
    return trusted(
        Envelope,
        {"posted_by": base.posted_by, "received_at": base.received_at, "signature": signature},
    )


def header_parts(headers: Iterable[tuple[str, bytes | None]] | None) -> tuple[Envelope, str] | None:
    """`from_headers` in two parts: the envelope without its signature (one object shared by the
    records of one poster and receipt) and the signature ("" for none), or None where
    `from_headers` gives None. A live worker logs a record's envelope field by field, so it
    takes these and builds no envelope per record."""
    # One pass, each name's value and whether another value came with it: a live worker reads
    # every record's headers (2.1 -> 1.3 us a record, BENCHMARKS.md, "the live worker's ticks").
    poster = received = signature = _NONE
    for key, value in headers or ():
        if key == HEADER_POSTED_BY:
            poster = value if poster is _NONE or poster == value else _TWO
        elif key == HEADER_RECEIVED_AT:
            received = value if received is _NONE or received == value else _TWO
        elif key == HEADER_SIGNATURE:
            signature = value if signature is _NONE or signature == value else _TWO
    if not isinstance(poster, bytes) or not isinstance(received, bytes):
        return None  # none, two values, or no value
    base = _posted(poster, received)
    if base is None:
        return None
    # a signature named twice, or without a value, is no signature (verify reports it unsigned)
    if not isinstance(signature, bytes):
        return base, ""
    try:
        text = signature.decode("ascii")
    except UnicodeDecodeError:
        return None
    if len(text) > SIGNATURE_MAX:  # what the model's validation refuses
        return None
    return base, text


# What `from_headers` holds for a name not met yet, and for one met with two values.
_NONE, _TWO = object(), object()


@lru_cache(maxsize=256)
def _posted(poster: bytes, received: bytes) -> Envelope | None:
    """The envelope without a signature, validated once per poster and receipt: the records of
    one intake request share both (a live worker reads thousands a second; validating each
    was ~10% of its CPU). Envelopes are immutable, so sharing one is safe."""
    try:
        return Envelope(
            posted_by=poster.decode(), received_at=datetime.fromisoformat(received.decode())
        )
    except (UnicodeDecodeError, ValueError, ValidationError):
        return None
