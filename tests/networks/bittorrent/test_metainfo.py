"""Metainfo against torrents libtorrent makes of random files, malformed vectors, properties."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.lab.files import write_random_file
from atalaya.lab.torrents import TorrentVersion, infohashes, make_torrent
from atalaya.networks.bittorrent import merkle
from atalaya.networks.bittorrent import metainfo as metainfo_module
from atalaya.networks.bittorrent.bencode import (
    BValue,
    decode,
    decode_prefix,
    encode,
)
from atalaya.networks.bittorrent.magnet import parse_magnet
from atalaya.networks.bittorrent.metainfo import (
    METAINFO_LIMITS,
    FileEntry,
    Metainfo,
    MetainfoError,
    parse_info,
    parse_torrent,
)
from tests.networks.bittorrent.handmade import HASH, ROOT
from tests.networks.bittorrent.handmade import hybrid_info as _hybrid
from tests.networks.bittorrent.handmade import leaf as _leaf
from tests.networks.bittorrent.handmade import multi_info as _multi
from tests.networks.bittorrent.handmade import torrent as _torrent
from tests.networks.bittorrent.handmade import v1_info as _v1
from tests.networks.bittorrent.handmade import v2_info as _v2

TRACKERS = ("http://127.0.0.9:7000/announce", "udp://127.0.0.9:7000/announce")
PIECE = 32768


@dataclass(frozen=True)
class Case:
    name: str
    version: TorrentVersion
    content: Path
    torrent: bytes


def _folder(root: Path) -> Path:
    folder = root / "multi"
    write_random_file(folder / "a.bin", 70_000, seed=11)  # 2 pieces and a bit
    write_random_file(folder / "empty.bin", 0, seed=12)
    write_random_file(folder / "sub" / "b.bin", PIECE, seed=13)  # exactly one piece
    write_random_file(folder / "sub" / "c.bin", 3 * PIECE + 1, seed=14)
    write_random_file(folder / "z.bin", 5, seed=15)  # last, smaller than a piece
    return folder


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("content")
    single = write_random_file(root / "single.bin", 100_000, seed=1)
    small = write_random_file(root / "small.bin", 5_000, seed=2)
    folder = _folder(root)
    made: dict[str, Case] = {}
    for version in ("v1", "v2", "hybrid"):
        for label, content in (("single", single), ("small", small), ("multi", folder)):
            name = f"{version}-{label}"
            torrent = make_torrent(content, version=version, piece_size=PIECE, trackers=TRACKERS)
            made[name] = Case(name, version, content, torrent)
    made["v1-multi-pad"] = Case(
        "v1-multi-pad",
        "v1",
        folder,
        make_torrent(folder, version="v1", piece_size=PIECE, pad_files=True),
    )
    made["v2-single-16k"] = Case(
        "v2-single-16k", "v2", single, make_torrent(single, version="v2", piece_size=16384)
    )
    return made


CASE_NAMES = [
    f"{v}-{label}" for v in ("v1", "v2", "hybrid") for label in ("single", "small", "multi")
] + ["v1-multi-pad", "v2-single-16k"]


def _libtorrent_files(torrent: bytes) -> list[tuple[tuple[str, ...], int, int, bool, bytes]]:
    ti = lt.torrent_info(torrent)
    fs = ti.layout()
    files = []
    for i in range(fs.num_files()):
        pad = bool(fs.file_flags(i) & fs.flag_pad_file)
        root = fs.root(i).to_bytes()
        if pad or root == bytes(32):  # libtorrent gives pad and empty files a zero root
            root = b""
        files.append(
            (tuple(fs.file_path(i).split("/")), fs.file_size(i), fs.file_offset(i), pad, root)
        )
    return files


def _piece_bytes(meta: Metainfo, content: Path, piece: int) -> bytes:
    """Piece `piece` assembled from the files on disk through `spans` (pad files are zeros)."""
    out = bytearray()
    for span in meta.spans(piece):
        f = meta.files[span.file_index]
        assert span.piece_offset == len(out)
        if f.pad:
            out += bytes(span.length)
            continue
        with (content.parent / Path(*f.path)).open("rb") as fh:
            fh.seek(span.file_offset)
            out += fh.read(span.length)
    return bytes(out)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_infohashes_equal_libtorrents(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    meta = parse_torrent(case.torrent)
    expected = infohashes(case.torrent)
    assert (meta.infohash_v1, meta.infohash_v2) == (expected.v1, expected.v2)
    assert meta.version == case.version
    assert meta.swarm_hashes == expected.tracker_hashes
    for h in (expected.v1, expected.v2):
        if h is not None:
            assert meta.matches(h)
            assert meta.matches(h[:20])
    assert not meta.matches(bytes(20))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_files_equal_libtorrents(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    meta = parse_torrent(case.torrent)
    theirs = _libtorrent_files(case.torrent)
    if case.version == "v2":
        # libtorrent lists v2's alignment gaps as pad files; they are not in the torrent.
        theirs = [t for t in theirs if not t[3]]
    ours = [(f.path, f.length, f.offset, f.pad, f.pieces_root or b"") for f in meta.files]
    if case.version == "v1":
        theirs = [(p, n, o, pad, b"") for p, n, o, pad, _ in theirs]
    assert ours == theirs
    ti = lt.torrent_info(case.torrent)
    assert meta.name == ti.name()
    assert meta.piece_length == ti.piece_length()
    assert meta.num_pieces == ti.num_pieces()
    assert meta.total_size == sum(f.stat().st_size for f in _content_files(case.content))
    assert meta.info_size == len(ti.info_section())


def _content_files(content: Path) -> list[Path]:
    return [content] if content.is_file() else [p for p in content.rglob("*") if p.is_file()]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_piece_sizes(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    meta = parse_torrent(case.torrent)
    ti = lt.torrent_info(case.torrent)
    for piece in range(meta.num_pieces):
        spans = meta.spans(piece)
        assert sum(s.length for s in spans) == meta.piece_size(piece)
        if case.version != "v2":
            assert meta.piece_size(piece) == ti.piece_size(piece)
        else:
            # A v2 piece holds its file's bytes only; libtorrent counts the gap after it.
            assert len(spans) == 1
            assert meta.piece_size(piece) <= ti.piece_size(piece)
    with pytest.raises(MetainfoError):
        meta.piece_size(meta.num_pieces)
    with pytest.raises(MetainfoError):
        meta.spans(-1)


@pytest.mark.parametrize("name", [n for n in CASE_NAMES if not n.startswith("v2")])
def test_v1_pieces_assembled_from_spans_match_their_sha1(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    meta = parse_torrent(case.torrent)
    for piece in range(meta.num_pieces):
        data = _piece_bytes(meta, case.content, piece)
        assert hashlib.sha1(data).digest() == meta.piece_hash_v1(piece)


@pytest.mark.parametrize("name", [n for n in CASE_NAMES if not n.startswith("v1")])
def test_v2_pieces_verify_against_piece_layers(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    meta = parse_torrent(case.torrent)
    checked = 0
    for index, f in enumerate(meta.files):
        hashes = meta.piece_hashes_v2(index)
        if f.pad or f.length == 0:
            assert hashes is None
            continue
        assert hashes is not None
        pieces = meta.file_pieces(index)
        assert len(hashes) == len(pieces)
        # Independent of the torrent's layers: the tree built from the file's bytes.
        tree = merkle.FileMerkle([meta.piece_length])
        tree.update((case.content.parent / Path(*f.path)).read_bytes())
        assert tree.pieces_root() == f.pieces_root
        assert tuple(tree.piece_layer(meta.piece_length)) == hashes
        for local, piece in enumerate(pieces):
            data = _piece_bytes(meta, case.content, piece)
            if meta.version == "hybrid":
                data = data[: min(meta.piece_length, f.length - local * meta.piece_length)]
            assert merkle.verify_piece(data, local, hashes[local], meta.piece_length)
            checked += 1
    assert checked >= 1
    assert dict(meta.v2_roots()) == {
        i: f.pieces_root for i, f in enumerate(meta.files) if f.pieces_root
    }


@pytest.mark.parametrize("name", [n for n in CASE_NAMES if not n.startswith("v1")])
def test_piece_layers_are_those_of_the_torrent(cases: dict[str, Case], name: str) -> None:
    meta = parse_torrent(cases[name].torrent)
    raw = decode(cases[name].torrent, METAINFO_LIMITS)
    assert isinstance(raw, dict)
    layers = raw[b"piece layers"]
    assert isinstance(layers, dict)
    assert {k: b"".join(v) for k, v in meta.piece_layers.items()} == layers
    # Only files longer than a piece have a layer: all cases but the small file.
    assert bool(meta.piece_layers) == (not name.endswith("-small"))


# Which files of each case a v1 first piece fingerprints: they start on a piece
# boundary and fill it, or they end the torrent.
EXPECTED_FIRST_PIECES = {
    "v1-single": ["single.bin"],
    "v1-small": ["small.bin"],
    # No pad files: a.bin at 0; b.bin, c.bin and z.bin start mid-piece.
    "v1-multi": ["a.bin"],
    # Pad files align every file; z.bin (5 bytes) ends the torrent only without a tail pad.
    "v1-multi-pad": ["a.bin", "b.bin", "c.bin"],
    "hybrid-single": ["single.bin"],
    "hybrid-small": ["small.bin"],
    "hybrid-multi": ["a.bin", "b.bin", "c.bin"],
}


@pytest.mark.parametrize("name", CASE_NAMES)
def test_first_piece_fingerprints(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    meta = parse_torrent(case.torrent)
    found = meta.first_pieces()
    assert [meta.files[fp.file_index].path[-1] for fp in found] == EXPECTED_FIRST_PIECES.get(
        name, []
    )
    for fp in found:
        f = meta.files[fp.file_index]
        data = (case.content.parent / Path(*f.path)).read_bytes()
        assert fp.sha1 == hashlib.sha1(data[: meta.piece_length]).digest()
        assert fp.piece_length == meta.piece_length
        assert fp.algorithm == f"btv1_{meta.piece_length}"
        assert fp.whole_file == (len(data) <= meta.piece_length)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bare_info_dictionary(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    full = parse_torrent(case.torrent)
    info = lt.torrent_info(case.torrent).info_section()
    bare = parse_info(info)
    assert (bare.infohash_v1, bare.infohash_v2) == (full.infohash_v1, full.infohash_v2)
    assert bare.files == full.files
    assert bare.pieces == full.pieces
    assert bare.num_pieces == full.num_pieces
    assert bare.first_pieces() == full.first_pieces()
    assert not bare.piece_layers
    assert bare.trackers == ()
    for index, f in enumerate(bare.files):
        hashes = bare.piece_hashes_v2(index)
        if f.pieces_root is None:
            assert hashes is None
        elif f.length <= bare.piece_length:
            assert hashes == (f.pieces_root,)
        else:
            assert hashes is None  # to be fetched from peers (BEP 52 hash request)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_trackers_and_magnet(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    meta = parse_torrent(case.torrent)
    if name in ("v1-multi-pad", "v2-single-16k"):
        assert meta.trackers == ()
        assert meta.announce is None
    else:
        assert meta.trackers == TRACKERS
        assert meta.announce == TRACKERS[0]
        assert meta.announce_list == ((TRACKERS[0],), (TRACKERS[1],))
    magnet = parse_magnet(lt.make_magnet_uri(lt.torrent_info(case.torrent)))
    assert (magnet.infohash_v1, magnet.infohash_v2) == (meta.infohash_v1, meta.infohash_v2)
    assert magnet.name == meta.name


def test_private_flag_is_read_and_changes_the_infohash(cases: dict[str, Case]) -> None:
    torrent = decode(cases["hybrid-multi"].torrent, METAINFO_LIMITS)
    assert isinstance(torrent, dict)
    info = torrent[b"info"]
    assert isinstance(info, dict)
    public = parse_torrent(cases["hybrid-multi"].torrent)
    assert not public.private
    info[b"private"] = 1
    data = encode(torrent)
    private = parse_torrent(data)
    ti = lt.torrent_info(data)
    assert private.private and ti.priv()
    assert private.infohash_v1 == ti.info_hashes().v1.to_bytes() != public.infohash_v1
    assert private.infohash_v2 == ti.info_hashes().v2.to_bytes() != public.infohash_v2


def test_infohash_covers_the_exact_info_bytes(cases: dict[str, Case]) -> None:
    data = cases["v1-multi"].torrent
    start = data.index(b"4:infod") + len(b"4:info")
    _, end = decode_prefix(data, METAINFO_LIMITS, start)
    meta = parse_torrent(data)
    assert meta.infohash_v1 == hashlib.sha1(data[start:end]).digest()
    assert meta.info_size == end - start


def test_spans_of_a_block_within_a_piece(cases: dict[str, Case]) -> None:
    meta = parse_torrent(cases["v1-multi"].torrent)
    # v1 without padding, in the order libtorrent chose, end to end.
    layout = [(f.path[-1], f.offset, f.length) for f in meta.files]
    assert layout == [
        ("a.bin", 0, 70_000),
        ("z.bin", 70_000, 5),
        ("empty.bin", 70_005, 0),
        ("b.bin", 70_005, PIECE),
        ("c.bin", 70_005 + PIECE, 3 * PIECE + 1),
    ]
    # Piece 2 starts at 65536: a block 4000 bytes in crosses a.bin, z.bin and b.bin.
    spans = meta.spans(2, 4000, 1000)
    assert [(meta.files[s.file_index].path[-1], s.file_offset, s.piece_offset, s.length)
            for s in spans] == [("a.bin", 69536, 4000, 464), ("z.bin", 0, 4464, 5),
                                ("b.bin", 0, 4469, 531)]  # fmt: skip
    empty = [f.path[-1] for f in meta.files].index("empty.bin")
    assert meta.file_pieces(0) == range(0, 3)
    assert meta.file_pieces(empty) == range(0)
    assert meta.file_pieces(len(meta.files) - 1) == range(3, 7)
    assert meta.spans(2, 5, 0) == ()
    with pytest.raises(MetainfoError):
        meta.spans(2, PIECE, 1)
    with pytest.raises(MetainfoError):
        meta.spans(2, -1, 1)
    with pytest.raises(MetainfoError):
        meta.file_pieces(len(meta.files))


# --- malformed vectors: what no real torrent can be ----------------------------------------

MALFORMED: list[tuple[str, bytes, str]] = [
    ("not bencode", b"d4:info", "not valid bencode"),
    ("empty", b"", "not a bencoded dictionary"),
    ("a list", b"le", "not a bencoded dictionary"),
    ("top-level int key", b"di1ei1ee", "dictionary key is not a string"),
    ("no info", encode({b"announce": b"http://127.0.0.1/"}), "no info dictionary"),
    ("info not a dict", _torrent([]), "info is not a dictionary"),
    ("no pieces, no tree", _torrent({b"name": b"x", b"piece length": 16384}), "neither v1"),
    ("no piece length", _torrent(_v1(**{"piece length": None})), "piece length missing"),
    ("piece length 0", _torrent(_v1(**{"piece length": 0})), "piece length 0 outside"),
    ("piece length < 0", _torrent(_v1(**{"piece length": -16384})), "outside 1.."),
    ("piece length past 4 GiB", _torrent(_v1(**{"piece length": (1 << 32) + 1}, pieces=HASH)),
     "outside 1..4294967296"),
    ("piece length text", _torrent(_v1(**{"piece length": b"16384"})), "not an integer"),
    ("pieces not 20s", _torrent(_v1(pieces=HASH * 2 + b"x")), "whole number of 20-byte"),
    ("too few pieces", _torrent(_v1(pieces=HASH)), "1 piece hashes for 20000 bytes"),
    ("too many pieces", _torrent(_v1(pieces=HASH * 3)), "3 piece hashes for 20000 bytes"),
    ("pieces not a string", _torrent(_v1(pieces=[HASH])), "pieces missing or not a string"),
    ("negative length", _torrent(_v1(length=-1)), "length -1 outside"),
    ("huge length", _torrent(_v1(length=1 << 49, pieces=HASH)), "outside 0.."),
    ("no data", _torrent(_v1(length=0, pieces=b"")), "holds no data"),
    ("only a symlink", _torrent(_v1(attr=b"l", pieces=b"")), "holds no data"),
    ("single pad", _torrent(_v1(attr=b"p")), "is a pad file"),
    ("files empty", _torrent(_v1(length=None, files=[])), "files is an empty list"),
    ("files not a list", _torrent(_v1(length=None, files={})), "neither 'length' nor a 'files'"),
    ("file not a dict", _torrent(_v1(length=None, files=[[]])), "files[0] is not a dictionary"),
    ("file no length", _torrent(_v1(length=None, files=[{b"path": [b"a"]}])), "length missing"),
    ("path too deep", _torrent(_multi(([b"d"] * 1025, 20000))), "path deeper than 1024"),
    # v2
    ("meta version 1", _torrent(_v2({b"file.bin": _leaf(20000)}, **{"meta version": 1})),
     "meta version must be 2"),
    ("meta version 2 text", _torrent(_v2({b"file.bin": _leaf(20000)}, **{"meta version": b"2"})),
     "meta version must be 2"),
    ("tree without version", _torrent(_v2({b"file.bin": _leaf(20000)}, **{"meta version": None})),
     "meta version missing"),
    ("version without tree", _torrent(_v2(None)), "file tree missing or empty"),
    ("tree empty", _torrent(_v2({})), "file tree missing or empty"),
    ("tree a list", _torrent(_v2([])), "file tree missing or empty"),
    ("v2 piece 3 KiB", _torrent(_v2({b"file.bin": _leaf(20000)}, **{"piece length": 3072})),
     "power of two >= 16 KiB"),
    ("v2 piece 8 KiB", _torrent(_v2({b"file.bin": _leaf(20000)}, **{"piece length": 8192})),
     "power of two >= 16 KiB"),
    ("v2 piece 3*16 KiB", _torrent(_v2({b"file.bin": _leaf(20000)}, **{"piece length": 49152})),
     "power of two >= 16 KiB"),
    ("v2 tree of no file", _torrent(_v2({b"a": b"x", b"b": {}})), "holds no data"),
    ("v2 attrs not dict", _torrent(_v2({b"a": {b"": 1}})), "attributes that are not a dict"),
    ("v2 no length", _torrent(_v2({b"a": {b"": {b"pieces root": ROOT}}})), "length missing"),
    ("v2 no root", _torrent(_v2({b"a": _leaf(1, None)})), "pieces root missing"),
    ("v2 short root", _torrent(_v2({b"a": _leaf(1, b"\x00" * 31)})), "is not 32 bytes"),
    ("v2 zero root", _torrent(_v2({b"a": _leaf(1, bytes(32))})), "pieces root is all zeros"),
    ("hybrid zero root", _torrent(_hybrid(file_tree={b"a": _leaf(20000, bytes(32)),
                                                     b"b": _leaf(100, b"\x33" * 32)})),
     "pieces root is all zeros"),
    ("v2 all empty", _torrent(_v2({b"a": _leaf(0, None)})), "holds no data"),
    # hybrid consistency
    ("hybrid ok but pieces short", _torrent(_hybrid(pieces=HASH * 2)), "2 piece hashes"),
    ("hybrid length differs", _torrent(_hybrid(files=[
        {b"length": 20001, b"path": [b"a"]},
        {b"attr": b"p", b"length": 12767, b"path": [b".pad", b"12767"]},
        {b"length": 100, b"path": [b"b"]},
    ])), "does not match v2 file"),
    ("hybrid path differs", _torrent(_hybrid(files=[
        {b"length": 20000, b"path": [b"A"]},
        {b"attr": b"p", b"length": 12768, b"path": [b".pad", b"12768"]},
        {b"length": 100, b"path": [b"b"]},
    ])), "does not match v2 file"),
    ("hybrid file missing", _torrent(_hybrid(files=[
        {b"length": 20000, b"path": [b"a"]},
    ], pieces=HASH * 2)), "lists 1 v1 files but 2 v2 files"),
    ("hybrid not aligned", _torrent(_hybrid(files=[
        {b"length": 20000, b"path": [b"a"]},
        {b"length": 100, b"path": [b"b"]},
    ], pieces=HASH * 2)), "does not start on a piece boundary"),
    ("hybrid tail pad of a piece", _torrent(_hybrid(files=[
        {b"length": 20000, b"path": [b"a"]},
        {b"attr": b"p", b"length": 12768, b"path": [b".pad", b"12768"]},
        {b"length": 100, b"path": [b"b"]},
        {b"attr": b"p", b"length": 16384 + 16284, b"path": [b".pad", b"x"]},
    ], pieces=HASH * 4)), "4 v1 pieces but 3 v2 pieces"),
    ("hybrid single, tree of a folder", _torrent(_v2({b"dir": {b"file.bin": _leaf(20000)}},
                                                     length=20000, pieces=HASH * 2)),
     "single-file torrent has a file 'dir/file.bin' not named 'file.bin'"),
    ("hybrid single, tree of two", _torrent(_v2({b"a": _leaf(10000), b"file.bin": _leaf(10000)},
                                                length=20000, pieces=HASH * 2)),
     "single-file torrent has a file 'a' not named 'file.bin'"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "data", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_metainfo(label: str, data: bytes, message: str) -> None:
    with pytest.raises(MetainfoError) as info:
        parse_torrent(data)
    assert message in str(info.value), label
    assert isinstance(info.value, ValueError)


def test_malformed_vectors_differ_from_a_valid_base_only_in_their_fault() -> None:
    # The table's builders produce valid torrents when left unchanged.
    assert parse_torrent(_torrent(_v1())).files == (FileEntry(("file.bin",), 20000, 0),)
    meta = parse_torrent(_torrent(_multi(([b"a"], 10000), ([b"b", b"c"], 10000))))
    assert [f.path for f in meta.files] == [("file.bin", "a"), ("file.bin", "b", "c")]
    meta = parse_torrent(_torrent(_v2({b"file.bin": _leaf(20000)})))
    assert meta.files == (FileEntry(("file.bin",), 20000, 0, "", ROOT),)
    meta = parse_torrent(_torrent(_hybrid()))
    assert meta.version == "hybrid"
    assert [(f.path, f.offset, f.pieces_root) for f in meta.files] == [
        (("dir", "a"), 0, ROOT),
        (("dir", ".pad", "12768"), 20000, None),
        (("dir", "b"), 32768, b"\x33" * 32),
    ]
    assert meta.first_pieces()[1].file_index == 2  # b ends the torrent: whole file
    assert parse_torrent(
        _torrent(_v1(), announce_list=[[b"http://127.0.0.1/%d" % i] for i in range(256)])
    )
    # A folder named like its only file is a multi-file torrent in both parts of a hybrid.
    meta = parse_torrent(
        _torrent(
            _v2(
                {b"file.bin": _leaf(20000)},
                pieces=HASH * 2,
                files=[{b"length": 20000, b"path": [b"file.bin"]}],
            )
        )
    )
    assert [f.path for f in meta.files] == [("file.bin", "file.bin")]


def test_legacy_names_are_kept_with_replacement_characters() -> None:
    meta = parse_torrent(_torrent(_v1(name=b"caf\xe9.bin")))
    assert meta.name == "caf\ufffd.bin"
    meta = parse_torrent(
        _torrent(_v1(**{"name": b"caf\xe9.bin", "name.utf-8": "café.bin".encode()}))
    )
    assert meta.name == "café.bin"


def test_file_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metainfo_module, "MAX_FILES", 3)
    files = [([b"f%d" % i], 5000) for i in range(4)]
    with pytest.raises(MetainfoError, match="more than 3 files"):
        parse_torrent(_torrent(_multi(*files)))
    tree: BValue = {b"f%d" % i: _leaf(5000) for i in range(4)}
    with pytest.raises(MetainfoError, match="more than 3 files"):
        parse_torrent(_torrent(_v2(tree)))
    parse_torrent(_torrent(_multi(*files[:3])))


def test_bare_info_errors() -> None:
    with pytest.raises(MetainfoError, match="info dictionary is not valid bencode"):
        parse_info(encode(_v1()) + b"x")
    with pytest.raises(MetainfoError, match="info is not a dictionary"):
        parse_info(b"i1e")
    info = encode(_v1())
    assert parse_info(info).infohash_v1 == hashlib.sha1(info).digest()


# --- properties --------------------------------------------------------------------------

_PARSERS: list[Callable[[bytes], Metainfo]] = [parse_torrent, parse_info]


def _check_invariants(meta: Metainfo) -> None:
    assert meta.num_pieces > 0
    for piece in {0, meta.num_pieces - 1}:
        assert sum(s.length for s in meta.spans(piece)) == meta.piece_size(piece) > 0
    for fp in meta.first_pieces():
        assert len(fp.sha1) == 20


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(_PARSERS))
def test_arbitrary_bytes_raise_only_metainfo_error(
    data: bytes, parse: Callable[[bytes], Metainfo]
) -> None:
    try:
        meta = parse(data)
    except MetainfoError:
        return
    _check_invariants(meta)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mutated_torrents_raise_only_metainfo_error(
    cases: dict[str, Case], data: st.DataObject
) -> None:
    torrent = bytearray(cases[data.draw(st.sampled_from(sorted(cases)))].torrent)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        at = data.draw(st.integers(0, len(torrent)))
        if kind == "flip" and at < len(torrent):
            torrent[at] = data.draw(st.integers(0, 255))
        elif kind == "delete":
            del torrent[at : at + data.draw(st.integers(1, 8))]
        elif kind == "insert":
            torrent[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del torrent[at:]
    try:
        meta = parse_torrent(bytes(torrent))
    except MetainfoError:
        return
    _check_invariants(meta)


values: st.SearchStrategy[BValue] = st.recursive(
    st.integers(-3, 1 << 20) | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.binary(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _replace_somewhere(value: BValue, data: st.DataObject, depth: int = 0) -> BValue:
    """`value` with one node somewhere inside replaced, removed or added to."""
    if isinstance(value, dict) and value and depth < 8 and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        copy = dict(value)
        action = data.draw(st.sampled_from(["descend", "replace", "delete", "add"]))
        if action == "descend":
            copy[key] = _replace_somewhere(value[key], data, depth + 1)
        elif action == "replace":
            copy[key] = data.draw(values)
        elif action == "delete":
            del copy[key]
        else:
            copy[data.draw(st.binary(max_size=12))] = data.draw(values)
        return copy
    if isinstance(value, list) and value and depth < 8 and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        copy_list = list(value)
        copy_list[i] = _replace_somewhere(value[i], data, depth + 1)
        return copy_list
    return data.draw(values)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_structurally_mutated_torrents_raise_only_metainfo_error(
    cases: dict[str, Case], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(cases)))
    value = decode(cases[name].torrent, METAINFO_LIMITS)
    mutated = _replace_somewhere(value, data)
    try:
        meta = parse_torrent(encode(mutated))
    except MetainfoError:
        return
    _check_invariants(meta)
