"""The BitTorrent observer against the lab: real libtorrent, Transmission and
opentracker peers, plus hostile test peers, on 127.93.0.N.

One lab serves the module, and the observer runs against it twice, on one
SQLite store, as an operator would run it on two days:

- `dht_run`: a fresh store, the lab's hash set imported, peers found by the
  DHT alone, discovery on, and a liar announced into the DHT. The liar is
  found with seed-1 and most likely probed before any peer has served the
  metadata; it must be verified all the same.
- `tracker_run`: the same store a day later (metadata and discovered watch
  items remembered), peers found by the tracker alone, with a liar and one
  of each hostile test peer announced to the tracker next to the honest
  seeders and a Transmission seeder.

A hybrid torrent is one torrent with two names: a peer is probed for it once
and sighted once, under its v1 hash, the sighting naming the v2 hash.

Each run stops as soon as everything the tests look at has happened (every
expected proof, every hostile peer probed, nothing left in the queue), or at
its duration, and the tests then read what it wrote. A third, short run on
its own store is cut off by its duration in the middle of hostile probes.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from atalaya import __version__
from atalaya.hashsets.algorithms import BTIH, BTIH2, BTV1_PIECE_SIZES, BTV1_PREFIX, BTV2_ROOT
from atalaya.hashsets.categories import Category
from atalaya.hashsets.importer import import_hash_set
from atalaya.hashsets.index import MatchIndex
from atalaya.lab.hostile_peer import Behaviour, HostilePeer
from atalaya.lab.layout import HASH_SET_NAME
from atalaya.lab.ports import free_port
from atalaya.networks.bittorrent import krpc
from atalaya.networks.bittorrent.peerwire import make_peer_id
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.bittorrent.observer import (
    BittorrentObserver,
    ObserverConfig,
    ObserverStats,
)
from atalaya.observe.bittorrent.probe import ProbeTimeouts
from atalaya.observe.bittorrent.tracker_client import announce
from atalaya.observe.watchlist import load_targets
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import sighting, torrent_metadata, watch_item

pytestmark = pytest.mark.lab

PREFIX = "127.93.0"
OBSERVER_IP = f"{PREFIX}.200"
LOOPBACK = ("127.0.0.0/8",)  # the lab lives here; the run is fenced in like a lab run
DHT_LIAR_IP = f"{PREFIX}.150"
TRACKER_LIAR_IP = f"{PREFIX}.151"
HOSTILE_BEHAVIOURS: tuple[Behaviour, ...] = (
    "malformed_extension",
    "oversized",
    "staller",
    "trickler",
    "have_flood",
)
HOSTILE_IPS = {b: f"{PREFIX}.{160 + i}" for i, b in enumerate(HOSTILE_BEHAVIOURS)}
PIECES = 2  # verified per peer
# Longest a run may take; a run that gets here has missed something the tests will name.
RUN_CAP = 90.0
# Transmission 3.00 unchokes on its 10-second rechoke timer; the rest take far less.
TIMEOUTS = ProbeTimeouts(
    connect=5, handshake=5, settle=3, metadata=10, hashes=10, unchoke=25, block=10, total=50
)
WATCHED_PURPOSES = ("watched", "transmission", "discover_v2_root", "discover_v1_piece")

Key = tuple[str, str, int]  # (infohash hex, ip, port); a hybrid's v1 hex


# --------------------------------------------------------------------------
# The lab and the store


@dataclass
class Peer:
    name: str
    ip: str
    port: int


@dataclass
class Lab:
    network: Any  # LabNetwork (imported lazily: libtorrent is the lab extra)
    dir: Path
    hash_set_sha256: str
    peers: dict[str, Peer]
    tracker_url: str
    dht_nodes: tuple[tuple[str, int], ...]

    def torrent(self, name: str) -> Any:
        return self.network.torrents[name]

    def held(self, name: str) -> set[Key]:
        """(torrent, ip, port) for every watched-file torrent the peer seeds."""
        peer = self.peers[name]
        return {
            (self.key(torrent_name), peer.ip, peer.port)
            for torrent_name in self.network.holdings[name].seeds
            if self.torrent(torrent_name).plan.purpose in WATCHED_PURPOSES
        }

    def holding_nothing(self, name: str) -> set[Key]:
        """(torrent, ip, port) for every torrent the peer joined holding nothing."""
        peer = self.peers[name]
        return {
            (self.key(torrent_name), peer.ip, peer.port)
            for torrent_name in self.network.holdings[name].holds_nothing
        }

    def key(self, torrent_name: str) -> str:
        """The one name a torrent's sightings go under: v1, else v2 (hex)."""
        hashes = self.torrent(torrent_name).hashes
        return str((hashes.v1 or hashes.v2).hex())

    def infohashes(self, torrent_name: str) -> list[bytes]:
        hashes = self.torrent(torrent_name).hashes
        return [h for h in (hashes.v1, hashes.v2) if h is not None]

    def watched_file(self, torrent_name: str) -> Any:
        (planned,) = [f for f in self.torrent(torrent_name).plan.files if f.watched]
        return planned


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from atalaya.lab.manifest import write_outputs
    from atalaya.lab.network import LabNetwork, LabSpec

    lab_dir = tmp_path_factory.mktemp("observer-lab")
    spec = LabSpec(seeders=3, leechers=1, transmission=True, ip_prefix=PREFIX)
    with LabNetwork(spec, lab_dir) as network:
        write_outputs(network)
        peers = {name: Peer(name, p.ip, p.port) for name, p in network.peers.items()}
        assert network.transmission is not None and network.tracker is not None
        peers["transmission"] = Peer(
            "transmission", network.transmission.ip, network.transmission.port
        )
        csv_bytes = (lab_dir / HASH_SET_NAME).read_bytes()
        yield Lab(
            network=network,
            dir=lab_dir,
            hash_set_sha256=hashlib.sha256(csv_bytes).hexdigest(),
            peers=peers,
            tracker_url=network.tracker.announce_url,
            dht_nodes=tuple((p.ip, p.port) for p in network.peers.values()),
        )


@pytest.fixture(scope="module")
def store(lab: Lab) -> Iterator[Engine]:
    engine = create_store_engine(f"sqlite:///{lab.dir / 'observer.db'}")
    upgrade(engine)
    import_hash_set(engine, lab.dir / HASH_SET_NAME, fmt="csv")
    yield engine
    engine.dispose()


# --------------------------------------------------------------------------
# Running the observer


@dataclass
class Run:
    observer: BittorrentObserver
    stats: ObserverStats
    started: datetime
    ended: datetime
    stopped_by_test: bool  # everything the tests wait for happened before the cap
    rows: list[dict[str, Any]] = field(default_factory=list)
    leftover_tasks: list[str] = field(default_factory=list)
    hostile: dict[str, HostilePeer] = field(default_factory=dict)
    hostile_open_after: dict[str, int] = field(default_factory=dict)

    def by_ip(self, ip: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["ip"] == ip]

    def proven(self) -> set[Key]:
        return {(r["item_value"], r["ip"], r["port"]) for r in self.rows if r["proof"]}


def rows_of(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    query = select(sighting).where(sighting.c.run_id == run_id).order_by(sighting.c.id)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def idle(observer: BittorrentObserver) -> bool:
    """Every peer found so far has been probed (and probed again where it was due)."""
    s = observer.stats
    return s.probed == s.peers_found + s.reprobed


def found(observer: BittorrentObserver, keys: set[Key]) -> bool:
    seen = {(ih.hex(), ip, port) for ih, ip, port in observer._seen}
    return keys <= seen


async def observe(
    observer: BittorrentObserver,
    done: Callable[[], bool],
    hostile: dict[str, HostilePeer] | None = None,
) -> Run:
    """Run until `done()` holds (checked a few times a second) or RUN_CAP passes."""
    stop = asyncio.Event()

    async def watch() -> None:
        while not done():
            await asyncio.sleep(0.2)
        stop.set()

    watcher = asyncio.create_task(watch())
    started = datetime.now(UTC)
    try:
        # The observer bounds itself; this outer bound only turns a hang into a failure.
        stats = await asyncio.wait_for(observer.run(duration=RUN_CAP, stop=stop), RUN_CAP + 30)
    finally:
        watcher.cancel()
    ended = datetime.now(UTC)
    leftover = [
        task.get_coro().__qualname__  # type: ignore[union-attr]
        for task in asyncio.all_tasks()
        if "BittorrentObserver" in getattr(task.get_coro(), "__qualname__", "")
    ]
    run = Run(observer, stats, started, ended, stop.is_set(), leftover_tasks=leftover)
    run.rows = rows_of(observer.engine, observer.run_id)
    if hostile:
        run.hostile = hostile
        # The observer closes every connection it opened; give the peers a moment to notice.
        deadline = time.monotonic() + 10
        while any(p._tasks for p in hostile.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        run.hostile_open_after = {name: len(p._tasks) for name, p in hostile.items()}
    return run


def announce_into_dht(lab: Lab, ip: str, port: int, infohash: bytes) -> None:
    """Announce ip:port for `info_hash` to every lab DHT node, as a peer's DHT would.

    A plain BEP 5 exchange from `ip`: get_peers for a token, then
    announce_peer with it; then wait until each node says it stored it.
    The nodes take this short-lived socket for a DHT node and hand it out as
    a contact: the observer meets a dead node, as it would on the real DHT.
    """
    rng = random.Random(5)
    sender = rng.randbytes(20)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((ip, 0))
        sock.settimeout(3.0)

        def ask(query: krpc.Query, node: tuple[str, int]) -> krpc.Response:
            sock.sendto(krpc.encode_message(query), node)
            for _ in range(10):  # skip anything that is not the answer
                data, _ = sock.recvfrom(krpc.MAX_DATAGRAM)
                reply = krpc.decode_message(data)
                if reply.transaction_id == query.transaction_id:
                    assert isinstance(reply, krpc.Response), reply
                    return reply
            raise AssertionError(f"no answer from {node}")

        for n, node in enumerate(lab.dht_nodes):
            got = ask(
                krpc.GetPeers(transaction_id=b"g%d" % n, sender_id=sender, infohash=infohash),
                node,
            )
            assert got.token is not None
            ask(
                krpc.AnnouncePeer(
                    transaction_id=b"a%d" % n,
                    sender_id=sender,
                    infohash=infohash,
                    port=port,
                    token=got.token,
                ),
                node,
            )
    deadline = time.monotonic() + 10
    for peer in lab.network.peers.values():
        while (infohash, ip, port) not in peer.dht_announces_received():
            assert time.monotonic() < deadline, f"{peer.ip} did not store the announce"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def dht_run(lab: Lab, store: Engine) -> Run:
    """Fresh store, DHT only, discovery on, a liar in the DHT next to seed-1."""
    v1 = lab.torrent("lab-watched-v1").hashes.v1
    liar_port = free_port(DHT_LIAR_IP)
    announce_into_dht(lab, DHT_LIAR_IP, liar_port, v1)
    targets = load_targets(store, BITTORRENT)
    index = MatchIndex.from_store(
        store, algorithms=[BTV2_ROOT] + [f"{BTV1_PREFIX}{s}" for s in BTV1_PIECE_SIZES]
    )
    config = ObserverConfig(
        bind_ips=(OBSERVER_IP,),
        allowed_networks=LOOPBACK,
        dht_bootstrap=lab.dht_nodes,
        trackers=(),
        discover=True,
        pieces_to_verify=PIECES,
        lookup_interval=10,
        probe_timeouts=TIMEOUTS,
        seed=11,
    )
    observer = BittorrentObserver(store, targets, config, index=index)
    expected = lab.held("seed-1") | lab.held("seed-2")
    leecher = lab.holding_nothing("leech-1")
    unwatched = {
        ih[:20] for name in lab.network.holdings["seed-3"].seeds for ih in lab.infohashes(name)
    }

    def done() -> bool:
        rows = rows_of(store, observer.run_id)
        liar_failed = any(r["ip"] == DHT_LIAR_IP and r["pieces_failed"] for r in rows)
        return (
            expected <= {(r["item_value"], r["ip"], r["port"]) for r in rows if r["proof"]}
            and liar_failed
            and unwatched <= observer._checked
            and found(observer, leecher)
            and idle(observer)
        )

    async def main() -> Run:
        async with HostilePeer(DHT_LIAR_IP, "liar", port=liar_port) as liar:
            return await observe(observer, done, {"liar": liar})

    return asyncio.run(main())


@pytest.fixture(scope="module")
def tracker_run(lab: Lab, store: Engine, dht_run: Run) -> Run:
    """The store of `dht_run`, tracker only, with a liar and every hostile peer announced."""
    v1 = lab.torrent("lab-watched-v1")
    ih = v1.hashes.v1
    num_pieces = -(-v1.plan.files[0].size // v1.plan.piece_size)
    with store.connect() as conn:
        stored = conn.execute(select(torrent_metadata.c.infohash, torrent_metadata.c.infohash_v2))
        # A hybrid's metadata is kept once, under v1, naming v2.
        remembered = {name for row in stored for name in row if name is not None}
    # What this run relies on from the day before: metadata and discovered items.
    assert {t.hex for t in load_targets(store, BITTORRENT)} - {
        lab.torrent("lab-transmission-v1").hashes.v1.hex()
    } <= remembered
    targets = load_targets(store, BITTORRENT)
    config = ObserverConfig(
        bind_ips=(OBSERVER_IP,),
        allowed_networks=LOOPBACK,
        trackers=(lab.tracker_url,),
        use_dht=False,
        pieces_to_verify=PIECES,
        max_concurrent_probes=32,
        lookup_interval=10,
        probe_timeouts=TIMEOUTS,
        seed=12,
    )
    observer = BittorrentObserver(store, targets, config)
    expected = lab.held("seed-1") | lab.held("seed-2") | lab.held("transmission")
    leecher = lab.holding_nothing("leech-1")

    async def main() -> Run:
        peers = {"liar": HostilePeer(TRACKER_LIAR_IP, "liar", num_pieces=num_pieces)}
        for behaviour in HOSTILE_BEHAVIOURS:
            peers[behaviour] = HostilePeer(HOSTILE_IPS[behaviour], behaviour, num_pieces=num_pieces)
        rng = random.Random(3)
        try:
            for peer in peers.values():
                await peer.start()
                # As a leecher: the tracker hands leechers to the observer all the same.
                await announce(
                    lab.tracker_url,
                    ih,
                    peer_id=make_peer_id(b"-HP0001-", rng),
                    port=peer.port,
                    left=1,
                    bind_ip=peer.ip,
                    timeout=5,
                )

            def done() -> bool:
                rows = rows_of(store, observer.run_id)
                proven = {(r["item_value"], r["ip"], r["port"]) for r in rows if r["proof"]}
                return (
                    expected <= proven
                    and all(p.connections for p in peers.values())
                    and any(r["ip"] == TRACKER_LIAR_IP and r["pieces_failed"] for r in rows)
                    and found(observer, leecher)
                    and idle(observer)
                )

            return await observe(observer, done, peers)
        finally:
            for peer in peers.values():
                await peer.stop()

    return asyncio.run(main())


# --------------------------------------------------------------------------
# What a proof must say


def assert_proof(
    lab: Lab, run: Run, row: dict[str, Any], torrent_name: str, *, client: str, found_by: str
) -> None:
    built = lab.torrent(torrent_name)
    planned = lab.watched_file(torrent_name)
    digests = built.fingerprints[planned.path].digests
    assert row["network"] == "bittorrent"
    assert row["found_by"] == found_by
    assert row["client"] == client
    assert row["have_fraction"] == 1.0
    assert row["pieces_verified"] == PIECES and row["pieces_failed"] == 0 and row["proof"] is True
    piece = built.plan.piece_size
    assert (PIECES - 1) * piece < row["bytes_downloaded"] <= PIECES * piece
    assert row["file_key"] == f"sha256:{digests['sha256'].hex()}"
    assert row["category"] == Category[planned.category.upper()]
    assert row["hash_set"] == "hashset" and row["hash_set_sha256"] == lab.hash_set_sha256
    assert row["advertised_name"] == built.plan.root
    # SQLite hands back naive datetimes; the store keeps UTC.
    seen = row["seen_at"].replace(tzinfo=UTC)
    assert run.started <= seen <= run.ended
    assert row["local_ip"] == OBSERVER_IP
    assert isinstance(row["local_port"], int) and 0 < row["local_port"] < 65536
    assert row["observer"] == f"atalaya/{__version__}"
    assert row["run_id"] == run.observer.run_id


def torrent_of(lab: Lab, infohash_hex: str) -> str:
    for name, built in lab.network.torrents.items():
        if infohash_hex in (h.hex() for h in (built.hashes.v1, built.hashes.v2) if h):
            return str(name)
    raise AssertionError(f"{infohash_hex} is no lab torrent")


def libtorrent_client() -> str:
    import libtorrent as lt

    return f"atalaya-lab libtorrent/{lt.__version__}"


# --------------------------------------------------------------------------
# 1. Every seeder of a watched file is sighted with verified pieces


@pytest.mark.parametrize("run_name", ["dht_run", "tracker_run"])
def test_every_libtorrent_seeder_is_proven(
    lab: Lab, run_name: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(run_name)
    found_by = "dht" if run_name == "dht_run" else "tracker"
    assert run.stopped_by_test, "the run reached its cap before every expected proof"
    expected = lab.held("seed-1") | lab.held("seed-2")
    # v1, v2, the hybrid (both seeders, once each), and the two torrents discovery found.
    versions = {lab.torrent(torrent_of(lab, ih)).plan.version for ih, _, _ in expected}
    assert versions == {"v1", "v2", "hybrid"} and len(expected) == 6
    assert expected <= run.proven()
    for row in run.rows:
        if (row["item_value"], row["ip"], row["port"]) in expected:
            assert row["details"]["yourip"] == OBSERVER_IP
            peer_id = bytes.fromhex(row["peer_id"])
            assert peer_id.startswith(b"-LT")
            assert_proof(
                lab,
                run,
                row,
                torrent_of(lab, row["item_value"]),
                client=libtorrent_client(),
                found_by=found_by,
            )
            hashes = lab.torrent(torrent_of(lab, row["item_value"])).hashes
            # v1 and hybrids under their v1 name, v2-only torrents under v2.
            assert row["item_kind"] == ("btih" if hashes.v1 is not None else "btih2")
            if hashes.v1 is not None and hashes.v2 is not None:
                assert row["item_value"] == hashes.v1.hex()
                assert row["details"]["infohash_v2"] == hashes.v2.hex()
            else:
                assert "infohash_v2" not in row["details"]
    hybrid = lab.torrent("lab-watched-hybrid").hashes
    assert hybrid.v2 is not None
    assert hybrid.v2.hex() not in {r["item_value"] for r in run.rows}
    # One probe each: a peer is not probed twice for one torrent in a run.
    keys = [(r["item_value"], r["ip"], r["port"]) for r in run.rows if r["ip"] != DHT_LIAR_IP]
    assert len(keys) == len(set(keys))


def test_seen_at_keeps_microseconds(dht_run: Run, tracker_run: Run) -> None:
    rows = dht_run.rows + tracker_run.rows
    assert len(rows) >= 12  # six proofs a run at least
    # A time cut to the second would make every one of these zero.
    assert any(r["seen_at"].microsecond for r in rows)
    assert len({r["seen_at"] for r in rows}) > 1


# --------------------------------------------------------------------------
# 2. Holding nothing, or only unwatched files, is never reported


def test_leecher_holding_nothing_is_never_reported(
    lab: Lab, dht_run: Run, tracker_run: Run
) -> None:
    leecher = lab.peers["leech-1"]
    keys = lab.holding_nothing("leech-1")
    assert len(keys) == 3  # v1, v2 and the hybrid
    for run in (dht_run, tracker_run):
        # The DHT and the tracker handed the leecher to the observer, which probed it ...
        assert found(run.observer, keys)
        assert run.stopped_by_test  # ... to the end: the run was idle when it stopped
        # ... and found nothing to report: the observer records no sighting of a
        # peer that shows no piece and sends no data, so the leecher has no row at all.
        assert run.by_ip(leecher.ip) == []


def test_peer_sharing_only_unwatched_files_is_never_reported(
    lab: Lab, store: Engine, dht_run: Run, tracker_run: Run
) -> None:
    seed3 = lab.peers["seed-3"]
    unwatched = [ih for name in lab.network.holdings["seed-3"].seeds for ih in lab.infohashes(name)]
    assert len(unwatched) == 3  # a v1 torrent and a hybrid
    # Discovery sampled its torrents and fetched their metadata from seed-3 ...
    assert {ih[:20] for ih in unwatched} <= dht_run.observer._checked
    # ... and found no known file in them: not watched, and seed-3 never sighted.
    with store.connect() as conn:
        values = set(conn.execute(select(watch_item.c.value)).scalars())
    assert not values & set(unwatched)
    for run in (dht_run, tracker_run):
        assert run.by_ip(seed3.ip) == []
        assert not {r["item_value"] for r in run.rows} & {ih.hex() for ih in unwatched}


def test_only_watched_torrents_are_ever_sighted(
    lab: Lab, store: Engine, dht_run: Run, tracker_run: Run
) -> None:
    watched = {t.hex for t in load_targets(store, BITTORRENT)}
    with store.connect() as conn:
        sighted = set(conn.execute(select(sighting.c.item_value)).scalars())
    assert sighted <= watched
    # Every sighting of an honest lab peer is a proof, and no other is.
    honest = {p.ip for p in lab.peers.values()}
    for row in dht_run.rows + tracker_run.rows:
        assert row["proof"] == (row["ip"] in honest)


# --------------------------------------------------------------------------
# 3. Discovery


@pytest.mark.parametrize(
    ("torrent_name", "algorithm", "kind", "seeder"),
    [
        ("lab-discover-v2", BTV2_ROOT, BTIH2, "seed-2"),
        ("lab-discover-v1", f"{BTV1_PREFIX}16384", BTIH, "seed-1"),
    ],
)
def test_discovery_finds_a_watched_file_in_an_unnamed_torrent(
    lab: Lab,
    store: Engine,
    dht_run: Run,
    tracker_run: Run,
    torrent_name: str,
    algorithm: str,
    kind: str,
    seeder: str,
) -> None:
    built = lab.torrent(torrent_name)
    (infohash,) = lab.infohashes(torrent_name)
    planned = lab.watched_file(torrent_name)
    digests = built.fingerprints[planned.path].digests
    # Not named by the hash set: the infohash columns of its row are empty.
    assert built.plan.infohash_watched is False
    assert algorithm in digests
    with store.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(select(watch_item).where(watch_item.c.value == infohash))
        ]
    assert len(rows) == 1
    item = rows[0]
    assert item["network"] == "bittorrent" and item["kind"] == kind
    assert item["origin"] == "discovery"
    assert item["file_key"] == f"sha256:{digests['sha256'].hex()}"
    assert item["category"] == Category[planned.category.upper()]
    assert item["reason"].startswith("discovered: ")
    assert f"{algorithm} {digests[algorithm].hex()}" in item["reason"]
    assert repr(planned.path) in item["reason"] and "hash set hashset" in item["reason"]
    assert dht_run.stats.discovered == 2
    # Then watched: its seeder is proven in the same run and again the next day.
    peer = lab.peers[seeder]
    key = (infohash.hex(), peer.ip, peer.port)
    for run, found_by in ((dht_run, "dht"), (tracker_run, "tracker")):
        (row,) = [r for r in run.rows if (r["item_value"], r["ip"], r["port"]) == key]
        assert_proof(lab, run, row, torrent_name, client=libtorrent_client(), found_by=found_by)
        assert row["details"]["reason"] == item["reason"]


# --------------------------------------------------------------------------
# 4. A peer that sends wrong data


@pytest.mark.parametrize(
    ("run_name", "ip"), [("dht_run", DHT_LIAR_IP), ("tracker_run", TRACKER_LIAR_IP)]
)
def test_liar_is_recorded_as_failed_verification(
    lab: Lab, run_name: str, ip: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(run_name)
    liar = run.hostile["liar"]
    assert liar.blocks_served > 0
    rows = run.by_ip(ip)
    v1 = lab.torrent("lab-watched-v1").hashes.v1.hex()
    assert rows and {r["item_value"] for r in rows} == {v1}
    for row in rows:
        assert row["pieces_verified"] == 0 and row["proof"] is False
        assert row["client"] == "Hostile liar 1.0"
        assert row["have_fraction"] == 1.0  # it claims everything
        assert row["found_by"] == ("dht" if run_name == "dht_run" else "tracker")
    (failed,) = [r for r in rows if r["pieces_failed"]]
    assert failed["pieces_failed"] == PIECES
    # Before any peer served the metadata it could only be asked for it, and
    # refused; it was verified as soon as the seeder had served it.
    for row in rows:
        if row is not failed:
            assert row["pieces_failed"] == 0
            assert row["details"]["error"]["kind"] == "bad_metadata"
            assert row["seen_at"] <= failed["seen_at"]
    if run_name == "tracker_run":
        assert rows == [failed]  # the metadata was known from the start
    assert run.stats.failed_verification == 1


# --------------------------------------------------------------------------
# 5. Hostile peers do not disturb the run


def test_hostile_peers_do_not_disturb_the_run(lab: Lab, tracker_run: Run) -> None:
    run = tracker_run
    # Everything the tests wait for happened; the run ended cleanly, by its stop.
    assert run.stopped_by_test
    assert run.leftover_tasks == []
    # Every hostile peer was probed and has no connection of ours left open.
    for name, peer in run.hostile.items():
        assert peer.connections >= 1, name
        assert run.hostile_open_after[name] == 0, name
    # None of them is a proof. Only the flooder showed pieces before it was cut
    # off (its haves, checked against the known piece count): a claim, no more.
    by_behaviour = {b: run.by_ip(HOSTILE_IPS[b]) for b in HOSTILE_BEHAVIOURS}
    for behaviour in ("malformed_extension", "oversized", "staller", "trickler"):
        assert by_behaviour[behaviour] == [], behaviour
    (flood,) = by_behaviour["have_flood"]
    assert flood["have_fraction"] == 1.0
    assert flood["proof"] is False and flood["pieces_verified"] == flood["pieces_failed"] == 0
    assert flood["details"]["error"]["kind"] == "protocol_error"
    assert "have messages" in flood["details"]["error"]["detail"]
    # The honest peers of the same torrent were proven all the same.
    v1 = lab.torrent("lab-watched-v1").hashes.v1.hex()
    seed1 = lab.peers["seed-1"]
    assert (v1, seed1.ip, seed1.port) in run.proven()


def test_run_stops_at_its_duration_mid_probe(lab: Lab, tmp_path: Path) -> None:
    """Cut off by its duration while hostile peers hold probes open: it ends cleanly."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'short.db'}")
    upgrade(engine)
    import_hash_set(engine, lab.dir / HASH_SET_NAME, fmt="csv")
    ih = lab.torrent("lab-watched-v1").hashes.v1
    config = ObserverConfig(
        bind_ips=(f"{PREFIX}.201",),
        allowed_networks=LOOPBACK,
        trackers=(lab.tracker_url,),
        use_dht=False,
        pieces_to_verify=PIECES,
        # Far longer than the run: these probes are still waiting when it ends.
        probe_timeouts=ProbeTimeouts(handshake=60, total=90),
        seed=13,
    )
    observer = BittorrentObserver(engine, load_targets(engine, BITTORRENT), config)
    duration = 4.0

    async def main() -> tuple[ObserverStats, list[str], dict[str, int], dict[str, int]]:
        behaviours: tuple[Behaviour, ...] = ("staller", "trickler")
        peers: dict[str, HostilePeer] = {
            b: HostilePeer(f"{PREFIX}.{170 + i}", b) for i, b in enumerate(behaviours)
        }
        rng = random.Random(4)
        try:
            for peer in peers.values():
                await peer.start()
                await announce(
                    lab.tracker_url,
                    ih,
                    peer_id=make_peer_id(b"-HP0001-", rng),
                    port=peer.port,
                    left=1,
                    bind_ip=peer.ip,
                    timeout=5,
                )
            # The observer bounds itself; this outer bound only turns a hang into a failure.
            stats = await asyncio.wait_for(observer.run(duration=duration), duration + 30)
            leftover = [
                str(getattr(t.get_coro(), "__qualname__", ""))
                for t in asyncio.all_tasks()
                if "BittorrentObserver" in getattr(t.get_coro(), "__qualname__", "")
            ]
            connections = {name: p.connections for name, p in peers.items()}
            deadline = time.monotonic() + 10
            while any(p._tasks for p in peers.values()) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return stats, leftover, connections, {n: len(p._tasks) for n, p in peers.items()}
        finally:
            for peer in peers.values():
                await peer.stop()

    stats, leftover, connections, still_open = asyncio.run(main())
    rows = rows_of(engine, observer.run_id)
    engine.dispose()
    # Both were connected and never answered: their probes were cut off, not finished.
    assert connections == {"staller": 1, "trickler": 1}
    assert stats.probed < stats.peers_found
    assert leftover == []
    assert still_open == {"staller": 0, "trickler": 0}
    # Every probe that finished before the end is in the store, and only those.
    assert stats.sightings == len(rows)
    honest = {p.ip for p in lab.peers.values()}
    assert all(r["ip"] in honest and r["proof"] for r in rows)


# --------------------------------------------------------------------------
# 6. A Transmission seeder


def test_transmission_seeder_is_proven(lab: Lab, dht_run: Run, tracker_run: Run) -> None:
    transmission = lab.peers["transmission"]
    (key,) = lab.held("transmission")
    assert lab.torrent("lab-transmission-v1").plan.version == "v1"
    (row,) = tracker_run.by_ip(transmission.ip)
    assert (row["item_value"], row["ip"], row["port"]) == key
    assert_proof(
        lab, tracker_run, row, "lab-transmission-v1", client="Transmission 3.00", found_by="tracker"
    )
    assert bytes.fromhex(row["peer_id"]).startswith(b"-TR3000-")
    assert row["details"]["listen_port"] == transmission.port
    # Its DHT ignores 127/8 (lab notes): the DHT-only run could not find it.
    assert dht_run.by_ip(transmission.ip) == []


def test_every_sighting_counted_is_stored(store: Engine, dht_run: Run, tracker_run: Run) -> None:
    with store.connect() as conn:
        total = conn.execute(select(func.count()).select_from(sighting)).scalar_one()
    assert total == len(dht_run.rows) + len(tracker_run.rows)
    assert dht_run.stats.sightings == len(dht_run.rows)
    assert tracker_run.stats.sightings == len(tracker_run.rows)
