"""BitTorrent's view of a watch target: kinds by length, DHT keys, hybrids' hints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.hashsets.algorithms import BTIH, BTIH2, infohash_kind
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.bittorrent.targets import dht_key, infohash_target


@given(st.binary(min_size=20, max_size=20) | st.binary(min_size=32, max_size=32))
def test_a_target_is_keyed_in_the_dht_by_its_first_20_bytes(infohash: bytes) -> None:
    target = infohash_target(infohash, "test")
    assert target.network == BITTORRENT.name
    assert target.kind == (BTIH if len(infohash) == 20 else BTIH2)
    assert dht_key(target) == infohash[:20] and len(dht_key(target)) == 20
    assert BITTORRENT.derive(target.kind, infohash) == (target.kind, infohash)


@given(st.binary(max_size=64).filter(lambda b: len(b) not in (20, 32)))
def test_no_other_length_is_an_infohash(value: bytes) -> None:
    with pytest.raises(ValueError, match="20 or 32 bytes"):
        infohash_kind(value)


def test_bittorrent_derives_targets_only_from_infohashes() -> None:
    assert set(BITTORRENT.sources) == set(BITTORRENT.kinds) == {BTIH, BTIH2}
    for algorithm in ("sha256", "sha1", "md5", "ed2k", "btv2_root", "btv1_16384"):
        assert BITTORRENT.derive(algorithm, b"\x01" * 32) is None
