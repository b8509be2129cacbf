"""Deterministic identifiers: the same stream always yields the same entry ids."""

from __future__ import annotations

import hashlib


def digest(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
