"""Peer wire codec: byte vectors, malformed input, property tests."""

from __future__ import annotations

import contextlib
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent import bencode
from atalaya.networks.bittorrent.peerwire import (
    DEFAULT_MAX_MESSAGE_LENGTH,
    NEED_DATA,
    AllowedFast,
    Bitfield,
    Cancel,
    Choke,
    ConnectionClosed,
    Event,
    ExtensionHandshake,
    Handshake,
    Hashes,
    HashReject,
    HashRequest,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    NotInterested,
    PeerConnection,
    PeerWireError,
    Pex,
    PexPeer,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    UnknownExtended,
    UnknownMessage,
    client_from_peer_id,
    decode_handshake,
    make_peer_id,
    make_reserved,
    reserved_names,
    validate_bitfield,
)

IH = bytes(range(20))
OUR_ID = b"-AY0001-" + b"a" * 12
PEER_ID = b"-LT2110-" + b"b" * 12
RESERVED_ALL = make_reserved(extension=True, fast=True, dht=True)
PEER_HANDSHAKE = b"\x13BitTorrent protocol" + b"\x00\x00\x00\x00\x00\x10\x00\x05" + IH + PEER_ID


def fresh(*, num_pieces: int | None = None, reserved: bytes = RESERVED_ALL, **kw) -> PeerConnection:
    """A connection that has sent its handshake (all bits) and read the peer's."""
    conn = PeerConnection(num_pieces=num_pieces, **kw)
    conn.send(Handshake(IH, OUR_ID, RESERVED_ALL))
    conn.receive_data(
        b"\x13BitTorrent protocol" + reserved + IH + PEER_ID,
    )
    assert isinstance(conn.next_event(), Handshake)
    return conn


def drain(conn: PeerConnection) -> list[Event]:
    events: list[Event] = []
    for _ in range(10_000):
        ev = conn.next_event()
        if ev is NEED_DATA:
            return events
        events.append(ev)
        if isinstance(ev, ConnectionClosed):
            return events
    raise AssertionError("no NEED_DATA after 10000 events")


def feed_whole_and_bytewise(make, data: bytes) -> list[Event]:
    """Feed `data` whole to one connection and one byte at a time to another."""
    whole = make()
    whole.receive_data(data)
    events = drain(whole)
    single = make()
    byte_events: list[Event] = []
    for i in range(len(data)):
        single.receive_data(data[i : i + 1])
        byte_events += drain(single)
    assert byte_events == events
    return events


# --------------------------------------------------------------------------
# Handshake


def test_handshake_vector() -> None:
    hs = Handshake(IH, PEER_ID, RESERVED_ALL)
    assert hs.encode() == PEER_HANDSHAKE
    assert len(PEER_HANDSHAKE) == 68
    parsed = decode_handshake(PEER_HANDSHAKE)
    assert parsed == hs
    assert parsed.extension and parsed.fast and parsed.dht and not parsed.v2
    assert reserved_names(parsed.reserved) == ["extension", "fast", "dht"]
    assert make_reserved(v2=True) == b"\x00" * 7 + b"\x10"


def test_handshake_streamed() -> None:
    events = feed_whole_and_bytewise(PeerConnection, PEER_HANDSHAKE)
    assert events == [Handshake(IH, PEER_ID, RESERVED_ALL)]


@pytest.mark.parametrize(
    "data",
    [
        b"\x12BitTorrent protocol",  # wrong pstrlen
        b"\x13BitTorrent protocoX",  # wrong pstr
        b"\x13GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_bad_handshake_fails_early(data: bytes) -> None:
    # The error comes as soon as the offending byte arrives, not after 68 bytes.
    conn = PeerConnection()
    with pytest.raises(PeerWireError):
        for i in range(len(data)):
            conn.receive_data(data[i : i + 1])
            drain(conn)
    with pytest.raises(PeerWireError):
        conn.next_event()  # the error sticks


def test_decode_handshake_wrong_length() -> None:
    with pytest.raises(PeerWireError):
        decode_handshake(PEER_HANDSHAKE[:67])


# --------------------------------------------------------------------------
# Core message vectors (hand-assembled from BEP 3 / BEP 6 / BEP 5 / BEP 52)

ROOT = bytes(range(32))
CORE_VECTORS: list[tuple[bytes, Event]] = [
    (bytes.fromhex("00000000"), KeepAlive()),
    (bytes.fromhex("0000000100"), Choke()),
    (bytes.fromhex("0000000101"), Unchoke()),
    (bytes.fromhex("0000000102"), Interested()),
    (bytes.fromhex("0000000103"), NotInterested()),
    (bytes.fromhex("000000050400000005"), Have(5)),
    (bytes.fromhex("0000000205b0"), Bitfield(b"\xb0")),
    (bytes.fromhex("0000000d06000000010000400000004000"), Request(1, 16384, 16384)),
    (bytes.fromhex("0000000d08000000010000400000004000"), Cancel(1, 16384, 16384)),
    (bytes.fromhex("00000003091ae1"), Port(6881)),
    (bytes.fromhex("000000050d00000003"), Suggest(3)),
    (bytes.fromhex("000000010e"), HaveAll()),
    (bytes.fromhex("000000010f"), HaveNone()),
    (bytes.fromhex("000000051100000002"), AllowedFast(2)),
    (
        bytes.fromhex("0000003115") + ROOT + bytes.fromhex("00000002000000000000020000000003"),
        HashRequest(ROOT, 2, 0, 512, 3),
    ),
    (
        bytes.fromhex("0000003117") + ROOT + bytes.fromhex("00000000000000040000000200000000"),
        HashReject(ROOT, 0, 4, 2, 0),
    ),
    (
        bytes.fromhex("0000007116")
        + ROOT
        + bytes.fromhex("00000000000000000000000200000000")
        + b"\x11" * 32
        + b"\x22" * 32,
        Hashes(ROOT, 0, 0, 2, 0, (b"\x11" * 32, b"\x22" * 32)),
    ),
    (bytes.fromhex("0000000263ff"), UnknownMessage(0x63, b"\xff")),
]


@pytest.mark.parametrize(("data", "event"), CORE_VECTORS)
def test_core_vectors(data: bytes, event: Event) -> None:
    assert feed_whole_and_bytewise(fresh, data) == [event]
    # And the encoder produces the same bytes.
    assert fresh().send(event) == data  # type: ignore[arg-type]


def test_vectors_concatenated() -> None:
    # All core vectors in one stream (only one possession message allowed).
    stream = b"".join(d for d, e in CORE_VECTORS if not isinstance(e, HaveAll | HaveNone))
    expected = [e for _, e in CORE_VECTORS if not isinstance(e, HaveAll | HaveNone)]
    assert feed_whole_and_bytewise(fresh, stream) == expected


def test_piece_vector_after_request() -> None:
    def make() -> PeerConnection:
        conn = fresh()
        assert conn.send(Request(1, 0, 4)) == bytes.fromhex("0000000d06000000010000000000000004")
        return conn

    data = bytes.fromhex("0000000d070000000100000000") + b"abcd"
    assert feed_whole_and_bytewise(make, data) == [Piece(1, 0, b"abcd")]


def test_reject_clears_request_and_cancelled_block_may_still_arrive() -> None:
    conn = fresh()
    conn.send(Request(0, 0, 4))
    conn.send(Request(0, 4, 4))
    conn.send(Cancel(0, 4, 4))
    conn.receive_data(bytes.fromhex("0000000d10000000000000000000000004"))
    conn.receive_data(bytes.fromhex("0000000d070000000000000004") + b"wxyz")
    assert drain(conn) == [Reject(0, 0, 4), Piece(0, 4, b"wxyz")]
    assert conn.outstanding_requests == 0


def test_choke_without_fast_drops_requests_but_tolerates_blocks_in_flight() -> None:
    conn = fresh(reserved=make_reserved(extension=True))
    conn.send(Request(0, 0, 4))
    conn.receive_data(bytes.fromhex("0000000100"))
    conn.receive_data(bytes.fromhex("0000000d070000000000000000") + b"abcd")
    assert drain(conn) == [Choke(), Piece(0, 0, b"abcd")]
    assert conn.outstanding_requests == 0


def test_end_of_stream() -> None:
    conn = fresh()
    conn.receive_data(bytes.fromhex("0000000101"))
    conn.receive_data(b"")
    assert drain(conn) == [Unchoke(), ConnectionClosed()]
    assert conn.next_event() == ConnectionClosed()


def test_bitfield_against_piece_count() -> None:
    # 4 pieces: one byte, the low nibble is spare.
    conn = fresh(num_pieces=4)
    conn.receive_data(bytes.fromhex("0000000205b0"))
    (bf,) = drain(conn)
    assert isinstance(bf, Bitfield)
    assert bf.indices() == [0, 2, 3] and bf.count() == 3 and bf.has(2) and not bf.has(1)
    assert Bitfield.from_indices({0, 2, 3}, 4) == bf
    validate_bitfield(b"\xff\xc0", 10)
    with pytest.raises(PeerWireError):
        validate_bitfield(b"\xff\xe0", 10)
    with pytest.raises(PeerWireError):
        validate_bitfield(b"\xff", 10)


def test_large_bitfield_allowed_when_piece_count_known() -> None:
    n = 200_000  # 25,000-byte bitfield, over the default message limit
    conn = fresh(num_pieces=n)
    bits = b"\xff" * (n // 8)
    conn.receive_data((len(bits) + 1).to_bytes(4, "big") + b"\x05" + bits)
    (bf,) = drain(conn)
    assert isinstance(bf, Bitfield) and bf.count() == n


# --------------------------------------------------------------------------
# Extension protocol vectors (BEP 10, 9, 11)


def ext_frame(ext_id: int, payload: bytes) -> bytes:
    return (len(payload) + 2).to_bytes(4, "big") + b"\x14" + bytes([ext_id]) + payload


EXT_HS_PAYLOAD = (
    b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi500e"
    b"11:upload_onlyi1e1:v13:\xc2\xb5Torrent 1.26:yourip4:\x7f\x00\x00\x01e"
)
EXT_HS = ExtensionHandshake(
    m={"ut_metadata": 3, "ut_pex": 1},
    v="µTorrent 1.2",
    p=6881,
    yourip="127.0.0.1",
    reqq=500,
    metadata_size=31235,
    upload_only=True,
)


def test_extension_handshake_vector() -> None:
    events = feed_whole_and_bytewise(fresh, ext_frame(0, EXT_HS_PAYLOAD))
    assert events == [EXT_HS]
    conn = fresh()
    conn.receive_data(ext_frame(0, EXT_HS_PAYLOAD))
    drain(conn)
    assert conn.peer_extensions == {"ut_metadata": 3, "ut_pex": 1}
    assert conn.peer_extension_handshake == EXT_HS
    # We must address its ut_metadata as id 3.
    assert conn.send(MetadataRequest(0)) == ext_frame(3, b"d8:msg_typei0e5:piecei0ee")
    assert fresh().send(EXT_HS) == ext_frame(0, EXT_HS_PAYLOAD)


def test_extension_handshake_ipv6_and_wrong_types_read_as_absent() -> None:
    payload = bencode.encode(
        {
            b"m": {b"ut_metadata": b"x", b"ut_pex": 300, b"lt_donthave": 7},
            b"v": 5,
            b"p": 70000,
            b"yourip": b"\x00" * 15 + b"\x01",
            b"metadata_size": b"big",
        }
    )
    (hs,) = feed_whole_and_bytewise(fresh, ext_frame(0, payload))
    assert hs == ExtensionHandshake(m={"lt_donthave": 7}, yourip="::1")


def test_extension_handshake_with_unsorted_keys_is_accepted() -> None:
    (hs,) = feed_whole_and_bytewise(fresh, ext_frame(0, b"d1:v3:abc1:md6:ut_pexi5eee"))
    assert hs == ExtensionHandshake(m={"ut_pex": 5}, v="abc")


def test_extension_handshake_update_disables_with_zero() -> None:
    conn = fresh()
    conn.receive_data(ext_frame(0, b"d1:md11:ut_metadatai3e6:ut_pexi1eee"))
    conn.receive_data(ext_frame(0, b"d1:md6:ut_pexi0eee"))
    drain(conn)
    assert conn.peer_extensions == {"ut_metadata": 3}
    with pytest.raises(PeerWireError):
        conn.send(Pex())


def test_ut_metadata_vectors() -> None:
    # BEP 9's examples; we advertised ut_metadata as id 1.
    data = b"x" * 16384
    stream = (
        ext_frame(1, b"d8:msg_typei0e5:piecei0ee")
        + ext_frame(1, b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee" + data)
        + ext_frame(1, b"d8:msg_typei1e5:piecei2e10:total_sizei34256ee" + b"y" * 1488)
        + ext_frame(1, b"d8:msg_typei2e5:piecei0ee")
        + ext_frame(1, b"d8:msg_typei9e5:piecei0ee")  # unknown msg_type: ignorable
    )
    assert feed_whole_and_bytewise(fresh, stream) == [
        MetadataRequest(0),
        MetadataData(0, 34256, data),
        MetadataData(2, 34256, b"y" * 1488),
        MetadataReject(0),
        UnknownExtended(1, b"d8:msg_typei9e5:piecei0ee"),
    ]


def test_pex_vector() -> None:
    added = b"\x7f\x00\x00\x02\x1a\xe1" + b"\x7f\x00\x00\x03\x1a\xe2"
    added6 = b"\x00" * 15 + b"\x01" + b"\x00\x50"
    dropped = b"\x7f\x00\x00\x04\x00\x01"
    payload = (
        b"d5:added12:" + added + b"7:added.f2:\x00\x10"
        b"6:added618:" + added6 + b"8:added6.f1:\x02"
        b"7:dropped6:" + dropped + b"e"
    )
    (pex,) = feed_whole_and_bytewise(fresh, ext_frame(2, payload))
    assert pex == Pex(
        added=(
            PexPeer("127.0.0.2", 6881, 0),
            PexPeer("127.0.0.3", 6882, 0x10),
            PexPeer("::1", 80, 2),
        ),
        dropped=(("127.0.0.4", 1),),
    )


def test_unknown_extension_id() -> None:
    assert feed_whole_and_bytewise(fresh, ext_frame(77, b"hello")) == [
        UnknownExtended(77, b"hello")
    ]


# --------------------------------------------------------------------------
# Malformed input: each vector and the error it must give


def fresh4() -> PeerConnection:
    return fresh(num_pieces=4)


def fresh_no_fast() -> PeerConnection:
    return fresh(reserved=make_reserved(extension=True))


def fresh_no_ext() -> PeerConnection:
    return fresh(reserved=make_reserved(fast=True))


def fresh_requested() -> PeerConnection:
    conn = fresh()
    conn.send(Request(0, 0, 4))
    return conn


MALFORMED: list[tuple[str, object, bytes, str]] = [
    ("oversized length 2^31", fresh, bytes.fromhex("80000000"), "exceeds limit"),
    (
        "oversized just over limit",
        fresh,
        (DEFAULT_MAX_MESSAGE_LENGTH + 1).to_bytes(4, "big"),
        "exceeds limit",
    ),
    ("have too short", fresh, bytes.fromhex("0000000404000000"), "expected 4"),
    ("choke with payload", fresh, bytes.fromhex("000000020000"), "expected 0"),
    ("port too long", fresh, bytes.fromhex("0000000409000000"), "expected 2"),
    ("request too short", fresh, bytes.fromhex("000000050600000000"), "expected 12"),
    (
        "request length 0",
        fresh,
        bytes.fromhex("0000000d06000000000000000000000000"),
        "block length",
    ),
    (
        "request too large",
        fresh,
        bytes.fromhex("0000000d06000000000000000000008000"),
        "block length",
    ),
    ("bitfield spare bits", fresh4, bytes.fromhex("0000000205b1"), "spare bits"),
    ("bitfield too long", fresh4, bytes.fromhex("0000000305b000"), "bitfield of 2 bytes"),
    ("have beyond pieces", fresh4, bytes.fromhex("000000050400000004"), "beyond 4 pieces"),
    ("second bitfield", fresh, bytes.fromhex("0000000205b00000000205b0"), "second possession"),
    (
        "have_all after bitfield",
        fresh,
        bytes.fromhex("0000000205b0000000010e"),
        "second possession",
    ),
    ("have_all without fast", fresh_no_fast, bytes.fromhex("000000010e"), "without BEP 6"),
    (
        "reject without fast",
        fresh_no_fast,
        bytes.fromhex("0000000d10" + "00" * 12),
        "without BEP 6",
    ),
    (
        "reject never requested",
        fresh,
        bytes.fromhex("0000000d10000000000000000000000004"),
        "never requested",
    ),
    (
        "unrequested piece",
        fresh,
        bytes.fromhex("0000000d070000000000000000") + b"abcd",
        "never requested",
    ),
    (
        "piece larger than requested",
        fresh_requested,
        bytes.fromhex("0000000e070000000000000000") + b"abcde",
        "5 bytes, 4 requested",
    ),
    ("piece header short", fresh, bytes.fromhex("000000050700000000"), "shorter than its header"),
    (
        "hashes not multiple of 32",
        fresh,
        bytes.fromhex("0000003216") + ROOT + b"\x00" * 17,
        "32-byte hashes",
    ),
    ("hash request short", fresh, bytes.fromhex("0000000515") + b"\x00" * 4, "expected 48"),
    ("extended without BEP 10", fresh_no_ext, ext_frame(0, b"de"), "without BEP 10"),
    ("extended empty", fresh, bytes.fromhex("0000000114"), "without an extension id"),
    ("ext handshake bad bencode", fresh, ext_frame(0, b"d1:mi1e"), "extension handshake"),
    ("ext handshake duplicate key", fresh, ext_frame(0, b"d1:mde1:mdee"), "duplicate"),
    ("ext handshake not a dict", fresh, ext_frame(0, b"li1ee"), "not a dictionary"),
    ("ext handshake trailing", fresh, ext_frame(0, b"dexx"), "trailing"),
    ("ext handshake deep", fresh, ext_frame(0, b"d1:m" + b"l" * 20 + b"e" * 21), "nesting"),
    ("ut_metadata no msg_type", fresh, ext_frame(1, b"d5:piecei0ee"), "msg_type"),
    ("ut_metadata negative piece", fresh, ext_frame(1, b"d8:msg_typei0e5:piecei-1ee"), "piece -1"),
    (
        "ut_metadata huge piece",
        fresh,
        ext_frame(1, b"d8:msg_typei0e5:piecei999999ee"),
        "piece 999999",
    ),
    (
        "ut_metadata short data",
        fresh,
        ext_frame(1, b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee" + b"x" * 100),
        "has 100 bytes",
    ),
    (
        "ut_metadata total_size huge",
        fresh,
        ext_frame(1, b"d8:msg_typei1e5:piecei0e10:total_sizei999999999ee"),
        "total_size",
    ),
    (
        "ut_metadata piece beyond total",
        fresh,
        ext_frame(1, b"d8:msg_typei1e5:piecei3e10:total_sizei34256ee"),
        "beyond 3 pieces",
    ),
    (
        "ut_metadata request trailing",
        fresh,
        ext_frame(1, b"d8:msg_typei0e5:piecei0eexx"),
        "trailing",
    ),
    (
        "pex odd length",
        fresh,
        ext_frame(2, b"d5:added7:\x7f\x00\x00\x01\x1a\xe1\x00e"),
        "multiple of 6",
    ),
    ("pex added not string", fresh, ext_frame(2, b"d5:addedi1ee"), "not a string"),
    ("pex dropped6 odd", fresh, ext_frame(2, b"d8:dropped63:abce"), "multiple of 18"),
    ("eof mid-message", fresh, bytes.fromhex("0000000501") + b"", "in the middle"),
]


@pytest.mark.parametrize(
    ("name", "make", "data", "message"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_vectors(name: str, make, data: bytes, message: str) -> None:
    for bytewise in (False, True):
        conn = make()
        with pytest.raises(PeerWireError, match=message):
            chunks = [data[i : i + 1] for i in range(len(data))] if bytewise else [data]
            for chunk in [*chunks, b""]:
                conn.receive_data(chunk)
                drain(conn)
        with pytest.raises(PeerWireError, match=message):
            conn.next_event()


def test_oversized_length_fails_before_body_is_buffered() -> None:
    conn = fresh()
    conn.receive_data(bytes.fromhex("80000000"))
    with pytest.raises(PeerWireError, match="exceeds limit"):
        conn.next_event()


def test_buffer_limit() -> None:
    conn = fresh(max_message_length=100, max_buffer=200)
    conn.receive_data(b"\x00" * 200)  # 50 keep-alives fit
    with pytest.raises(PeerWireError, match="buffered"):
        conn.receive_data(b"\x00")
    assert conn.buffered == 200


def test_send_rules() -> None:
    conn = PeerConnection()
    with pytest.raises(PeerWireError, match="handshake must be sent first"):
        conn.send(Interested())
    conn.send(Handshake(IH, OUR_ID))
    with pytest.raises(PeerWireError, match="already sent"):
        conn.send(Handshake(IH, OUR_ID))
    with pytest.raises(PeerWireError, match="request length"):
        conn.send(Request(0, 0, 32768))
    with pytest.raises(PeerWireError, match="did not offer ut_metadata"):
        conn.send(MetadataRequest(0))
    small = PeerConnection(max_outstanding_requests=2)
    small.send(Handshake(IH, OUR_ID))
    small.send(Request(0, 0, 1))
    small.send(Request(0, 1, 1))
    with pytest.raises(PeerWireError, match="pending"):
        small.send(Request(0, 2, 1))
    with pytest.raises(PeerWireError):
        Handshake(b"short", OUR_ID)


# --------------------------------------------------------------------------
# Peer ids


@pytest.mark.parametrize(
    ("peer_id", "name"),
    [
        (b"-LT2110-" + b"x" * 12, "libtorrent 2.1.1"),
        (b"-LT20A0-" + b"x" * 12, "libtorrent 2.0.10"),
        (b"-LT1234-" + b"x" * 12, "libtorrent 1.2.3.4"),
        (b"-TR3000-" + b"x" * 12, "Transmission 3.00"),
        (b"-TR294Z-" + b"x" * 12, "Transmission 2.94+"),
        (b"-TR4060-" + b"x" * 12, "Transmission 4.0.6"),
        (b"-qB4500-" + b"x" * 12, "qBittorrent 4.5.0"),
        (b"-UT3550-" + b"x" * 12, "µTorrent 3.5.5"),
        (b"-ZZ1000-" + b"x" * 12, "unknown client ZZ 1.0.0"),
        (b"M7-10-2-" + b"x" * 12, "BitTorrent (Mainline) 7.10.2"),
        (b"A2-1-36-0-" + b"x" * 10, "aria2 1.36.0"),
        (b"S58B-----" + b"x" * 11, "Shadow 5.8.11"),
        (b"T03I-----" + b"x" * 11, "BitTornado 0.3.18"),
        (bytes(20), None),
        (b"\xff" * 20, None),
        (b"-LT2110-", None),
    ],
)
def test_client_from_peer_id(peer_id: bytes, name: str | None) -> None:
    assert client_from_peer_id(peer_id) == name


def test_make_peer_id() -> None:
    pid = make_peer_id(b"-AY0001-", random.Random(1))
    assert len(pid) == 20 and pid.startswith(b"-AY0001-")
    assert pid == make_peer_id(b"-AY0001-", random.Random(1))


# --------------------------------------------------------------------------
# Properties


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=12),
    prefix=st.sampled_from([b"", PEER_HANDSHAKE]),
    num_pieces=st.sampled_from([None, 1, 9, 4000]),
    small=st.booleans(),
)
def test_arbitrary_streams_raise_only_peerwire_error(
    data: bytes, cuts: list[int], prefix: bytes, num_pieces: int | None, small: bool
) -> None:
    limits = {"max_message_length": 64, "max_buffer": 200} if small else {}
    conn = PeerConnection(num_pieces=num_pieces, **limits)  # type: ignore[arg-type]
    conn.send(Handshake(IH, OUR_ID, RESERVED_ALL))
    stream = prefix + data
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            assert conn.buffered <= conn.max_buffer
            drain(conn)
            assert conn.buffered <= conn.max_message_length + 4 or conn.num_pieces
    except PeerWireError:
        pass
    assert conn.buffered <= conn.max_buffer


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=300), ext_id=st.sampled_from([0, 1, 2, 9]))
def test_arbitrary_extension_payloads_raise_only_peerwire_error(
    payload: bytes, ext_id: int
) -> None:
    conn = fresh()
    conn.receive_data(ext_frame(ext_id, payload))
    with contextlib.suppress(PeerWireError):
        drain(conn)


u32 = st.integers(min_value=0, max_value=2**32 - 1)
block_len = st.integers(min_value=1, max_value=16384)
h32 = st.binary(min_size=32, max_size=32)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(min_value=0, max_value=65535)

core_messages = st.one_of(
    st.just(KeepAlive()),
    st.just(Choke()),
    st.just(Unchoke()),
    st.just(Interested()),
    st.just(NotInterested()),
    st.just(HaveAll()),
    st.just(HaveNone()),
    st.builds(Have, u32),
    st.builds(Suggest, u32),
    st.builds(AllowedFast, u32),
    st.builds(Bitfield, st.binary(max_size=2000)),
    st.builds(Request, u32, u32, block_len),
    st.builds(Cancel, u32, u32, block_len),
    st.builds(Port, ports),
    st.builds(HashRequest, h32, u32, u32, u32, u32),
    st.builds(HashReject, h32, u32, u32, u32, u32),
    st.builds(Hashes, h32, u32, u32, u32, u32, st.lists(h32, max_size=20).map(tuple)),
    st.builds(UnknownMessage, st.integers(min_value=24, max_value=255), st.binary(max_size=100)),
)
ext_messages = st.one_of(
    st.builds(
        ExtensionHandshake,
        m=st.dictionaries(st.text(min_size=1, max_size=12), st.integers(0, 255), max_size=5),
        v=st.none() | st.text(max_size=50),
        p=st.none() | st.integers(1, 65535),
        yourip=st.none() | ipv4 | ipv6,
        reqq=st.none() | st.integers(0, 10_000),
        metadata_size=st.none() | st.integers(0, 10**9),
        upload_only=st.none() | st.booleans(),
    ),
    st.builds(MetadataRequest, st.integers(0, 500)),
    st.builds(MetadataReject, st.integers(0, 500)),
    st.integers(1, 3 * 16384).flatmap(
        lambda total: st.integers(0, (total - 1) // 16384).map(
            lambda piece: MetadataData(
                piece, total, bytes([piece % 256]) * min(16384, total - piece * 16384)
            )
        )
    ),
    st.builds(
        Pex,
        st.lists(st.builds(PexPeer, ipv4 | ipv6, ports, st.integers(0, 255)), max_size=30).map(
            lambda peers: tuple(sorted(peers, key=lambda p: ":" in p.ip))
        ),
        st.lists(st.tuples(ipv4, ports), max_size=30).map(tuple),
    ),
)


def pair() -> tuple[PeerConnection, PeerConnection]:
    a = PeerConnection()
    b = PeerConnection()
    b.receive_data(a.send(Handshake(IH, OUR_ID, RESERVED_ALL)))
    a.receive_data(b.send(Handshake(IH, PEER_ID, RESERVED_ALL)))
    assert isinstance(a.next_event(), Handshake) and isinstance(b.next_event(), Handshake)
    b.receive_data(a.send(ExtensionHandshake(m={"ut_metadata": 1, "ut_pex": 2})))
    a.receive_data(b.send(ExtensionHandshake(m={"ut_metadata": 1, "ut_pex": 2})))
    assert isinstance(a.next_event(), ExtensionHandshake)
    assert isinstance(b.next_event(), ExtensionHandshake)
    return a, b


@settings(max_examples=300, deadline=None)
@given(message=core_messages | ext_messages, bytewise=st.booleans())
def test_round_trip(message: Message, bytewise: bool) -> None:
    a, b = pair()
    wire = a.send(message)
    if bytewise:
        events: list[Event] = []
        for i in range(len(wire)):
            b.receive_data(wire[i : i + 1])
            events += drain(b)
    else:
        b.receive_data(wire)
        events = drain(b)
    assert events == [message]


@settings(max_examples=100, deadline=None)
@given(index=u32, begin=u32, block=st.binary(min_size=1, max_size=16384))
def test_piece_round_trip(index: int, begin: int, block: bytes) -> None:
    a, b = pair()
    a.receive_data(b.send(Request(index, begin, len(block))))
    assert a.next_event() == Request(index, begin, len(block))
    b.receive_data(a.send(Piece(index, begin, block)))
    assert drain(b) == [Piece(index, begin, block)]
