"""KRPC codec: byte vectors of BEP 5, BEP 32's IPv6, BEP 51, BEP 42's "ip"; hostile input."""

from __future__ import annotations

import contextlib
import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.bencode import BValue, encode
from atalaya.networks.bittorrent.krpc import (
    MAX_NODES,
    MAX_VALUES,
    MAX_WANT,
    WANT_N4,
    WANT_N6,
    WANTS,
    AnnouncePeer,
    ErrorReply,
    FindNode,
    GetPeers,
    KrpcError,
    Message,
    NodeInfo,
    Ping,
    Response,
    SampleInfohashes,
    UnknownQuery,
    decode_message,
    decode_nodes,
    decode_nodes6,
    encode_message,
    encode_nodes,
    encode_nodes6,
)

A_ID = b"abcdefghij0123456789"
M_ID = b"mnopqrstuvwxyz123456"

# (BEP 5 bencoded form, the message it is)
BEP5_VECTORS: list[tuple[bytes, Message]] = [
    (
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        Ping(transaction_id=b"aa", sender_id=A_ID),
    ),
    (
        b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        Response(transaction_id=b"aa", sender_id=M_ID),
    ),
    (
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        ErrorReply(transaction_id=b"aa", code=201, message=b"A Generic Error Ocurred"),
    ),
    (
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e"
        b"1:q9:find_node1:t2:aa1:y1:qe",
        FindNode(transaction_id=b"aa", sender_id=A_ID, target=M_ID),
    ),
    (
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e"
        b"1:q9:get_peers1:t2:aa1:y1:qe",
        GetPeers(transaction_id=b"aa", sender_id=A_ID, infohash=M_ID),
    ),
    (
        # values "axje.u" and "idhtnm" read as compact peers, checked by hand:
        # a=97 x=120 j=106 e=101, port "." "u" = 46*256+117.
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee"
        b"1:t2:aa1:y1:re",
        Response(
            transaction_id=b"aa",
            sender_id=A_ID,
            token=b"aoeusnth",
            values=(("97.120.106.101", 11893), ("105.100.104.116", 28269)),
        ),
    ),
    (
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz123456"
        b"4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        AnnouncePeer(
            transaction_id=b"aa",
            sender_id=A_ID,
            infohash=M_ID,
            port=6881,
            token=b"aoeusnth",
            implied_port=True,
        ),
    ),
]


@pytest.mark.parametrize(("raw", "message"), BEP5_VECTORS)
def test_bep5_vectors_decode_and_encode(raw: bytes, message: Message) -> None:
    assert decode_message(raw) == message
    assert encode_message(message) == raw


def test_bep5_illustrative_nodes_are_refused() -> None:
    # BEP 5 shows "nodes" as the 9-byte placeholder "def456..."; real compact
    # node info is a multiple of 26 bytes.
    raw = b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re"
    with pytest.raises(KrpcError, match="multiple of 26"):
        decode_message(raw)


def test_bep51_sample_infohashes_query_and_response() -> None:
    query = SampleInfohashes(transaction_id=b"xy", sender_id=A_ID, target=M_ID)
    raw = encode_message(query)
    assert raw == (
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e"
        b"1:q17:sample_infohashes1:t2:xy1:y1:qe"
    )
    assert decode_message(raw) == query
    node = NodeInfo(b"N" * 20, "127.0.0.7", 0x1AE1)
    raw_response = (
        b"d1:rd2:id20:mnopqrstuvwxyz1234568:intervali21600e5:nodes26:"
        + b"N" * 20
        + bytes([127, 0, 0, 7, 0x1A, 0xE1])
        + b"3:numi2e7:samples40:"
        + b"A" * 20
        + b"B" * 20
        + b"e1:t2:xy1:y1:re"
    )
    response = decode_message(raw_response)
    assert response == Response(
        transaction_id=b"xy",
        sender_id=M_ID,
        nodes=(node,),
        samples=(b"A" * 20, b"B" * 20),
        num=2,
        interval=21600,
    )
    assert encode_message(response) == raw_response


def test_bep42_ip_field_and_client_version() -> None:
    raw = b"d2:ip6:" + bytes([127, 0, 0, 9, 0x1A, 0xE1]) + b"1:rd2:id20:" + M_ID + b"e"
    raw += b"1:t2:aa1:v4:LT\x01\x021:y1:re"
    message = decode_message(raw)
    assert isinstance(message, Response)
    assert message.requester == ("127.0.0.9", 6881)
    assert message.version == b"LT\x01\x02"
    assert encode_message(message) == raw


def test_read_only_flag() -> None:
    raw = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe"
    assert decode_message(raw) == Ping(transaction_id=b"aa", sender_id=A_ID, read_only=True)
    assert encode_message(decode_message(raw)) == raw


def test_unknown_keys_are_ignored() -> None:
    raw = encode(
        {
            b"t": b"aa",
            b"y": b"r",
            b"zz": [1, 2, 3],
            b"r": {b"id": M_ID, b"nodes9": b"x" * 38, b"p": 1, b"want": [b"n4"]},
        }
    )
    assert decode_message(raw) == Response(transaction_id=b"aa", sender_id=M_ID)


def test_unknown_method_keeps_target() -> None:
    raw = encode({b"t": b"zz", b"y": b"q", b"q": b"vote", b"a": {b"id": A_ID, b"target": M_ID}})
    assert decode_message(raw) == UnknownQuery(
        transaction_id=b"zz", sender_id=A_ID, method=b"vote", target=M_ID
    )


def test_ten_thousand_values_are_refused() -> None:
    values: list[BValue] = [
        bytes([127, 0, 0, 1]) + (i % 65535 + 1).to_bytes(2, "big") for i in range(10_000)
    ]
    raw = encode({b"t": b"aa", b"y": b"r", b"r": {b"id": M_ID, b"values": values}})
    with pytest.raises(KrpcError):
        decode_message(raw)


def test_values_just_over_the_limit_are_refused() -> None:
    values: list[BValue] = [bytes([127, 0, 0, 1, 0, 1])] * (MAX_VALUES + 1)
    raw = encode({b"t": b"aa", b"y": b"r", b"r": {b"id": M_ID, b"values": values}})
    with pytest.raises(KrpcError):
        decode_message(raw)


def test_ipv6_peer_in_values() -> None:
    v6 = bytes(15) + b"\x01" + b"\x1a\xe1"
    raw = encode({b"t": b"aa", b"y": b"r", b"r": {b"id": M_ID, b"values": [v6]}})
    message = decode_message(raw)
    assert isinstance(message, Response)
    assert message.values == (("::1", 6881),)


def test_nodes_round_trip() -> None:
    nodes = (NodeInfo(b"\x01" * 20, "127.0.0.2", 1), NodeInfo(b"\xff" * 20, "10.1.2.3", 65535))
    assert decode_nodes(encode_nodes(nodes)) == nodes
    with pytest.raises(KrpcError):
        encode_nodes([NodeInfo(b"\x01" * 20, "::1", 1)])


# --- BEP 32: IPv6 -------------------------------------------------------------

# fd12:3456:789a::1 (a ULA address), port 6881, packed by hand.
V6_PACKED = bytes.fromhex("fd123456789a00000000000000000001")
V6 = "fd12:3456:789a::1"
PORT_6881 = b"\x1a\xe1"


def test_nodes6_vector() -> None:
    raw = (
        b"d1:rd2:id20:" + M_ID + b"6:nodes638:" + b"N" * 20 + V6_PACKED + PORT_6881
        + b"e1:t2:aa1:y1:re"
    )  # fmt: skip
    message = Response(
        transaction_id=b"aa", sender_id=M_ID, nodes6=(NodeInfo(b"N" * 20, V6, 6881),)
    )
    assert decode_message(raw) == message
    assert encode_message(message) == raw


def test_both_families_values_and_ip_in_one_response() -> None:
    v4_peer = bytes([127, 0, 0, 9]) + b"\x00\x50"
    raw = (
        b"d2:ip18:" + V6_PACKED + PORT_6881
        + b"1:rd2:id20:" + M_ID
        + b"5:nodes26:" + b"A" * 20 + bytes([127, 0, 0, 7]) + PORT_6881
        + b"6:nodes638:" + b"B" * 20 + V6_PACKED + b"\x00\x01"
        + b"5:token2:tk6:valuesl18:" + V6_PACKED + b"\xff\xff6:" + v4_peer + b"e"
        + b"e1:t2:aa1:y1:re"
    )  # fmt: skip
    message = Response(
        transaction_id=b"aa",
        sender_id=M_ID,
        nodes=(NodeInfo(b"A" * 20, "127.0.0.7", 6881),),
        nodes6=(NodeInfo(b"B" * 20, V6, 1),),
        token=b"tk",
        values=((V6, 65535), ("127.0.0.9", 80)),
        requester=(V6, 6881),
    )
    assert decode_message(raw) == message
    assert encode_message(message) == raw


WANT_VECTORS: list[tuple[bytes, Message]] = [
    (
        b"d1:ad2:id20:" + A_ID + b"6:target20:" + M_ID + b"4:wantl2:n42:n6e"
        b"e1:q9:find_node1:t2:aa1:y1:qe",
        FindNode(transaction_id=b"aa", sender_id=A_ID, target=M_ID, want=(WANT_N4, WANT_N6)),
    ),
    (
        b"d1:ad2:id20:" + A_ID + b"9:info_hash20:" + M_ID + b"4:wantl2:n6e"
        b"e1:q9:get_peers1:t2:aa1:y1:qe",
        GetPeers(transaction_id=b"aa", sender_id=A_ID, infohash=M_ID, want=(WANT_N6,)),
    ),
    (
        b"d1:ad2:id20:" + A_ID + b"6:target20:" + M_ID + b"4:wantl2:n4e"
        b"e1:q17:sample_infohashes1:t2:aa1:y1:qe",
        SampleInfohashes(transaction_id=b"aa", sender_id=A_ID, target=M_ID, want=(WANT_N4,)),
    ),
]


@pytest.mark.parametrize(("raw", "message"), WANT_VECTORS)
def test_want_vectors(raw: bytes, message: Message) -> None:
    assert decode_message(raw) == message
    assert encode_message(message) == raw


LIBERAL_WANTS: list[tuple[str, BValue, tuple[bytes, ...]]] = [
    ("a string", b"n6", ()),
    ("an integer", 6, ()),
    ("a dictionary", {b"n6": 1}, ()),
    ("empty", [], ()),
    ("junk items skipped", [4, b"n5", b"n6", [b"n4"], b"N4", b"n4"], (WANT_N6, WANT_N4)),
    ("repeats once", [b"n6", b"n6", b"n4", b"n6"], (WANT_N6, WANT_N4)),
    ("past the bound", [*[b"x"] * MAX_WANT, b"n4"], ()),
    ("at the bound", [*[b"x"] * (MAX_WANT - 1), b"n4"], (WANT_N4,)),
]


@pytest.mark.parametrize(
    ("name", "want", "expected"), LIBERAL_WANTS, ids=[w[0] for w in LIBERAL_WANTS]
)
def test_want_is_read_liberally_but_bounded(
    name: str, want: BValue, expected: tuple[bytes, ...]
) -> None:
    raw = encode(
        {
            b"t": b"aa",
            b"y": b"q",
            b"q": b"find_node",
            b"a": {b"id": A_ID, b"target": M_ID, b"want": want},
        }
    )
    message = decode_message(raw)
    assert message == FindNode(transaction_id=b"aa", sender_id=A_ID, target=M_ID, want=expected)
    # What we read back encodes to its canonical form, which reads back the same.
    assert decode_message(encode_message(message)) == message


def test_nodes6_round_trip_and_family_checks() -> None:
    nodes = (NodeInfo(b"\x01" * 20, "::1", 1), NodeInfo(b"\xff" * 20, V6, 65535))
    packed = encode_nodes6(nodes)
    assert len(packed) == 2 * 38
    assert packed[20:38] == bytes(15) + b"\x01" + b"\x00\x01"
    assert decode_nodes6(packed) == nodes
    with pytest.raises(KrpcError, match="IPv6"):
        encode_nodes6([NodeInfo(b"\x01" * 20, "127.0.0.1", 1)])
    with pytest.raises(KrpcError, match="IPv4"):
        encode_nodes([NodeInfo(b"\x01" * 20, V6, 1)])
    with pytest.raises(KrpcError, match="multiple of 38"):
        decode_nodes6(packed[:-1])
    with pytest.raises(KrpcError, match="more than"):
        decode_nodes6(packed[:38] * (MAX_NODES + 1))
    with pytest.raises(KrpcError, match="more than"):
        encode_nodes6([nodes[0]] * (MAX_NODES + 1))


def test_encoder_refuses_wants_that_do_not_read_back() -> None:
    for want in ((b"n5",), (WANT_N4, WANT_N4), (b"",)):
        with pytest.raises(KrpcError, match="want"):
            encode_message(FindNode(transaction_id=b"aa", sender_id=A_ID, target=M_ID, want=want))
    with pytest.raises(KrpcError):
        encode_message(
            Response(transaction_id=b"aa", sender_id=A_ID, nodes6=(NodeInfo(A_ID, "10.0.0.1", 1),))
        )


def _q(args: dict[bytes, object], method: bytes = b"get_peers", **top: object) -> bytes:
    msg: dict[bytes, object] = {b"t": b"aa", b"y": b"q", b"q": method, b"a": args}
    msg.update({k.encode(): v for k, v in top.items()})
    return encode(msg)  # type: ignore[arg-type]


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "bad bencode"),
    ("not bencode", b"hello", "bad bencode"),
    ("list on top", b"li1ee", "not a dictionary"),
    ("trailing data", b"d1:t2:aa1:y1:qeX", "bad bencode"),
    ("unsorted keys", b"d1:y1:q1:t2:aae", "bad bencode"),
    ("no t", b"d1:y1:qe", "transaction id missing"),
    ("integer t", b"d1:ti1e1:y1:qe", "transaction id is not a string"),
    ("long t", b"d1:t40:" + b"x" * 40 + b"1:y1:qe", "transaction id longer"),
    ("bad y", b"d1:t2:aa1:y1:xe", "is not q, r or e"),
    ("no y", b"d1:t2:aae", "is not q, r or e"),
    ("query without a", b"d1:q4:ping1:t2:aa1:y1:qe", "arguments"),
    ("short id", _q({b"id": b"short", b"info_hash": M_ID}), "sender id is 5 bytes"),
    ("no info_hash", _q({b"id": A_ID}), "info_hash missing"),
    (
        "port too large",
        _q({b"id": A_ID, b"info_hash": M_ID, b"port": 70000, b"token": b"t"}, b"announce_peer"),
        "port 70000",
    ),
    (
        "no port",
        _q({b"id": A_ID, b"info_hash": M_ID, b"token": b"t"}, b"announce_peer"),
        "without port",
    ),
    (
        "no token",
        _q({b"id": A_ID, b"info_hash": M_ID, b"port": 1}, b"announce_peer"),
        "token missing",
    ),
    ("bad ro", _q({b"id": A_ID, b"info_hash": M_ID}, ro=5), "read-only"),
    ("r not dict", b"d1:rle1:t2:aa1:y1:re", "'r' missing"),
    (
        "values not list",
        encode({b"t": b"a", b"y": b"r", b"r": {b"id": M_ID, b"values": b"x"}}),
        "values is not a list",
    ),
    (
        "value of 5 bytes",
        encode({b"t": b"a", b"y": b"r", b"r": {b"id": M_ID, b"values": [b"12345"]}}),
        "5 bytes",
    ),
    (
        "samples of 21 bytes",
        encode({b"t": b"a", b"y": b"r", b"r": {b"id": M_ID, b"samples": b"x" * 21}}),
        "multiple of 20",
    ),
    (
        "nodes6 of 37 bytes",
        encode({b"t": b"a", b"y": b"r", b"r": {b"id": M_ID, b"nodes6": b"x" * 37}}),
        "multiple of 38",
    ),
    (
        "nodes6 not a string",
        encode({b"t": b"a", b"y": b"r", b"r": {b"id": M_ID, b"nodes6": [b"x" * 38]}}),
        "nodes6 is not a string",
    ),
    (
        "too many nodes6",
        encode({b"t": b"a", b"y": b"r", b"r": {b"id": M_ID, b"nodes6": b"x" * 38 * 201}}),
        "nodes6 longer than",
    ),
    (
        "ip field of 17 bytes",
        encode({b"t": b"a", b"y": b"r", b"ip": b"x" * 17, b"r": {b"id": M_ID}}),
        "17 bytes",
    ),
    ("negative num", encode({b"t": b"a", b"y": b"r", b"r": {b"id": M_ID, b"num": -1}}), "num -1"),
    (
        "bad ip field",
        encode({b"t": b"a", b"y": b"r", b"ip": b"1234", b"r": {b"id": M_ID}}),
        "4 bytes",
    ),
    ("error not list", b"d1:ei201e1:t2:aa1:y1:ee", "is not a [code, message]"),
    ("error code string", b"d1:el1:x1:ye1:t2:aa1:y1:ee", "error code"),
    ("deep nesting", b"d1:a" + b"l" * 10 + b"e" * 10 + b"e", "bad bencode"),
    ("oversized", b"d1:t2:aa1:v9000:" + b"x" * 9000 + b"e", "larger than"),
]


@pytest.mark.parametrize(("name", "raw", "reason"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_vectors(name: str, raw: bytes, reason: str) -> None:
    with pytest.raises(KrpcError, match=re.escape(reason)):
        decode_message(raw)


def test_bad_query_error_carries_transaction_id() -> None:
    with pytest.raises(KrpcError) as info:
        decode_message(_q({b"id": A_ID}))
    assert info.value.transaction_id == b"aa"
    assert info.value.code == 203


def test_encoder_refuses_what_cannot_be_read_back() -> None:
    with pytest.raises(KrpcError):
        encode_message(Ping(transaction_id=b"aa", sender_id=b"short"))
    with pytest.raises(KrpcError):
        encode_message(Response(transaction_id=b"aa", sender_id=A_ID, values=(("x", 1),)))
    with pytest.raises(KrpcError):
        encode_message(UnknownQuery(transaction_id=b"aa", sender_id=A_ID, method=b"ping"))


# --- property tests --------------------------------------------------------

ids = st.binary(min_size=20, max_size=20)
tids = st.binary(max_size=8)
versions = st.none() | st.binary(min_size=4, max_size=4)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.binary(min_size=16, max_size=16).map(lambda b: str(ipaddress.IPv6Address(b)))
ports = st.integers(0, 65535)
addrs = st.tuples(ipv4, ports)
addrs_any = st.tuples(ipv4 | ipv6, ports)
nodes = st.builds(NodeInfo, ids, ipv4, ports)
nodes6 = st.builds(NodeInfo, ids, ipv6, ports)
wants = st.lists(st.sampled_from(WANTS), unique=True, max_size=2).map(tuple)

messages = st.one_of(
    st.builds(Ping, transaction_id=tids, sender_id=ids, version=versions, read_only=st.booleans()),
    st.builds(
        FindNode, transaction_id=tids, sender_id=ids, target=ids, want=wants, version=versions
    ),
    st.builds(
        GetPeers, transaction_id=tids, sender_id=ids, infohash=ids, want=wants, version=versions
    ),
    st.builds(
        AnnouncePeer,
        transaction_id=tids,
        sender_id=ids,
        infohash=ids,
        port=ports,
        token=st.binary(max_size=20),
        implied_port=st.booleans(),
        version=versions,
    ),
    st.builds(SampleInfohashes, transaction_id=tids, sender_id=ids, target=ids, want=wants),
    st.builds(
        UnknownQuery,
        transaction_id=tids,
        sender_id=ids,
        method=st.sampled_from([b"vote", b"get", b"put"]),
        target=st.none() | ids,
        infohash=st.none() | ids,
    ),
    st.builds(
        Response,
        transaction_id=tids,
        sender_id=ids,
        nodes=st.lists(nodes, max_size=16).map(tuple),
        nodes6=st.lists(nodes6, max_size=16).map(tuple),
        values=st.lists(addrs_any, max_size=64).map(tuple),
        token=st.none() | st.binary(max_size=20),
        samples=st.none() | st.lists(ids, max_size=20).map(tuple),
        num=st.none() | st.integers(0, 1 << 32),
        interval=st.none() | st.integers(0, 21600),
        requester=st.none() | addrs_any,
        version=versions,
    ),
    st.builds(
        ErrorReply,
        transaction_id=tids,
        code=st.integers(201, 204),
        message=st.binary(max_size=64),
        requester=st.none() | addrs_any,
    ),
)


@given(messages)
def test_round_trip(message: Message) -> None:
    assert decode_message(encode_message(message)) == message


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_krpc_error(data: bytes) -> None:
    with contextlib.suppress(KrpcError):
        decode_message(data)


@settings(max_examples=300)
@given(messages, st.integers(0, 400), st.binary(min_size=1, max_size=3))
def test_mutated_messages_raise_only_krpc_error(message: Message, pos: int, junk: bytes) -> None:
    raw = encode_message(message)
    pos %= len(raw) + 1
    for mutated in (raw[:pos], raw[:pos] + junk + raw[pos + len(junk) :], raw[:pos] + junk):
        with contextlib.suppress(KrpcError):
            decode_message(mutated)


@given(st.lists(nodes6, max_size=MAX_NODES))
def test_nodes6_codec_round_trip(contacts: list[NodeInfo]) -> None:
    assert decode_nodes6(encode_nodes6(contacts)) == tuple(contacts)


want_items = st.recursive(
    st.integers(-10, 10) | st.binary(max_size=3) | st.sampled_from(WANTS),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.binary(), children),
    max_leaves=30,
)


@given(st.lists(want_items, max_size=40) | want_items)
def test_any_want_reads_as_known_families_from_the_first_items(want: BValue) -> None:
    args: dict[bytes, BValue] = {b"id": A_ID, b"info_hash": M_ID, b"want": want}
    raw = encode({b"t": b"aa", b"y": b"q", b"q": b"get_peers", b"a": args})
    try:
        message = decode_message(raw)
    except KrpcError:
        return  # too large or deep for the datagram limits: refused whole, typed
    assert isinstance(message, GetPeers)
    looked_at = want[:MAX_WANT] if isinstance(want, list) else []
    assert set(message.want) == {w for w in looked_at if isinstance(w, bytes) and w in WANTS}
    assert len(set(message.want)) == len(message.want)
    # And in the order they first came.
    assert list(message.want) == sorted(message.want, key=looked_at.index)


bvalues = st.recursive(
    st.integers(-(10**6), 10**6) | st.binary(max_size=30) | st.sampled_from(WANTS),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    b"a",
                    b"e",
                    b"r",
                    b"t",
                    b"y",
                    b"q",
                    b"id",
                    b"ip",
                    b"nodes",
                    b"nodes6",
                    b"want",
                    b"values",
                    b"token",
                    b"samples",
                    b"num",
                    b"interval",
                    b"port",
                    b"implied_port",
                    b"info_hash",
                    b"target",
                    b"v",
                    b"ro",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=500)
@given(bvalues)
def test_structured_junk_raises_only_krpc_error(value: object) -> None:
    with contextlib.suppress(KrpcError):
        decode_message(encode(value))  # type: ignore[arg-type]
