"""The merkle tree against RFC 9162's recursive definition, and its inclusion proofs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.evidence.merkle import (
    MerkleError,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_proof,
    root_of,
    verify_inclusion,
)

LEAF_LISTS = st.lists(st.binary(max_size=16), min_size=1, max_size=70)


def reference_root(data: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written out recursively and independently of the module."""
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    left, right = reference_root(data[:k]), reference_root(data[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_small_trees_by_hand() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert root_of([a]) == a
    assert root_of([a, b]) == node_hash(a, b)
    assert root_of([a, b, c]) == node_hash(node_hash(a, b), c)
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    # Domain separation: a leaf over two hashes is not their node.
    assert leaf_hash(a + b) != node_hash(a, b)


@given(LEAF_LISTS)
def test_root_is_rfc9162_mth(data: list[bytes]) -> None:
    assert root_of([leaf_hash(d) for d in data]) == reference_root(data)


@settings(max_examples=60)
@given(LEAF_LISTS, st.data())
def test_every_proof_verifies_and_only_for_its_leaf(data: list[bytes], pick: st.DataObject) -> None:
    leaves = [leaf_hash(d) for d in data]
    root = root_of(leaves)
    index = pick.draw(st.integers(0, len(leaves) - 1))
    proof = inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], index, len(leaves), proof, root)
    assert not verify_inclusion(leaf_hash(data[index] + b"x"), index, len(leaves), proof, root)
    if len(leaves) > 1:
        other = pick.draw(st.integers(0, len(leaves) - 1).filter(lambda i: i != index))
        if leaves[other] != leaves[index]:
            assert not verify_inclusion(leaves[other], index, len(leaves), proof, root)
        assert not verify_inclusion(leaves[index], index, len(leaves), proof[:-1], root)
        assert not verify_inclusion(leaves[index], index, len(leaves), [*proof, root], root)


@given(LEAF_LISTS, st.data())
def test_changing_any_leaf_changes_the_root(data: list[bytes], pick: st.DataObject) -> None:
    index = pick.draw(st.integers(0, len(data) - 1))
    changed = list(data)
    changed[index] = data[index] + b"\x00"
    assert root_of([leaf_hash(d) for d in changed]) != root_of([leaf_hash(d) for d in data])


@given(st.binary(), st.integers(), st.integers(), st.lists(st.binary(), max_size=5))
def test_bad_proofs_give_merkle_error_or_false(
    leaf: bytes, index: int, size: int, proof: list[bytes]
) -> None:
    """Whatever a verifier is handed, the answer is a root or MerkleError, never a crash."""
    try:
        assert len(root_from_proof(leaf, index, size, proof)) == 32
    except MerkleError:
        assert not verify_inclusion(leaf, index, size, proof, b"\x00" * 32)


def test_refusals() -> None:
    with pytest.raises(MerkleError):
        root_of([])
    with pytest.raises(MerkleError):
        root_of([b"short"])
    with pytest.raises(MerkleError):
        inclusion_proof([leaf_hash(b"a")], 1)
