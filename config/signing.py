"""The Ed25519 key that signs chain heads and intake events (issue 11; docs/audit.md).

The private key lives in a file the store never holds: TRACKER_SIGNING_KEY names it (PEM,
PKCS#8), else the embedded setup makes one, mode 0600, in the data directory
(`<data>/signing.key`) the first time a writer needs it, as the worker token is made
(sinks/worker_token.py). Verification takes only a PUBLIC key, from that file or from one the
auditor was handed (`--public-key FILE`, PEM); a public key read from the store is never trusted.

Ed25519 signatures are deterministic (RFC 8032): signing the same message with the same key gives
the same bytes, so a row rewritten after a crash or a redelivery is identical to the first.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from config.key_file import KEY_FILE, KeyFileError, key_path  # also this module's interface
from config.settings import Settings, settings

# The signature library is imported where it is used: every CLI command imports this module (the
# pipeline's types), and only the commands that sign or verify need the library (~0.1 s to load).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


@dataclass(frozen=True)
class Signer:
    """Signs with the private key; `verifier` is its public half."""

    key: Ed25519PrivateKey

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.key.sign(message)).decode("ascii")

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.key.public_key())

    def private_raw(self) -> bytes:
        """The private key's 32 bytes (RFC 8032), for `from_private_raw` in a process this one
        started itself (sinks/writer_process.py); never written anywhere."""
        from cryptography.hazmat.primitives import serialization

        return self.key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_private_raw(cls, raw: bytes) -> Signer:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.from_private_bytes(raw))


@dataclass(frozen=True)
class Verifier:
    key: Ed25519PublicKey

    def valid(self, message: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            raw = base64.b64decode(signature.encode("ascii"), validate=True)
            self.key.verify(raw, message)
        except (InvalidSignature, binascii.Error, ValueError, UnicodeEncodeError):
            return False
        return True

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def fingerprint(self) -> str:
        """A short name of the key for messages (not a secret)."""
        from cryptography.hazmat.primitives import serialization

        raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b16encode(raw).decode("ascii").lower()[:16]


def load_signer(path: Path) -> Signer:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the signing key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return Signer(key)


def make_key_file(path: Path) -> Signer:
    """A new key written to `path`, readable by its owner only from the first byte (created 0600
    under another name, then renamed into place; an existing file is never replaced)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.chmod(tmp, 0o600)
        os.link(tmp, path)  # fails if another process made the key first: theirs stands
    except FileExistsError:
        return load_signer(path)
    finally:
        tmp.unlink(missing_ok=True)
    return Signer(key)


def writer_signer(config: Settings | None = None) -> Signer:
    """The key a writer signs with: TRACKER_SIGNING_KEY's file (which must exist), else the data
    directory's, made on first use."""
    config = config or settings()
    return signer_at(config.signing_key, config.data_dir)


def signer_at(signing_key: Path | None, data_dir: Path) -> Signer:
    if signing_key is not None:
        return load_signer(signing_key)
    path = data_dir / KEY_FILE
    if path.exists():
        return load_signer(path)
    return make_key_file(path)


def load_verifier(path: Path) -> Verifier:
    """A public key from a file: a PEM public key, or a PEM private key (its public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read the key {path}: {exc.strerror}") from None
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        return load_signer(path).verifier
    if not isinstance(public, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(public).__name__}, not an Ed25519 public key")
    return Verifier(public)


def settings_verifier(config: Settings | None = None) -> Verifier | None:
    """The public half of the settings' key, when that key exists (never made here)."""
    path = key_path(config)
    return load_signer(path).verifier if path.exists() else None
