"""AICH: the tree against vectors computed here with hashlib, recovery data, and liars."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k.aich import BLOCK_SIZE, AichError, RecoveryData
from atalaya.networks.ed2k.hashing import PART_SIZE
from atalaya.networks.ed2k.wire import Reader


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data, usedforsecurity=False).digest()


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _blocks(data: bytes) -> list[bytes]:
    return [_sha1(data[i : i + BLOCK_SIZE]) for i in range(0, len(data), BLOCK_SIZE)]


def _reference(data: bytes) -> bytes:
    """A second, independent reading of aMule's tree: split counts of bases, not offsets."""

    def node(hashes: list[bytes], left: bool) -> bytes:
        if len(hashes) == 1:
            return hashes[0]
        half = (len(hashes) + 1) // 2 if left else len(hashes) // 2
        return _sha1(node(hashes[:half], True) + node(hashes[half:], False))

    if len(data) <= PART_SIZE:
        return node(_blocks(data), True)
    parts = [data[i : i + PART_SIZE] for i in range(0, len(data), PART_SIZE)]

    # A part's own subtree is a left or a right child depending on where it
    # falls: the part-level tree has the part subtrees as its leaves.
    def parts_node(first: int, count: int, left: bool) -> bytes:
        if count == 1:
            return node(_blocks(parts[first]), left)
        half = (count + 1) // 2 if left else count // 2
        return _sha1(parts_node(first, half, True) + parts_node(first + half, count - half, False))

    return parts_node(0, len(parts), True)


def test_one_block_or_less_is_the_sha1_of_the_file() -> None:
    data = _random(BLOCK_SIZE, 1)
    assert aich.master_hash(data) == _sha1(data)
    assert aich.master_hash(b"x") == _sha1(b"x")


def test_three_blocks_split_two_left_one_right() -> None:
    data = _random(2 * BLOCK_SIZE + 1000, 2)
    b0, b1, b2 = _blocks(data)
    assert aich.master_hash(data) == _sha1(_sha1(b0 + b1) + b2)


def test_a_right_branch_gives_its_left_child_the_smaller_half() -> None:
    # Five blocks: root (left) 3 | 2; its left (3, left) 2 | 1; its right (2, right) 1 | 1.
    data = _random(4 * BLOCK_SIZE + 7, 3)
    h = _blocks(data)
    expected = _sha1(_sha1(_sha1(h[0] + h[1]) + h[2]) + _sha1(h[3] + h[4]))
    assert aich.master_hash(data) == expected


def test_two_parts_hash_their_part_subtrees() -> None:
    data = _random(PART_SIZE + 250_000, 4)
    first = aich.master_hash(data[:PART_SIZE])
    second = aich.master_hash(data[PART_SIZE:])
    assert aich.master_hash(data) == _sha1(first + second)
    # A full part: 53 blocks, the last one 143,360 bytes.
    blocks = aich.part_blocks(len(data), 0)
    assert len(blocks) == 53 and blocks[-1].size == PART_SIZE - 52 * BLOCK_SIZE


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12 * BLOCK_SIZE), st.integers(0, 2**32))
def test_the_tree_matches_an_independent_reading(size: int, seed: int) -> None:
    data = _random(size, seed)
    assert aich.master_hash(data) == _reference(data)


def test_three_parts_match_the_independent_reading() -> None:
    data = _random(2 * PART_SIZE + 3 * BLOCK_SIZE + 5, 5)
    assert aich.master_hash(data) == _reference(data)


@pytest.mark.parametrize(
    "size", [BLOCK_SIZE + 1, PART_SIZE, PART_SIZE + 2 * BLOCK_SIZE, 2 * PART_SIZE + BLOCK_SIZE + 9]
)
def test_an_honest_peers_recovery_data_leads_to_the_master_hash(size: int) -> None:
    data = _random(size, size)
    master = aich.master_hash(data)
    for part in range(-(-size // PART_SIZE)):
        recovery = aich.recovery_data(data, part)
        decoded = aich.read_recovery_data(Reader(recovery.encode()))
        assert decoded == recovery
        checked = aich.check_part(size, part, master, decoded.hashes)
        for block, digest in zip(checked.blocks, checked.block_hashes, strict=True):
            assert digest == _sha1(data[block.offset : block.offset + block.size])
        assert checked.blocks[0].offset == part * PART_SIZE


def test_idents_are_paths_from_the_root() -> None:
    # Three blocks: root 1, left 3 (blocks 7, 6), right 2 (the third block).
    blocks = aich.part_blocks(2 * BLOCK_SIZE + 1, 0)
    assert [b.ident for b in blocks] == [7, 6, 2]
    node, siblings = aich.part_path(PART_SIZE + 5, 1)
    assert node.ident == 2 and [s.ident for s in siblings] == [3]


def test_wide_idents_round_trip() -> None:
    recovery = RecoveryData(((0x1_0000, b"\x01" * 20), (3, b"\x02" * 20)), wide=True)
    assert aich.read_recovery_data(Reader(recovery.encode())) == recovery


def _honest(size: int = PART_SIZE + 3 * BLOCK_SIZE) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    data = _random(size, 9)
    return size, aich.master_hash(data), list(aich.recovery_data(data, 1).hashes)


def test_a_changed_block_hash_does_not_lead_to_the_master() -> None:
    size, master, hashes = _honest()
    hashes[-1] = (hashes[-1][0], b"\x00" * 20)
    with pytest.raises(AichError, match="do not lead"):
        aich.check_part(size, 1, master, hashes)


def test_missing_repeated_and_foreign_idents_are_refused() -> None:
    size, master, hashes = _honest()
    with pytest.raises(AichError, match="lacks"):
        aich.check_part(size, 1, master, hashes[:-1])
    with pytest.raises(AichError, match="twice"):
        aich.check_part(size, 1, master, [*hashes, hashes[0]])
    with pytest.raises(AichError, match="not one of"):
        aich.check_part(size, 1, master, [*hashes, (1, master)])
    with pytest.raises(AichError, match="past the end"):
        aich.check_part(size, 2, master, hashes)


def test_oversized_counts_and_empty_data_are_refused() -> None:
    with pytest.raises(AichError, match="limit"):
        aich.read_recovery_data(Reader(b"\xff\xff"))
    with pytest.raises(AichError, match="no hashes"):
        aich.read_recovery_data(Reader(b"\x00\x00\x00\x00"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_recovery_data_parser_fails_only_with_typed_errors(raw: bytes) -> None:
    try:
        recovery = aich.read_recovery_data(Reader(raw))
    except AichError:
        return
    except ValueError as exc:  # Ed2kError from the reader is a ValueError subclass
        assert type(exc).__name__ == "Ed2kError"
        return
    assert 0 < len(recovery.hashes) <= 2 * aich.MAX_RECOVERY_HASHES
    with pytest.raises(AichError):
        aich.check_part(PART_SIZE + 3 * BLOCK_SIZE, 1, b"\x00" * 20, recovery.hashes)
