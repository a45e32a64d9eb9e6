"""The kind of a BitTorrent info-hash, read off its size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.hashsets.algorithms import (
    BTIH,
    BTIH2,
    DIGEST_SIZES,
    HashFormatError,
    infohash_kind,
    parse_hex,
)


def test_v1_and_v2_sizes() -> None:
    assert infohash_kind(bytes(20)) == BTIH
    assert infohash_kind(b"\xff" * 32) == BTIH2


@given(st.sampled_from([20, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_the_kind_names_an_algorithm_of_that_size(value: bytes) -> None:
    kind = infohash_kind(value)
    assert DIGEST_SIZES[kind] == len(value)
    # Its hex reads back as that algorithm, as a stored sighting's value does.
    assert parse_hex(kind, value.hex()) == value


@given(st.binary(max_size=80).filter(lambda b: len(b) not in (20, 32)))
def test_any_other_size_is_refused(value: bytes) -> None:
    with pytest.raises(HashFormatError, match=f"got {len(value)}"):
        infohash_kind(value)
