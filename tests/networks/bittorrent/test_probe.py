"""The probe's decisions, sans-I/O: a `ProbeMachine` against a scripted peer, no sockets.

The scripted peer speaks through the real peer wire codec (`PeerConnection`
on its side too) and answers as told: honest, lying, silent, choking,
rejecting, under another name. Time is a float the test moves; the
wall-clock stamps are strings, which the machine must carry untouched into
the result. Every exchange that matters is fed whole and one byte at a time.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent import bencode, merkle
from atalaya.networks.bittorrent import peerwire as pw
from atalaya.networks.bittorrent.metainfo import Metainfo, parse_info
from atalaya.networks.bittorrent.probe import (
    ProbeError,
    ProbeErrorKind,
    ProbeLimits,
    ProbeMachine,
    ProbeResult,
    ProbeTimeouts,
)

PIECE = 16384
OUR_ID = b"-AY0100-" + b"o" * 12
PEER_ID = b"-SP0100-" + b"p" * 12
LOCAL = ("127.0.0.1", 50123)
T0 = 1000.0
TIMEOUTS = ProbeTimeouts(
    connect=5, handshake=5, settle=2, metadata=15, hashes=10, unchoke=20, block=10, total=60
)


def content(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass(frozen=True)
class Torrent:
    info: bytes
    meta: Metainfo
    layer: tuple[bytes, ...]  # the v2 piece layer of its one file; () for v1
    data: bytes


def v1_torrent(data: bytes) -> Torrent:
    pieces = b"".join(
        hashlib.sha1(data[i : i + PIECE]).digest() for i in range(0, len(data), PIECE)
    )
    info = bencode.encode(
        {b"name": b"synthetic.bin", b"length": len(data), b"piece length": PIECE, b"pieces": pieces}
    )
    return Torrent(info, parse_info(info), (), data)


def v2_torrent(data: bytes, *, hybrid: bool = False) -> Torrent:
    tree = merkle.FileMerkle([PIECE])
    tree.update(data)
    root = tree.pieces_root()
    assert root is not None
    info: dict[bytes, bencode.BValue] = {
        b"name": b"synthetic.bin",
        b"piece length": PIECE,
        b"meta version": 2,
        b"file tree": {b"synthetic.bin": {b"": {b"length": len(data), b"pieces root": root}}},
    }
    if hybrid:
        info[b"length"] = len(data)
        info[b"pieces"] = v1_torrent(data).meta.pieces
    raw = bencode.encode(info)
    return Torrent(raw, parse_info(raw), tuple(tree.piece_layer(PIECE)), data)


@dataclass
class Script:
    """How the scripted peer behaves."""

    answer: bytes | None = None  # the name its handshake gives; None: the one asked
    extension: bool = True
    fast: bool = True
    possession: str = "have_all"  # have_all | have_none | bitfield | silent
    held: frozenset[int] = frozenset()  # the bitfield's pieces
    metadata: str = "serve"  # serve | reject | silent | none
    unchoke: bool = True
    blocks: str = "serve"  # serve | corrupt | reject | silent
    hashes: str = "serve"  # serve | forge | reject | silent
    choke_after: int | None = None  # blocks served before it chokes for good
    pex: tuple[tuple[str, int], ...] = ()
    requests: int = 0  # block requests it sends us right after its handshake
    close_after_handshake: bool = False


@dataclass
class ScriptedPeer:
    torrent: Torrent
    script: Script = field(default_factory=Script)
    served: int = 0
    closed: bool = False

    def __post_init__(self) -> None:
        self.conn = pw.PeerConnection(num_pieces=self.torrent.meta.num_pieces)

    def receive(self, data: bytes) -> bytes:
        """What the peer answers to our bytes."""
        self.conn.receive_data(data)
        out = bytearray()
        while (event := self.conn.next_event()) is not pw.NEED_DATA:
            for message in self._answer(event):
                out += self.conn.send(message)
        return bytes(out)

    def _answer(self, event: pw.Event) -> Iterator[pw.Message]:
        s, t = self.script, self.torrent
        match event:
            case pw.Handshake(infohash):
                reserved = pw.make_reserved(extension=s.extension, fast=s.fast)
                yield pw.Handshake(s.answer or infohash, PEER_ID, reserved)
                if s.close_after_handshake:
                    self.closed = True
                    return
                for i in range(s.requests):
                    yield pw.Request(0, i * PIECE, PIECE)
                if s.extension:
                    # The ids its own codec reads (PeerConnection's defaults).
                    m = dict(pw.DEFAULT_EXTENSIONS)
                    if s.metadata == "none":
                        del m["ut_metadata"]
                    yield pw.ExtensionHandshake(
                        m=m,
                        v="Scripted 1.0",
                        p=6881,
                        yourip=LOCAL[0],
                        reqq=250,
                        metadata_size=len(t.info) if s.metadata != "none" else None,
                    )
                if s.possession == "have_all":
                    yield pw.HaveAll()
                elif s.possession == "have_none":
                    yield pw.HaveNone()
                elif s.possession == "bitfield":
                    yield pw.Bitfield.from_indices(set(s.held), t.meta.num_pieces)
            case pw.ExtensionHandshake() if s.pex:
                yield pw.Pex(added=tuple(pw.PexPeer(ip, port) for ip, port in s.pex))
            case pw.Interested() if s.unchoke:
                yield pw.Unchoke()
            case pw.Request(index, begin, length):
                if s.blocks == "reject":
                    yield pw.Reject(index, begin, length)
                elif s.blocks != "silent" and (
                    s.choke_after is None or self.served < s.choke_after
                ):
                    start = index * t.meta.piece_length + begin
                    block = t.data[start : start + length]
                    if s.blocks == "corrupt":
                        block = bytes(b ^ 0x5A for b in block)
                    self.served += 1
                    yield pw.Piece(index, begin, block)
                    if self.served == s.choke_after:
                        yield pw.Choke()
            case pw.MetadataRequest(piece) if s.metadata == "serve":
                chunk = t.info[
                    piece * pw.METADATA_PIECE_SIZE : (piece + 1) * pw.METADATA_PIECE_SIZE
                ]
                yield pw.MetadataData(piece, len(t.info), chunk)
            case pw.MetadataRequest(piece) if s.metadata == "reject":
                yield pw.MetadataReject(piece)
            case pw.HashRequest() if s.hashes in ("serve", "forge"):
                yield self._hashes(event)
            case pw.HashRequest() if s.hashes == "reject":
                yield pw.HashReject(
                    event.pieces_root,
                    event.base_layer,
                    event.index,
                    event.length,
                    event.proof_layers,
                )
            case _:
                pass

    def _hashes(self, request: pw.HashRequest) -> pw.Hashes:
        """The asked chunk of the piece layer and the uncles that prove it (BEP 52)."""
        height = merkle.piece_height(PIECE)
        layer = list(self.torrent.layer)
        width = 1 << max(0, (len(layer) - 1).bit_length())
        levels = [layer + [merkle.ZERO_HASHES[height]] * (width - len(layer))]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append(
                [hashlib.sha256(below[i] + below[i + 1]).digest() for i in range(0, len(below), 2)]
            )
        start, length = request.index, request.length
        base = levels[0][start : start + length]
        if self.script.hashes == "forge":
            base = [hashlib.sha256(h).digest() for h in base]
        uncles = []
        position, level = start // length, length.bit_length() - 1
        for _ in range(request.proof_layers):
            if level >= len(levels) - 1:
                break
            uncles.append(levels[level][position ^ 1])
            position //= 2
            level += 1
        return pw.Hashes(
            request.pieces_root,
            request.base_layer,
            start,
            length,
            request.proof_layers,
            tuple(base + uncles),
        )


def machine(infohash: bytes, **kw: object) -> ProbeMachine[str]:
    kw.setdefault("timeouts", TIMEOUTS)
    return ProbeMachine(
        "192.0.2.7",
        51413,
        infohash,
        peer_id=OUR_ID,
        rng=random.Random(7),
        now=T0,
        **kw,  # type: ignore[arg-type]
    )


def split(data: bytes, sizes: list[int] | None) -> Iterator[bytes]:
    if not sizes:
        yield data
        return
    pos, n = 0, 0
    while pos < len(data):
        size = sizes[n % len(sizes)]
        yield data[pos : pos + size]
        pos, n = pos + size, n + 1


def exchange(
    m: ProbeMachine[str], peer: ScriptedPeer, sizes: list[int] | None = None
) -> ProbeResult[str]:
    """Run the probe to its end: each answer fed in pieces of `sizes` (None: whole)."""
    now = T0 + 1
    m.connected(LOCAL, now, "connected")
    for rounds in range(1, 20_000):
        if m.done:
            break
        timer = m.get_timer()
        assert timer is not None, "a probe that is not done always has a timer"
        out = m.data_to_send()
        reply = peer.receive(out) if out else b""
        if reply or peer.closed:
            now += 0.001
            for chunk in split(reply, sizes):
                m.receive_data(chunk, now, f"round {rounds}")
            if peer.closed:
                m.receive_data(b"", now, f"round {rounds}")
        else:
            now = max(now, timer)
            m.handle_timer(now)
    result = m.result
    assert result is not None, "the probe ran on without end"
    return result


BYTEWISE = pytest.mark.parametrize("sizes", [None, [1]], ids=["whole", "byte-by-byte"])


# --------------------------------------------------------------------------
# Possession proven, or not


@BYTEWISE
def test_seeder_proves_possession(sizes: list[int] | None) -> None:
    t = v1_torrent(content(5 * PIECE + 1000, 1))
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=3), ScriptedPeer(t), sizes)
    assert r.error is None
    assert r.pieces_verified == 3 and r.pieces_failed == 0 and r.proof
    assert r.have_fraction == 1.0 and r.pieces_held == r.num_pieces == 6
    assert r.client == "Scripted 1.0" and r.peer_id == PEER_ID
    assert r.listen_port == 6881 and r.yourip == LOCAL[0]
    assert (r.local_ip, r.local_port) == LOCAL
    assert r.handshake_infohash == ih
    assert {"extension", "fast"} <= set(r.reserved_bits)
    # The caller's stamps, untouched: connected, the first answer, the first block.
    assert r.connected_at == "connected" and r.handshake_at == "round 1"
    assert r.first_data_at is not None and r.first_data_at.startswith("round ")
    assert r.first_data_at != "round 1"
    assert r.finished_at is None  # the caller's to stamp


def test_whole_and_byte_by_byte_give_the_same_result() -> None:
    t = v1_torrent(content(4 * PIECE - 5, 2))
    ih = t.meta.infohash_v1
    assert ih is not None
    results = [
        exchange(machine(ih, pieces_to_verify=2), ScriptedPeer(t), sizes)
        for sizes in (None, [1], [7, 1, 300])
    ]
    assert results[0].info_dict == t.info
    assert results[0] == results[1] == results[2]


def test_liar_fails_verification() -> None:
    t = v1_torrent(content(5 * PIECE, 3))
    ih = t.meta.infohash_v1
    assert ih is not None
    peer = ScriptedPeer(t, Script(blocks="corrupt"))
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=3), peer)
    assert r.error is None
    assert r.pieces_failed == 3 and r.pieces_verified == 0 and not r.proof
    assert r.bytes_downloaded == 3 * PIECE


def test_pieces_are_chosen_among_those_claimed_within_the_byte_budget() -> None:
    t = v1_torrent(content(10 * PIECE, 4))
    ih = t.meta.infohash_v1
    assert ih is not None
    peer = ScriptedPeer(t, Script(possession="bitfield", held=frozenset({2, 7})))
    limits = ProbeLimits(max_verify_bytes=PIECE)
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=5, limits=limits), peer)
    assert r.error is None
    assert r.pieces_held == 2 and r.have_fraction == 0.2
    assert r.pieces_verified == 1 and r.bytes_downloaded == PIECE
    assert peer.served == 1


def test_leecher_holding_nothing_is_asked_for_nothing() -> None:
    t = v1_torrent(content(3 * PIECE, 5))
    ih = t.meta.infohash_v1
    assert ih is not None
    peer = ScriptedPeer(t, Script(possession="have_none"))
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=3), peer)
    assert r.error is None and r.have_fraction == 0.0 and r.pieces_held == 0
    assert r.bytes_downloaded == 0 and peer.served == 0


# --------------------------------------------------------------------------
# Metadata and BEP 52 piece layers


@BYTEWISE
def test_metadata_fetched_then_pieces_verified(sizes: list[int] | None) -> None:
    t = v1_torrent(content(3 * PIECE + 17, 6))
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(machine(ih, pieces_to_verify=2), ScriptedPeer(t), sizes)
    assert r.error is None
    assert r.info_dict == t.info and r.metadata == t.meta
    assert r.pieces_verified == 2 and r.proof


@pytest.mark.parametrize(
    ("script", "detail"),
    [
        (Script(metadata="reject"), "peer rejected a metadata request"),
        (Script(metadata="none"), "peer offers no ut_metadata"),
    ],
)
def test_metadata_refused_is_bad_metadata(script: Script, detail: str) -> None:
    t = v1_torrent(content(2 * PIECE, 7))
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(machine(ih, pieces_to_verify=1), ScriptedPeer(t, script))
    assert r.error == ProbeError(ProbeErrorKind.BAD_METADATA, "metadata", detail)
    assert r.have_fraction == 1.0  # have_all needs no piece count


def test_metadata_that_does_not_hash_to_the_infohash_is_refused() -> None:
    t = v1_torrent(content(2 * PIECE, 8))
    other = v1_torrent(content(2 * PIECE, 9))
    ih = other.meta.infohash_v1
    assert ih is not None
    # A peer that answers our name and serves another torrent's info dictionary.
    peer = ScriptedPeer(t, Script(answer=ih))
    r = exchange(machine(ih, fetch_metadata=True, pieces_to_verify=0), peer)
    assert r.error is not None and r.error.kind is ProbeErrorKind.BAD_METADATA
    assert r.error.detail == "info dictionary does not hash to the infohash"
    assert r.metadata is None and r.info_dict is None


@pytest.mark.parametrize("held", [range(0, 512), range(512, 600)], ids=["chunk-0", "chunk-1"])
def test_bare_v2_info_gets_its_layer_over_bep52_and_proves_it(held: range) -> None:
    # 600 pieces: the layer comes in two chunks of 512, each proven by an uncle.
    t = v2_torrent(content(600 * PIECE - 100, 10))
    ih = t.meta.infohash_v2
    assert ih is not None and len(t.layer) == 600
    peer = ScriptedPeer(t, Script(possession="bitfield", held=frozenset(held)))
    r = exchange(machine(ih, pieces_to_verify=4), peer)
    assert r.error is None
    assert r.pieces_verified == 4 and r.pieces_failed == 0 and r.pieces_unavailable == 0


@pytest.mark.parametrize("hashes", ["forge", "reject", "silent"])
def test_layer_that_cannot_be_proven_leaves_pieces_unavailable(hashes: str) -> None:
    t = v2_torrent(content(40 * PIECE, 11))
    ih = t.meta.infohash_v2
    assert ih is not None
    peer = ScriptedPeer(t, Script(hashes=hashes))
    r = exchange(machine(ih, pieces_to_verify=3), peer)
    assert r.error is None
    assert r.pieces_unavailable == 3 and r.pieces_verified == 0 and r.bytes_downloaded == 0
    assert peer.served == 0


# --------------------------------------------------------------------------
# Names: the one asked, a hybrid's other, and another torrent's


def test_wrong_infohash_stops_at_the_handshake() -> None:
    t = v1_torrent(content(2 * PIECE, 12))
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(machine(ih, torrent=t.meta), ScriptedPeer(t, Script(answer=b"\x01" * 20)))
    assert r.error == ProbeError(
        ProbeErrorKind.WRONG_INFOHASH, "handshake", f"peer answered infohash {'01' * 20}"
    )
    assert r.handshake_infohash == b"\x01" * 20 and r.handshake_at == "round 1"
    assert r.pieces_verified == 0 and r.bytes_downloaded == 0


@BYTEWISE
def test_hybrid_answered_with_its_truncated_v2_name_is_the_same_torrent(
    sizes: list[int] | None,
) -> None:
    t = v2_torrent(content(6 * PIECE + 3, 13), hybrid=True)
    v1, v2 = t.meta.infohash_v1, t.meta.infohash_v2
    assert v1 is not None and v2 is not None
    # As libtorrent 2 answers an address that once spoke v2 to it.
    peer = ScriptedPeer(t, Script(answer=v2[:20]))
    r = exchange(machine(v1, torrent=t.meta, pieces_to_verify=3), peer, sizes)
    assert r.error is None and r.infohash == v1
    assert r.handshake_infohash == v2[:20]
    assert r.pieces_verified == 3 and r.proof


def test_hybrid_alias_lets_a_probe_without_metadata_accept_either_name() -> None:
    t = v2_torrent(content(3 * PIECE, 14), hybrid=True)
    v1, v2 = t.meta.infohash_v1, t.meta.infohash_v2
    assert v1 is not None and v2 is not None
    for asked, answer in ((v1, v2[:20]), (v2, v1)):
        peer = ScriptedPeer(t, Script(answer=answer))
        # Without knowing the other name the answer is another torrent's ...
        alone = exchange(machine(asked, pieces_to_verify=1), peer)
        assert alone.error is not None and alone.error.kind is ProbeErrorKind.WRONG_INFOHASH
        # ... with it, the same torrent, and the metadata proves it.
        peer = ScriptedPeer(t, Script(answer=answer))
        r = exchange(machine(asked, pieces_to_verify=1, aliases=[v1, v2]), peer)
        assert r.error is None and r.info_dict == t.info and r.proof
        assert r.handshake_infohash == answer


# --------------------------------------------------------------------------
# Every phase has its time limit


def test_no_connection_in_time() -> None:
    m = machine(b"\x02" * 20)
    assert m.phase == "connect" and m.get_timer() == T0 + 5
    m.handle_timer(T0 + 4.9)
    assert not m.done
    m.handle_timer(T0 + 5)
    r = m.result
    assert r is not None
    assert r.error == ProbeError(ProbeErrorKind.TIMEOUT, "connect", "no connection in 5 s")
    assert r.connected_at is None and r.have_fraction is None and r.pieces_held is None


def test_no_handshake_in_time() -> None:
    m = machine(b"\x02" * 20)
    m.connected(LOCAL, T0 + 1, "c")
    assert m.get_timer() == T0 + 1 + 5
    assert m.data_to_send()[:20] == b"\x13BitTorrent protocol"
    m.handle_timer(T0 + 5.9)
    assert not m.done
    m.handle_timer(T0 + 6)
    assert m.result is not None
    assert m.result.error == ProbeError(ProbeErrorKind.TIMEOUT, "handshake", "no handshake in 5 s")


def test_settling_in_silence_is_no_error() -> None:
    t = v1_torrent(content(2 * PIECE, 15))
    ih = t.meta.infohash_v1
    assert ih is not None
    # BEP 3 lets a peer holding nothing say nothing after its handshake.
    peer = ScriptedPeer(t, Script(extension=False, possession="silent"))
    m = machine(ih, torrent=t.meta, pieces_to_verify=0)
    r = exchange(m, peer)
    assert r.error is None and r.have_fraction == 0.0 and r.pieces_held == 0


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (
            Script(metadata="silent"),
            (ProbeErrorKind.TIMEOUT, "metadata", "metadata incomplete after 15 s"),
        ),
        (Script(unchoke=False), (ProbeErrorKind.CHOKED, "unchoke", "not unchoked within 20 s")),
        (Script(blocks="silent"), (ProbeErrorKind.TIMEOUT, "download", "no block within 10 s")),
        (
            Script(choke_after=1),
            (ProbeErrorKind.CHOKED, "unchoke", "choked mid-download and never unchoked"),
        ),
        (
            Script(close_after_handshake=True),
            (ProbeErrorKind.CLOSED, "settle", "peer closed the connection"),
        ),
    ],
    ids=["metadata", "unchoke", "block", "choked-again", "closed"],
)
def test_each_phase_ends_with_its_typed_error(
    script: Script, error: tuple[ProbeErrorKind, str, str]
) -> None:
    t = v1_torrent(content(4 * PIECE, 16))
    ih = t.meta.infohash_v1
    assert ih is not None
    given_torrent = None if script.metadata == "silent" else t.meta
    r = exchange(machine(ih, torrent=given_torrent, pieces_to_verify=3), ScriptedPeer(t, script))
    assert r.error == ProbeError(*error)
    assert r.pieces_verified <= 1 and r.pieces_failed == 0


def test_the_whole_probe_has_a_time_limit() -> None:
    t = v1_torrent(content(4 * PIECE, 17))
    ih = t.meta.infohash_v1
    assert ih is not None
    timeouts = ProbeTimeouts(handshake=5, settle=2, unchoke=50, total=8)
    peer = ScriptedPeer(t, Script(unchoke=False))
    r = exchange(machine(ih, torrent=t.meta, timeouts=timeouts), peer)
    assert r.error == ProbeError(ProbeErrorKind.TIMEOUT, "unchoke", "probe ran past 8 s")


def test_timer_is_the_nearest_of_phase_and_whole_probe() -> None:
    m = machine(b"\x02" * 20, timeouts=ProbeTimeouts(connect=30, total=10))
    assert m.get_timer() == T0 + 10


# --------------------------------------------------------------------------
# Other peers' ways


def test_rejected_blocks_make_a_piece_unavailable() -> None:
    t = v1_torrent(content(4 * PIECE, 18))
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(
        machine(ih, torrent=t.meta, pieces_to_verify=2), ScriptedPeer(t, Script(blocks="reject"))
    )
    assert r.error is None
    assert r.pieces_unavailable == 2 and r.pieces_verified == 0 and not r.proof


def test_a_peer_asking_us_for_blocks_is_told_no_within_bounds() -> None:
    t = v1_torrent(content(8 * PIECE, 19))
    ih = t.meta.infohash_v1
    assert ih is not None
    m = machine(ih, torrent=t.meta, pieces_to_verify=0, limits=ProbeLimits(max_replies=3))
    peer = ScriptedPeer(t, Script(requests=5))
    m.connected(LOCAL, T0 + 1, "c")
    answer = peer.receive(m.data_to_send())
    m.receive_data(answer, T0 + 2, "a")
    rejects = []
    peer.conn.receive_data(m.data_to_send())
    while (event := peer.conn.next_event()) is not pw.NEED_DATA:
        if isinstance(event, pw.Reject):
            rejects.append(event)
    assert [r.begin for r in rejects] == [0, PIECE, 2 * PIECE]


def test_pex_linger_ends_with_the_first_peers() -> None:
    t = v1_torrent(content(2 * PIECE, 20))
    ih = t.meta.infohash_v1
    assert ih is not None
    pex = tuple((f"198.51.100.{i}", 6881 + i) for i in range(1, 8))
    timeouts = ProbeTimeouts(pex_linger=20)
    peer = ScriptedPeer(t, Script(pex=pex))
    r = exchange(
        machine(ih, torrent=t.meta, timeouts=timeouts, limits=ProbeLimits(max_pex_peers=5)), peer
    )
    assert r.error is None and r.pieces_verified == 1
    assert r.pex_peers == pex[:5]


def test_have_flood_is_bounded_without_a_piece_count() -> None:
    # Lingering for PEX keeps the probe reading until the flood bound trips.
    timeouts = ProbeTimeouts(pex_linger=20)
    m = machine(
        b"\x04" * 20, pieces_to_verify=0, timeouts=timeouts, limits=ProbeLimits(max_haves=10)
    )
    m.connected(LOCAL, T0 + 1, "c")
    reply = pw.Handshake(b"\x04" * 20, PEER_ID, pw.make_reserved(fast=True)).encode()
    reply += pw.encode_message(pw.HaveNone())
    reply += b"".join(pw.encode_message(pw.Have(i)) for i in range(20))
    m.receive_data(reply, T0 + 2, "a")
    r = m.result
    assert r is not None and r.error is not None
    assert (
        r.error.kind is ProbeErrorKind.PROTOCOL and r.error.detail == "more than 10 have messages"
    )


def test_socket_failures_come_from_the_caller() -> None:
    m = machine(b"\x05" * 20)
    m.fail(ProbeErrorKind.REFUSED, "connection refused")
    assert m.done and m.get_timer() is None
    assert m.result is not None
    assert m.result.error == ProbeError(ProbeErrorKind.REFUSED, "connect", "connection refused")
    m.receive_data(b"late", T0 + 1, "late")  # nothing changes once done
    assert m.result.error == ProbeError(ProbeErrorKind.REFUSED, "connect", "connection refused")


def test_arguments_are_checked() -> None:
    t = v1_torrent(content(PIECE, 21))
    with pytest.raises(ValueError, match="infohash"):
        machine(b"\x01" * 19)
    with pytest.raises(ValueError, match="torrent does not match"):
        machine(b"\x01" * 20, torrent=t.meta)


# --------------------------------------------------------------------------
# Whatever the peer sends: a typed result, never an exception or a stall


def frame(mid: int, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, mid) + payload


messages = st.one_of(
    st.builds(frame, st.integers(0, 25), st.binary(max_size=40)),
    st.builds(lambda p: frame(20, b"\x00" + p), st.binary(max_size=60)),
    st.builds(
        lambda d: frame(20, b"\x00" + bencode.encode(d)),
        st.dictionaries(
            st.sampled_from([b"m", b"v", b"p", b"reqq", b"metadata_size", b"yourip"]),
            st.one_of(st.integers(-5, 1 << 40), st.binary(max_size=10)),
            max_size=4,
        ),
    ),
    st.binary(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(
    handshake=st.booleans(),
    body=st.lists(messages, max_size=12),
    cuts=st.lists(st.integers(1, 80), min_size=1, max_size=6),
    fire=st.lists(st.booleans(), max_size=30),
    with_torrent=st.booleans(),
    eof=st.booleans(),
)
def test_any_peer_bytes_end_in_a_typed_result(
    handshake: bool,
    body: list[bytes],
    cuts: list[int],
    fire: list[bool],
    with_torrent: bool,
    eof: bool,
) -> None:
    t = v1_torrent(content(3 * PIECE, 22))
    ih = t.meta.infohash_v1
    assert ih is not None
    m = machine(ih, torrent=t.meta if with_torrent else None, pieces_to_verify=2)
    now = T0 + 1
    m.connected(LOCAL, now, "c")
    data = pw.Handshake(ih, PEER_ID, pw.make_reserved(extension=True, fast=True)).encode()
    data = (data if handshake else b"") + b"".join(body)
    for n, chunk in enumerate(split(data, cuts)):
        now += 0.01
        m.receive_data(chunk, now, f"r{n}")
        m.data_to_send()
        timer = m.get_timer()
        assert m.done or timer is not None
        if timer is not None and n < len(fire) and fire[n]:
            now = max(now, timer)
            m.handle_timer(now)
    if eof:
        m.receive_data(b"", now, "eof")
    # However it stands, the timer brings it to an end in a few steps.
    for _ in range(64):
        timer = m.get_timer()
        if timer is None:
            break
        now = max(now, timer)
        m.handle_timer(now)
        m.data_to_send()
    assert m.done
    r = m.result
    assert r is not None
    assert r.error is None or isinstance(r.error, ProbeError)
    assert r.error is None or r.error.kind in ProbeErrorKind
    assert not r.proof


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 5000), min_size=1, max_size=8))
def test_any_chunking_of_an_honest_exchange_gives_the_same_result(cuts: list[int]) -> None:
    t = v1_torrent(content(3 * PIECE + 5, 23))
    ih = t.meta.infohash_v1
    assert ih is not None
    whole = exchange(machine(ih, pieces_to_verify=2), ScriptedPeer(t))
    assert whole.proof
    assert exchange(machine(ih, pieces_to_verify=2), ScriptedPeer(t), cuts) == whole
