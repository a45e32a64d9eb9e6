"""eD2K TCP framing: whole, byte at a time, packed, and hostile streams."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.ed2k.packets import (
    Packet,
    PacketDecoder,
    PacketError,
    Protocol,
    encode_packet,
)
from atalaya.networks.ed2k.wire import Ed2kError


def test_frame_layout() -> None:
    # <E3><length = payload + opcode, LE><opcode><payload>
    assert encode_packet(Protocol.EDONKEY, 0x55, b"") == bytes([0xE3, 1, 0, 0, 0, 0x55])
    assert encode_packet(Protocol.EMULE, 0x60, b"\x07\x00") == bytes([0xC5, 3, 0, 0, 0, 0x60, 7, 0])


def test_packed_packets_arrive_inflated_as_emule() -> None:
    frame = encode_packet(Protocol.EMULE, 0x40, b"a" * 1000, pack=True)
    assert frame[0] == 0xD4 and len(frame) < 100
    assert PacketDecoder().feed(frame) == [Packet(Protocol.EMULE, 0x40, b"a" * 1000, True)]


def test_byte_at_a_time_equals_whole() -> None:
    frames = [
        encode_packet(Protocol.EDONKEY, 0x01, b"hello"),
        encode_packet(Protocol.EMULE, 0x60, b"\x01\x00"),
        encode_packet(Protocol.EMULE, 0x40, bytes(range(256)) * 4, pack=True),
    ]
    stream = b"".join(frames)
    whole = PacketDecoder().feed(stream)
    decoder = PacketDecoder()
    dribbled = [packet for byte in stream for packet in decoder.feed(bytes([byte]))]
    assert whole == dribbled and len(whole) == 3 and decoder.buffered == 0


def test_announced_length_is_refused_before_buffering() -> None:
    decoder = PacketDecoder(max_packet=1024)
    with pytest.raises(PacketError, match="limit 1024"):
        decoder.feed(bytes([0xE3]) + (10**6).to_bytes(4, "little"))
    # Broken stays broken.
    with pytest.raises(PacketError):
        decoder.feed(b"")


def test_unknown_protocol_is_refused_on_the_first_byte() -> None:
    with pytest.raises(PacketError, match="0x13"):
        PacketDecoder().feed(b"\x13BitTorrent protocol")


def test_zip_bomb_stops_at_the_limit() -> None:
    bomb = zlib.compress(bytes(50_000_000), 9)
    frame = bytes([0xD4]) + (len(bomb) + 1).to_bytes(4, "little") + b"\x40" + bomb
    with pytest.raises(PacketError, match="more than 100000"):
        PacketDecoder(max_packet=100_000).feed(frame)


def test_garbage_compression_and_zero_length() -> None:
    with pytest.raises(PacketError, match="does not inflate"):
        PacketDecoder().feed(bytes([0xD4, 4, 0, 0, 0, 0x40]) + b"xyz")
    with pytest.raises(PacketError, match="length 0"):
        PacketDecoder().feed(bytes([0xE3, 0, 0, 0, 0, 0]))


@given(st.binary(max_size=2000), st.integers(1, 64))
def test_any_stream_gives_packets_or_a_typed_error(data: bytes, chunk: int) -> None:
    decoder = PacketDecoder(max_packet=4096)
    try:
        for at in range(0, len(data), chunk):
            decoder.feed(data[at : at + chunk])
    except Ed2kError:
        pass
    assert decoder.buffered <= 4096 + 6


@given(
    st.lists(
        st.tuples(
            st.sampled_from([Protocol.EDONKEY, Protocol.EMULE]),
            st.integers(0, 255),
            st.binary(max_size=500),
            st.booleans(),
        ),
        max_size=10,
    )
)
def test_frames_round_trip(items: list[tuple[Protocol, int, bytes, bool]]) -> None:
    stream = b"".join(
        encode_packet(p, op, body, pack=pack and p is Protocol.EMULE) for p, op, body, pack in items
    )
    decoded = PacketDecoder().feed(stream)
    assert [(p.protocol, p.opcode, p.payload) for p in decoded] == [
        (p, op, body) for p, op, body, _ in items
    ]
