"""Where the signing key lives, and the error of a key file that cannot be used (config/signing.py
does the signing). Apart from it so that reporting a key error does not load the signature
library: every CLI command imports the error at start (tracker/errors.py)."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings, settings

KEY_FILE = "signing.key"


class KeyFileError(ValueError):
    """A key file cannot be read or is not an Ed25519 key; the message says which and why."""


def key_path(config: Settings | None = None) -> Path:
    config = config or settings()
    return config.signing_key or config.data_dir / KEY_FILE
