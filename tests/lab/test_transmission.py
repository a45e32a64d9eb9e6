import os
from pathlib import Path

import pytest

from atalaya.lab.files import write_random_file
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.opentracker import OpenTracker
from atalaya.lab.ports import free_port
from atalaya.lab.torrents import infohashes, make_torrent
from atalaya.lab.transmission import TransmissionError, TransmissionPeer
from tests.lab.test_opentracker import announce, compact_peers, written_within

TRACKER_IP = "127.0.0.30"


@pytest.mark.lab
@pytest.mark.slow  # Transmission unchokes a new peer at its next 10 s rechoke
def test_transmission_seeds_to_a_libtorrent_leecher(tmp_path: Path) -> None:
    content = write_random_file(tmp_path / "seed" / "tr.bin", 700_000, seed=21)
    port = free_port(TRACKER_IP)
    url = f"http://{TRACKER_IP}:{port}/announce"
    torrent = make_torrent(content, version="v1", piece_size=32768, trackers=[url])
    hashes = infohashes(torrent)
    assert hashes.v1 is not None
    with (
        OpenTracker(TRACKER_IP, tmp_path / "tracker", hashes.tracker_hashes, port=port),
        TransmissionPeer("127.0.0.31", tmp_path / "transmission") as seeder,
        LibtorrentPeer("127.0.0.32", tmp_path / "leecher", dht=False) as leecher,
    ):
        pid = seeder.pid
        assert seeder.seed(torrent, tmp_path / "seed") == hashes.v1.hex()
        assert seeder.wait_until_seeding(20)
        assert seeder.wait_until_announced(20)
        leecher.leech(torrent, tmp_path / "down")
        assert leecher.wait_until("complete", 60), leecher.errors
        assert written_within(tmp_path / "down" / "tr.bin", content.read_bytes(), 15)
        peers = compact_peers(announce(url, hashes.v1)[b"peers"])  # type: ignore[arg-type]
        assert (seeder.ip, seeder.port) in peers
        with pytest.raises(TransmissionError, match="torrent-bogus"):
            seeder.rpc("torrent-bogus")
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
