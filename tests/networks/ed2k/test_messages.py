"""eD2K client messages: byte vectors in aMule's layouts, round trips, lies."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k import messages as m
from atalaya.networks.ed2k.packets import PacketDecoder, Protocol, encode_packet
from atalaya.networks.ed2k.tags import Tag
from atalaya.networks.ed2k.wire import Ed2kError

USER = bytes(range(16))
FILE = bytes(range(100, 116))


def _decode(frame: bytes) -> m.Message:
    (packet,) = PacketDecoder().feed(frame)
    return m.decode(packet)


def test_hello_bytes_and_fields() -> None:
    hello = m.Hello(
        USER,
        client_id=0x0100007F,  # 127.0.0.1 as eD2K writes it: little-endian
        port=4662,
        tags=(Tag.string(m.CT_NAME, "lab"), Tag.uint(m.CT_VERSION, 0x3C)),
        server_ip=0,
        server_port=0,
    )
    frame = hello.encode()
    expected_payload = (
        bytes([16]) + USER + bytes([0x7F, 0, 0, 1]) + (4662).to_bytes(2, "little")
        + (2).to_bytes(4, "little")
        + bytes([0x93, 0x01]) + b"lab" + bytes([0x89, 0x11, 0x3C])
        + bytes(6)
    )  # fmt: skip
    assert (
        frame
        == bytes([0xE3])
        + (len(expected_payload) + 1).to_bytes(4, "little")
        + bytes([0x01])
        + expected_payload
    )
    decoded = _decode(frame)
    assert decoded == hello
    assert isinstance(decoded, m.Hello)
    assert decoded.address == "127.0.0.1" and not decoded.low_id and decoded.nick == "lab"


def test_hello_answer_has_no_hash_size_and_low_id_has_no_address() -> None:
    answer = m.Hello(USER, client_id=1234, port=0, tags=(), answer=True)
    frame = answer.encode()
    assert frame[5] == m.OP_HELLOANSWER and frame[6:22] == USER
    decoded = _decode(frame)
    assert isinstance(decoded, m.Hello) and decoded.low_id and decoded.address is None


def test_file_status_count_zero_means_complete() -> None:
    status = _decode(encode_packet(Protocol.EDONKEY, m.OP_FILESTATUS, FILE + b"\x00\x00"))
    assert isinstance(status, m.FileStatus) and status.complete
    partial = m.FileStatus(FILE, (True, False, True))
    assert partial.encode()[-3:] == b"\x03\x00\x05"
    assert _decode(partial.encode()) == partial


def test_request_parts_pads_to_three_and_switches_to_64_bits() -> None:
    small = m.RequestParts(FILE, ((0, 10240), (10240, 20480)))
    frame = small.encode()
    assert frame[0] == 0xE3 and len(frame) == 6 + 16 + 24
    assert _decode(frame) == small
    big = m.RequestParts(FILE, ((2**32, 2**32 + 100),))
    frame = big.encode()
    assert frame[0] == 0xC5 and frame[5] == m.OP_REQUESTPARTS_I64
    assert _decode(frame) == big


def test_sending_and_compressed_parts() -> None:
    part = m.SendingPart(FILE, 9_728_000, b"\x01" * 100)
    assert _decode(part.encode()) == part
    plain = b"block" * 200
    packed = m.SendingPart(FILE, 0, zlib.compress(plain), compressed=True, size=len(plain))
    assert _decode(packed.encode()) == packed


def test_a_part_that_lies_about_its_length_is_refused() -> None:
    payload = FILE + (0).to_bytes(4, "little") + (100).to_bytes(4, "little") + b"x" * 99
    with pytest.raises(Ed2kError, match="says 100 bytes and carries 99"):
        _decode(encode_packet(Protocol.EDONKEY, m.OP_SENDINGPART, payload))
    huge = FILE + (0).to_bytes(4, "little") + (10**6).to_bytes(4, "little")
    with pytest.raises(Ed2kError, match="over one block"):
        _decode(encode_packet(Protocol.EDONKEY, m.OP_SENDINGPART, huge))


def test_filename_hashset_queue_and_signals() -> None:
    for message in (
        m.FilenameAnswer(FILE, "archivo sintético.bin".encode()),
        m.HashsetAnswer(FILE, (USER, FILE)),
        m.QueueRank(7),
        m.QueueRank(70_000, emule=False),
        m.Signal(m.OP_ACCEPTUPLOADREQ),
        m.FileRequest(m.OP_SETREQFILEID, FILE),
    ):
        assert _decode(message.encode()) == message


def test_trailing_bytes_and_unknown_opcodes() -> None:
    with pytest.raises(Ed2kError, match="unexpected bytes"):
        _decode(encode_packet(Protocol.EDONKEY, m.OP_SETREQFILEID, FILE + b"!"))
    assert _decode(encode_packet(Protocol.EMULE, 0x99, b"abc")) == m.Unknown(
        Protocol.EMULE, 0x99, 3
    )


_messages = st.one_of(
    st.builds(
        m.Hello,
        st.binary(min_size=16, max_size=16),
        st.integers(0, 2**32 - 1),
        st.integers(0, 65535),
        st.lists(
            st.builds(Tag.uint, st.integers(0, 255), st.integers(0, 2**32 - 1)), max_size=5
        ).map(tuple),
        st.integers(0, 2**32 - 1),
        st.integers(0, 65535),
        st.booleans(),
    ),
    st.builds(
        m.FileStatus, st.binary(min_size=16, max_size=16), st.lists(st.booleans()).map(tuple)
    ),
    st.builds(
        m.SendingPart,
        st.binary(min_size=16, max_size=16),
        st.integers(0, 2**40),
        st.binary(max_size=2000),
    ),
)


@given(_messages)
def test_messages_round_trip(message: m.Message) -> None:
    assert _decode(message.encode()) == message


@given(st.sampled_from([0x01, 0x4C, 0x46, 0x47, 0x50, 0x52, 0x59, 0x5C]), st.binary(max_size=300))
def test_any_payload_gives_a_message_or_a_typed_error(opcode: int, payload: bytes) -> None:
    for protocol in (Protocol.EDONKEY, Protocol.EMULE):
        with contextlib.suppress(Ed2kError):
            _decode(encode_packet(protocol, opcode, payload))


MASTER = bytes(range(50, 70))


def test_aich_request_answer_and_file_hash_bytes() -> None:
    request = m.AichRequest(FILE, 2, MASTER)
    assert request.encode() == (
        bytes([0xC5]) + (1 + 16 + 2 + 20).to_bytes(4, "little") + bytes([0x9B])
        + FILE + b"\x02\x00" + MASTER
    )  # fmt: skip
    assert _decode(request.encode()) == request
    recovery = aich.RecoveryData(((3, b"\x01" * 20), (5, b"\x02" * 20)))
    answer = m.AichAnswer(FILE, 2, MASTER, recovery)
    payload = answer.encode()[6:]
    # hash, part, master, then 16-bit idents: count, (ident, hash)…, and an empty 32-bit list.
    assert payload == FILE + b"\x02\x00" + MASTER + b"\x02\x00" + b"\x03\x00" + b"\x01" * 20 + (
        b"\x05\x00" + b"\x02" * 20 + b"\x00\x00"
    )
    assert _decode(answer.encode()) == answer
    refusal = m.AichAnswer(FILE)
    assert refusal.encode()[6:] == FILE and _decode(refusal.encode()) == refusal
    for message in (m.AichFileHash(FILE), m.AichFileHash(FILE, MASTER)):
        assert _decode(message.encode()) == message


def test_hello_says_which_aich_version_the_peer_offers() -> None:
    def hello(options: int | None) -> m.Hello:
        tags = () if options is None else (Tag.uint(m.CT_EMULE_MISCOPTIONS1, options),)
        return m.Hello(USER, 0x0100007F, 4662, tags, answer=True)

    assert hello(None).aich_version == 0
    assert hello(1 << 28).aich_version == 0
    assert hello(1 << 29 | 1 << 28).aich_version == 1


@given(st.sampled_from([0x9B, 0x9C, 0x9D, 0x9E]), st.binary(max_size=400))
def test_any_aich_payload_gives_a_message_or_a_typed_error(opcode: int, payload: bytes) -> None:
    with contextlib.suppress(Ed2kError):
        _decode(encode_packet(Protocol.EMULE, opcode, payload))
