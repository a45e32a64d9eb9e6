"""eMule TCP obfuscation: byte vectors, byte at a time, hostile handshakes, hypothesis.

The vectors were derived from the layout aMule's EncryptedStreamSocket.cpp
documents, with the RC4 below written out here (not pycryptodome's), so a
wrong key layout, a missed 1024-byte discard or a byte-order slip in the
sync value changes them. The lab test (tests/lab/test_amule_obfuscation.py)
checks the same handshake against a real aMule that requires obfuscation.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.ed2k import obfuscation as o
from atalaya.networks.ed2k.wire import Ed2kError

USER_HASH = bytes.fromhex("00112233445566778899aabbccddeeff")
RANDOM_KEY = bytes.fromhex("01020304")


def rc4(key: bytes, data: bytes, drop: int = 1024) -> bytes:
    """RC4 written out from its definition, as a second opinion."""
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for n in range(drop + len(data)):
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        if n >= drop:
            out.append(data[n - drop] ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


SEND_KEY = hashlib.md5(USER_HASH + bytes([34]) + RANDOM_KEY).digest()
RECEIVE_KEY = hashlib.md5(USER_HASH + bytes([203]) + RANDOM_KEY).digest()


def test_keys_are_md5_of_hash_magic_and_random_key() -> None:
    assert o.key(USER_HASH, o.MAGIC_REQUESTER, RANDOM_KEY).hex() == (
        "cad52c1ad118c9da0db102ee835ffcda"
    )
    assert o.key(USER_HASH, o.MAGIC_SERVER, RANDOM_KEY).hex() == "9325c7b091018c148c4f6f74563be425"
    assert o.key(USER_HASH, 34, RANDOM_KEY) == SEND_KEY


def test_the_discarded_key_stream_is_1024_bytes() -> None:
    data = bytes(64)
    assert o.stream(SEND_KEY).encrypt(data) == rc4(SEND_KEY, data)
    assert o.stream(SEND_KEY).encrypt(data) != rc4(SEND_KEY, data, drop=0)


def test_initiator_handshake_vector() -> None:
    # <marker 17><random key 01020304> in clear, then RC4 of
    # <sync c46f5e83><supported 00><preferred 00><padding length 03><"abc">.
    initiator = o.Initiator(USER_HASH, random_key=RANDOM_KEY, marker=0x17, padding=b"abc")
    assert initiator.handshake.hex() == "170102030411911da9bd3b3b48e684"
    body = bytes.fromhex("c46f5e83000003") + b"abc"
    assert initiator.handshake == b"\x17" + RANDOM_KEY + rc4(SEND_KEY, body)
    assert initiator.data_to_send() == initiator.handshake
    assert not initiator.established


ANSWER = bytes.fromhex("4ebf9395601e54523be156f06b146d")  # sync, method 0, padding "xy", "payload"


def test_answer_vector_then_payload() -> None:
    assert rc4(RECEIVE_KEY, bytes.fromhex("c46f5e830002") + b"xy" + b"payload") == ANSWER
    initiator = o.Initiator(USER_HASH, random_key=RANDOM_KEY, marker=0x17, padding=b"")
    assert initiator.receive(ANSWER) == b"payload"
    assert initiator.established and initiator.peer_padding == 2
    assert initiator.handshake_bytes == 8


def test_answer_byte_at_a_time() -> None:
    initiator = o.Initiator(USER_HASH, random_key=RANDOM_KEY, marker=0x17, padding=b"")
    got = b"".join(initiator.receive(bytes([b])) for b in ANSWER)
    assert got == b"payload" and initiator.established


def test_payload_waits_for_the_answer() -> None:
    initiator = o.Initiator(USER_HASH)
    with pytest.raises(RuntimeError):
        initiator.encrypt(b"hello")


def test_marker_never_a_protocol_byte() -> None:
    assert all(o.random_marker() not in o.PROTOCOL_BYTES for _ in range(2000))
    for byte in o.PROTOCOL_BYTES:
        with pytest.raises(ValueError):
            o.Initiator(USER_HASH, marker=byte)


def test_own_padding_is_bounded() -> None:
    for _ in range(50):
        initiator = o.Initiator(USER_HASH, limits=o.ObfuscationLimits(send_padding=7))
        assert 12 <= len(initiator.handshake) <= 12 + 7
    with pytest.raises(ValueError):
        o.Initiator(USER_HASH, padding=bytes(256))


def test_wrong_user_hash_is_a_sync_error_and_stays_broken() -> None:
    initiator = o.Initiator(bytes(16))
    responder = o.Responder(USER_HASH)
    with pytest.raises(o.SyncError):
        responder.receive(initiator.data_to_send())
    with pytest.raises(o.SyncError):
        responder.receive(b"")


def test_plain_peer_answer_is_a_sync_error() -> None:
    # What a peer that does not obfuscate would answer: a plain eD2K packet.
    initiator = o.Initiator(USER_HASH)
    with pytest.raises(o.SyncError):
        initiator.receive(bytes([0xE3, 0x22, 0, 0, 0, 0x4C]))


def test_unknown_method_and_long_padding_are_typed() -> None:
    with pytest.raises(o.MethodError):
        o.Initiator(USER_HASH, random_key=RANDOM_KEY).receive(
            rc4(RECEIVE_KEY, o.SYNC_BYTES + b"\x01\x00")
        )
    limited = o.Initiator(
        USER_HASH, random_key=RANDOM_KEY, limits=o.ObfuscationLimits(max_padding=16)
    )
    with pytest.raises(o.PaddingError, match="17 bytes"):
        limited.receive(rc4(RECEIVE_KEY, o.SYNC_BYTES + b"\x00\x11"))


def test_errors_are_ed2k_errors() -> None:
    assert issubclass(o.ObfuscationError, Ed2kError)


def test_required_responder_refuses_a_plain_stream() -> None:
    with pytest.raises(o.PlainStreamError):
        o.Responder(USER_HASH).receive(bytes([0xE3, 1, 0, 0, 0, 0x01]))
    lenient = o.Responder(USER_HASH, plain_allowed=True)
    assert lenient.receive(b"\xe3\x01") == b"\xe3\x01" and lenient.plain


def test_both_sides_whole_and_byte_at_a_time() -> None:
    for dribble in (False, True):
        initiator = o.Initiator(USER_HASH, padding=bytes(range(200)))
        responder = o.Responder(USER_HASH, padding=b"p" * 255)
        request = initiator.data_to_send() + b""
        got = b""
        for piece in [request[i : i + 1] for i in range(len(request))] if dribble else [request]:
            got += responder.receive(piece)
        assert got == b"" and responder.established
        assert responder.peer_methods == (0, 0) and responder.peer_padding == 200
        answer = responder.data_to_send() + responder.encrypt(b"from B")
        pieces = [answer[i : i + 1] for i in range(len(answer))] if dribble else [answer]
        assert b"".join(initiator.receive(p) for p in pieces) == b"from B"
        assert responder.receive(initiator.encrypt(b"from A" * 100)) == b"from A" * 100
        assert initiator.handshake_bytes == 4 + 2 + 255


def test_wants_obfuscation() -> None:
    assert not o.wants_obfuscation(0)
    assert not o.wants_obfuscation(o.CRYPT_SUPPORTED)
    assert o.wants_obfuscation(o.CRYPT_SUPPORTED | o.CRYPT_REQUESTED)
    assert o.wants_obfuscation(0x07)
    # aMule 2.3.3 sets one bit only: requested (its default) or required.
    assert o.wants_obfuscation(o.CRYPT_REQUESTED) and o.wants_obfuscation(o.CRYPT_REQUIRED)
    assert o.requires_obfuscation(o.CRYPT_REQUIRED) and not o.requires_obfuscation(0x03)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_any_bytes_give_progress_or_a_typed_error(chunks: list[bytes]) -> None:
    initiator = o.Initiator(USER_HASH)
    responder = o.Responder(USER_HASH)
    for side in (initiator, responder):
        try:
            for chunk in chunks:
                side.receive(chunk)
        except o.ObfuscationError:
            continue
        # No error: at most one handshake's worth was taken as handshake.
        assert side.handshake_bytes <= 1 + 4 + 4 + 3 + 255


@given(
    st.binary(max_size=255),
    st.binary(max_size=255),
    st.binary(max_size=2000),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=20),
)
def test_round_trip_in_any_chunks(
    padding_a: bytes, padding_b: bytes, payload: bytes, cuts: list[int]
) -> None:
    initiator = o.Initiator(USER_HASH, padding=padding_a)
    responder = o.Responder(USER_HASH, padding=padding_b)
    assert responder.receive(initiator.data_to_send()) == b""
    answer = responder.data_to_send() + responder.encrypt(payload)
    got, at, index = b"", 0, 0
    while at < len(answer):
        size = cuts[index % len(cuts)]
        got += initiator.receive(answer[at : at + size])
        at, index = at + size, index + 1
    assert got == payload and initiator.established
