"""Intake signatures, one Ed25519 signature per batch of events (docs/audit.md, "One signature
per batch"): the messages of a batch (engine/chain.event_message) are the leaves of an RFC 6962
Merkle tree (engine/merkle.py), the root is signed once (engine/chain.batch_message), and each
event's signature field holds that signature with the event's inclusion proof. An event is still
checked on its own with the public key alone: its proof must lead from its own message to a
signed root, so an event changed after intake is named, as with a signature of its own.

A batch of one keeps the per-event form (the signature of its message, base64): it costs the
same and is shorter. Stores written before batches hold that form only; both verify.
"""

from __future__ import annotations

from collections.abc import Sequence

from config.signing import Signer, Verifier
from engine.chain import batch_message
from engine.merkle import (
    decode_proof,
    encode_proof,
    is_proof,
    leaf_hash,
    root_from_path,
    tree_paths,
)

# Leaves per tree: a larger batch is signed in trees of this many, one Ed25519 signature each
# (~2-4 us per event at 16). It bounds a proof to 4 hashes (172 base64 characters, ~270 with the
# signature): the field is written, hashed into the event's digest and stored for every event,
# and at 1,024 (10 hex hashes, ~750 characters) it was half of the event log's bytes and a third
# of the embedded backend's CPU per event (BENCHMARKS.md, issue 10).
MAX_TREE_LEAVES = 16

MODIFIED = (
    "its intake signature does not match its body, posted_by and received_at: modified after intake"
)


def sign_messages(signer: Signer, messages: Sequence[bytes]) -> list[str]:
    """The signature field of each message, in order: one tree and one signature per
    `MAX_TREE_LEAVES` messages. Deterministic (Ed25519 is): the same messages in the same order
    give the same fields."""
    out: list[str] = []
    for start in range(0, len(messages), MAX_TREE_LEAVES):
        tree = messages[start : start + MAX_TREE_LEAVES]
        if len(tree) == 1:
            out.append(signer.sign(tree[0]))
            continue
        root, paths = tree_paths([leaf_hash(m) for m in tree])
        signature = signer.sign(batch_message(root.hex(), len(tree)))
        size = len(tree)
        out.extend(encode_proof(signature, i, size, path) for i, path in enumerate(paths))
    return out


class IntakeSignatures:
    """Checks events' intake signatures in either form under one public key. A batch's root
    signature is checked once (remembered by root, size and signature once valid); each event
    costs the hashes of its path."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self._signed: set[tuple[bytes, int, str]] = set()  # roots whose signature is valid

    def problem(self, message: bytes, signature: str) -> str | None:
        """Why `signature` does not sign `message` (None: it does)."""
        if not is_proof(signature):
            return None if self.verifier.valid(message, signature) else MODIFIED
        proof = decode_proof(signature)
        if proof is None:
            return "its intake signature is not a well-formed batch proof"
        root = root_from_path(leaf_hash(message), proof.index, proof.size, proof.path)
        if root is None:
            return f"its intake signature's batch proof does not fit a tree of {proof.size} events"
        key = (root, proof.size, proof.signature)
        if key in self._signed:
            return None
        # Only valid roots are remembered: an event changed after intake leads to a root of its
        # own, never signed, which would only fill the memory.
        if self.verifier.valid(batch_message(root.hex(), proof.size), proof.signature):
            self._signed.add(key)
            return None
        return f"{MODIFIED} (its batch proof leads to a root that was never signed)"

    def valid(self, message: bytes, signature: str) -> bool:
        return self.problem(message, signature) is None
