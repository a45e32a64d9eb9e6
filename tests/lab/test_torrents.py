import hashlib
from pathlib import Path

import libtorrent as lt
import pytest

from atalaya.lab.files import write_random_file
from atalaya.lab.torrents import infohashes, make_torrent
from atalaya.networks.bittorrent.bencode import decode, encode

TRACKERS = ("http://127.0.0.9:7000/announce", "udp://127.0.0.9:7000/announce")


@pytest.fixture
def single(tmp_path: Path) -> Path:
    return write_random_file(tmp_path / "single.bin", 100_000, seed=1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_random_file(tmp_path / "multi" / "a.bin", 50_000, seed=2)
    write_random_file(tmp_path / "multi" / "b.bin", 70_000, seed=3)
    return tmp_path / "multi"


def test_v1_single_file(single: Path) -> None:
    torrent = make_torrent(single, version="v1", piece_size=16384, trackers=TRACKERS)
    meta = decode(torrent)
    info = meta[b"info"]
    assert meta[b"announce"] == TRACKERS[0].encode()
    assert [t[0] for t in meta[b"announce-list"]] == [u.encode() for u in TRACKERS]
    assert b"meta version" not in info
    assert info[b"length"] == 100_000
    data = single.read_bytes()
    # Independent check of libtorrent's output: the first piece's SHA-1.
    assert info[b"pieces"][:20] == hashlib.sha1(data[:16384]).digest()
    hashes = infohashes(torrent)
    assert hashes.v1 == hashlib.sha1(encode(info)).digest()
    assert hashes.v2 is None


def test_v2_single_file(single: Path) -> None:
    torrent = make_torrent(single, version="v2", piece_size=16384)
    info = decode(torrent)[b"info"]
    assert info[b"meta version"] == 2
    assert b"pieces" not in info
    hashes = infohashes(torrent)
    assert hashes.v1 is None
    assert hashes.v2 == hashlib.sha256(encode(info)).digest()
    assert hashes.tracker_hashes == (hashes.v2[:20],)


def test_hybrid_folder_has_pad_files(folder: Path) -> None:
    torrent = make_torrent(folder, version="hybrid", piece_size=16384)
    info = decode(torrent)[b"info"]
    assert info[b"meta version"] == 2
    files = info[b"files"]
    assert [f[b"path"] for f in files][:2] == [[b"a.bin"], [b".pad", b"15536"]]
    assert files[1][b"attr"] == b"p"
    hashes = infohashes(torrent)
    assert hashes.v1 == hashlib.sha1(encode(info)).digest()
    assert hashes.v2 == hashlib.sha256(encode(info)).digest()


def test_v1_folder_pad_files_on_request(folder: Path) -> None:
    plain = decode(make_torrent(folder, version="v1", piece_size=16384))[b"info"][b"files"]
    padded = decode(make_torrent(folder, version="v1", piece_size=16384, pad_files=True))
    paths = [f[b"path"] for f in padded[b"info"][b"files"]]
    assert [f[b"path"] for f in plain] == [[b"a.bin"], [b"b.bin"]]
    assert paths[:3] == [[b"a.bin"], [b".pad", b"15536"], [b"b.bin"]]
    # b.bin starts on a piece boundary: piece 4 is b.bin's first 16 KiB.
    second_first_piece = (folder / "b.bin").read_bytes()[:16384]
    pieces = padded[b"info"][b"pieces"]
    assert pieces[80:100] == hashlib.sha1(second_first_piece).digest()


def test_libtorrent_loads_all_versions(single: Path) -> None:
    for version in ("v1", "v2", "hybrid"):
        ti = lt.torrent_info(lt.bdecode(make_torrent(single, version=version, piece_size=32768)))
        assert ti.name() == "single.bin"
        assert ti.num_pieces() == 4


def test_bad_arguments(single: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="power of two"):
        make_torrent(single, version="v1", piece_size=20000)
    with pytest.raises(ValueError, match="unknown torrent version"):
        make_torrent(single, version="v3", piece_size=16384)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        make_torrent(tmp_path / "missing", version="v1", piece_size=16384)
