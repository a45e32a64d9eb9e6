"""The toy codec: byte vectors, round trips, and only CodecError for anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.toynet.codec import (
    MAX_DATAGRAM,
    MAX_FILE,
    Ask,
    CodecError,
    Have,
    Nope,
    decode,
    encode,
)

TXID = bytes.fromhex("0a0b0c0d")
DIGEST = bytes(range(32))


def test_byte_vectors() -> None:
    ask = b"TOY1\x01\x0a\x0b\x0c\x0d" + DIGEST
    have = b"TOY1\x02\x0a\x0b\x0c\x0d" + DIGEST + b"\x02ab\x00\x03xyz"
    assert decode(ask) == Ask(TXID, DIGEST) and encode(Ask(TXID, DIGEST)) == ask
    assert decode(have) == Have(TXID, DIGEST, "ab", b"xyz")
    assert encode(Have(TXID, DIGEST, "ab", b"xyz")) == have
    assert decode(b"TOY1\x03\x0a\x0b\x0c\x0d" + DIGEST) == Nope(TXID, DIGEST)


@pytest.mark.parametrize(
    ("datagram", "why"),
    [
        (b"", "not a toy"),
        (b"TOY2\x01" + TXID + DIGEST, "not a toy"),
        (b"TOY1\x01" + TXID + DIGEST[:31], "not a toy"),
        (b"TOY1\x01" + TXID + DIGEST + b"x", "trailing"),
        (b"TOY1\x09" + TXID + DIGEST, "unknown message type 9"),
        (b"TOY1\x02" + TXID + DIGEST, "truncated client"),
        (b"TOY1\x02" + TXID + DIGEST + b"\x21" + b"a" * 33 + b"\x00\x00", "truncated client"),
        (b"TOY1\x02" + TXID + DIGEST + b"\x00\x00\x05abc", "announced"),
        (b"TOY1\x02" + TXID + DIGEST + b"\x00\x04\x01" + b"a" * 1025, "at most 1024"),
        (b"TOY1\x02" + TXID + DIGEST + b"\x00\x04\x01" + b"a" * 1100, "datagram of"),
    ],
)
def test_malformed_datagrams_are_refused_by_name(datagram: bytes, why: str) -> None:
    with pytest.raises(CodecError, match=why):
        decode(datagram)


messages = (
    st.builds(Ask, st.binary(min_size=4, max_size=4), st.binary(min_size=32, max_size=32))
    | st.builds(Nope, st.binary(min_size=4, max_size=4), st.binary(min_size=32, max_size=32))
    | st.builds(
        Have,
        st.binary(min_size=4, max_size=4),
        st.binary(min_size=32, max_size=32),
        st.text(max_size=8),
        st.binary(max_size=MAX_FILE),
    )
)


@given(messages)
def test_every_message_round_trips(message: Ask | Have | Nope) -> None:
    datagram = encode(message)
    assert len(datagram) <= MAX_DATAGRAM
    assert decode(datagram) == message


@given(st.binary(max_size=MAX_DATAGRAM + 8) | messages.map(encode).map(lambda b: b[:-1]))
def test_any_bytes_give_a_message_or_a_codec_error(datagram: bytes) -> None:
    try:
        message = decode(datagram)
    except CodecError:
        return
    assert encode(message)[:9] == datagram[:9]
