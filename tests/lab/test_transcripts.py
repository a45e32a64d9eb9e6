"""Proof transcripts from real peers, checked the way a third party would check them.

A real libtorrent seeder and a real opentracker on 127.97.0.N, a liar (the
hostile test peer) next to them, and the observer: each stored transcript
is read back as bytes, and its hashes are checked against the info
dictionary the observer stored, with nothing but hashlib and bencode:

- v1: each expected hash is the slice of info["pieces"] at its index;
- v2: each expected layer hash, its index in the file and its proof path
  recompute the file's "pieces root" of the info dictionary's file tree
  (a file of more than 512 pieces, so part of the path comes from the
  uncles of a BEP 52 hash request; a file of one piece, whose path is empty).

The same lab then shows the clock: measured against a real chronyd over NTP,
every sighting carries the offset; against a server 5 s off, nothing is
recorded and the run says why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from atalaya.hashsets.fingerprint import fingerprint_file
from atalaya.hashsets.importer import import_hash_set
from atalaya.lab.files import write_random_file
from atalaya.lab.hostile_peer import HostilePeer
from atalaya.networks.bittorrent import bencode, merkle
from atalaya.networks.bittorrent.metainfo import Metainfo, parse_info, parse_torrent
from atalaya.networks.bittorrent.peerwire import make_peer_id
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.bittorrent.observer import BittorrentObserver, ObserverConfig, ObserverStats
from atalaya.observe.bittorrent.probe import ProbeTimeouts
from atalaya.observe.bittorrent.targets import infohash_target
from atalaya.observe.bittorrent.tracker_client import announce
from atalaya.observe.clock import ClockSettings
from atalaya.observe.transcripts import load_transcripts
from atalaya.observe.watchlist import WatchTarget, load_targets
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import proof_transcript, sighting, torrent_metadata
from tests.observe.clock_support import Chronyd, SkewedNtpServer

pytestmark = pytest.mark.lab

PREFIX = "127.97.0"
OBSERVER_IP = f"{PREFIX}.200"
PIECE = 16384
PIECES = 10  # verified per peer: every piece of the hybrid
RUN_CAP = 90.0
TIMEOUTS = ProbeTimeouts(
    connect=5, handshake=5, settle=3, metadata=10, hashes=10, unchoke=10, block=10, total=50
)
# Only the NTP server the test names: no system chrony, no kernel estimate.


# The files the hash set knows, their category, and the torrent that carries each.
KNOWN = {
    "plain.bin": ("severe_abuse", "v1"),
    "big.bin": ("abuse", "v2"),
    "folder/f2.bin": ("exploitative", "hybrid"),
}


def write_hash_set(path: Path, seed: Path, torrents: dict[str, Metainfo]) -> None:
    """A made-up hash set of the lab's files: their own hashes and the torrents' names."""
    fingerprints = ["md5", "sha1", "sha256", "btv2_root", f"btv1_{PIECE}"]
    columns = [*fingerprints, "btih", "btih2", "category", "name"]
    lines = [",".join(columns)]
    for name, (category, version) in KNOWN.items():
        digests = fingerprint_file(seed / name).digests
        torrent = torrents[version]
        row = {c: digests[c].hex() for c in fingerprints}
        row["btih"] = torrent.infohash_v1.hex() if torrent.infohash_v1 else ""
        row["btih2"] = torrent.infohash_v2.hex() if torrent.infohash_v2 and not row["btih"] else ""
        row["category"], row["name"] = category, name.rsplit("/", 1)[-1]
        lines.append(",".join(row[c] for c in columns))
    path.write_text("\n".join(lines) + "\n")


def file_key_of(lab: Lab, name: str) -> str:
    return "sha256:" + fingerprint_file(lab.dir / "seed" / name).digests["sha256"].hex()


def ntp_only(server: str) -> ClockSettings:
    """The NTP server the test names, and no other source (no system chrony, no kernel)."""
    return ClockSettings(use_chrony=False, use_kernel=False, ntp_server=server)


@dataclass
class Lab:
    torrents: dict[str, Metainfo]
    seeder: tuple[str, int]
    tracker_url: str
    engine: Engine
    dir: Path

    def swarm_names(self) -> list[bytes]:
        return [h for t in self.torrents.values() for h in (t.infohash_v1, t.infohash_v2) if h]

    def watched(self) -> dict[str, bytes]:
        """The name each torrent is watched under: v1 for v1 and hybrid, v2 for v2."""
        found = {}
        for name, t in self.torrents.items():
            key = t.infohash_v1 or t.infohash_v2
            assert key is not None
            found[name] = key
        return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.opentracker import OpenTracker
    from atalaya.lab.torrents import make_torrent

    root = tmp_path_factory.mktemp("transcripts-lab")
    seed = root / "seed"
    plain = write_random_file(seed / "plain.bin", 200_000, seed=201)
    # Over 512 pieces: a hash request answers a chunk of the layer and an uncle.
    big = write_random_file(seed / "big.bin", 600 * PIECE + 5_000, seed=202)
    folder = seed / "folder"
    for i, size in enumerate((40_000, 5_000, 70_000)):  # the middle file is one piece
        write_random_file(folder / f"f{i}.bin", size, seed=210 + i)
    raw = {
        "v1": make_torrent(plain, version="v1", piece_size=PIECE),
        "v2": make_torrent(big, version="v2", piece_size=PIECE),
        "hybrid": make_torrent(folder, version="hybrid", piece_size=PIECE),
    }
    torrents = {name: parse_torrent(data) for name, data in raw.items()}
    engine = create_store_engine(f"sqlite:///{root / 'atalaya.db'}")
    upgrade(engine)
    names = [h for t in torrents.values() for h in (t.infohash_v1, t.infohash_v2) if h]

    with (
        OpenTracker(f"{PREFIX}.1", root / "tracker", names) as tracker,
        LibtorrentPeer(f"{PREFIX}.2", root / "seeder", dht=False) as seeder,
    ):
        for data in raw.values():
            seeder.seed(data, seed)
        assert seeder.wait_until("seeding", 60)
        asyncio.run(_announce(tracker.announce_url, (seeder.ip, seeder.port), names))
        write_hash_set(root / "hash-set.csv", seed, torrents)
        import_hash_set(engine, root / "hash-set.csv", fmt="csv")
        yield Lab(torrents, (seeder.ip, seeder.port), tracker.announce_url, engine, root)
    engine.dispose()


async def _announce(url: str, peer: tuple[str, int], names: list[bytes]) -> None:
    rng = random.Random(4)
    for name in names:
        await announce(
            url,
            name,
            peer_id=make_peer_id(b"-LT2110-", rng),
            port=peer[1],
            left=1,
            bind_ip=peer[0],
            timeout=5,
        )


@dataclass
class Run:
    observer: BittorrentObserver
    stats: ObserverStats
    rows: list[dict[str, Any]]
    transcripts: dict[int, bytes]
    liar: tuple[str, int]


def observe(
    lab: Lab, clock: ClockSettings, targets: list[WatchTarget] | None = None, **options: Any
) -> Run:
    if targets is None:
        targets = [infohash_target(ih, "named by the test") for ih in lab.watched().values()]
    config = ObserverConfig(
        bind_ips=(OBSERVER_IP,),
        allowed_networks=("127.0.0.0/8",),
        trackers=(lab.tracker_url,),
        use_dht=False,
        pieces_to_verify=PIECES,
        lookup_interval=5,
        probe_timeouts=TIMEOUTS,
        seed=31,
        clock=clock,
        **options,
    )
    observer = BittorrentObserver(lab.engine, targets, config)

    def rows() -> list[dict[str, Any]]:
        query = select(sighting).where(sighting.c.run_id == observer.run_id)
        with lab.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def done() -> bool:
        # The seeder proven for the three torrents, the liar caught, all of it written.
        s = observer.stats
        return (
            s.verified >= 3
            and s.failed_verification >= 1
            and s.sightings + s.not_evidence >= s.holding
        )

    v1 = lab.watched()["v1"]
    liar_at: list[tuple[str, int]] = []

    async def main() -> ObserverStats:
        stop = asyncio.Event()

        async def watch() -> None:
            while not done():
                await asyncio.sleep(0.2)
            stop.set()

        # The liar claims the v1 torrent and serves wrong bytes.
        async with HostilePeer(f"{PREFIX}.3", "liar", infohash=v1) as liar:
            liar_at.append((liar.ip, liar.port))
            await _announce(lab.tracker_url, liar_at[0], [v1])
            watcher = asyncio.create_task(watch())
            try:
                return await asyncio.wait_for(
                    observer.run(duration=RUN_CAP, stop=stop), RUN_CAP + 30
                )
            finally:
                watcher.cancel()

    stats = asyncio.run(main())
    found = rows()
    with lab.engine.connect() as conn:
        transcripts = load_transcripts(conn, [r["id"] for r in found])
    return Run(observer, stats, found, transcripts, liar_at[0])


@pytest.fixture(scope="module")
def chronyd(lab: Lab) -> Iterator[Chronyd]:
    if not Chronyd.available():
        pytest.skip("chrony is not installed")
    with Chronyd(f"{PREFIX}.50", lab.dir / "chrony") as server:
        yield server


@pytest.fixture(scope="module")
def run(lab: Lab, chronyd: Chronyd) -> Run:
    # Three torrents on the seeder, and the liar on the v1 one.
    return observe(lab, ntp_only(chronyd.server))


def stored_info(lab: Lab, key: str) -> bytes:
    with lab.engine.connect() as conn:
        (info,) = conn.execute(
            select(torrent_metadata.c.info).where(torrent_metadata.c.infohash == key)
        ).one()
    return bytes(info)


def the_row(run: Run, peer: tuple[str, int], infohash: bytes) -> dict[str, Any]:
    key = infohash.hex()
    (row,) = [r for r in run.rows if (r["ip"], r["port"]) == peer and r["item_value"] == key]
    return row


def transcript_of(run: Run, row: dict[str, Any]) -> dict[str, Any]:
    body = run.transcripts[row["id"]]
    with run.observer.engine.connect() as conn:
        (digest,) = conn.execute(
            select(proof_transcript.c.sha256).where(proof_transcript.c.sighting_id == row["id"])
        ).one()
    assert digest == hashlib.sha256(body).hexdigest()
    doc: dict[str, Any] = json.loads(body.decode("utf-8"))
    assert doc["version"] == 1 and doc["network"] == "bittorrent"
    assert doc["content_kept"] is False and "dropped" in doc["content_note"]
    assert doc["item"] == {"kind": row["item_kind"], "value": row["item_value"]}
    assert doc["remote"] == f"{row['ip']}:{row['port']}"
    assert doc["local"] == f"{row['local_ip']}:{row['local_port']}"
    assert doc["handshake"]["received"]["peer_id"] == row["peer_id"]
    assert doc["started_at"] <= doc["ended_at"]
    return doc


def check_v1(info: bytes, doc: dict[str, Any]) -> int:
    """Every SHA-1 check's expected hash against info["pieces"]; how many there were."""
    decoded = bencode.decode(info)
    assert isinstance(decoded, dict)
    pieces = decoded[b"pieces"]
    plen = decoded[b"piece length"]
    assert isinstance(pieces, bytes) and isinstance(plen, int)
    checks = [c for c in doc["pieces"] if c["algorithm"] == "sha1"]
    for check in checks:
        i = check["index"]
        assert check["expected"] == pieces[20 * i : 20 * i + 20].hex()
        assert check["offset"] == i * plen and check["file_index"] is None
    return len(checks)


def check_v2(info: bytes, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every SHA-256 check's proof path against its file's pieces root; the checks."""
    meta = parse_info(info)
    checks = [c for c in doc["pieces"] if c["algorithm"] == "sha256"]
    for check in checks:
        f = meta.files[check["file_index"]]
        assert f.pieces_root is not None
        path = [bytes.fromhex(h) for h in check["proof_path"]]
        local = check["offset"] // meta.piece_length
        root = merkle.root_from_proof(bytes.fromhex(check["expected"]), local, path)
        assert root == f.pieces_root, check
        width = 1 << max(0, (-(-f.length // meta.piece_length) - 1).bit_length())
        assert len(path) == width.bit_length() - 1
    return checks


def test_seeder_transcripts_recheck_against_the_stored_metadata(lab: Lab, run: Run) -> None:
    watched = lab.watched()
    for name, torrent in lab.torrents.items():
        row = the_row(run, lab.seeder, watched[name])
        assert row["proof"] and row["proof_kind"] == "pieces"
        assert row["pieces_verified"] == min(PIECES, torrent.num_pieces)
        doc = transcript_of(run, row)
        key = watched[name].hex()
        assert doc["metadata"]["info_hash"] == key
        info = stored_info(lab, key)
        if torrent.infohash_v1 is not None:
            assert doc["metadata"]["info_sha1"] == hashlib.sha1(info).hexdigest()
        if torrent.infohash_v2 is not None:
            assert doc["metadata"]["info_sha256"] == hashlib.sha256(info).hexdigest()
        assert all(c["ok"] and c["computed"] == c["expected"] for c in doc["pieces"])
        assert all(c["first_byte_at"] <= c["last_byte_at"] for c in doc["pieces"])
        assert doc["availability"]["kind"] == "have_all"
        assert "libtorrent" in doc["extension_handshake"]["client"]
        assert bencode.decode(bytes.fromhex(doc["extension_handshake"]["received_hex"]))
        v1_checks = check_v1(info, doc) if torrent.infohash_v1 else 0
        v2_checks = check_v2(info, doc) if torrent.infohash_v2 else []
        assert v1_checks == (row["pieces_verified"] if torrent.infohash_v1 else 0)
        assert bool(v2_checks) == (torrent.infohash_v2 is not None)
        if name == "v2":
            # A file of 601 pieces: a path of 10, the top from the hash request's uncle.
            assert {len(c["proof_path"]) for c in v2_checks} == {10}


def test_a_one_piece_file_proves_with_an_empty_path(lab: Lab, run: Run) -> None:
    """The hybrid's middle file is its own pieces root; the run checked every piece."""
    torrent = lab.torrents["hybrid"]
    assert torrent.num_pieces <= PIECES
    doc = transcript_of(run, the_row(run, lab.seeder, lab.watched()["hybrid"]))
    single = [c for c in doc["pieces"] if c["algorithm"] == "sha256" and c["length"] == 5_000]
    assert len(single) == 1 and single[0]["proof_path"] == []
    assert single[0]["expected"] == torrent.files[single[0]["file_index"]].pieces_root.hex()


def test_the_liars_failed_verification_has_its_transcript(lab: Lab, run: Run) -> None:
    # Probed before the seeder gave the metadata, the liar is probed again once it is known.
    rows = [r for r in run.rows if (r["ip"], r["port"]) == run.liar]
    (row,) = [r for r in rows if r["pieces_failed"]]
    for early in rows:
        if early is not row:
            doc = transcript_of(run, early)
            assert doc["metadata"] is None and doc["pieces"] == []
            assert doc["error"]["phase"] == "metadata"
    assert not row["proof"] and row["proof_kind"] is None and row["pieces_failed"] > 0
    doc = transcript_of(run, row)
    assert check_v1(stored_info(lab, row["item_value"]), doc) == row["pieces_failed"]
    assert not any(c["ok"] for c in doc["pieces"])


def test_every_sighting_carries_the_measured_clock(lab: Lab, run: Run, chronyd: Chronyd) -> None:
    assert run.stats.clock_refusal is None and run.stats.not_evidence == 0
    for row in run.rows:
        assert row["clock_offset_s"] is not None and abs(row["clock_offset_s"]) < 0.05
        clock = transcript_of(run, row)["clock"]
        assert clock["offset_s"] == row["clock_offset_s"]
        assert clock["source"] == f"ntp: {chronyd.server}, stratum 8"


def test_a_clock_off_beyond_the_bound_records_nothing_and_says_why(lab: Lab, run: Run) -> None:
    with SkewedNtpServer(f"{PREFIX}.51", skew_s=5.0) as server:
        late = observe(lab, ntp_only(server.server))
    assert late.rows == [] and late.transcripts == {}
    assert late.stats.not_evidence == late.stats.holding >= 4 and late.stats.sightings == 0
    why = late.stats.clock_refusal
    assert why is not None and "1 s bound" in why and server.server in why
    assert late.stats.clock_offset_s is not None and late.stats.clock_offset_s < -4.5


# --------------------------------------------------------------------------
# The whole file from one peer


def full_file_of(run: Run, row: dict[str, Any]) -> dict[str, Any] | None:
    full: dict[str, Any] | None = transcript_of(run, row)["full_file"]
    return full


def test_full_file_recomputes_the_reference_hashes(lab: Lab, chronyd: Chronyd) -> None:
    targets = load_targets(lab.engine, BITTORRENT)
    assert len(targets) == 3 and all(t.file_key for t in targets)
    # 5 MB: the plain file and the hybrid's file fit, the big one does not.
    limit = 5_000_000
    run = observe(lab, ntp_only(chronyd.server), targets, full_file=True, max_full_file_bytes=limit)
    watched = lab.watched()
    for name, (_, version) in KNOWN.items():
        row = the_row(run, lab.seeder, watched[version])
        expected = fingerprint_file(lab.dir / "seed" / name).digests
        full = full_file_of(run, row)
        if version == "v2":
            assert full is None and row["proof_kind"] == "pieces"
            assert f"over the full-file limit of {limit} bytes" in row["details"]["full_file"]
            continue
        assert full is not None, row["details"]
        assert row["proof_kind"] == "full_file" and row["proof"]
        assert full["ok"] is True and full["file_key"] == row["file_key"]
        assert full["bytes"] == (lab.dir / "seed" / name).stat().st_size
        assert full["algorithms"] == {a: expected[a].hex() for a in ("md5", "sha1", "sha256")}
        assert full["expected"] == full["algorithms"]
        assert full["first_byte_at"] <= full["last_byte_at"]
        # Every piece of the file was checked against the metadata on the way.
        torrent = lab.torrents[version]
        pieces = set(torrent.file_pieces(full["file_index"]))
        checked = {c["index"] for c in transcript_of(run, row)["pieces"] if c["ok"]}
        assert pieces <= checked
    # The liar streams the whole file too, and its hashes are not the file's.
    (liar,) = [r for r in run.rows if (r["ip"], r["port"]) == run.liar and r["pieces_failed"]]
    full = full_file_of(run, liar)
    assert full is not None and full["ok"] is False and liar["proof_kind"] is None
    assert full["algorithms"]["sha1"] != full["expected"]["sha1"]


def test_full_file_for_one_category_only(lab: Lab, chronyd: Chronyd) -> None:
    targets = load_targets(lab.engine, BITTORRENT)
    abuse = 3  # Category.ABUSE: the big file's
    run = observe(lab, ntp_only(chronyd.server), targets, full_file_categories=frozenset({abuse}))
    watched = lab.watched()
    big = the_row(run, lab.seeder, watched["v2"])
    assert big["proof_kind"] == "full_file" and full_file_of(run, big) is not None
    for version in ("v1", "hybrid"):
        row = the_row(run, lab.seeder, watched[version])
        assert row["proof_kind"] == "pieces" and full_file_of(run, row) is None


# --------------------------------------------------------------------------
# Files named from the metadata


def test_torrents_named_by_infohash_get_their_files_from_the_metadata(lab: Lab, run: Run) -> None:
    """The `run` targets name no file; each torrent's metadata carries a known one."""
    watched = lab.watched()
    how = {"v1": f"btv1_{PIECE}", "v2": "btv2_root", "hybrid": "btv2_root"}
    for name, (category, version) in KNOWN.items():
        row = the_row(run, lab.seeder, watched[version])
        assert row["file_key"] == file_key_of(lab, name)
        assert row["category"] == {"severe_abuse": 4, "abuse": 3, "exploitative": 2}[category]
        assert row["hash_set"] == "hash-set" and row["hash_set_sha256"]
        reason = row["details"]["reason"]
        assert reason.startswith("named by the test; file ") and how[version] in reason


def test_full_file_when_the_metadata_comes_with_the_first_probe(
    lab: Lab, chronyd: Chronyd, tmp_path: Path
) -> None:
    """A fresh store knows no metadata: the first probe fetches it, a second takes the file."""
    fresh = create_store_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        upgrade(fresh)
        import_hash_set(fresh, lab.dir / "hash-set.csv", fmt="csv")
        day = replace(lab, engine=fresh)
        run = observe(
            day, ntp_only(chronyd.server), load_targets(fresh, BITTORRENT), full_file=True
        )
        row = the_row(run, lab.seeder, lab.watched()["v1"])
        full = full_file_of(run, row)
        assert full is not None and full["ok"] and row["proof_kind"] == "full_file"
        with fresh.connect() as conn:
            stored = conn.execute(select(torrent_metadata.c.infohash)).scalars().all()
        assert lab.watched()["v1"].hex() in stored
    finally:
        fresh.dispose()
