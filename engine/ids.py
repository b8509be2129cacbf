"""Deterministic identifiers: the same stream always yields the same entry ids."""

from __future__ import annotations

import hashlib


def digest(prefix: str, key: str, generation: int) -> str:
    """24 hex digits of SHA-256 over the claim's identity (unit separator between parts)."""
    text = f"{prefix}\x1f{key}\x1f{generation}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
