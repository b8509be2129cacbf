"""The RFC 6962 Merkle tree of intake batches (engine/merkle.py): the reference roots and
inclusion paths of Certificate Transparency's test data, table-driven edges, properties, and
the proof's text form (it comes back from the store: any text gives an answer, never raises)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.merkle import (
    MAX_DEPTH,
    decode_proof,
    encode_proof,
    is_proof,
    leaf_hash,
    node_hash,
    root_from_path,
    tree_paths,
    tree_root,
    verify_path,
)

# RFC 6962's reference leaves (the CT implementations' shared test data) and the root of the
# tree of the first n of them, n = 1..8.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (index, size, path): reference inclusion paths of the same tree
CT_PATHS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"event {i}".encode()) for i in range(n)]


def reference_root(hashes: list[bytes]) -> bytes:
    """RFC 6962's definition, written out recursively (the slow way) to check the fast one."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return node_hash(reference_root(hashes[:k]), reference_root(hashes[k:]))


def test_the_reference_roots_and_paths() -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES]
    for n in range(1, 9):
        assert tree_root(hashes[:n]).hex() == CT_ROOTS[n - 1], n
        root, paths = tree_paths(hashes[:n])
        assert root.hex() == CT_ROOTS[n - 1]
        assert all(verify_path(hashes[i], i, n, paths[i], root) for i in range(n))
    _, paths = tree_paths(hashes)
    for index, size, path in CT_PATHS:
        assert [p.hex() for p in paths[index]] == path
        assert verify_path(hashes[index], index, size, [bytes.fromhex(p) for p in path], root)
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()


EDGES = [
    # n = 1: the root is the leaf hash, the path is empty
    1,
    # n = 2: one level
    2,
    # n = 3: unbalanced, the last leaf one level up
    3,
    # n = 5: split at 4, the fifth leaf right under the root
    5,
    # n = 8: a full tree, every path 3 long
    8,
    # n = 500: one request of the issue-10 benchmark
    500,
]


@pytest.mark.parametrize("n", EDGES)
def test_every_path_of_a_tree_leads_to_its_root_and_tampering_does_not(n: int) -> None:
    hashes = leaves(n)
    root, paths = tree_paths(hashes)
    assert root == reference_root(hashes) == tree_root(hashes)
    depth = (n - 1).bit_length()
    for i in range(n):
        path = paths[i]
        assert len(path) <= depth
        assert verify_path(hashes[i], i, n, path, root)
        # a flipped leaf (a changed event) leads elsewhere
        flipped = bytes([hashes[i][0] ^ 1]) + hashes[i][1:]
        assert not verify_path(flipped, i, n, path, root)
        # another event's leaf at this index
        if n > 1:
            assert not verify_path(hashes[(i + 1) % n], i, n, path, root)
        # a wrong index (within or beyond the tree)
        for wrong in {(i + 1) % n, n, -1} - {i}:
            assert not verify_path(hashes[i], wrong, n, path, root)
        if path:
            # a truncated path, or one hash too many
            assert root_from_path(hashes[i], i, n, path[:-1]) is None
            assert not verify_path(hashes[i], i, n, [*path, root], root)
        # (A path may also fit a tree of another size - the first leaves' paths of 500 and 501
        # leaves have one shape - which is why the signed message names the size with the root:
        # tests/unit/test_batch_signing.py.)


def test_no_tree_of_no_leaves() -> None:
    with pytest.raises(ValueError):
        tree_root([])
    with pytest.raises(ValueError):
        tree_paths([])


@given(
    st.lists(st.binary(max_size=40), min_size=1, max_size=70),
    st.data(),
)
def test_each_leaf_proves_itself_and_any_change_to_any_leaf_fails(
    messages: list[bytes], data: st.DataObject
) -> None:
    hashes = [leaf_hash(m) for m in messages]
    root, paths = tree_paths(hashes)
    assert root == reference_root(hashes)
    n = len(hashes)
    for i in range(n):
        assert verify_path(hashes[i], i, n, paths[i], root)
    i = data.draw(st.integers(0, n - 1))
    changed = data.draw(st.binary(max_size=40).filter(lambda m: m != messages[i]))
    assert not verify_path(leaf_hash(changed), i, n, paths[i], root)
    # and the tree of the changed batch has another root
    assert tree_root([*hashes[:i], leaf_hash(changed), *hashes[i + 1 :]]) != root


def test_a_proof_reads_back_as_written() -> None:
    hashes = leaves(5)
    _, paths = tree_paths(hashes)
    text = encode_proof("c2lnbmF0dXJl", 3, 5, paths[3])
    assert is_proof(text) and not is_proof("c2lnbmF0dXJl")
    proof = decode_proof(text)
    assert proof is not None
    assert (proof.signature, proof.index, proof.size, proof.path) == (
        "c2lnbmF0dXJl",
        3,
        5,
        tuple(paths[3]),
    )
    assert decode_proof(encode_proof("s", 0, 1, [])) is not None  # a tree of one: no path


HASH = "ab" * 32
NOT_PROOFS = [
    # the per-event form (base64): not a proof at all
    "yAojU99rON3iC7hTXK5nxwwl0OwybeTV9nmTfnNwbEitrH4OxstPFCN6U+mYav6LAIJhvmU2F8mJXdX/QBmYDg==",
    # another version's tag
    f"m2:sig:0:2:{HASH}",
    # a field missing, or one too many
    f"m1:sig:0:{HASH}",
    f"m1:sig:0:2:{HASH}:x",
    # a signed or spaced number, a leading zero (one number, one spelling), not a number
    f"m1:sig:-1:2:{HASH}",
    f"m1:sig: 1:2:{HASH}",
    f"m1:sig:01:2:{HASH}",
    f"m1:sig:0:２:{HASH}",
    f"m1:sig::2:{HASH}",
    # a number too long to be a size
    f"m1:sig:0:{'9' * 21}:{HASH}",
    # a path that is not whole hashes, not hex, or spaced
    f"m1:sig:0:2:{HASH[:-2]}",
    f"m1:sig:0:2:{'zz' * 32}",
    f"m1:sig:0:2:{HASH[:-2]} a",
    # a path deeper than any tree
    f"m1:sig:0:2:{HASH * (MAX_DEPTH + 1)}",
]


@pytest.mark.parametrize("text", NOT_PROOFS)
def test_what_is_not_a_proof_reads_as_none(text: str) -> None:
    assert decode_proof(text) is None


@given(st.text(max_size=300))
def test_any_text_gives_an_answer(text: str) -> None:
    decode_proof(text)
    decode_proof("m1:" + text)
    decode_proof("m2:" + text)
    decode_proof("m2:s:0:2:" + text)
