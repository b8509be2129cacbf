"""The signed chain heads a store write carries (issue 11; engine/chain.py, docs/audit.md).

Every writer (`tracker ingest`, crash recovery, `tracker serve`, the Faust sink) signs, with each
batch it writes, the last row of every chain the batch extends: per partition its last event,
per (unit, year) its last ledger entry. The store keeps every head it was given (keyed by chain,
key and `through_seq`), so an auditor checks each one against the chain recomputed from the rows;
a head, its signature and its `signed_at` depend only on the row it covers, so writing the same
batch again writes the same head rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from config.intake_signatures import sign_messages
from config.signing import Signer
from engine.chain import event_message_text, head_message, ledger_key
from engine.step import receipt
from schemas.envelope import Envelope
from schemas.ledger import ChainHead, LedgerEntry, LoggedEvent, trusted


def sign_envelope(signer: Signer, envelope: Envelope, raw: str) -> Envelope:
    """The envelope with the intake's own signature of the event (`raw`: the text the event log
    keeps) under it: what the worker signs of a record that reached its topic unsigned."""
    return sign_envelopes(signer, [(envelope, raw)])[0]


def sign_envelopes(signer: Signer, events: Sequence[tuple[Envelope, str]]) -> list[Envelope]:
    """Each envelope with the intake's signature of its event: one signature for the batch, each
    event's proof of its place in it (config/intake_signatures.py). What `tracker serve` (one
    batch a request, or a group of requests applied together) and `tracker ingest` (one a store
    write) sign on intake."""
    receipts = [receipt(envelope.received_at) for envelope, _ in events]
    signatures = sign_messages(
        signer,
        [
            event_message_text(raw, envelope.posted_by, text)
            for (envelope, raw), (_, text) in zip(events, receipts, strict=True)
        ],
    )
    return [
        trusted(
            Envelope,
            {"posted_by": envelope.posted_by, "received_at": at, "signature": signature},
        )
        for (envelope, _), (at, _), signature in zip(events, receipts, signatures, strict=True)
    ]


def intake_signed(signer: Signer | None, envelope: Envelope, raw: str) -> Envelope:
    """The envelope a writer logs an event with: as it came when it is signed already (an intake
    before this writer signed it) or there is no key, else signed here, on its own (this writer
    is the intake: the worker for a record posted without `tracker serve`; docs/audit.md says
    why the worker does not sign its batches)."""
    if signer is None or envelope.signature:
        return envelope
    return sign_envelope(signer, envelope, raw)


def sign_heads(
    signer: Signer, events: Iterable[LoggedEvent], entries: Iterable[LedgerEntry]
) -> list[ChainHead]:
    last_event: dict[int, LoggedEvent] = {}
    for e in events:
        known = last_event.get(e.partition)
        if known is None or e.seq > known.seq:
            last_event[e.partition] = e
    last_entry: dict[str, LedgerEntry] = {}
    for entry in entries:
        key = ledger_key(entry.unit, entry.year)
        found = last_entry.get(key)
        if found is None or entry.seq > found.seq:
            last_entry[key] = entry
    heads = [
        _head(signer, "events", str(p), e.seq, e.chain, e.received_at)
        for p, e in sorted(last_event.items())
        if e.chain
    ]
    heads += [
        _head(signer, "ledger", key, e.seq, e.chain, e.effective_at)
        for key, e in sorted(last_entry.items())
        if e.chain
    ]
    return heads


def _head(
    signer: Signer, chain: Literal["ledger", "events"], key: str, seq: int, head: str, at: datetime
) -> ChainHead:
    return ChainHead(
        chain=chain,
        key=key,
        through_seq=seq,
        head=head,
        signature=signer.sign(head_message(chain, key, seq, head)),
        signed_at=at,
    )
