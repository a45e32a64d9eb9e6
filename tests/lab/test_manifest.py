import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atalaya.hashsets.formats import CsvReader, Record
from atalaya.lab.layout import HASH_SET_NAME, load_manifest
from atalaya.lab.manifest import HASH_SET_COLUMNS, write_outputs
from atalaya.lab.network import LabNetwork, LabSpec
from atalaya.networks.bittorrent.bencode import decode

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabNetwork]:
    spec = LabSpec(seeders=2, leechers=1, ip_prefix="127.83.0", file_size=100_000)
    with LabNetwork(spec, tmp_path_factory.mktemp("lab")) as network:
        write_outputs(network, supervisor_pid=4242)
        yield network


def _records(lab: LabNetwork) -> list[Record]:
    data = (lab.lab_dir / HASH_SET_NAME).read_bytes()
    items = list(CsvReader(io.BytesIO(data), source="lab", category=None))
    assert all(isinstance(r, Record) for r in items), items
    return [r for r in items if isinstance(r, Record)]


def test_hash_set_is_one_valid_row_per_watched_file(lab: LabNetwork) -> None:
    header = (lab.lab_dir / HASH_SET_NAME).read_text().splitlines()[0].split(",")
    assert tuple(header) == HASH_SET_COLUMNS
    records = {r.name: r for r in _records(lab)}
    watched = {
        p.path.rsplit("/", 1)[-1]: (built, p)
        for built in lab.torrents.values()
        for p in built.plan.files
        if p.watched
    }
    assert set(records) == set(watched)
    assert "lab-unwatched-v1.bin" not in records
    for name, (built, planned) in watched.items():
        record = records[name]
        data = (lab.content_dir / planned.path).read_bytes()
        assert record.hashes["md5"] == hashlib.md5(data).digest()
        assert record.hashes["sha1"] == hashlib.sha1(data).digest()
        assert record.hashes["sha256"] == hashlib.sha256(data).digest()
        assert record.category_label == planned.category
        if built.plan.infohash_watched:
            assert record.hashes.get("btih") == built.hashes.v1
            assert record.hashes.get("btih2") == built.hashes.v2
        else:
            assert "btih" not in record.hashes
            assert "btih2" not in record.hashes


def test_discovery_fingerprints_match_the_torrents(lab: LabNetwork) -> None:
    records = {r.name: r for r in _records(lab)}
    # v2: the file's pieces root, as the torrent's file tree states it.
    v2 = lab.torrents["lab-discover-v2"]
    tree = decode(v2.torrent)[b"info"][b"file tree"]
    root = tree[b"2-found-by-root.bin"][b""][b"pieces root"]
    assert records["2-found-by-root.bin"].hashes["btv2_root"] == root
    # v1: pad files put the watched file on a piece boundary, so its first
    # piece's SHA-1 is one of the torrent's piece hashes.
    v1 = lab.torrents["lab-discover-v1"]
    info = decode(v1.torrent)[b"info"]
    piece_size = info[b"piece length"]
    offset = 0
    for entry in info[b"files"]:
        if entry[b"path"] == [b"2-found-by-piece.bin"]:
            break
        offset += entry[b"length"]
    assert offset % piece_size == 0
    index = offset // piece_size
    expected = info[b"pieces"][20 * index : 20 * index + 20]
    assert records["2-found-by-piece.bin"].hashes[f"btv1_{piece_size}"] == expected
    for name in ("2-found-by-root.bin", "2-found-by-piece.bin"):
        for infohash in (v1.hashes.v1, v2.hashes.v2):
            assert infohash not in records[name].hashes.values()


def test_manifest_describes_the_running_lab(lab: LabNetwork) -> None:
    manifest: dict[str, Any] = load_manifest(lab.lab_dir)
    assert json.loads(json.dumps(manifest)) == manifest
    assert manifest["supervisor_pid"] == 4242
    assert lab.tracker is not None
    assert manifest["tracker"]["announce_url"] == lab.tracker.announce_url
    assert manifest["child_pids"] == [lab.tracker.pid]
    assert manifest["ed2k_peers"] == []  # no aMule unless asked for
    ips = [p["ip"] for p in manifest["peers"]]
    assert len(set(ips)) == len(ips)
    assert {(n["ip"], n["port"]) for n in manifest["dht_nodes"]} == {
        (p.ip, p.port) for p in lab.peers.values()
    }
    by_name = {t["name"]: t for t in manifest["torrents"]}
    assert set(by_name) == set(lab.torrents)
    for name, entry in by_name.items():
        built = lab.torrents[name]
        assert entry["infohash_v1"] == (built.hashes.v1.hex() if built.hashes.v1 else None)
        assert entry["infohash_v2"] == (built.hashes.v2.hex() if built.hashes.v2 else None)
        assert Path(entry["torrent_file"]).read_bytes() == built.torrent
        announce = decode(built.torrent)[b"announce-list"]
        assert [t[0].decode() for t in announce] == [
            manifest["tracker"]["announce_url"],
            manifest["tracker"]["udp_url"],
        ]
        for peer in manifest["peers"]:
            assert (name in peer["seeds"]) == (peer["name"] in entry["seeders"])
            assert (name in peer["holds_nothing"]) == (peer["name"] in entry["holding_nothing"])
        for file in entry["files"]:
            data = (lab.content_dir / file["path"]).read_bytes()
            assert file["md5"] == hashlib.md5(data).hexdigest()
            assert file["sha256"] == hashlib.sha256(data).hexdigest()
