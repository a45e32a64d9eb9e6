"""Proof paths: from one piece's layer hash up to a file's pieces root."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.bittorrent import merkle

H = merkle.HASH_SIZE


def h(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(4, "big")).digest()


def test_a_three_piece_layer_by_hand() -> None:
    # Three pieces of height 1 (32 KiB), padded with the zero hash of height 1.
    a, b, c = h(1), h(2), h(3)
    pad = merkle.ZERO_HASHES[1]
    left = hashlib.sha256(a + b).digest()
    right = hashlib.sha256(c + pad).digest()
    root = hashlib.sha256(left + right).digest()
    assert merkle.root_from_layer([a, b, c], 1) == root
    assert merkle.proof_path([a, b, c], 0, 1) == [b, right]
    assert merkle.proof_path([a, b, c], 2, 1) == [pad, left]
    assert merkle.root_from_proof(c, 2, [pad, left]) == root
    # The position decides the side: the same path from the wrong index misses.
    assert merkle.root_from_proof(c, 3, [pad, left]) != root


@given(
    count=st.integers(1, 70),
    height=st.integers(0, 6),
    data=st.data(),
)
def test_every_path_recomputes_the_root(count: int, height: int, data: st.DataObject) -> None:
    layer = [h(i) for i in range(count)]
    root = merkle.root_from_layer(layer, height)
    levels = merkle.layer_levels(layer, height)
    assert levels[-1] == [root]
    index = data.draw(st.integers(0, count - 1))
    path = merkle.proof_path(layer, index, height)
    assert len(path) == (len(levels) - 1)
    assert merkle.path_from_levels(levels, index) == path
    assert merkle.root_from_proof(layer[index], index, path) == root
    if path:
        flipped = [bytes([path[0][0] ^ 1]) + path[0][1:], *path[1:]]
        assert merkle.root_from_proof(layer[index], index, flipped) != root


def test_a_chunk_path_and_its_uncles_equal_the_whole_layer_path() -> None:
    # What a BEP 52 hash request gives: a chunk of the layer, then the uncles above it.
    layer = [h(i) for i in range(1000)]
    height = 2
    whole = merkle.proof_path(layer, 700, height)
    chunk = layer[512:1000] + [merkle.ZERO_HASHES[height]] * 24
    inside = merkle.proof_path(chunk, 700 - 512, height, pad_to=512)
    assert inside == whole[: len(inside)]
    uncle = merkle.root_from_layer(layer[:512], height)
    assert whole[len(inside) :] == [uncle]


@pytest.mark.parametrize(
    ("node", "index", "path"),
    [(b"short", 0, []), (bytes(H), 2, [bytes(H)]), (bytes(H), -1, []), (bytes(H), 0, [b"x"])],
)
def test_malformed_proofs_are_typed_errors(node: bytes, index: int, path: list[bytes]) -> None:
    with pytest.raises(merkle.MerkleError):
        merkle.root_from_proof(node, index, path)


def test_path_of_a_missing_node_is_a_typed_error() -> None:
    with pytest.raises(merkle.MerkleError):
        merkle.proof_path([h(0), h(1)], 2, 0)
