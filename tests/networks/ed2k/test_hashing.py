"""eD2K hashes against RHash (Debian `rhash`), an independent implementation."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from Crypto.Hash import MD4
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.ed2k.hashing import (
    EMPTY_PART_HASH,
    PART_SIZE,
    Ed2kHasher,
    ed2k_hash,
)

# Every size where the part arithmetic changes.
EDGE_SIZES = [0, 1, PART_SIZE - 1, PART_SIZE, PART_SIZE + 1, 2 * PART_SIZE]

_DATA = random.Random(52).randbytes(2 * PART_SIZE + 1)


def md4(data: bytes) -> bytes:
    digest: bytes = MD4.new(data).digest()
    return digest


def rhash_ed2k(path: Path) -> str:
    if shutil.which("rhash") is None:
        if os.environ.get("CI"):
            pytest.fail("rhash is required under CI: scripts/setup.sh installs it")
        pytest.skip("rhash is not installed; run scripts/setup.sh")
    result = subprocess.run(
        ["rhash", "--ed2k", "--simple", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.split()[0].lower()


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_matches_rhash(tmp_path: Path, size: int) -> None:
    data = _DATA[:size]
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert ed2k_hash(data).hex() == rhash_ed2k(path)


def test_md4_vectors_from_rfc_1320() -> None:
    # A file of less than one part hashes to the plain MD4 of its bytes.
    assert ed2k_hash(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert ed2k_hash(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    assert md4(b"") == EMPTY_PART_HASH


def test_one_byte_short_of_a_part_is_plain_md4() -> None:
    data = _DATA[: PART_SIZE - 1]
    assert ed2k_hash(data) == md4(data)


def test_exact_part_multiple_appends_the_empty_part_hash() -> None:
    # The eMule/aMule convention (see the module docstring).
    one = _DATA[:PART_SIZE]
    assert ed2k_hash(one) == md4(md4(one) + EMPTY_PART_HASH)
    two = _DATA[: 2 * PART_SIZE]
    parts = md4(two[:PART_SIZE]) + md4(two[PART_SIZE:])
    assert ed2k_hash(two) == md4(parts + EMPTY_PART_HASH)


def test_more_than_a_part_hashes_the_part_hashes() -> None:
    data = _DATA[: PART_SIZE + 1]
    assert ed2k_hash(data) == md4(md4(data[:PART_SIZE]) + md4(data[PART_SIZE:]))


def test_digest_midway_does_not_disturb_the_stream() -> None:
    hasher = Ed2kHasher()
    hasher.update(_DATA[:PART_SIZE])
    assert hasher.digest() == ed2k_hash(_DATA[:PART_SIZE])
    hasher.update(_DATA[PART_SIZE : PART_SIZE + 1])
    assert hasher.digest() == ed2k_hash(_DATA[: PART_SIZE + 1])
    assert hasher.length == PART_SIZE + 1


def test_one_byte_at_a_time_around_the_part_boundary() -> None:
    hasher = Ed2kHasher()
    hasher.update(_DATA[: PART_SIZE - 3])
    for i in range(PART_SIZE - 3, PART_SIZE + 3):
        hasher.update(_DATA[i : i + 1])
    assert hasher.digest() == ed2k_hash(_DATA[: PART_SIZE + 3])


@settings(max_examples=25, deadline=None)
@given(
    size=st.sampled_from(EDGE_SIZES),
    cuts=st.lists(st.integers(min_value=0, max_value=2 * PART_SIZE), max_size=6),
)
def test_any_chunking_gives_the_one_shot_digest(size: int, cuts: list[int]) -> None:
    data = memoryview(_DATA)[:size]
    bounds = sorted({0, size, *(c for c in cuts if c <= size)})
    hasher = Ed2kHasher()
    for start, end in itertools.pairwise(bounds):
        hasher.update(data[start:end])
    assert hasher.digest() == ed2k_hash(bytes(data))
