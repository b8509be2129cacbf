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

from config.key_file import key_path
from config.signing import Signer, writer_signer
from engine.step import BOM
from schemas.envelope import Envelope
from sinks.heads import sign_envelopes


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
    logged = [raw.removeprefix(BOM).strip() for raw in raws]
    return [e.headers() for e in sign_envelopes(signer, [(envelope, raw) for raw in logged])]
