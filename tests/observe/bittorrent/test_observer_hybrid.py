"""A hybrid torrent is one swarm with two names: the observer sights a seeder of it once.

A real libtorrent seeder set as qBittorrent sets it (one peer entry per
address), a real opentracker, and the observer on 127.96.0.N. The seeder
has already been spoken to in v2 from the observer's address, so it
answers the observer's v1 handshakes with the truncated v2 hash.

- `first_day`: a fresh store; the hash set's record of the file names both
  hashes; the tracker knows the seeder under v1 only.
- `second_day`: the same store (the metadata fetched the day before names
  both hashes); the operator names the two hashes with nothing to tie
  them; the tracker knows the seeder under both names.

Each day gives one sighting, under the v1 hash, that names the v2 hash.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from atalaya.lab.files import write_random_file
from atalaya.networks.bittorrent.metainfo import Metainfo, parse_torrent
from atalaya.networks.bittorrent.peerwire import make_peer_id
from atalaya.observe.bittorrent.observer import (
    BittorrentObserver,
    ObserverConfig,
    ObserverStats,
)
from atalaya.observe.bittorrent.probe import ProbeTimeouts, probe_peer
from atalaya.observe.bittorrent.targets import infohash_target, twins_on_one_record
from atalaya.observe.bittorrent.tracker_client import announce
from atalaya.observe.watchlist import WatchTarget
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import sighting, torrent_metadata

PREFIX = "127.96.0"
OBSERVER_IP = f"{PREFIX}.200"
PIECE = 16384
PIECES = 2
RUN_CAP = 60.0
TIMEOUTS = ProbeTimeouts(connect=5, handshake=5, settle=3, metadata=10, unchoke=10, total=40)
# The observer's clock runs ten years behind: the sightings must say so.
SKEW = timedelta(days=3652)
FILE_KEY = "sha256:" + "ab" * 32


def skewed_clock() -> datetime:
    return datetime.now(UTC) - SKEW


# --------------------------------------------------------------------------
# Which names belong together, before any metadata


def test_a_record_with_one_name_of_each_kind_hints_a_hybrid() -> None:
    v1, v2, other1, other2 = b"\x01" * 20, b"\x02" * 32, b"\x03" * 20, b"\x04" * 32

    def target(infohash: bytes, file_key: str | None, hash_set: str | None = "set") -> WatchTarget:
        return infohash_target(infohash, "test", file_key, 1, hash_set, "version")

    assert twins_on_one_record([target(v1, "f1"), target(v2, "f1")]) == [(v1, v2)]
    # Two of a kind on one record: which would pair is a guess, so none does.
    assert twins_on_one_record([target(v1, "f1"), target(other1, "f1"), target(v2, "f1")]) == []
    # Other records, other hash sets, or no record at all: nothing ties them.
    assert twins_on_one_record([target(v1, "f1"), target(v2, "f2")]) == []
    assert twins_on_one_record([target(v1, "f1", "a"), target(v2, "f1", "b")]) == []
    assert twins_on_one_record([target(v1, None), target(v2, None)]) == []
    assert twins_on_one_record([target(other1, "g"), target(other2, "g")]) == [(other1, other2)]


# --------------------------------------------------------------------------
# The lab


@dataclass
class Lab:
    torrent: Metainfo
    v1: bytes
    v2: bytes
    seeder_ip: str
    seeder_port: int
    tracker_url: str
    engine: Engine


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.opentracker import OpenTracker
    from atalaya.lab.torrents import make_torrent

    root = tmp_path_factory.mktemp("hybrid-lab")
    content = write_random_file(root / "seed" / "hybrid.bin", 200_000, seed=96)
    raw = make_torrent(content, version="hybrid", piece_size=PIECE)
    torrent = parse_torrent(raw)
    v1, v2 = torrent.infohash_v1, torrent.infohash_v2
    assert v1 is not None and v2 is not None
    engine = create_store_engine(f"sqlite:///{root / 'atalaya.db'}")
    upgrade(engine)
    with (
        OpenTracker(f"{PREFIX}.1", root / "tracker", [v1, v2]) as tracker,
        LibtorrentPeer(f"{PREFIX}.2", root / "seeder", dht=False) as seeder,
    ):
        # qBittorrent's default: one peer entry per address, which remembers
        # the protocol that address last spoke.
        seeder.session.apply_settings({"allow_multiple_connections_per_ip": False})
        seeder.seed(raw, root / "seed")
        assert seeder.wait_until("seeding", 30)
        lab = Lab(torrent, v1, v2, seeder.ip, seeder.port, tracker.announce_url, engine)
        spoken = asyncio.run(
            probe_peer(
                seeder.ip,
                seeder.port,
                v2,
                torrent=torrent,
                bind_ip=OBSERVER_IP,
                peer_id=make_peer_id(b"-AY0100-", random.Random(1)),
                rng=random.Random(1),
                timeouts=TIMEOUTS,
            )
        )
        assert spoken.error is None and spoken.proof
        yield lab
    engine.dispose()


def announce_seeder(lab: Lab, *names: bytes) -> None:
    async def main() -> None:
        rng = random.Random(2)
        for name in names:
            await announce(
                lab.tracker_url,
                name,
                peer_id=make_peer_id(b"-LT2110-", rng),
                port=lab.seeder_port,
                left=1,  # the tracker client never poses as a seeder; any peer will do
                bind_ip=lab.seeder_ip,
                timeout=5,
            )

    asyncio.run(main())


@dataclass
class Day:
    stats: ObserverStats
    rows: list[dict[str, Any]]
    started: datetime
    ended: datetime


def observe(lab: Lab, targets: list[WatchTarget]) -> Day:
    config = ObserverConfig(
        bind_ips=(OBSERVER_IP,),
        allowed_networks=("127.0.0.0/8",),
        trackers=(lab.tracker_url,),
        use_dht=False,
        pieces_to_verify=PIECES,
        lookup_interval=5,
        probe_timeouts=TIMEOUTS,
        seed=21,
    )
    observer = BittorrentObserver(lab.engine, targets, config, clock=skewed_clock)

    def rows() -> list[dict[str, Any]]:
        query = select(sighting).where(sighting.c.run_id == observer.run_id)
        with lab.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def done() -> bool:
        s = observer.stats
        asked = {ih for _, ih in observer._announced}
        # Asked the tracker under both names, and probed every peer found.
        return asked == {lab.v1, lab.v2} and bool(rows()) and s.probed == s.peers_found

    async def main() -> ObserverStats:
        stop = asyncio.Event()

        async def watch(check: Callable[[], bool]) -> None:
            while not check():
                await asyncio.sleep(0.2)
            stop.set()

        watcher = asyncio.create_task(watch(done))
        try:
            return await asyncio.wait_for(observer.run(duration=RUN_CAP, stop=stop), RUN_CAP + 30)
        finally:
            watcher.cancel()

    started = datetime.now(UTC)
    stats = asyncio.run(main())
    return Day(stats, rows(), started, datetime.now(UTC))


def assert_one_sighting_naming_both(lab: Lab, day: Day, asked: set[bytes]) -> dict[str, Any]:
    assert day.stats.targets == 1  # one torrent, two names
    assert day.stats.probed == day.stats.peers_found == 1, day.stats
    (row,) = day.rows
    assert (row["ip"], row["port"]) == (lab.seeder_ip, lab.seeder_port)
    assert (row["item_kind"], row["item_value"]) == ("btih", lab.v1.hex())
    assert row["details"]["infohash_v2"] == lab.v2.hex()
    assert bytes.fromhex(row["details"]["asked_infohash"]) in asked
    assert row["pieces_verified"] == PIECES and row["pieces_failed"] == 0 and row["proof"]
    # Stamped by the observer's own (skewed) clock when the handshake arrived.
    seen = row["seen_at"].replace(tzinfo=UTC)
    assert day.started - SKEW <= seen <= day.ended - SKEW
    return row


@pytest.fixture(scope="module")
def first_day(lab: Lab) -> Day:
    announce_seeder(lab, lab.v1)
    record = ("a hash set", FILE_KEY)
    targets = [infohash_target(ih, "in hash set", FILE_KEY, 1, *record) for ih in (lab.v1, lab.v2)]
    return observe(lab, targets)


@pytest.fixture(scope="module")
def second_day(lab: Lab, first_day: Day) -> Day:
    announce_seeder(lab, lab.v1, lab.v2)
    targets = [infohash_target(ih, "named by the operator") for ih in (lab.v1, lab.v2)]
    assert twins_on_one_record(targets) == []
    return observe(lab, targets)


@pytest.mark.lab
def test_v1_answered_in_v2_name_is_one_sighting(lab: Lab, first_day: Day) -> None:
    row = assert_one_sighting_naming_both(lab, first_day, {lab.v1})
    # The seeder answered our v1 handshake with the truncated v2 hash.
    assert row["details"]["handshake_infohash"] == lab.v2[:20].hex()
    # The metadata fetched is kept under v1, naming v2: the next day's tie.
    with lab.engine.connect() as conn:
        stored = conn.execute(
            select(torrent_metadata.c.infohash, torrent_metadata.c.infohash_v2)
        ).all()
    assert stored == [(lab.v1.hex(), lab.v2.hex())]


@pytest.mark.lab
def test_found_under_both_names_is_probed_and_sighted_once(
    lab: Lab, first_day: Day, second_day: Day
) -> None:
    row = assert_one_sighting_naming_both(lab, second_day, {lab.v1, lab.v2})
    assert row["details"]["handshake_infohash"] == lab.v2[:20].hex()
