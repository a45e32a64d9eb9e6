"""BEP 52 merkle trees, checked against the torrents libtorrent creates."""

from __future__ import annotations

import hashlib
import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.lab.torrents import make_torrent
from atalaya.networks.bittorrent import bencode
from atalaya.networks.bittorrent.merkle import (
    BLOCK_SIZE,
    ZERO_HASH,
    ZERO_HASHES,
    FileMerkle,
    MerkleError,
    leaf_hashes,
    piece_hash,
    piece_height,
    root_from_layer,
    root_from_leaves,
    root_from_piece_layer,
    verify_piece,
)

KIB = 1024
PIECE_SIZES = [16 * KIB, 32 * KIB, 64 * KIB, 256 * KIB]
# Below, at and above block and piece boundaries, for the piece sizes above.
FILE_SIZES = [
    1,
    100,
    BLOCK_SIZE - 1,
    BLOCK_SIZE,
    BLOCK_SIZE + 1,
    2 * BLOCK_SIZE,
    3 * BLOCK_SIZE,
    64 * KIB - 1,
    64 * KIB,
    64 * KIB + 1,
    3 * 64 * KIB + 5,
    256 * KIB,
    1000 * KIB + 7,
]

_DATA = random.Random(20).randbytes(1024 * KIB)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fed(data: bytes, piece_sizes: list[int], chunk: int = 7777) -> FileMerkle:
    tree = FileMerkle(piece_sizes)
    for i in range(0, len(data), chunk):
        tree.update(data[i : i + chunk])
    return tree


def libtorrent_v2(path: Path, piece_size: int) -> tuple[bytes, bytes | None]:
    """The pieces root and the piece layer (None if absent) libtorrent writes."""
    torrent: Any = bencode.decode(make_torrent(path, version="v2", piece_size=piece_size))
    root: bytes = torrent[b"info"][b"file tree"][path.name.encode()][b""][b"pieces root"]
    layer: bytes | None = torrent.get(b"piece layers", {}).get(root)
    return root, layer


@pytest.mark.parametrize("size", FILE_SIZES)
def test_pieces_root_and_piece_layers_match_libtorrent(tmp_path: Path, size: int) -> None:
    data = _DATA[:size]
    path = tmp_path / "content.bin"
    path.write_bytes(data)
    tree = fed(data, PIECE_SIZES)
    for piece_size in PIECE_SIZES:
        root, layer = libtorrent_v2(path, piece_size)
        assert tree.pieces_root() == root
        ours = tree.piece_layer(piece_size)
        if size > piece_size:
            assert layer is not None
            assert b"".join(ours) == layer
            assert root_from_piece_layer(ours, piece_size) == root
        else:
            # BEP 52: no piece layer; the single piece's hash is the root.
            assert layer is None
            assert ours == [root]
        for index, expected in enumerate(ours):
            piece = data[index * piece_size : (index + 1) * piece_size]
            assert verify_piece(piece, index, expected, piece_size)


def test_single_block_root_is_its_sha256() -> None:
    assert fed(b"x", []).pieces_root() == sha256(b"x")
    block = _DATA[:BLOCK_SIZE]
    assert fed(block, []).pieces_root() == sha256(block)


def test_hand_built_three_leaf_tree() -> None:
    data = _DATA[: 2 * BLOCK_SIZE + 10]
    a, b, c = (sha256(data[i : i + BLOCK_SIZE]) for i in range(0, len(data), BLOCK_SIZE))
    expected = sha256(sha256(a + b) + sha256(c + ZERO_HASH))
    assert root_from_leaves([a, b, c]) == expected
    assert fed(data, []).pieces_root() == expected
    assert leaf_hashes(data) == [a, b, c]


def test_last_piece_is_padded_to_the_full_piece_height() -> None:
    piece_size = 4 * BLOCK_SIZE
    data = _DATA[: piece_size + BLOCK_SIZE + 3]
    tree = fed(data, [piece_size])
    last = leaf_hashes(data[piece_size:])
    padded = sha256(sha256(last[0] + last[1]) + sha256(ZERO_HASH + ZERO_HASH))
    assert tree.piece_layer(piece_size)[1] == padded
    assert piece_hash(data[piece_size:], 1, piece_size) == padded
    # The same bytes as a file's only piece are padded to two leaves only.
    assert piece_hash(data[piece_size:], 0, piece_size) == sha256(last[0] + last[1])


def test_piece_layer_root_pads_with_zero_subtrees() -> None:
    piece_size = 2 * BLOCK_SIZE
    data = _DATA[: 5 * piece_size]
    tree = fed(data, [piece_size])
    layer = tree.piece_layer(piece_size)
    assert len(layer) == 5
    padded = root_from_layer(layer, piece_height(piece_size), pad_to=8)
    assert padded == tree.pieces_root() == root_from_piece_layer(layer, piece_size)
    assert ZERO_HASHES[1] == sha256(ZERO_HASH + ZERO_HASH)


def test_verify_piece_rejects_wrong_data() -> None:
    piece_size = 2 * BLOCK_SIZE
    data = bytearray(_DATA[: 3 * piece_size + 9])
    layer = fed(bytes(data), [piece_size]).piece_layer(piece_size)
    piece = data[piece_size : 2 * piece_size]
    assert verify_piece(piece, 1, layer[1], piece_size)
    piece[100] ^= 1
    assert not verify_piece(piece, 1, layer[1], piece_size)
    assert not verify_piece(data[:piece_size], 1, layer[1], piece_size)
    assert not verify_piece(b"", 1, layer[1], piece_size)
    assert not verify_piece(bytes(data[: piece_size + 1]), 0, layer[0], piece_size)
    with pytest.raises(MerkleError):
        verify_piece(data[:piece_size], 0, layer[0][:31], piece_size)
    with pytest.raises(MerkleError):
        verify_piece(data[:piece_size], 0, layer[0], 3 * BLOCK_SIZE)


def test_empty_file_has_no_root_and_no_pieces() -> None:
    tree = FileMerkle([BLOCK_SIZE])
    tree.update(b"")
    assert tree.pieces_root() is None
    assert tree.piece_layer(BLOCK_SIZE) == []
    assert tree.length == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: root_from_leaves([]),
        lambda: root_from_leaves([b"short"]),
        lambda: root_from_leaves([ZERO_HASH] * 3, pad_to=2),
        lambda: root_from_leaves([ZERO_HASH] * 3, pad_to=6),
        lambda: root_from_layer([ZERO_HASH], -1),
        lambda: root_from_layer([ZERO_HASH], 0, pad_to=1 << 60),
        lambda: piece_height(8 * KIB),
        lambda: piece_height(48 * KIB),
        lambda: piece_height(1 << 70),
        lambda: piece_hash(b"", 0, BLOCK_SIZE),
        lambda: piece_hash(b"x", -1, BLOCK_SIZE),
        lambda: FileMerkle([BLOCK_SIZE]).piece_layer(2 * BLOCK_SIZE),
        lambda: FileMerkle([100]),
    ],
)
def test_impossible_arguments_raise_merkle_error(call: object) -> None:
    assert callable(call)
    with pytest.raises(MerkleError):
        call()


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=20 * BLOCK_SIZE),
    cuts=st.lists(st.integers(min_value=0, max_value=20 * BLOCK_SIZE), max_size=8),
    piece_size=st.sampled_from([BLOCK_SIZE, 2 * BLOCK_SIZE, 8 * BLOCK_SIZE]),
)
def test_any_chunking_gives_the_one_shot_tree(size: int, cuts: list[int], piece_size: int) -> None:
    data = _DATA[:size]
    one_shot = FileMerkle([piece_size])
    one_shot.update(data)
    chunked = FileMerkle([piece_size])
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    for start, end in itertools.pairwise(bounds):
        chunked.update(memoryview(data)[start:end])
        # Asking midway must not change what comes after.
        chunked.pieces_root()
    assert chunked.pieces_root() == one_shot.pieces_root()
    assert chunked.piece_layer(piece_size) == one_shot.piece_layer(piece_size)
    if size:
        assert one_shot.pieces_root() == root_from_leaves(leaf_hashes(data))
        layer = one_shot.piece_layer(piece_size)
        assert len(layer) == -(-size // piece_size)
        if len(layer) > 1:
            assert root_from_piece_layer(layer, piece_size) == one_shot.pieces_root()
        for index, expected in enumerate(layer):
            piece = data[index * piece_size : (index + 1) * piece_size]
            assert piece_hash(piece, index, piece_size) == expected


@settings(max_examples=200, deadline=None)
@given(
    piece=st.binary(max_size=3 * BLOCK_SIZE),
    index=st.integers(min_value=-2, max_value=1 << 40),
    expected=st.binary(min_size=0, max_size=40),
    piece_size=st.one_of(
        st.sampled_from([BLOCK_SIZE, 2 * BLOCK_SIZE, 1 << 40]),
        st.integers(min_value=-1, max_value=1 << 70),
    ),
)
def test_verify_piece_answers_or_raises_only_merkle_error(
    piece: bytes, index: int, expected: bytes, piece_size: int
) -> None:
    try:
        result = verify_piece(piece, index, expected, piece_size)
    except MerkleError:
        return
    assert isinstance(result, bool)
    # Random bytes never hash to a random expected value.
    assert result is False or expected == piece_hash(piece, index, piece_size)
