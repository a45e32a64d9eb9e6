from pathlib import Path

import pytest

from atalaya.lab.files import random_bytes, write_random_file


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = write_random_file(tmp_path / "a" / "x.bin", 3_000_000, seed=5)
    b = write_random_file(tmp_path / "b" / "x.bin", 3_000_000, seed=5)
    assert a.stat().st_size == 3_000_000
    assert a.read_bytes() == b.read_bytes()


def test_other_seed_other_bytes() -> None:
    assert random_bytes(1000, 1) != random_bytes(1000, 2)


def test_prefix_is_stable_across_sizes() -> None:
    # A longer file of the same seed starts with the shorter one's bytes.
    assert random_bytes(2_500_000, 9)[:1_000_000] == random_bytes(1_000_000, 9)


def test_empty_and_negative() -> None:
    assert random_bytes(0, 1) == b""
    with pytest.raises(ValueError, match="negative"):
        random_bytes(-1, 1)
