"""Kad2 datagrams: aMule's byte orders, round trips, hostile datagrams."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.ed2k import kad
from atalaya.networks.ed2k.tags import Tag
from atalaya.networks.ed2k.wire import Ed2kError

FILE = bytes.fromhex("00112233445566778899aabbccddeeff")


def test_ids_travel_as_little_endian_words_most_significant_first() -> None:
    target = kad.kad_id_from_hash(FILE)
    datagram = kad.encode(kad.SearchSourceReq(target, start=0, file_size=1000))
    assert datagram[:2] == bytes([0xE4, 0x34])
    assert datagram[2:18] == bytes.fromhex("33221100 77665544 bbaa9988 ffeeddcc".replace(" ", ""))
    assert datagram[18:20] == b"\x00\x00" and datagram[20:] == (1000).to_bytes(8, "little")
    assert kad.hash_from_kad_id(target) == FILE


def test_contact_ips_are_host_order_little_endian() -> None:
    contact = kad.Contact(1, "100.64.0.7", 4672, 4662, 8)
    datagram = kad.encode(kad.Res(5, (contact,)))
    # After the 16-byte target and the count: 16-byte id, then the address.
    assert datagram[2 + 16 + 1 + 16 : 2 + 16 + 1 + 20] == bytes([7, 0, 64, 100])
    assert kad.decode(datagram) == kad.Res(5, (contact,))


def test_search_result_gives_a_reachable_source() -> None:
    user = bytes(range(16))
    tags = (
        Tag.uint(kad.TAG_SOURCETYPE, 1),
        Tag.uint(kad.TAG_SOURCEIP, kad.ip_to_kad("100.64.0.9")),
        Tag.uint(kad.TAG_SOURCEPORT, 4662),
        Tag.uint(kad.TAG_SOURCEUPORT, 4672),
    )
    result = kad.SearchResult(kad.kad_id_from_hash(user), tags)
    datagram = kad.encode(kad.SearchRes(7, kad.kad_id_from_hash(FILE), (result,)))
    decoded = kad.decode(datagram)
    assert isinstance(decoded, kad.SearchRes)
    source = decoded.results[0].source()
    assert source == kad.Source(user, "100.64.0.9", 4662, 4672, 1, False)
    assert source.reachable and source.crypt_options == 0


def test_search_result_carries_the_sources_crypt_options() -> None:
    # aMule's default (supported and requested), as it publishes it: tag 0xF3, a uint8.
    tags = (Tag.uint(kad.TAG_SOURCETYPE, 1), Tag.uint(kad.TAG_ENCRYPTION, 0x03))
    datagram = kad.encode(kad.SearchRes(7, 1, (kad.SearchResult(2, tags),)))
    decoded = kad.decode(datagram)
    assert isinstance(decoded, kad.SearchRes)
    source = decoded.results[0].source()
    assert source is not None and source.crypt_options == 0x03


def test_firewalled_source_is_found_but_not_reachable() -> None:
    tags = (Tag.uint(kad.TAG_SOURCETYPE, 3), Tag.hash16(kad.TAG_BUDDYHASH, bytes(16)))
    source = kad.SearchResult(1, tags).source()
    assert source is not None and source.buddy and not source.reachable


def test_packed_datagrams_inflate_and_bombs_stop() -> None:
    plain = kad.encode(kad.Hello(9, 4662, 8, (Tag.uint(kad.TAG_SOURCEUPORT, 4672),)))
    packed = bytes([0xE5, plain[1]]) + zlib.compress(plain[2:])
    assert kad.decode(packed) == kad.decode(plain)
    bomb = bytes([0xE5, kad.RES]) + zlib.compress(bytes(10_000_000), 9)
    with pytest.raises(Ed2kError, match="more than"):
        kad.decode(bomb)


@pytest.mark.parametrize(
    ("datagram", "message"),
    [
        (b"\xe4", "shorter than its header"),
        (b"\xe3\x01", "not a Kad2 datagram"),
        (bytes([0xE4, kad.REQ, 0x00]) + bytes(32), "type 0"),
        (bytes([0xE4, kad.BOOTSTRAP_RES]) + bytes(19) + b"\xff\xff", "contacts"),
        (bytes([0xE4, kad.PING, 0x00]), "unexpected bytes"),
    ],
)
def test_hostile_datagrams_are_typed_errors(datagram: bytes, message: str) -> None:
    with pytest.raises(Ed2kError, match=message):
        kad.decode(datagram)


def test_unneeded_opcodes_are_none() -> None:
    assert kad.decode(bytes([0xE4, 0x43]) + b"whatever") is None


_ids = st.integers(0, 2**128 - 1)
_contacts = st.builds(
    kad.Contact,
    _ids,
    st.ip_addresses(v=4).map(str),
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.integers(0, 255),
)
_kad_tags = st.lists(
    st.builds(Tag.uint, st.integers(0, 255), st.integers(0, 2**64 - 1)), max_size=4
)
_messages = st.one_of(
    st.just(kad.BootstrapReq()),
    st.builds(
        kad.BootstrapRes,
        _ids,
        st.integers(0, 65535),
        st.integers(0, 255),
        st.lists(_contacts, max_size=5).map(tuple),
    ),
    st.builds(
        kad.Hello,
        _ids,
        st.integers(0, 65535),
        st.integers(0, 255),
        _kad_tags.map(tuple),
        st.booleans(),
    ),
    st.builds(kad.Req, st.integers(1, 31), _ids, _ids),
    st.builds(kad.Res, _ids, st.lists(_contacts, max_size=5).map(tuple)),
    st.builds(kad.SearchSourceReq, _ids, st.integers(0, 0x7FFF), st.integers(0, 2**64 - 1)),
    st.builds(
        kad.SearchRes,
        _ids,
        _ids,
        st.lists(st.builds(kad.SearchResult, _ids, _kad_tags.map(tuple)), max_size=5).map(tuple),
    ),
    st.just(kad.Ping()),
    st.builds(kad.Pong, st.integers(0, 65535)),
)


@given(_messages)
def test_messages_round_trip(message: kad.KadMessage) -> None:
    assert kad.decode(kad.encode(message)) == message


@given(st.sampled_from([0x01, 0x09, 0x11, 0x19, 0x21, 0x22, 0x29, 0x34, 0x3B, 0x61]),
       st.binary(max_size=600))  # fmt: skip
def test_any_payload_gives_a_message_or_a_typed_error(opcode: int, payload: bytes) -> None:
    with contextlib.suppress(Ed2kError):
        kad.decode(bytes([0xE4, opcode]) + payload)
