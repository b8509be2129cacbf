"""Signing at intake (issue 11): `tracker serve` signs each event it accepts - the event as the
event log will keep it, who posted it, when it was received - with the settings' key
(config/signing.py). The embedded backend's pipeline signs as it logs; the Kafka backend sends
the signature in the record's `tracker-signature` header, and the worker logs it as it came.
Kept apart from the service so that the backends call it from one place each.
"""

from __future__ import annotations

import functools
from pathlib import Path

from config.key_file import key_path
from config.signing import Signer, writer_signer
from engine.step import BOM
from schemas.envelope import Envelope
from sinks.heads import sign_envelope


def intake_signer() -> Signer:
    """The settings' key (made in the data dir in the embedded setup), loaded once per file."""
    return _signer(key_path())


@functools.cache
def _signer(path: Path) -> Signer:
    return writer_signer()


def signed_headers(signer: Signer, envelope: Envelope, raw: str) -> list[tuple[str, bytes]]:
    """The Kafka headers of one record: its envelope with the intake's signature of `raw` as
    the worker will read it (a whole record: a leading byte order mark dropped, stripped)."""
    logged = raw.removeprefix(BOM).strip()
    return sign_envelope(signer, envelope, logged).headers()
