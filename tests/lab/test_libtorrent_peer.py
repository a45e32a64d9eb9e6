from pathlib import Path

import pytest

from atalaya.lab.files import write_random_file
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.torrents import infohashes, make_torrent


@pytest.mark.lab
def test_dht_of_three_nodes_forms_and_finds_the_seeder(tmp_path: Path) -> None:
    content = write_random_file(tmp_path / "seed" / "f.bin", 200_000, seed=11)
    torrents = [make_torrent(content, version=v, piece_size=16384) for v in ("v1", "v2")]
    peers = [LibtorrentPeer(f"127.0.0.{21 + i}", tmp_path / f"p{i}") for i in range(3)]
    try:
        for peer in peers:
            peer.start()
        for peer in peers:
            for other in peers:
                if other is not peer:
                    peer.add_dht_node(other.ip, other.port)
        for torrent in torrents:
            peers[0].seed(torrent, tmp_path / "seed")
        assert all(peer.wait_until("dht_ready", 15) for peer in peers)
        assert peers[0].wait_until("seeding", 15)
        peers[0].force_dht_announce()
        for torrent in torrents:
            hashes = infohashes(torrent)
            wanted = hashes.v1 or hashes.v2
            assert wanted is not None
            found = peers[2].dht_get_peers(wanted, 20)
            state = [(p.dht_nodes(), p.dht_announces_received()) for p in peers]
            assert (peers[0].ip, peers[0].port) in found, state
        assert peers[0].holds(wanted) == 1.0
        assert peers[1].holds(wanted) == 0.0
    finally:
        for peer in peers:
            peer.close()


@pytest.mark.lab
def test_listens_on_its_own_address(tmp_path: Path) -> None:
    with LibtorrentPeer("127.0.0.24", tmp_path) as peer:
        assert peer.port > 0
        assert peer.check("listening")
        assert peer.check("seeding")  # vacuously: it has no torrents
        with pytest.raises(ValueError, match="unknown predicate"):
            peer.check("flying")
    peer.close()  # twice is fine


def test_refuses_addresses_outside_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        LibtorrentPeer("10.0.0.1", tmp_path)
