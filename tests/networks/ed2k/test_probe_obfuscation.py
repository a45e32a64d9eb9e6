"""The probe over an obfuscated connection: a scripted peer that requires obfuscation."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.ed2k import obfuscation as o
from atalaya.networks.ed2k.probe import Ed2kProbe, ProbeErrorKind
from tests.networks.ed2k.test_probe import PEER_HASH, ScriptedPeer


class ObfuscatedPeer:
    """The scripted aMule behind a responder that refuses plain streams."""

    def __init__(self, content: bytes, user_hash: bytes = PEER_HASH) -> None:
        self.inner = ScriptedPeer(content)
        self.file_hash = self.inner.file_hash
        self.crypt = o.Responder(user_hash)
        self.first: bytes | None = None

    def answer(self, data: bytes) -> bytes:
        if self.first is None:
            self.first = data
        plain = self.crypt.receive(data)
        reply = self.crypt.data_to_send()
        if self.crypt.established:
            reply += self.crypt.encrypt(self.inner.answer(plain))
        return reply


def _probe(peer_hash: bytes | None, file_hash: bytes, size: int) -> Ed2kProbe[int]:
    probe: Ed2kProbe[int] = Ed2kProbe(
        "192.0.2.9",
        4662,
        file_hash,
        file_size=size,
        user_hash=os.urandom(16),
        now=0.0,
        obfuscator=o.Initiator(peer_hash) if peer_hash is not None else None,
    )
    probe.connected(("127.0.0.1", 5000), 0.0, 1)
    return probe


def _run(probe: Ed2kProbe[int], peer: ObfuscatedPeer, chunk: int = 1 << 16) -> None:
    for step in range(10_000):
        if probe.done:
            return
        try:
            reply = peer.answer(probe.data_to_send())
        except o.ObfuscationError:
            probe.receive_data(b"", float(step), step)  # the peer hangs up
            continue
        if not reply:
            probe.handle_timer(10_000.0)
            continue
        for at in range(0, len(reply), chunk):
            probe.receive_data(reply[at : at + chunk], float(step), step)


def test_an_obfuscated_probe_proves_a_file() -> None:
    content = os.urandom(300_000)
    peer = ObfuscatedPeer(content)
    probe = _probe(PEER_HASH, peer.file_hash, len(content))
    assert probe.phase == "obfuscation"
    _run(probe, peer)
    result = probe.result
    assert result is not None and result.error is None, result and result.error
    assert result.obfuscated and result.proof and result.proof_kind == "file_md4"
    # The first bytes on the wire were the handshake alone, not our hello.
    assert peer.first is not None and peer.first[0] not in o.PROTOCOL_BYTES
    assert len(peer.first) <= 5 + 7 + o.DEFAULT_SEND_PADDING


def test_byte_at_a_time() -> None:
    content = os.urandom(50_000)
    peer = ObfuscatedPeer(content)
    probe = _probe(PEER_HASH, peer.file_hash, len(content))
    _run(probe, peer, chunk=1)
    assert probe.result is not None and probe.result.proof and probe.result.obfuscated


def test_a_plain_probe_is_refused_by_a_peer_that_requires_obfuscation() -> None:
    content = os.urandom(10_000)
    peer = ObfuscatedPeer(content)
    probe = _probe(None, peer.file_hash, len(content))
    _run(probe, peer)
    result = probe.result
    assert result is not None and result.error is not None
    assert result.error.kind is ProbeErrorKind.CLOSED and not result.obfuscated


def test_a_wrong_user_hash_ends_in_the_obfuscation_phase() -> None:
    content = os.urandom(10_000)
    peer = ObfuscatedPeer(content)
    probe = _probe(bytes(16), peer.file_hash, len(content))
    _run(probe, peer)
    result = probe.result
    assert result is not None and result.error is not None
    assert result.error.phase == "obfuscation" and not result.obfuscated


def test_a_plain_answer_to_our_handshake_is_a_protocol_error() -> None:
    probe = _probe(PEER_HASH, bytes(16), 1000)
    probe.data_to_send()
    probe.receive_data(bytes([0xE3, 0x22, 0, 0, 0, 0x4C]), 1.0, 2)
    result = probe.result
    assert result is not None and result.error is not None
    assert result.error.kind is ProbeErrorKind.PROTOCOL and "obfuscation" in result.error.detail


def test_silence_after_the_handshake_times_out_in_its_phase() -> None:
    probe = _probe(PEER_HASH, bytes(16), 1000)
    probe.handle_timer(1000.0)
    result = probe.result
    assert result is not None and result.error is not None
    assert result.error.kind is ProbeErrorKind.TIMEOUT and result.error.phase == "obfuscation"


@settings(max_examples=200)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=300))
def test_any_bytes_end_in_a_result(noise: bytes, chunk: int) -> None:
    probe = _probe(PEER_HASH, bytes(16), 1000)
    probe.data_to_send()
    for at in range(0, len(noise), chunk):
        probe.receive_data(noise[at : at + chunk], 1.0, 2)
        probe.data_to_send()
    probe.receive_data(b"", 2.0, 3)
    assert probe.result is not None
