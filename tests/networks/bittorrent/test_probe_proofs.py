"""What a probe keeps for its transcript: each hash check, v2 proof paths, a streamed file.

Sans-I/O, against the scripted peer of test_probe.py.
"""

from __future__ import annotations

import hashlib

import pytest

from atalaya.networks.bittorrent import bencode, merkle
from atalaya.networks.bittorrent.metainfo import parse_torrent
from tests.networks.bittorrent.test_probe import (
    PIECE,
    Script,
    ScriptedPeer,
    Torrent,
    content,
    exchange,
    machine,
    v1_torrent,
    v2_torrent,
)


def own(data: bytes) -> dict[str, bytes]:
    return {
        "md5": hashlib.md5(data).digest(),
        "sha1": hashlib.sha1(data).digest(),
        "sha256": hashlib.sha256(data).digest(),
    }


def test_every_v1_check_is_kept_with_its_times() -> None:
    t = v1_torrent(content(5 * PIECE + 1000, 21))
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=3), ScriptedPeer(t))
    assert len(r.checks) == 3 and r.checks_omitted == 0
    for check in r.checks:
        data = t.data[check.piece * PIECE : (check.piece + 1) * PIECE]
        assert check.algorithm == "sha1" and check.ok
        assert check.computed == check.expected == hashlib.sha1(data).digest()
        assert (check.offset, check.length) == (check.piece * PIECE, len(data))
        assert check.file_index is None and check.proof_path == ()
        assert check.first_byte_at is not None and check.first_byte_at.startswith("round ")
        assert check.last_byte_at is not None and check.last_byte_at.startswith("round ")
    assert r.sent_handshake is not None and r.sent_handshake.infohash == ih
    assert r.have_all and r.extension_raw and bencode.decode(r.extension_raw)


def test_a_liars_checks_say_what_it_sent_and_what_was_expected() -> None:
    t = v1_torrent(content(4 * PIECE, 22))
    ih = t.meta.infohash_v1
    assert ih is not None
    peer = ScriptedPeer(t, Script(blocks="corrupt"))
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=2), peer)
    assert [c.ok for c in r.checks] == [False, False]
    for check in r.checks:
        assert check.expected == t.meta.piece_hash_v1(check.piece)
        assert check.computed != check.expected


def with_layers(t: Torrent) -> Torrent:
    """The same torrent as a .torrent file that carries its piece layers."""
    root = t.meta.files[0].pieces_root
    assert root is not None
    raw = bencode.encode(
        {b"info": bencode.decode(t.info), b"piece layers": {root: b"".join(t.layer)}}
    )
    return Torrent(t.info, parse_torrent(raw), t.layer, t.data)


@pytest.mark.parametrize("given", [False, True], ids=["bare-info", "piece-layers"])
def test_v2_proof_paths_recompute_the_pieces_root(given: bool) -> None:
    # 600 pieces: from a hash request, the path's top hash is the chunk's uncle.
    bare = v2_torrent(content(600 * PIECE - 100, 23))
    t = with_layers(bare) if given else bare
    ih = t.meta.infohash_v2
    root = t.meta.files[0].pieces_root
    assert ih is not None and root is not None
    held = frozenset(range(500, 530))  # across the two chunks of 512
    peer = ScriptedPeer(t, Script(possession="bitfield", held=held))
    r = exchange(machine(ih, torrent=t.meta if given else None, pieces_to_verify=8), peer)
    assert r.pieces_verified == 8 and len(r.checks) == 8
    for check in r.checks:
        assert check.algorithm == "sha256" and check.ok and check.file_index == 0
        assert check.offset == check.piece * PIECE
        assert check.expected == t.layer[check.piece]
        assert len(check.proof_path) == 10  # 600 pieces pad to 1024
        assert merkle.root_from_proof(check.expected, check.piece, check.proof_path) == root
        assert check.proof_path == tuple(merkle.proof_path(list(t.layer), check.piece, 0))


def test_a_one_piece_file_is_its_own_root() -> None:
    t = v2_torrent(content(PIECE - 10, 24))
    ih = t.meta.infohash_v2
    assert ih is not None
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=1), ScriptedPeer(t))
    (check,) = r.checks
    assert check.ok and check.proof_path == ()
    assert check.expected == t.meta.files[0].pieces_root


def test_a_hybrid_piece_is_checked_both_ways_when_its_layer_is_known() -> None:
    bare = v2_torrent(content(3 * PIECE + 5, 25), hybrid=True)
    ih = bare.meta.infohash_v1
    assert ih is not None
    t = with_layers(bare)
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=4), ScriptedPeer(t))
    assert sorted(c.algorithm for c in r.checks) == ["sha1"] * 4 + ["sha256"] * 4
    assert all(c.ok for c in r.checks)
    # A bare hybrid info is verified by its v1 hashes; no layer is asked for.
    r = exchange(machine(ih, torrent=bare.meta, pieces_to_verify=4), ScriptedPeer(bare))
    assert [c.algorithm for c in r.checks] == ["sha1"] * 4


@pytest.mark.parametrize("sizes", [None, [1], [5, 700]], ids=["whole", "bytes", "odd"])
def test_the_whole_file_streams_through_its_hashes(sizes: list[int] | None) -> None:
    data = content(7 * PIECE + 333, 26)
    t = v1_torrent(data)
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=1, full_file=0), ScriptedPeer(t))
    streamed = r.full_file
    assert streamed is not None and streamed.complete
    assert streamed.digests == own(data) and streamed.received == len(data)
    assert r.pieces_verified == t.meta.num_pieces == 8
    assert streamed.first_byte_at is not None and streamed.last_byte_at is not None


def test_a_liars_whole_file_is_not_the_file() -> None:
    data = content(3 * PIECE, 27)
    t = v1_torrent(data)
    ih = t.meta.infohash_v1
    assert ih is not None
    peer = ScriptedPeer(t, Script(blocks="corrupt"))
    r = exchange(machine(ih, torrent=t.meta, full_file=0), peer)
    assert r.full_file is not None and r.full_file.complete
    assert r.full_file.digests["sha1"] != own(data)["sha1"]


def test_a_file_the_peer_does_not_claim_whole_is_not_streamed() -> None:
    t = v1_torrent(content(4 * PIECE, 28))
    ih = t.meta.infohash_v1
    assert ih is not None
    peer = ScriptedPeer(t, Script(possession="bitfield", held=frozenset({0, 1, 2})))
    r = exchange(machine(ih, torrent=t.meta, pieces_to_verify=2, full_file=0), peer)
    assert r.full_file is None
    assert r.pieces_verified == 2  # the usual random pieces instead


def test_rejected_blocks_leave_the_file_incomplete() -> None:
    t = v1_torrent(content(3 * PIECE, 29))
    ih = t.meta.infohash_v1
    assert ih is not None
    r = exchange(machine(ih, torrent=t.meta, full_file=0), ScriptedPeer(t, Script(blocks="reject")))
    assert r.full_file is not None and not r.full_file.complete
    assert r.full_file.digests == {}
