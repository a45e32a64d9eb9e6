import hashlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from atalaya.errors import AtalayaError
from atalaya.lab.network import LabNetwork, LabSpec
from atalaya.lab.transmission import STATUS_SEEDING
from atalaya.networks.bittorrent.bencode import decode

pytestmark = pytest.mark.lab

SPEC = LabSpec(seeders=3, leechers=1, transmission=True, ip_prefix="127.81.0")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNetwork]:
    with LabNetwork(SPEC, tmp_path_factory.mktemp("lab")) as network:
        yield network


def _scrape(network: LabNetwork, infohash: bytes) -> dict[bytes, int]:
    assert network.tracker is not None
    url = network.tracker.announce_url.replace("/announce", "/scrape")
    query = urllib.parse.urlencode({"info_hash": infohash})
    with urllib.request.urlopen(f"{url}?{query}", timeout=5) as reply:
        files = decode(reply.read())[b"files"]
    result: dict[bytes, int] = files[infohash[:20]]
    return result


def test_each_peer_holds_exactly_its_share(lab: LabNetwork) -> None:
    assert lab.startup_seconds is not None
    watched_seeders = {"seed-1", "seed-2"}
    for name, peer in lab.peers.items():
        holdings = lab.holdings[name]
        for torrent_name, built in lab.torrents.items():
            infohash = built.hashes.v2 or built.hashes.v1
            assert infohash is not None
            held = peer.holds(infohash)
            if torrent_name in holdings.seeds:
                assert held == 1.0, (name, torrent_name)
            else:
                # Holding nothing includes the leecher's own torrents.
                assert held == 0.0, (name, torrent_name)
        if name in watched_seeders:
            assert any(lab.torrents[t].plan.purpose == "watched" for t in holdings.seeds)
    # The last seeder shares only unwatched content, the leecher nothing at all.
    assert {lab.torrents[t].plan.purpose for t in lab.holdings["seed-3"].seeds} == {"unwatched"}
    assert lab.holdings["leech-1"].seeds == []
    assert lab.holdings["leech-1"].holds_nothing
    # Every watched torrent has a seeder.
    for built in lab.torrents.values():
        if built.plan.purpose != "unwatched":
            assert any(built.plan.name in h.seeds for h in lab.holdings.values())


def test_transmission_seeds_its_v1_torrent(lab: LabNetwork) -> None:
    assert lab.transmission is not None
    (torrent,) = lab.transmission.torrents()
    built = lab.torrents["lab-transmission-v1"]
    assert built.hashes.v1 is not None
    assert torrent["hashString"] == built.hashes.v1.hex()
    assert torrent["status"] == STATUS_SEEDING
    assert torrent["percentDone"] == 1


def test_tracker_knows_seeders_and_the_empty_leecher(lab: LabNetwork) -> None:
    for built in lab.torrents.values():
        seeders = [n for n, h in lab.holdings.items() if built.plan.name in h.seeds]
        empty = [n for n, h in lab.holdings.items() if built.plan.name in h.holds_nothing]
        for infohash in built.hashes.tracker_hashes:
            counts = _scrape(lab, infohash)
            assert counts[b"complete"] == len(seeders), built.plan.name
            assert counts[b"incomplete"] == len(empty), built.plan.name


def test_dht_finds_the_seeders_of_every_torrent(lab: LabNetwork) -> None:
    leecher = lab.peers["leech-1"]
    for name, built in lab.torrents.items():
        if built.plan.purpose == "transmission":
            continue  # Transmission's DHT ignores 127/8
        seeders = {
            (lab.peers[n].ip, lab.peers[n].port) for n, h in lab.holdings.items() if name in h.seeds
        }
        for infohash in built.hashes.tracker_hashes:
            found = leecher.dht_get_peers(infohash, 15)
            assert seeders <= found, name
            assert (lab.peers["seed-3"].ip, lab.peers["seed-3"].port) not in found or (
                built.plan.purpose == "unwatched"
            )


def test_dht_nodes_sample_the_announced_infohashes(lab: LabNetwork) -> None:
    """BEP 51, which discovery relies on: together the nodes sample every DHT torrent."""
    leecher = lab.peers["leech-1"]
    sampled: set[bytes] = set()
    for name, peer in lab.peers.items():
        if name != "leech-1":
            samples = leecher.dht_sample_infohashes(peer.ip, peer.port, 10)
            assert samples is not None, name
            sampled |= samples
    for built in lab.torrents.values():
        if built.plan.purpose != "transmission":
            assert set(built.hashes.tracker_hashes) <= sampled, built.plan.name


def test_content_on_disk_matches_the_plan(lab: LabNetwork) -> None:
    for built in lab.torrents.values():
        for planned in built.plan.files:
            data = (lab.content_dir / planned.path).read_bytes()
            assert len(data) == planned.size
            digests = built.fingerprints[planned.path].digests
            assert digests["sha256"] == hashlib.sha256(data).digest()


def test_spec_is_checked() -> None:
    with pytest.raises(AtalayaError, match="2 to 40 seeders"):
        LabSpec(seeders=1)
    with pytest.raises(AtalayaError, match=r"127\.0\.0\.0/8"):
        LabSpec(ip_prefix="10.0.0")


def test_a_failed_start_leaves_nothing_running(tmp_path: Path) -> None:
    # Transmission's folder is taken by a file: the start fails after the
    # tracker and the libtorrent peers are already up.
    (tmp_path / "transmission").write_text("in the way")
    network = LabNetwork(LabSpec(ip_prefix="127.82.0", transmission=True), tmp_path)
    with pytest.raises(OSError, match="transmission"):
        network.start()
    assert network.tracker is not None
    assert network.tracker.pid is None
    assert len(network.peers) == 4
    for peer in network.peers.values():
        with pytest.raises(RuntimeError, match="not started"):
            _ = peer.session
