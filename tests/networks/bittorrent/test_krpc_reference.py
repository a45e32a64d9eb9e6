"""`krpc.decode_message` against the code it replaced (tests/support/krpc_reference.py).

For any datagram both give an equal message, or both raise `KrpcError` with
the same reason, transaction id and code: the compiled bencode path and the
faster field reading change the speed, not one answer.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.bencode import BValue, encode
from atalaya.networks.bittorrent.krpc import (
    KrpcError,
    Message,
    decode_message,
    decode_nodes,
    decode_peer,
    encode_message,
)
from tests.networks.bittorrent.test_krpc import BEP5_VECTORS, MALFORMED, bvalues, messages
from tests.support import krpc_reference


def outcome(decoder: object, data: bytes) -> tuple[str, object]:
    try:
        return "message", decoder(data)  # type: ignore[operator]
    except KrpcError as e:
        return "error", (e.reason, e.transaction_id, e.code, str(e))


def assert_agree(data: bytes) -> tuple[str, object]:
    new = outcome(decode_message, data)
    assert new == outcome(krpc_reference.decode_message, data), data
    return new


@pytest.mark.parametrize("raw", [raw for raw, _ in BEP5_VECTORS] + [m[1] for m in MALFORMED])
def test_vectors_agree(raw: bytes) -> None:
    assert_agree(raw)


@pytest.mark.parametrize(
    "values",
    [
        [b"abcdef"] * 3,
        [b"abcdef", b"a" * 18, b"abcdef"],  # IPv6 among IPv4
        [b"abcdef", b"abcde"],  # a short one after a good one
        [b"abcdef", 7],
        [b"abcdef", [b"abcdef"]],
        [b"a" * 18, {b"x": b"abcdef"}],
        [b"abcdef", b"abcdefg", 7],
        [],
    ],
)
def test_values_of_every_shape_agree(values: list[BValue]) -> None:
    body: dict[bytes, BValue] = {b"id": b"i" * 20, b"values": values}
    assert_agree(encode({b"r": body, b"t": b"aa", b"y": b"r"}))


@pytest.mark.parametrize("ip", [b"abcdef", b"a" * 18, b"abcde", b"a" * 19, 5, [b"abcdef"]])
def test_requester_of_every_shape_agrees(ip: BValue) -> None:
    assert_agree(encode({b"ip": ip, b"r": {b"id": b"i" * 20}, b"t": b"aa", b"y": b"r"}))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=6, max_size=6) | st.binary(min_size=18, max_size=18))
def test_compact_peers_read_alike(raw: bytes) -> None:
    assert decode_peer(raw) == krpc_reference.decode_peer(raw)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=26, max_size=26), max_size=20).map(b"".join))
def test_compact_nodes_read_alike(raw: bytes) -> None:
    assert decode_nodes(raw) == krpc_reference.decode_nodes(raw)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_encoded_messages_agree(message: Message) -> None:
    assert assert_agree(encode_message(message)) == ("message", message)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_agree(data: bytes) -> None:
    assert_agree(data)


@settings(max_examples=500, deadline=None)
@given(messages, st.data())
def test_mutated_messages_agree(message: Message, data: st.DataObject) -> None:
    raw = encode_message(message)
    pos = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(pos, min(len(raw), pos + 4)))
    junk = data.draw(st.binary(min_size=1, max_size=3) | st.sampled_from([b"e", b"0", b"i0e"]))
    for mutated in (
        raw[:pos] + junk + raw[end:],
        raw[:pos] + junk + raw[pos:],
        raw[:pos] + raw[end:],
        raw[:end] + raw[pos:],
        raw[:pos],
    ):
        assert_agree(mutated)


@settings(max_examples=300, deadline=None)
@given(bvalues)
def test_structured_junk_agrees(value: BValue) -> None:
    assert_agree(encode(value))
