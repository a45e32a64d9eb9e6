"""Shared tracker types: request bounds, compact peers (BEP 23, BEP 7), safe text."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.bittorrent.tracker import (
    AnnounceRequest,
    Peer,
    TrackerError,
    TrackerRefusedError,
    decode_compact_peers,
    encode_compact_peers,
    text,
)

HASH = bytes(range(20))
PEER_ID = b"-AT0001-abcdefghijkl"


def test_compact_ipv4_vector() -> None:
    # 192.168.24.52:2001 as the compact extension's own documentation gives it.
    peers, dropped = decode_compact_peers(bytes.fromhex("c0a8183407d1"), ipv6=False)
    assert peers == (Peer("192.168.24.52", 2001),)
    assert dropped == 0


def test_compact_two_ipv4_peers_in_order() -> None:
    data = bytes([10, 10, 10, 5, 0, 128, 127, 0, 0, 1, 0x1A, 0xE1])
    peers, _ = decode_compact_peers(data, ipv6=False)
    assert peers == (Peer("10.10.10.5", 128), Peer("127.0.0.1", 6881))


def test_compact_ipv6_vector() -> None:
    # BEP 7: 16 address bytes then the port, network order.
    data = bytes.fromhex("20010db8000000000000000000000001") + (51413).to_bytes(2, "big")
    peers, _ = decode_compact_peers(data, ipv6=True)
    assert peers == (Peer("2001:db8::1", 51413),)


@pytest.mark.parametrize(("size", "ipv6"), [(5, False), (7, False), (17, True), (19, True)])
def test_compact_length_must_be_whole_entries(size: int, ipv6: bool) -> None:
    with pytest.raises(TrackerError, match="not a multiple"):
        decode_compact_peers(bytes(size), ipv6=ipv6)


def test_compact_bound_counts_what_was_left_out() -> None:
    data = bytes(6 * 10)
    peers, dropped = decode_compact_peers(data, ipv6=False, max_peers=3)
    assert len(peers) == 3
    assert dropped == 7


@given(st.binary(max_size=400), st.booleans())
def test_compact_arbitrary_bytes_raise_only_tracker_error(data: bytes, ipv6: bool) -> None:
    try:
        peers, dropped = decode_compact_peers(data, ipv6=ipv6, max_peers=20)
    except TrackerError:
        return
    assert len(peers) + dropped == len(data) // (18 if ipv6 else 6)


ipv4_peers = st.builds(
    Peer,
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 65535),
)
ipv6_peers = st.builds(
    Peer,
    st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.integers(0, 65535),
)


@given(st.lists(ipv4_peers, max_size=30))
def test_compact_ipv4_round_trip(peers: list[Peer]) -> None:
    decoded, _ = decode_compact_peers(encode_compact_peers(peers, ipv6=False), ipv6=False)
    assert list(decoded) == peers


@given(st.lists(ipv6_peers, max_size=30))
def test_compact_ipv6_round_trip(peers: list[Peer]) -> None:
    decoded, _ = decode_compact_peers(encode_compact_peers(peers, ipv6=True), ipv6=True)
    assert list(decoded) == peers


def test_encode_compact_refuses_mixed_families_and_names() -> None:
    with pytest.raises(TrackerError):
        encode_compact_peers([Peer("::1", 1)], ipv6=False)
    with pytest.raises(TrackerError):
        encode_compact_peers([Peer("tracker.example", 1)], ipv6=False)


@pytest.mark.parametrize(
    "changes",
    [
        {"infohash": bytes(19)},
        {"infohash": bytes(32)},
        {"peer_id": b"short"},
        {"port": 65536},
        {"port": -1},
        {"left": -1},
        {"uploaded": 2**63},
        {"downloaded": True},
        {"event": "paused"},
        {"numwant": -1},
        {"numwant": 2**31},
        {"key": 2**32},
    ],
)
def test_announce_request_bounds(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {"infohash": HASH, "peer_id": PEER_ID, "port": 6881, "left": 1}
    fields.update(changes)
    with pytest.raises(TrackerError):
        AnnounceRequest(**fields)  # type: ignore[arg-type]


def test_text_is_bounded_and_printable() -> None:
    shown = text(b"\x1b[31mred\x1b[0m \xff" + b"x" * 5000)
    assert "\x1b" not in shown
    assert shown.startswith("\ufffd[31mred")
    assert len(shown) == 512


def test_refusal_carries_the_reason() -> None:
    error = TrackerRefusedError("not today")
    assert isinstance(error, ValueError)
    assert error.reason == "not today"
