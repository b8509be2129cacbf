"""What an intake proof costs per event (issue 10, the embedded backend's regression): every
event's signature field is written to the event log, hashed into the event's digest and chain,
and compressed and merged by the store, so its length is work done per event. It stays short
whatever the batch, and both proof forms the store may hold still verify (docs/audit.md)."""

from __future__ import annotations

import math

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.intake_signatures import MAX_TREE_LEAVES, IntakeSignatures, sign_messages
from config.signing import Signer
from engine.merkle import decode_proof, encode_proof_v1, is_proof, leaf_hash, tree_paths

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
# The per-event form is 88 characters; a proof of a batch adds its place and path to it. The
# first batch proofs (`m1`, hex paths of trees of 1,024) were ~750: 8x the bytes per event.
MAX_PROOF_CHARS = 280


@pytest.mark.parametrize(
    "events",
    [
        2,  # the smallest batch: a path of one hash
        500,  # one request of the bench's batches (the Kafka intake signs a request)
        20_000,  # one group of the embedded applier (tracker.pipeline.BATCH_SIZE)
    ],
)
def test_an_events_proof_stays_short_whatever_the_batch(events: int) -> None:
    fields = sign_messages(Signer(KEY), [f"event {i}".encode() for i in range(events)])
    assert max(len(f) for f in fields) <= MAX_PROOF_CHARS
    assert all(is_proof(f) for f in fields)


class CountingSigner(Signer):
    calls = 0

    def sign(self, message: bytes) -> str:
        type(self).calls += 1
        return super().sign(message)


def test_one_signature_per_tree_and_each_path_made_once() -> None:
    """Signatures per batch: one per tree of MAX_TREE_LEAVES, however the events are split."""
    CountingSigner.calls = 0
    sign_messages(CountingSigner(KEY), [str(i).encode() for i in range(1000)])
    assert CountingSigner.calls == math.ceil(1000 / MAX_TREE_LEAVES)


def test_a_proof_of_the_first_form_still_verifies_and_names_a_change() -> None:
    """Stores written with `m1` proofs (hex paths, trees of up to 1,024) keep verifying."""
    signer = Signer(KEY)
    messages = [f"event {i}".encode() for i in range(37)]
    from engine.chain import batch_message

    root, paths = tree_paths([leaf_hash(m) for m in messages])
    signature = signer.sign(batch_message(root.hex(), len(messages)))
    old = [encode_proof_v1(signature, i, len(messages), p) for i, p in enumerate(paths)]
    assert all(f.startswith("m1:") and is_proof(f) for f in old)
    checker = IntakeSignatures(signer.verifier)
    assert all(checker.valid(m, f) for m, f in zip(messages, old, strict=True))
    assert not checker.valid(b"event 3 changed", old[3])
    proof = decode_proof(old[3])
    assert proof is not None and proof.path == tuple(paths[3])


def test_both_forms_of_one_proof_decode_alike() -> None:
    messages = [f"event {i}".encode() for i in range(MAX_TREE_LEAVES)]
    [new] = sign_messages(Signer(KEY), messages)[5:6]
    proof = decode_proof(new)
    assert new.startswith("m2:") and proof is not None
    old = decode_proof(encode_proof_v1(proof.signature, proof.index, proof.size, proof.path))
    assert old == proof


@pytest.mark.parametrize(
    "text",
    [
        "m2:sig:0:2:" + "A" * 43 + "=x",  # not base64
        "m2:sig:0:2:" + "A" * 40,  # not a whole number of hashes
        "m2:sig:0:2:" + "A" * 43,  # unpadded: one spelling per path
        "m2:sig:0:2:" + "A" * 42 + "B=",  # non-canonical trailing bits
        "m2:sig:0:2:" + "A" * 42 + "A=\n",  # a trailing newline
        "m2:sig:01:2:" + "A" * 43 + "=",  # a leading zero
    ],
)
def test_a_malformed_compact_proof_is_no_proof(text: str) -> None:
    assert decode_proof(text) is None
