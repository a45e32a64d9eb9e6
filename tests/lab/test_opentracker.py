import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from atalaya.lab.files import write_random_file
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.opentracker import OpenTracker
from atalaya.lab.ports import free_port
from atalaya.lab.torrents import infohashes, make_torrent
from atalaya.networks.bittorrent.bencode import decode

TRACKER_IP = "127.0.0.20"


def announce(url: str, infohash: bytes) -> dict[bytes, object]:
    query = urllib.parse.urlencode(
        {
            "info_hash": infohash,
            "peer_id": b"-AT0000-labtestlabte",
            "port": 9,
            "uploaded": 0,
            "downloaded": 0,
            "left": 0,
            "compact": 1,
            "numwant": 50,
        }
    )
    with urllib.request.urlopen(f"{url}?{query}", timeout=5) as reply:
        result: dict[bytes, object] = decode(reply.read())
        return result


def written_within(path: Path, expected: bytes, timeout: float) -> bool:
    """Whether `path` holds `expected` within `timeout` seconds.

    libtorrent counts a piece as held once its hash passes, which may be
    before its disk thread has written it: on a loaded machine the file lags
    the "complete" status by a moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        if path.is_file() and path.read_bytes() == expected:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def compact_peers(blob: bytes) -> set[tuple[str, int]]:
    return {
        (".".join(str(b) for b in blob[i : i + 4]), int.from_bytes(blob[i + 4 : i + 6], "big"))
        for i in range(0, len(blob) - 5, 6)
    }


@pytest.mark.lab
def test_two_libtorrent_peers_transfer_through_opentracker(tmp_path: Path) -> None:
    content = write_random_file(tmp_path / "seed" / "lab.bin", 1_000_000, seed=3)
    port = free_port(TRACKER_IP)
    trackers = [f"http://{TRACKER_IP}:{port}/announce", f"udp://{TRACKER_IP}:{port}/announce"]
    torrent = make_torrent(content, version="hybrid", piece_size=65536, trackers=trackers)
    hashes = infohashes(torrent)
    tracker = OpenTracker(TRACKER_IP, tmp_path / "tracker", hashes.tracker_hashes, port=port)
    with (
        tracker,
        LibtorrentPeer("127.0.0.2", tmp_path / "a", dht=False) as seeder,
        LibtorrentPeer("127.0.0.3", tmp_path / "b", dht=False) as leecher,
    ):
        assert tracker.announce_url == trackers[0]
        assert tracker.udp_url == trackers[1]
        seeder.seed(torrent, tmp_path / "seed")
        assert seeder.wait_until("seeding", 15)
        assert seeder.wait_until("tracker_announced", 15)
        leecher.leech(torrent, tmp_path / "down")
        assert leecher.wait_until("complete", 30)
        assert written_within(tmp_path / "down" / "lab.bin", content.read_bytes(), 15)
        assert hashes.v1 is not None
        assert leecher.holds(hashes.v1) == 1.0
        # The tracker saw each peer at its own address and listen port.
        assert leecher.wait_until("tracker_announced", 15)
        reply = announce(tracker.announce_url, hashes.v1)
        peers = reply[b"peers"]
        assert isinstance(peers, bytes)
        assert {(seeder.ip, seeder.port), (leecher.ip, leecher.port)} <= compact_peers(peers)
    assert tracker.process is None


@pytest.mark.lab
def test_refuses_infohashes_off_the_whitelist(tmp_path: Path) -> None:
    listed = bytes(range(20))
    with OpenTracker(TRACKER_IP, tmp_path, [listed, bytes(32)]) as tracker:
        pid = tracker.pid
        assert (tmp_path / "whitelist.txt").read_text().split() == [listed.hex(), "00" * 20]
        assert b"failure reason" not in announce(tracker.announce_url, listed)
        refused = announce(tracker.announce_url, b"\xff" * 20)
        assert b"not authorized" in refused[b"failure reason"]  # type: ignore[operator]
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
