"""Probing peers: real libtorrent (and Transmission) peers, and hostile ones.

Tests marked `lab` run against real third-party peers; the others use only
the hostile test peers from atalaya.lab.hostile_peer. Everything listens on
127.60.x.y with ports picked at run time.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atalaya.lab.files import random_bytes, write_random_file
from atalaya.lab.hostile_peer import Behaviour, HostilePeer
from atalaya.lab.ports import free_port
from atalaya.networks.bittorrent import bencode
from atalaya.networks.bittorrent.metainfo import Metainfo, parse_info, parse_torrent
from atalaya.observe.bittorrent.probe import (
    ProbeErrorKind,
    ProbeResult,
    ProbeTimeouts,
    probe_peer,
)

OBSERVER_IP = "127.60.0.10"
PEER_ID = b"-AY0001-" + b"0" * 12
TIMEOUTS = ProbeTimeouts(
    connect=3, handshake=3, settle=3, metadata=10, hashes=5, unchoke=5, block=5, total=30
)
PIECE = 16384
CONTENT_SIZE = 300_000  # 19 pieces of 16 KiB, the last one short


async def _probe(ip: str, port: int, infohash: bytes, **kw: object) -> ProbeResult:
    kw.setdefault("bind_ip", OBSERVER_IP)
    kw.setdefault("peer_id", PEER_ID)
    kw.setdefault("rng", random.Random(7))
    kw.setdefault("timeouts", TIMEOUTS)
    timeouts = kw["timeouts"]
    assert isinstance(timeouts, ProbeTimeouts)
    # The probe bounds itself; this outer bound only turns a hang into a failure.
    return await asyncio.wait_for(
        probe_peer(ip, port, infohash, **kw),  # type: ignore[arg-type]
        timeouts.total + timeouts.pex_linger + 15,
    )


def probe(ip: str, port: int, infohash: bytes, **kw: object) -> ProbeResult:
    return asyncio.run(_probe(ip, port, infohash, **kw))


def assert_times(r: ProbeResult) -> None:
    assert r.connected_at is not None and r.handshake_at is not None
    assert r.connected_at.tzinfo is UTC and r.handshake_at.tzinfo is UTC
    assert r.finished_at is not None
    assert r.connected_at <= r.handshake_at <= r.finished_at
    if r.first_data_at is not None:
        assert r.handshake_at <= r.first_data_at <= r.finished_at


def synthetic_v1(content: bytes, piece_length: int = PIECE) -> Metainfo:
    """A v1 info dictionary built by hand, for tests that need no libtorrent."""
    pieces = b"".join(
        hashlib.sha1(content[i : i + piece_length]).digest()
        for i in range(0, len(content), piece_length)
    )
    info = bencode.encode(
        {
            b"name": b"synthetic.bin",
            b"length": len(content),
            b"piece length": piece_length,
            b"pieces": pieces,
        }
    )
    return parse_info(info)


# --------------------------------------------------------------------------
# Hostile peers only (no third-party software)


def test_liar_fails_verification() -> None:
    torrent = synthetic_v1(random_bytes(CONTENT_SIZE, 1))
    assert torrent.infohash_v1 is not None

    async def run() -> tuple[ProbeResult, int]:
        async with HostilePeer("127.60.1.1", "liar", infohash=torrent.infohash_v1) as liar:
            r = await _probe(
                liar.ip, liar.port, torrent.infohash_v1, torrent=torrent, pieces_to_verify=3
            )
            return r, liar.blocks_served

    r, served = asyncio.run(run())
    assert r.error is None
    assert r.have_fraction == 1.0
    assert r.pieces_failed == 3 and r.pieces_verified == 0
    assert not r.proof
    # One block per 16 KiB piece; the last piece is short.
    assert served == 3
    assert r.bytes_downloaded in (3 * PIECE, 2 * PIECE + CONTENT_SIZE % PIECE)
    assert r.client == "Hostile liar 1.0"
    assert r.peer_id == b"-HP0001-hostilepeer!"
    assert r.local_ip == OBSERVER_IP
    assert_times(r)


def test_liar_without_fast_extension_sends_full_bitfield() -> None:
    # The liar claims every piece with a bitfield when the client lacks BEP 6:
    # exercise that path through the codec directly against the liar.
    torrent = synthetic_v1(random_bytes(CONTENT_SIZE, 2))
    assert torrent.infohash_v1 is not None
    from atalaya.networks.bittorrent import peerwire as pw

    async def run() -> list[pw.Event]:
        async with HostilePeer(
            "127.60.1.2", "liar", infohash=torrent.infohash_v1, num_pieces=torrent.num_pieces
        ) as liar:
            reader, writer = await asyncio.open_connection(liar.ip, liar.port)
            conn = pw.PeerConnection(num_pieces=torrent.num_pieces)
            writer.write(conn.send(pw.Handshake(torrent.infohash_v1, PEER_ID)))
            events: list[pw.Event] = []
            async with asyncio.timeout(10):
                while not any(isinstance(e, pw.Unchoke) for e in events):
                    conn.receive_data(await reader.read(65536))
                    while (ev := conn.next_event()) is not pw.NEED_DATA:
                        events.append(ev)
            writer.close()
            return events

    events = asyncio.run(run())
    (bitfield,) = [e for e in events if isinstance(e, pw.Bitfield)]
    assert bitfield.count() == torrent.num_pieces


def test_unknown_torrent_without_metadata_is_a_typed_error() -> None:
    torrent = synthetic_v1(random_bytes(CONTENT_SIZE, 3))
    assert torrent.infohash_v1 is not None

    async def run() -> ProbeResult:
        async with HostilePeer("127.60.1.3", "liar", infohash=torrent.infohash_v1) as liar:
            return await _probe(liar.ip, liar.port, torrent.infohash_v1, pieces_to_verify=2)

    r = asyncio.run(run())
    assert r.error is not None and r.error.kind is ProbeErrorKind.BAD_METADATA
    assert r.pieces_verified == 0 and r.pieces_failed == 0 and not r.proof
    assert r.have_fraction == 1.0  # have_all needs no piece count


def test_wrong_infohash() -> None:
    async def run() -> ProbeResult:
        async with HostilePeer("127.60.1.4", "liar", infohash=b"\x01" * 20) as liar:
            return await _probe(liar.ip, liar.port, b"\x02" * 20, pieces_to_verify=1)

    r = asyncio.run(run())
    assert r.error is not None and r.error.kind is ProbeErrorKind.WRONG_INFOHASH
    assert r.error.phase == "handshake"
    assert r.pieces_verified == 0


def test_refused() -> None:
    port = free_port("127.60.1.5")  # nothing listens there
    r = probe("127.60.1.5", port, b"\x03" * 20)
    assert r.error is not None and r.error.kind is ProbeErrorKind.REFUSED
    assert r.connected_at is None and r.have_fraction is None


HOSTILE: list[tuple[Behaviour, ProbeErrorKind, str]] = [
    ("malformed_extension", ProbeErrorKind.PROTOCOL, "extension handshake"),
    ("oversized", ProbeErrorKind.PROTOCOL, "exceeds limit"),
    ("staller", ProbeErrorKind.TIMEOUT, "no handshake"),
    ("trickler", ProbeErrorKind.TIMEOUT, "no handshake"),
    ("have_flood", ProbeErrorKind.PROTOCOL, "have messages"),
]


def test_all_hostile_peers_at_once_give_typed_errors() -> None:
    torrent = synthetic_v1(random_bytes(CONTENT_SIZE, 4))
    ih = torrent.infohash_v1
    assert ih is not None

    async def run() -> list[ProbeResult]:
        peers = [
            HostilePeer(f"127.60.2.{i + 1}", behaviour, infohash=ih, num_pieces=torrent.num_pieces)
            for i, (behaviour, _, _) in enumerate(HOSTILE)
        ]
        for peer in peers:
            await peer.start()
        try:
            return await asyncio.gather(
                *(_probe(p.ip, p.port, ih, torrent=torrent, pieces_to_verify=2) for p in peers)
            )
        finally:
            for peer in peers:
                await peer.stop()

    for r, (behaviour, kind, detail) in zip(asyncio.run(run()), HOSTILE, strict=True):
        assert r.error is not None, behaviour
        assert r.error.kind is kind, (behaviour, r.error)
        assert detail in r.error.detail, (behaviour, r.error)
        assert r.pieces_verified == 0 and not r.proof


def test_have_flood_is_bounded_without_a_piece_count() -> None:
    async def run() -> ProbeResult:
        async with HostilePeer("127.60.1.6", "have_flood", infohash=b"\x04" * 20) as flooder:
            # Lingering for PEX keeps the probe reading until the flood bound trips.
            timeouts = ProbeTimeouts(connect=3, handshake=3, settle=1, pex_linger=25, total=30)
            return await _probe(
                flooder.ip, flooder.port, b"\x04" * 20, pieces_to_verify=0, timeouts=timeouts
            )

    r = asyncio.run(run())
    assert r.error is not None and r.error.kind is ProbeErrorKind.PROTOCOL
    assert "have messages" in r.error.detail
    assert r.pieces_held is not None and r.pieces_held <= 1024  # the flooder's index range


# --------------------------------------------------------------------------
# Real libtorrent peers


@dataclass
class Swarm:
    seeder: object  # LibtorrentPeer
    ip: str
    port: int
    torrents: dict[str, Metainfo]


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.torrents import make_torrent

    root = tmp_path_factory.mktemp("probe-swarm")
    content = write_random_file(root / "seed" / "content.bin", CONTENT_SIZE, seed=61)
    raw = {v: make_torrent(content, version=v, piece_size=PIECE) for v in ("v1", "v2", "hybrid")}
    # A folder of files that do not end on piece boundaries: v2 starts each file
    # on a new piece, a hybrid pads the v1 layout to match (BEP 47).
    folder = root / "seed" / "folder"
    for i, size in enumerate((40_000, 70_000, 5_000, 16_384)):
        write_random_file(folder / "sub" / f"f{i}.bin", size, seed=70 + i)
    for version in ("v1", "v2", "hybrid"):
        raw[f"{version}-multi"] = make_torrent(folder, version=version, piece_size=PIECE)
    with LibtorrentPeer("127.60.0.1", root / "seeder", dht=False) as seeder:
        for torrent in raw.values():
            seeder.seed(torrent, root / "seed")
        assert seeder.wait_until("seeding", 30)
        yield Swarm(seeder, seeder.ip, seeder.port, {v: parse_torrent(t) for v, t in raw.items()})


def infohashes(torrent: Metainfo) -> list[bytes]:
    return [h for h in (torrent.infohash_v1, torrent.infohash_v2) if h]


@pytest.mark.lab
@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_seeder_proves_possession(swarm: Swarm, version: str) -> None:
    torrent = swarm.torrents[version]
    for ih in infohashes(torrent):  # a hybrid answers to both
        r = probe(swarm.ip, swarm.port, ih, torrent=torrent, pieces_to_verify=5)
        assert r.error is None, r.error
        assert r.have_fraction == 1.0 and r.pieces_held == torrent.num_pieces == 19
        assert r.pieces_verified == 5 and r.pieces_failed == 0 and r.proof
        assert r.bytes_downloaded >= 4 * PIECE
        assert r.client is not None and "libtorrent" in r.client
        assert r.client_from_peer_id == "libtorrent 2.1.1"
        assert r.peer_id is not None and r.peer_id.startswith(b"-LT")
        assert r.yourip == OBSERVER_IP and r.local_ip == OBSERVER_IP
        assert r.local_port is not None and r.metadata_size == torrent.info_size
        assert {"extension", "fast"} <= set(r.reserved_bits)
        assert r.info_dict is None  # the torrent was given; nothing fetched
        assert_times(r)
        assert r.first_data_at is not None


@pytest.mark.lab
@pytest.mark.parametrize("version", ["v1-multi", "v2-multi", "hybrid-multi"])
@pytest.mark.parametrize("given", [True, False], ids=["torrent", "bare-info"])
def test_multi_file_seeder_every_piece_verifies(swarm: Swarm, version: str, given: bool) -> None:
    torrent = swarm.torrents[version]
    assert len([f for f in torrent.files if not f.pad]) == 4
    for ih in infohashes(torrent):
        r = probe(
            swarm.ip,
            swarm.port,
            ih,
            torrent=torrent if given else None,
            pieces_to_verify=torrent.num_pieces,
        )
        assert r.error is None, r.error
        assert r.pieces_verified == torrent.num_pieces and r.pieces_failed == 0
        assert r.pieces_unavailable == 0


@pytest.mark.lab
@pytest.mark.parametrize("version", ["v1", "v2", "hybrid"])
def test_metadata_from_seeder_matches_infohash(swarm: Swarm, version: str) -> None:
    torrent = swarm.torrents[version]
    for ih in infohashes(torrent):
        r = probe(swarm.ip, swarm.port, ih, fetch_metadata=True, pieces_to_verify=3)
        assert r.error is None, r.error
        assert r.info_dict is not None and r.metadata is not None
        digest = hashlib.sha1 if len(ih) == 20 else hashlib.sha256
        assert digest(r.info_dict).digest() == ih
        assert r.metadata.infohash_v1 == torrent.infohash_v1
        assert r.metadata.infohash_v2 == torrent.infohash_v2
        # A bare v2 info dictionary has no piece layers: hashes came over BEP 52.
        assert r.pieces_verified == 3 and r.pieces_failed == 0
        assert r.have_fraction == 1.0


@pytest.mark.lab
@pytest.mark.slow
def test_bare_v2_over_512_pieces_verifies_every_piece(tmp_path: Path) -> None:
    # 605 pieces: the piece layer comes in two BEP 52 chunks, each proven by an uncle.
    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.torrents import make_torrent

    content = write_random_file(tmp_path / "seed" / "big.bin", 605 * PIECE - 100, seed=62)
    raw = make_torrent(content, version="v2", piece_size=PIECE)
    torrent = parse_torrent(raw)
    assert torrent.infohash_v2 is not None and torrent.num_pieces == 605
    with LibtorrentPeer("127.60.0.6", tmp_path / "seeder", dht=False) as seeder:
        seeder.seed(raw, tmp_path / "seed")
        assert seeder.wait_until("seeding", 60)
        r = probe(seeder.ip, seeder.port, torrent.infohash_v2, pieces_to_verify=605)
    assert r.error is None, r.error
    assert r.pieces_verified == 605 and r.pieces_failed == 0 and r.pieces_unavailable == 0


@pytest.mark.lab
@pytest.mark.parametrize("version", ["v1", "hybrid"])
def test_leecher_holding_nothing(tmp_path: Path, swarm: Swarm, version: str) -> None:
    import libtorrent as lt

    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.torrents import make_torrent

    content = write_random_file(tmp_path / "src" / "content.bin", CONTENT_SIZE, seed=61)
    raw = make_torrent(content, version=version, piece_size=PIECE)  # type: ignore[arg-type]
    torrent = parse_torrent(raw)
    with LibtorrentPeer("127.60.0.2", tmp_path / "leecher", dht=False) as leecher:
        leecher.leech(raw, tmp_path / "empty")
        (handle,) = leecher.torrents().values()
        deadline = time.monotonic() + 20
        while handle.status().state != lt.torrent_status.downloading:
            assert time.monotonic() < deadline, "leecher never started"
            time.sleep(0.05)
        for ih in infohashes(torrent):
            r = probe(leecher.ip, leecher.port, ih, torrent=torrent, pieces_to_verify=3)
            assert r.error is None, r.error
            assert r.have_fraction == 0.0 and r.pieces_held == 0
            assert r.pieces_verified == 0 and r.pieces_failed == 0 and not r.proof
            assert r.bytes_downloaded == 0


@pytest.mark.lab
@pytest.mark.parametrize(("behaviour", "kind", "detail"), HOSTILE)
def test_hostile_peer_does_not_disturb_a_concurrent_probe(
    swarm: Swarm, behaviour: Behaviour, kind: ProbeErrorKind, detail: str
) -> None:
    torrent = swarm.torrents["v1"]
    ih = torrent.infohash_v1
    assert ih is not None

    async def run() -> tuple[ProbeResult, ProbeResult]:
        async with HostilePeer(
            "127.60.3.1", behaviour, infohash=ih, num_pieces=torrent.num_pieces
        ) as hostile:
            bad, good = await asyncio.gather(
                _probe(hostile.ip, hostile.port, ih, torrent=torrent, pieces_to_verify=2),
                _probe(swarm.ip, swarm.port, ih, torrent=torrent, pieces_to_verify=4),
            )
            return bad, good

    bad, good = asyncio.run(run())
    assert bad.error is not None and bad.error.kind is kind, bad.error
    assert detail in bad.error.detail
    assert bad.pieces_verified == 0 and not bad.proof
    assert good.error is None and good.pieces_verified == 4 and good.pieces_failed == 0


@pytest.mark.lab
def test_liar_and_seeder_side_by_side(swarm: Swarm) -> None:
    torrent = swarm.torrents["hybrid"]
    ih = torrent.infohash_v1
    assert ih is not None

    async def run() -> tuple[ProbeResult, ProbeResult]:
        async with HostilePeer("127.60.3.2", "liar", infohash=ih) as liar:
            bad, good = await asyncio.gather(
                _probe(liar.ip, liar.port, ih, torrent=torrent, pieces_to_verify=3),
                _probe(swarm.ip, swarm.port, ih, torrent=torrent, pieces_to_verify=3),
            )
            return bad, good

    bad, good = asyncio.run(run())
    assert bad.pieces_failed == 3 and bad.pieces_verified == 0 and not bad.proof
    assert good.pieces_verified == 3 and good.pieces_failed == 0 and good.proof


@pytest.mark.lab
def test_pex_reports_the_seeders_other_peer(tmp_path: Path) -> None:
    import libtorrent as lt

    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.torrents import make_torrent

    content = write_random_file(tmp_path / "seed" / "content.bin", CONTENT_SIZE, seed=63)
    raw = make_torrent(content, version="v1", piece_size=PIECE)
    torrent = parse_torrent(raw)
    assert torrent.infohash_v1 is not None
    with (
        LibtorrentPeer("127.60.0.4", tmp_path / "seeder", dht=False) as seeder,
        LibtorrentPeer("127.60.0.5", tmp_path / "leecher", dht=False) as leecher,
    ):
        seeder.seed(raw, tmp_path / "seed")
        assert seeder.wait_until("seeding", 30)
        # A slow leecher stays a leecher: two seeds would drop their connection.
        leecher.session.apply_settings(
            {"ignore_limits_on_local_network": False, "download_rate_limit": 1000}
        )
        leecher.leech(raw, tmp_path / "download")
        # libtorrent passes on peers it connected to itself (their listen port is known).
        (handle,) = seeder.torrents().values()
        handle.connect_peer((leecher.ip, leecher.port))
        pending = lt.peer_info.handshake | lt.peer_info.connecting
        deadline = time.monotonic() + 20
        # The first PEX message lists only peers past their handshake.
        while not [p for p in handle.get_peer_info() if not p.flags & pending]:
            assert time.monotonic() < deadline, "seeder never connected to the leecher"
            time.sleep(0.05)
        timeouts = ProbeTimeouts(
            connect=3, handshake=3, settle=1, unchoke=5, block=5, pex_linger=20, total=40
        )
        r = probe(seeder.ip, seeder.port, torrent.infohash_v1, torrent=torrent, timeouts=timeouts)
    assert r.error is None, r.error
    assert (leecher.ip, leecher.port) in r.pex_peers
    assert r.pieces_verified == 1


@pytest.mark.lab
def test_transmission_seeder_gives_verified_pieces(tmp_path: Path) -> None:
    from atalaya.lab.torrents import make_torrent
    from atalaya.lab.transmission import TransmissionPeer
    from atalaya.networks.bittorrent.peerwire import make_peer_id

    content = write_random_file(tmp_path / "seed" / "content.bin", CONTENT_SIZE, seed=64)
    raw = make_torrent(content, version="v1", piece_size=PIECE)  # Transmission 3.00: v1 only
    torrent = parse_torrent(raw)
    ih = torrent.infohash_v1
    assert ih is not None
    rng = random.Random(9)
    # Transmission unchokes on its 10-second rechoke timer.
    timeouts = ProbeTimeouts(connect=3, handshake=3, settle=3, metadata=10, unchoke=25, total=45)
    with TransmissionPeer("127.60.0.7", tmp_path / "transmission") as transmission:
        assert transmission.seed(raw, tmp_path / "seed") == ih.hex()
        assert transmission.wait_until_seeding(30)
        # Transmission closes a new connection from an address that just left, and
        # one that reuses a peer id: each probe gets its own source and peer id.
        given = probe(
            transmission.ip,
            transmission.port,
            ih,
            torrent=torrent,
            pieces_to_verify=5,
            peer_id=make_peer_id(b"-AY0001-", rng),
            timeouts=timeouts,
        )
        bare = probe(
            transmission.ip,
            transmission.port,
            ih,
            pieces_to_verify=3,
            peer_id=make_peer_id(b"-AY0001-", rng),
            bind_ip="127.60.0.11",
            timeouts=timeouts,
        )
    assert given.error is None, given.error
    assert given.have_fraction == 1.0 and given.pieces_held == torrent.num_pieces
    assert given.pieces_verified == 5 and given.pieces_failed == 0 and given.proof
    assert given.client == "Transmission 3.00" and given.client_from_peer_id == "Transmission 3.00"
    assert given.peer_id is not None and given.peer_id.startswith(b"-TR3000-")
    assert given.listen_port == transmission.port
    assert given.local_ip == OBSERVER_IP
    assert_times(given)
    # ut_metadata from Transmission, trusted only because it hashes to the infohash.
    assert bare.error is None, bare.error
    assert bare.info_dict is not None and hashlib.sha1(bare.info_dict).digest() == ih
    assert bare.pieces_verified == 3 and bare.pieces_failed == 0


# --------------------------------------------------------------------------
# The clock given is the one results are stamped with


def test_times_come_from_the_clock_given() -> None:
    # A made-up clock far from now: every stamp must be one it gave.
    ticks = iter(datetime(2001, 2, 3, 4, 5, 6, n, tzinfo=UTC) for n in range(1, 1_000_000))
    given: list[datetime] = []

    def clock() -> datetime:
        given.append(next(ticks))
        return given[-1]

    torrent = synthetic_v1(random_bytes(CONTENT_SIZE, 5))
    ih = torrent.infohash_v1
    assert ih is not None

    async def run() -> ProbeResult:
        async with HostilePeer("127.60.1.7", "liar", infohash=ih) as liar:
            return await _probe(
                liar.ip,
                liar.port,
                ih,
                torrent=torrent,
                pieces_to_verify=1,
                clock=clock,
            )

    r = asyncio.run(run())
    assert r.error is None and r.pieces_failed == 1
    stamps = [r.connected_at, r.handshake_at, r.first_data_at, r.finished_at]
    assert all(s in given for s in stamps)
    assert stamps == sorted(s for s in stamps if s is not None)
    assert r.connected_at == given[0] and r.finished_at == given[-1]


# --------------------------------------------------------------------------
# A hybrid seeder that remembers our address spoke v2 (libtorrent 2, as in qBittorrent)


@pytest.mark.lab
def test_hybrid_seeder_answers_v1_with_its_truncated_v2_name(tmp_path: Path) -> None:
    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.torrents import make_torrent

    content = write_random_file(tmp_path / "seed" / "content.bin", CONTENT_SIZE, seed=65)
    raw = make_torrent(content, version="hybrid", piece_size=PIECE)
    torrent = parse_torrent(raw)
    v1, v2 = torrent.infohash_v1, torrent.infohash_v2
    assert v1 is not None and v2 is not None
    with LibtorrentPeer("127.60.0.8", tmp_path / "seeder", dht=False) as seeder:
        # qBittorrent's default: libtorrent keeps one peer entry per address,
        # and with it which protocol that address last spoke.
        seeder.session.apply_settings({"allow_multiple_connections_per_ip": False})
        seeder.seed(raw, tmp_path / "seed")
        assert seeder.wait_until("seeding", 30)
        first = probe(seeder.ip, seeder.port, v2, torrent=torrent, pieces_to_verify=1)
        assert first.error is None and first.handshake_infohash == v2[:20]
        # Later v1 handshakes from the same address are answered in v2's name ...
        bare = probe(seeder.ip, seeder.port, v1, pieces_to_verify=0)
        assert bare.error is not None and bare.error.kind is ProbeErrorKind.WRONG_INFOHASH
        assert bare.handshake_infohash == v2[:20]
        # ... which is the same torrent: accepted when the torrent or its other name is known.
        given = probe(seeder.ip, seeder.port, v1, torrent=torrent, pieces_to_verify=3)
        aliased = probe(seeder.ip, seeder.port, v1, aliases=[v2], pieces_to_verify=3)
    for r in (given, aliased):
        assert r.error is None, r.error
        assert r.infohash == v1 and r.handshake_infohash == v2[:20]
        assert r.pieces_verified == 3 and r.pieces_failed == 0 and r.proof
    # Fetched under either name, the info dictionary is the one v1 names.
    assert aliased.info_dict is not None and hashlib.sha1(aliased.info_dict).digest() == v1
