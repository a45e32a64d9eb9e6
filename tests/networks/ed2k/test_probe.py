"""The eD2K probe's decisions, driven byte by byte by scripted (often hostile) peers."""

from __future__ import annotations

import os

from Crypto.Hash import MD4
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.ed2k import messages as m
from atalaya.networks.ed2k.hashing import PART_SIZE, Ed2kHasher
from atalaya.networks.ed2k.packets import PacketDecoder
from atalaya.networks.ed2k.probe import (
    Ed2kProbe,
    ProbeErrorKind,
    ProbeTimeouts,
    client_name,
)
from atalaya.networks.ed2k.tags import Tag

PEER_HASH = bytes(range(16))
AMULE_233 = (3 << 24) | (2 << 17) | (3 << 10) | (3 << 7)


def _hash(data: bytes) -> bytes:
    hasher = Ed2kHasher()
    hasher.update(data)
    return hasher.digest()


def _md4(data: bytes) -> bytes:
    digest: bytes = MD4.new(data).digest()
    return digest


class ScriptedPeer:
    """A sans-I/O peer that answers the probe as aMule does, with optional lies."""

    def __init__(self, content: bytes, *, corrupt: bool = False, share: bool = True) -> None:
        self.content = content
        self.file_hash = _hash(content)
        self.corrupt = corrupt
        self.share = share
        self.decoder = PacketDecoder()

    def answer(self, data: bytes) -> bytes:
        out = b""
        for packet in self.decoder.feed(data):
            message = m.decode(packet)
            if isinstance(message, m.Hello):
                tags = (Tag.string(m.CT_NAME, "peer"), Tag.uint(m.CT_EMULE_VERSION, AMULE_233))
                out += m.Hello(PEER_HASH, 0x0900A8C0, 4662, tags, answer=True).encode()
            elif isinstance(message, m.FileRequest):
                if not self.share:
                    out += m.FileRequest(m.OP_FILEREQANSNOFIL, message.file_hash).encode()
                elif message.opcode == m.OP_REQUESTFILENAME:
                    out += m.FilenameAnswer(message.file_hash, b"a\x00b.bin").encode()
                elif message.opcode == m.OP_SETREQFILEID:
                    out += m.FileStatus(message.file_hash, ()).encode()
                elif message.opcode == m.OP_STARTUPLOADREQ:
                    out += m.Signal(m.OP_ACCEPTUPLOADREQ).encode()
            elif isinstance(message, m.RequestParts):
                for start, end in message.ranges:
                    block = bytearray(self.content[start:end])
                    if self.corrupt:
                        block[0] ^= 0xFF
                    for at in range(0, len(block), 10240):
                        chunk = bytes(block[at : at + 10240])
                        out += m.SendingPart(message.file_hash, start + at, chunk).encode()
        return out


def _run(peer: ScriptedPeer, size: int | None, chunk: int = 1 << 16) -> Ed2kProbe[int]:
    probe: Ed2kProbe[int] = Ed2kProbe(
        "192.0.2.9", 4662, peer.file_hash, file_size=size, user_hash=os.urandom(16), now=0.0
    )
    probe.connected(("127.0.0.1", 5000), 0.0, 1)
    for step in range(10_000):
        if probe.done:
            break
        reply = peer.answer(probe.data_to_send())
        if not reply:
            probe.handle_timer(10_000.0)
            continue
        for at in range(0, len(reply), chunk):
            probe.receive_data(reply[at : at + chunk], float(step), step)
    assert probe.done
    return probe


def test_a_small_file_proven_whole() -> None:
    content = os.urandom(300_000)
    result = _run(ScriptedPeer(content), len(content)).result
    assert result is not None and result.proof and result.proof_kind == "file_md4"
    assert result.client == "aMule 2.3.3" and result.file_name == "a\x00b.bin"[:500]
    assert result.bytes_downloaded == 300_000


def test_a_liar_whose_data_fails_its_hash_is_no_proof() -> None:
    content = os.urandom(200_000)
    result = _run(ScriptedPeer(content, corrupt=True), len(content)).result
    assert result is not None and not result.proof and result.parts_failed == 1


def test_no_file_answer() -> None:
    result = _run(ScriptedPeer(b"x" * 1000, share=False), 1000).result
    assert result is not None and result.error is not None
    assert result.error.kind is ProbeErrorKind.NO_FILE


def test_a_one_part_file_of_unknown_size_cannot_be_proven() -> None:
    result = _run(ScriptedPeer(os.urandom(5000)), None).result
    assert result is not None and not result.proof
    # Without the size the probe must ask for a hash set, which a one-part
    # file does not have: it ends without proof either way.
    assert result.error is not None


def test_a_silent_peer_times_out_and_garbage_is_a_protocol_error() -> None:
    probe: Ed2kProbe[int] = Ed2kProbe(
        "192.0.2.9", 4662, bytes(16), file_size=10, user_hash=bytes(16), now=0.0,
        timeouts=ProbeTimeouts(hello=5.0),
    )  # fmt: skip
    probe.connected(None, 0.0, 0)
    probe.handle_timer(4.9)
    assert not probe.done
    probe.handle_timer(5.0)
    assert probe.result is not None and probe.result.error is not None
    assert probe.result.error.kind is ProbeErrorKind.TIMEOUT
    other: Ed2kProbe[int] = Ed2kProbe(
        "192.0.2.9", 4662, bytes(16), file_size=10, user_hash=bytes(16), now=0.0
    )
    other.connected(None, 0.0, 0)
    other.receive_data(b"\x13BitTorrent protocol", 1.0, 1)
    assert other.result is not None and other.result.error is not None
    assert other.result.error.kind is ProbeErrorKind.PROTOCOL


def test_client_names() -> None:
    assert client_name(AMULE_233) == "aMule 2.3.3"
    assert client_name((0 << 24) | (0 << 17) | (50 << 10) | (0 << 7)) == "eMule 0.50.0"
    assert client_name(None) is None


def test_two_parts_proven_by_the_last() -> None:
    content = os.urandom(PART_SIZE + 1000)
    peer = ScriptedPeer(content)
    original = peer.answer

    def with_hashset(data: bytes) -> bytes:
        out = original(data)
        for packet in PacketDecoder().feed(data):
            message = m.decode(packet)
            if isinstance(message, m.FileRequest) and message.opcode == m.OP_HASHSETREQUEST:
                parts = (_md4(content[:PART_SIZE]), _md4(content[PART_SIZE:]))
                out += m.HashsetAnswer(message.file_hash, parts).encode()
        return out

    peer.answer = with_hashset  # type: ignore[method-assign]
    result = _run(peer, len(content)).result
    assert result is not None and result.proof, result.error
    assert result.proof_kind == "part_md4" and result.verified_part == 1
    assert result.bytes_downloaded == 1000


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 50))
def test_any_bytes_end_in_a_result(noise: bytes, chunk: int) -> None:
    probe: Ed2kProbe[int] = Ed2kProbe(
        "192.0.2.9", 4662, bytes(16), file_size=100, user_hash=bytes(16), now=0.0
    )
    probe.connected(None, 0.0, 0)
    for at in range(0, len(noise), chunk):
        probe.receive_data(noise[at : at + chunk], 1.0, 1)
    probe.handle_timer(10_000.0)
    assert probe.done and probe.result is not None
