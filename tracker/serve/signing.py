"""Signing at intake (issue 11): `tracker serve` signs each event it accepts - the event as the
event log will keep it, who posted it, when it was received - with the settings' key
(config/signing.py), one signature for a batch (config/intake_signatures.py). The embedded
backend's pipeline signs as it logs, one batch a group of requests applied together; the Kafka
backend signs each request's records as one batch and sends each record's signature (its proof
in the batch) in the record's `tracker-signature` header, and the worker logs it as it came.
Kept apart from the service so that the backends call it from one place each.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from config.intake_signatures import sign_messages
from config.key_file import key_path
from config.signing import Signer, writer_signer
from engine.chain import event_message
from engine.step import BOM, stored_instant
from schemas.envelope import HEADER_SIGNATURE, Envelope
from schemas.ledger import trusted


def intake_signer() -> Signer:
    """The settings' key (made in the data dir in the embedded setup), loaded once per file."""
    return _signer(key_path())


@functools.cache
def _signer(path: Path) -> Signer:
    return writer_signer()


def signed_headers(signer: Signer, envelope: Envelope, raw: str) -> list[tuple[str, bytes]]:
    """The Kafka headers of one record (`signed_batch_headers` of a batch of one)."""
    return signed_batch_headers(signer, envelope, [raw])[0]


def signed_batch_headers(
    signer: Signer, envelope: Envelope, raws: Sequence[str]
) -> list[list[tuple[str, bytes]]]:
    """The Kafka headers of each record of a request: its envelope with the intake's signature
    of the record as the worker will read it (a whole record: a leading byte order mark
    dropped, stripped), one signature for the request's records."""
    # What `sign_envelopes(...)[i].headers()` gives, with the headers the records share (one
    # envelope a request) made once: ~10 us less per record than an envelope each.
    received = stored_instant(envelope.received_at)
    shared = trusted(
        Envelope, {"posted_by": envelope.posted_by, "received_at": received, "signature": ""}
    ).headers()
    messages = [
        event_message(raw.removeprefix(BOM).strip(), envelope.posted_by, received) for raw in raws
    ]
    return [
        [*shared, (HEADER_SIGNATURE, signature.encode())]
        for signature in sign_messages(signer, messages)
    ]
