"""Merkle trees of intake batches (docs/audit.md, "One signature per batch"). Pure: hashlib only.

The tree is RFC 6962's (Certificate Transparency; restated in RFC 9162 section 2.1): SHA-256, a
leaf hashed as `SHA256(0x00 || leaf)`, an inner node as `SHA256(0x01 || left || right)` (the two
prefixes keep a leaf from ever passing for a node), and a list of n > 1 leaves split at k, the
largest power of two smaller than n, so that the tree of the first k leaves never changes as
leaves are added. An inclusion (audit) path lists, bottom up, the sibling hashes from a leaf to
the root (RFC 6962 section 2.1.1); it is verified as RFC 9162 section 2.1.3.2 says, which also
checks the leaf's index against the tree's size.

Why a standard tree rather than one of our own: its edge cases (odd sizes, second preimages, a
path checked against an index and a size) are settled and have test vectors and independent
implementations an auditor can check the store's proofs with.

The intake signs the root once per batch; each event carries its proof in the signature field as
`m2:SIGNATURE:INDEX:SIZE:PATH` (`encode_proof`): SIGNATURE is the root's Ed25519 signature in
base64, as every other signature in the store, and PATH the path's hashes concatenated, in
base64. Stores written before it hold `m1:...`, the same with PATH in hex (`encode_proof_v1`);
`decode_proof` reads both. The field is written, hashed and stored once per event, so its
length is work per event (issue 10): base64 is 2/3 of hex.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

HASH_BYTES = 32
PROOF_TAG = "m2"  # the proof format's version: a new format gets a new tag
PROOF_TAG_V1 = "m1"  # the first format (hex paths): read, no longer written
MAX_DEPTH = 64  # no tree has more levels: sizes are at most 2**64 - 1

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def tree_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of leaves given by their leaf hashes (at least one)."""
    if not leaf_hashes:
        raise ValueError("a Merkle tree needs at least one leaf")
    return _root(leaf_hashes, 0, len(leaf_hashes), None)


def tree_paths(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root and every leaf's inclusion path, in one pass over the tree: each subtree's hash
    is made once and appended to the path of every leaf on its sibling's side, so the cost is
    n - 1 node hashes and n log2 n list appends."""
    if not leaf_hashes:
        raise ValueError("a Merkle tree needs at least one leaf")
    paths: list[list[bytes]] = [[] for _ in leaf_hashes]
    return _root(leaf_hashes, 0, len(leaf_hashes), paths), paths


def _root(leaves: Sequence[bytes], lo: int, hi: int, paths: list[list[bytes]] | None) -> bytes:
    """The hash of the subtree of leaves [lo, hi); with `paths`, each of its leaves' path gains
    the sibling subtrees' hashes, deepest first (the recursion finishes a subtree's inner
    levels before this level appends)."""
    n = hi - lo
    if n == 1:
        return leaves[lo]
    if n == 2:  # the common bottom level, spelled out: a third of the calls
        left, right = leaves[lo], leaves[lo + 1]
        if paths is not None:
            paths[lo].append(right)
            paths[lo + 1].append(left)
        return _sha256(b"\x01" + left + right).digest()
    mid = lo + _split(n)
    left = _root(leaves, lo, mid, paths)
    right = _root(leaves, mid, hi, paths)
    if paths is not None:
        for i in range(lo, mid):
            paths[i].append(right)
        for i in range(mid, hi):
            paths[i].append(left)
    return _sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that `path` leads to from the leaf hash `leaf` at `index` of a tree of `size`
    leaves, or None when the path cannot be one of such a tree (an index outside it, a path too
    short or too long): RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None  # a path longer than the tree is deep
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:  # the right edge: levels where this node has no sibling
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None  # sn left over: a truncated path


def verify_path(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    return root_from_path(leaf, index, size, path) == root


@dataclass(frozen=True, slots=True)
class Proof:
    """An event's part of a signed batch: the root's signature, where its leaf stands and the
    path from it to the root."""

    signature: str  # the root's signature, base64 (config/signing.py)
    index: int
    size: int
    path: tuple[bytes, ...]


def encode_proof(signature: str, index: int, size: int, path: Sequence[bytes]) -> str:
    path_text = base64.b64encode(b"".join(path)).decode("ascii")
    return f"{PROOF_TAG}:{signature}:{index}:{size}:{path_text}"


def encode_proof_v1(signature: str, index: int, size: int, path: Sequence[bytes]) -> str:
    """The first form (hex path), as stores written before `m2` hold it: for tests and tools."""
    return f"{PROOF_TAG_V1}:{signature}:{index}:{size}:{b''.join(path).hex()}"


def is_proof(signature: str) -> bool:
    """Whether a signature field holds a batch proof rather than an event's own signature (which
    is base64, and base64 has no colon)."""
    return signature.startswith((PROOF_TAG + ":", PROOF_TAG_V1 + ":"))


def decode_proof(text: str) -> Proof | None:
    """The proof a signature field holds, in either form, or None when it is not a well-formed
    one (the field is the store's, so untrusted: any text must give an answer, never an
    exception)."""
    parts = text.split(":")
    if len(parts) != 5 or parts[0] not in (PROOF_TAG, PROOF_TAG_V1):
        return None
    tag, signature, index_text, size_text, path_text = parts
    if not (_decimal(index_text) and _decimal(size_text)):
        return None
    index, size = int(index_text), int(size_text)
    raw = _path_bytes(path_text) if tag == PROOF_TAG else _path_bytes_v1(path_text)
    if raw is None or len(raw) % HASH_BYTES or len(raw) > HASH_BYTES * MAX_DEPTH:
        return None
    path = tuple(raw[i : i + HASH_BYTES] for i in range(0, len(raw), HASH_BYTES))
    return Proof(signature, index, size, path)


def _path_bytes(text: str) -> bytes | None:
    """A base64 path in its one spelling (padded, no blanks, no stray bits): re-encoding gives
    the same text, so a proof cannot be varied without changing it."""
    if len(text) > 4 * (HASH_BYTES * MAX_DEPTH + 2) // 3 + 4:
        return None  # longer than any path: not decoded at all
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _path_bytes_v1(text: str) -> bytes | None:
    if len(text) % (2 * HASH_BYTES) or len(text) > 2 * HASH_BYTES * MAX_DEPTH:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return raw if len(raw) * 2 == len(text) else None  # fromhex skips blanks; a proof has none


def _decimal(text: str) -> bool:
    """A plain decimal without a sign, leading zero or more than 20 digits (what `str(int)`
    writes): one number has one spelling, so a proof cannot be varied without changing it."""
    return (
        0 < len(text) <= 20
        and text.isascii()
        and text.isdigit()
        and (text == "0" or not text.startswith("0"))
    )
