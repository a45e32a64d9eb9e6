"""Metainfo accepts what the info-hash does not depend on, and notes what it forgave.

One hand-made torrent per rule (issue 9, "parsers that miss no offender"):
odd or colliding paths, BEP 47 symlinks, pad files and attributes, junk
trackers and piece layers, unsorted or repeated keys, deep trees, large
pieces, odd private flags, trailing bytes. Each checks that the torrent
loads, that its info-hash is the digest of the info bytes exactly as given,
what the parser made of the fault and that a note says so; libtorrent, where
it loads the same file, agrees on what identifies.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import libtorrent as lt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent import merkle
from atalaya.networks.bittorrent import metainfo as metainfo_module
from atalaya.networks.bittorrent.bencode import BValue, Limits, encode, scan
from atalaya.networks.bittorrent.metainfo import (
    METAINFO_LIMITS,
    STRICT_METAINFO_LIMITS,
    Metainfo,
    MetainfoError,
    parse_info,
    parse_torrent,
)
from atalaya.networks.bittorrent.notes import MAX_NOTE_CHARS, MAX_NOTES
from tests.networks.bittorrent.handmade import (
    HASH,
    ROOT,
    Raw,
    hybrid_info,
    leaf,
    multi_info,
    ordered,
    torrent,
    v1_info,
    v2_info,
)

ROOT_B = b"\x33" * 32


def _load(info: dict[bytes, BValue], **top: BValue) -> Metainfo:
    """Parse the torrent of `info`, checking its identity is the info's bytes as encoded."""
    meta = parse_torrent(torrent(info, **top))
    _check_identity(meta, encode(info))
    return meta


def _check_identity(meta: Metainfo, info_bytes: bytes) -> None:
    v1 = hashlib.sha1(info_bytes).digest() if meta.version != "v2" else None
    v2 = hashlib.sha256(info_bytes).digest() if meta.version != "v1" else None
    assert (meta.infohash_v1, meta.infohash_v2) == (v1, v2)
    assert meta.info_size == len(info_bytes)


def _noted(meta: Metainfo, fragment: str) -> bool:
    return any(fragment in note for note in meta.notes)


def _libtorrent(data: bytes) -> tuple[lt.torrent_info, list[tuple[int, int]]]:
    """libtorrent's reading: the torrent and (length, offset) of every file."""
    ti = lt.torrent_info(data)
    fs = ti.layout()
    return ti, [(fs.file_size(i), fs.file_offset(i)) for i in range(fs.num_files())]


def _check_paths_are_safe(meta: Metainfo) -> None:
    """Every path can be joined under a folder, and no two files need one place."""
    seen: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for f in meta.files:
        for part in f.path:
            assert part not in ("", ".", "..")
            assert "/" not in part and "\\" not in part and "\x00" not in part
        if f.pad:
            continue
        assert f.path not in seen and f.path not in folders
        seen.add(f.path)
        folders.update(f.path[:depth] for depth in range(1, len(f.path)))
    assert not seen & folders


def _check_prefixes(data: bytes, meta: Metainfo) -> None:
    """Fed whole it loads; cut anywhere before the dictionary ends, only a MetainfoError."""
    for cut in range(len(data)):
        try:
            part = parse_torrent(data[:cut])
        except MetainfoError:
            continue
        # Only a cut inside trailing bytes can load, and then as the same torrent.
        assert (part.infohash_v1, part.infohash_v2) == (meta.infohash_v1, meta.infohash_v2)


# --- BEP 52 paths: sanitised, never refused --------------------------------------------------

ODD_COMPONENTS = [
    (b"", "_"),
    (b".", "_"),
    (b"..", "_"),
    (b"a/b", "a_b"),
    (b"/etc", "_etc"),
    (b"a\\b", "a_b"),
    (b"..\\x", ".._x"),
    (b"a\x00b", "a_b"),
    (b"caf\xe9", "caf\ufffd"),  # a legacy code page, not UTF-8
    (b"n" * 1025, "n" * 1024),
]


@pytest.mark.parametrize(("raw", "text"), ODD_COMPONENTS)
def test_odd_v1_path_components_are_sanitised_and_kept_raw(raw: bytes, text: str) -> None:
    meta = _load(multi_info(([b"d", raw, b"f.bin"], 10000), ([raw], 10000)))
    assert [f.path for f in meta.files] == [("file.bin", "d", text, "f.bin"), ("file.bin", text)]
    assert [f.raw_path for f in meta.files] == [(b"file.bin", b"d", raw, b"f.bin"),
                                                (b"file.bin", raw)]  # fmt: skip
    assert meta.notes
    _check_paths_are_safe(meta)


# In a v2 tree the empty key marks a file's attributes (see the root case below).
@pytest.mark.parametrize(("raw", "text"), [c for c in ODD_COMPONENTS if c[0]])
def test_odd_v2_path_components_are_sanitised_and_kept_raw(raw: bytes, text: str) -> None:
    meta = _load(v2_info({b"d": {raw: leaf(20000)}, b"z": leaf(100, ROOT_B)}))
    assert [(f.path, f.raw_path) for f in meta.files] == [
        (("file.bin", "d", text), (b"file.bin", b"d", raw)),
        (("file.bin", "z"), None),
    ]
    assert meta.notes


@pytest.mark.parametrize(("raw", "text"), ODD_COMPONENTS)
def test_odd_names_are_sanitised(raw: bytes, text: str) -> None:
    meta = _load(v1_info(name=raw))
    assert meta.name == text
    assert meta.files[0].path == (text,)
    assert meta.files[0].raw_path == (raw,)
    meta = _load(multi_info(([b"a"], 20000), name=raw))
    assert meta.files[0].path == (text, "a")
    assert meta.files[0].raw_path == (raw, b"a")


def test_clean_paths_are_not_noted() -> None:
    meta = _load(multi_info(([b"d", "é".encode(), b"f.bin"], 10000), ([b"g"], 10000)))
    assert [f.raw_path for f in meta.files] == [None, None]
    assert meta.notes == ()


def test_v2_name_that_is_not_utf8_is_kept_with_replacement_characters() -> None:
    meta = _load(v2_info({b"caf\xe9": leaf(1)}, name=b"caf\xe9"))
    assert meta.name == "caf\ufffd"
    assert meta.files[0].path == ("caf\ufffd",)
    assert meta.files[0].raw_path == (b"caf\xe9",)


def test_missing_name_falls_back_to_the_hex_infohash() -> None:
    for name in (None, 7):
        info = multi_info(([b"a"], 20000), name=name)
        meta = _load(info)
        hexname = hashlib.sha1(encode(info)).hexdigest()
        assert meta.name == hexname
        assert meta.files[0].path == (hexname, "a")
        assert meta.files[0].raw_path == (b"", b"a")
        assert _noted(meta, "no name")


def test_path_name_utf8_wins_and_odd_paths_still_load() -> None:
    info = multi_info(([b"caf\xe9"], 20000))
    files = info[b"files"]
    assert isinstance(files, list) and isinstance(files[0], dict)
    files[0][b"path.utf-8"] = ["café".encode()]
    assert [f.path for f in _load(info).files] == [("file.bin", "café")]
    # No path, a component that is not a string: named, noted, kept.
    info = v1_info(length=None, files=[{b"length": 10000}, {b"length": 10000, b"path": [b"a", 1]}])
    meta = _load(info)
    assert [(f.path, f.raw_path) for f in meta.files] == [
        (("file.bin", "_"), (b"file.bin", b"")),
        (("file.bin", "a", "i1e"), (b"file.bin", b"a", b"i1e")),
    ]
    assert _noted(meta, "without a path") and _noted(meta, "not a string")


# --- duplicate paths: renamed, never refused ---------------------------------------------------

DUPLICATES = [
    ([[b"a"], [b"a"]], ["a", "a.1"]),
    ([[b"x.bin"], [b"x.bin"], [b"x.bin"]], ["x.bin", "x.1.bin", "x.2.bin"]),
    ([[b"a"], [b"a.1"], [b"a"]], ["a", "a.1", "a.2"]),
    ([[b".hidden"], [b".hidden"]], [".hidden", ".hidden.1"]),
    # A file where a later one needs a folder: the folder is renamed, for every later file.
    ([[b"a"], [b"a", b"b"], [b"a", b"c"]], ["a", "a.1/b", "a.1/c"]),
    # A folder where a later file wants to be.
    ([[b"a", b"b"], [b"a"]], ["a/b", "a.1"]),
    # Sanitising makes two names one.
    ([[b"a/b"], [b"a_b"]], ["a_b", "a_b.1"]),
    ([[b".."], [b""], [b"_"]], ["_", "_.1", "_.2"]),
    # Deep: the clash is in the middle of the path.
    ([[b"d", b"e"], [b"d", b"e", b"f", b"g"]], ["d/e", "d/e.1/f/g"]),
]


@pytest.mark.parametrize(("paths", "expected"), DUPLICATES)
def test_duplicate_paths_are_renamed(paths: list[list[bytes]], expected: list[str]) -> None:
    data = torrent(multi_info(*[(p, 5000) for p in paths]))
    meta = parse_torrent(data)
    assert ["/".join(f.path[1:]) for f in meta.files] == expected
    for f, raw in zip(meta.files, paths, strict=True):
        clean = "/".join(f.path[1:]).encode() == b"/".join(raw)
        assert f.raw_path == (None if clean else (b"file.bin", *raw))
    assert _noted(meta, "renamed")
    _check_paths_are_safe(meta)
    # libtorrent loads the same file: the same identity, files and offsets.
    ti, files = _libtorrent(data)
    assert meta.infohash_v1 == ti.info_hashes().v1.to_bytes()
    assert [(f.length, f.offset) for f in meta.files] == files


def test_v2_names_that_sanitise_alike_are_renamed() -> None:
    meta = _load(v2_info({b"a/b": leaf(20000), b"a_b": leaf(100, ROOT_B)}))
    assert [(f.path, f.offset, f.pieces_root) for f in meta.files] == [
        (("file.bin", "a_b"), 0, ROOT),
        (("file.bin", "a_b.1"), 32768, ROOT_B),
    ]
    assert meta.files[1].raw_path == (b"file.bin", b"a_b")


def test_pad_files_share_their_path_without_renaming() -> None:
    pad: dict[bytes, BValue] = {b"attr": b"p", b"length": 12768, b"path": [b".pad", b"12768"]}
    files: list[BValue] = [{b"length": 20000, b"path": [b"a"]}, pad,
                           {b"length": 20000, b"path": [b"b"]}, pad,
                           {b"length": 100, b"path": [b"c"]}]  # fmt: skip
    meta = _load(v1_info(length=None, files=files, pieces=HASH * 5))
    assert [f.path[-1] for f in meta.files] == ["a", "12768", "b", "12768", "c"]
    assert meta.notes == ()


# --- BEP 47: symlinks, pad files, attributes ---------------------------------------------------


def test_a_symlink_takes_no_piece_space() -> None:
    link: dict[bytes, BValue] = {b"attr": b"l", b"length": 5000, b"path": [b"link"],
                                 b"symlink path": [b"a"]}  # fmt: skip
    files: list[BValue] = [{b"length": 1000, b"path": [b"a"]}, link,
                           {b"length": 1000, b"path": [b"b"]}]  # fmt: skip
    data = torrent(v1_info(length=None, files=files, pieces=HASH))
    meta = parse_torrent(data)
    assert [(f.path[-1], f.length, f.offset) for f in meta.files] == [
        ("a", 1000, 0),
        ("link", 0, 1000),
        ("b", 1000, 1000),
    ]
    assert meta.files[1].symlink and not meta.files[1].pad
    assert meta.num_pieces == 1 and meta.piece_size(0) == 2000
    assert [meta.files[s.file_index].path[-1] for s in meta.spans(0)] == ["a", "b"]
    assert _noted(meta, "symlink's stated length taken as 0")
    _, theirs = _libtorrent(data)
    assert [(f.length, f.offset) for f in meta.files] == theirs
    # Without a stated length there is nothing to forgive.
    del link[b"length"]
    meta = parse_torrent(torrent(v1_info(length=None, files=files, pieces=HASH)))
    assert meta.files[1].length == 0
    assert meta.notes == ()


def test_a_v2_symlink_needs_no_length_or_pieces_root() -> None:
    tree: dict[bytes, BValue] = {
        b"a": leaf(1000),
        b"link": {b"": {b"attr": b"l", b"symlink path": [b"a"]}},
        b"z": leaf(1000, ROOT_B),
    }
    meta = _load(v2_info(tree))
    assert [(f.path[-1], f.length, f.offset, f.pieces_root) for f in meta.files] == [
        ("a", 1000, 0, ROOT),
        ("link", 0, 16384, None),
        ("z", 1000, 16384, ROOT_B),
    ]
    assert meta.num_pieces == 2


def test_pad_files_need_no_path() -> None:
    files: list[BValue] = [
        {b"length": 20000, b"path": [b"a"]},
        {b"attr": b"p", b"length": 12768},
        {b"length": 100, b"path": [b"b"]},
    ]
    data = torrent(v1_info(length=None, files=files, pieces=HASH * 3))
    meta = parse_torrent(data)
    assert [(f.path, f.offset, f.pad) for f in meta.files] == [
        (("file.bin", "a"), 0, False),
        (("file.bin", ".pad", "12768"), 20000, True),
        (("file.bin", "b"), 32768, False),
    ]
    assert meta.notes == ()
    _, theirs = _libtorrent(data)
    assert [(f.length, f.offset) for f in meta.files] == theirs
    # In a hybrid too: the v1 pad aligns b for its v2 root.
    tree: dict[bytes, BValue] = {b"a": leaf(20000), b"b": leaf(100, ROOT_B)}
    meta = _load(hybrid_info(files=files, file_tree=tree))
    assert [(f.offset, f.pieces_root) for f in meta.files] == [
        (0, ROOT),
        (20000, None),
        (32768, ROOT_B),
    ]


def test_bitcomet_pad_files_are_pad_files() -> None:
    files: list[BValue] = [
        {b"length": 20000, b"path": [b"a"]},
        {b"length": 12768, b"path": [b"_____padding_file_0_if you see this file, please update"]},
        {b"length": 100, b"path": [b"b"]},
    ]
    meta = _load(v1_info(length=None, files=files, pieces=HASH * 3))
    assert [f.pad for f in meta.files] == [False, True, False]
    assert meta.total_size == 20100


@pytest.mark.parametrize(
    ("attr", "expected", "noted"),
    [
        (None, "", False),
        (b"x", "x", False),
        (b"hxz", "hxz", False),  # unknown letters kept, meaning nothing
        (1, "", True),
        ([b"x"], "", True),
        (b"h" * 100 + b"x", "hx", True),
    ],
)
def test_attributes_are_optional(attr: BValue | None, expected: str, noted: bool) -> None:
    meta = _load(v1_info(attr=attr))
    assert meta.files[0].attr == expected
    assert bool(meta.notes) == noted


# --- trackers: outside the info-hash ---------------------------------------------------------

BASE_HASH = hashlib.sha1(encode(v1_info())).digest()


@pytest.mark.parametrize(
    ("announce", "expected", "note"),
    [
        (b"  http://127.0.0.1/a\n", "http://127.0.0.1/a", "trimmed"),
        (b"\thttp://127.0.0.1/a", "http://127.0.0.1/a", "trimmed"),
        (1, None, "not a string"),
        ([b"http://127.0.0.1/"], None, "not a string"),
        (b"", None, "empty"),
        (b"   ", None, "empty"),
        (b"http://a b/", None, "spaces"),
        (b"http://a/\x07", None, "control"),
        (b"http://\xff/", None, "not UTF-8"),
        (b"http://127.0.0.1/" + b"u" * 2049, None, "longer than 2048"),
    ],
)
def test_bad_announce_is_dropped_or_trimmed(
    announce: BValue, expected: str | None, note: str
) -> None:
    meta = parse_torrent(torrent(v1_info(), announce=announce))
    assert meta.infohash_v1 == BASE_HASH
    assert meta.announce == expected
    assert meta.trackers == ((expected,) if expected else ())
    assert _noted(meta, note)


def test_bad_announce_list_entries_are_dropped() -> None:
    announce_list: BValue = [
        [b"", b"http://127.0.0.1/1", 5, b"http://a b/", b" http://127.0.0.1/2 ",
         b"http://127.0.0.1/1"],
        b"udp://127.0.0.1:1/",  # a tier written as a bare URL
        {},
        [],
        [[b"http://127.0.0.1/nested"]],
    ]  # fmt: skip
    meta = parse_torrent(torrent(v1_info(), announce_list=announce_list))
    assert meta.infohash_v1 == BASE_HASH
    assert meta.announce_list == (
        ("http://127.0.0.1/1", "http://127.0.0.1/2"),
        ("udp://127.0.0.1:1/",),
    )
    assert meta.trackers == ("http://127.0.0.1/1", "http://127.0.0.1/2", "udp://127.0.0.1:1/")
    for fragment in ("bare URL", "not a list", "not a string", "empty", "trimmed"):
        assert _noted(meta, fragment), fragment
    meta = parse_torrent(torrent(v1_info(), announce_list={b"a": b"http://127.0.0.1/"}))
    assert meta.announce_list == ()
    assert _noted(meta, "announce-list that is not a list")


def test_trackers_beyond_the_bound_are_dropped() -> None:
    tiers: BValue = [[b"http://127.0.0.1/%d" % i] for i in range(300)]
    meta = parse_torrent(torrent(v1_info(), announce_list=tiers))
    assert len(meta.trackers) == 256
    assert meta.trackers[-1] == "http://127.0.0.1/255"
    assert _noted(meta, "after the first 256")


# --- keys: unsorted or repeated, the info-hash over the bytes as they are ----------------------

UNSORTED_INFO = ordered(
    (b"pieces", HASH * 2), (b"name", b"file.bin"), (b"piece length", 16384), (b"length", 20000)
)
REPEATED_INFO = ordered(
    (b"length", 20000),
    (b"length", 5),
    (b"name", b"first.bin"),
    (b"name", b"second.bin"),
    (b"piece length", 16384),
    (b"pieces", HASH * 2),
)


def test_unsorted_info_keys_load_and_hash_as_given() -> None:
    data = ordered((b"info", Raw(UNSORTED_INFO)), (b"announce", b"http://127.0.0.1/"))
    meta = parse_torrent(data)
    _check_identity(meta, UNSORTED_INFO)
    # Not the hash of a sorted re-encoding: that would be another torrent.
    assert meta.infohash_v1 != BASE_HASH
    assert meta.files[0].path == ("file.bin",) and meta.announce == "http://127.0.0.1/"
    assert _noted(meta, "unsorted keys in the info dictionary")
    assert _noted(meta, "unsorted keys in the torrent dictionary")
    ti, _ = _libtorrent(data)
    assert ti.info_hashes().v1.to_bytes() == meta.infohash_v1
    _check_prefixes(data, meta)
    # A bare info dictionary from peers, the same.
    bare = parse_info(UNSORTED_INFO)
    _check_identity(bare, UNSORTED_INFO)
    assert _noted(bare, "unsorted keys")


def test_repeated_info_keys_keep_their_first_value() -> None:
    data = ordered((b"info", Raw(REPEATED_INFO)))
    meta = parse_torrent(data)
    _check_identity(meta, REPEATED_INFO)
    assert (meta.name, meta.files[0].length) == ("first.bin", 20000)
    assert _noted(meta, "repeated keys in the info dictionary, first value kept")
    ti, files = _libtorrent(data)
    assert (ti.name(), files) == ("first.bin", [(20000, 0)])
    assert ti.info_hashes().v1.to_bytes() == meta.infohash_v1


def test_repeated_top_level_info_keeps_the_first() -> None:
    first = encode(v1_info())
    second = encode(v1_info(name=b"other.bin"))
    announce = (b"announce", b"http://127.0.0.1/")
    data = ordered((b"info", Raw(first)), announce, (b"info", Raw(second)))
    meta = parse_torrent(data)
    _check_identity(meta, first)
    assert meta.name == "file.bin"
    assert _noted(meta, "unsorted keys in the torrent dictionary")
    assert _noted(meta, "repeated keys in the torrent dictionary")


def test_v2_info_with_unsorted_keys_loads() -> None:
    # libtorrent refuses this for v2 ("soft error"); the info-hash needs no order.
    items = sorted(v2_info({b"file.bin": leaf(20000)}).items(), reverse=True)
    info = ordered(*items)
    meta = parse_torrent(ordered((b"info", Raw(info))))
    _check_identity(meta, info)
    assert meta.version == "v2"


def test_the_limits_decide_how_strict_key_order_is() -> None:
    unsorted = ordered((b"info", Raw(UNSORTED_INFO)), (b"announce", b"http://127.0.0.1/"))
    repeated = ordered((b"info", Raw(REPEATED_INFO)))
    top_unsorted = ordered((b"info", Raw(encode(v1_info()))), (b"announce", b"http://127.0.0.1/"))
    with pytest.raises(MetainfoError, match="unsorted dictionary key"):
        parse_torrent(unsorted, STRICT_METAINFO_LIMITS)
    with pytest.raises(MetainfoError, match="duplicate dictionary key"):
        parse_torrent(repeated, STRICT_METAINFO_LIMITS)
    with pytest.raises(MetainfoError, match="unsorted dictionary key"):
        parse_torrent(top_unsorted, STRICT_METAINFO_LIMITS)
    with pytest.raises(MetainfoError, match="unsorted dictionary key"):
        parse_info(UNSORTED_INFO, STRICT_METAINFO_LIMITS)
    # sorted_keys=False alone: any order, each key once, at the top level too.
    plain = Limits(max_size=1 << 16, sorted_keys=False)
    assert parse_torrent(top_unsorted, plain).infohash_v1 == BASE_HASH
    assert parse_torrent(unsorted, plain).announce == "http://127.0.0.1/"
    with pytest.raises(MetainfoError, match="duplicate dictionary key"):
        parse_torrent(repeated, plain)
    assert parse_torrent(repeated, replace(plain, unique_keys=False)).name == "first.bin"


# --- bounds: deep trees, large pieces, many path parts -----------------------------------------


@pytest.mark.parametrize("depth", [100, 1024])
def test_deep_paths_load(depth: int) -> None:
    meta = _load(multi_info(([b"d"] * (depth - 1) + [b"f"], 20000)))
    assert len(meta.files[0].path) == depth + 1
    node: BValue = leaf(20000)
    for _ in range(depth - 1):
        node = {b"d": node}
    meta = _load(v2_info({b"top": node}, name=b"n"))
    assert len(meta.files[0].path) == depth + 1  # name, top, d, ...


def test_v2_tree_deeper_than_the_bound_is_refused() -> None:
    node: BValue = leaf(1)
    for _ in range(1025):
        node = {b"d": node}
    with pytest.raises(MetainfoError, match="deeper than 1024"):
        parse_torrent(torrent(v2_info(node)))


def test_path_parts_are_bounded_in_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metainfo_module, "MAX_PATH_PARTS", 10)
    parse_torrent(torrent(multi_info(*[([b"a", b"b", b"%d" % i], 5000) for i in range(3)])))
    with pytest.raises(MetainfoError, match="more than 10 path components"):
        parse_torrent(torrent(multi_info(*[([b"a", b"b", b"%d" % i], 5000) for i in range(4)])))
    # A v2 tree pays for its folders as well: a/b/c/d costs 1+2+3+4.
    node: BValue = leaf(1)
    for name in (b"d", b"c", b"b"):
        node = {name: node}
    parse_torrent(torrent(v2_info({b"a": node})))
    with pytest.raises(MetainfoError, match="more than 10 path components"):
        parse_torrent(torrent(v2_info({b"a": {b"e": node}})))


def test_one_token_budget_covers_the_whole_file() -> None:
    # Keys the parser drops still cost their tokens: many small values cannot add up unbounded.
    info = encode(v1_info())
    junk = [(b"x%04d" % i, Raw(b"le")) for i in range(100)]
    data = ordered((b"info", Raw(info)), *junk)
    needed = scan(data, METAINFO_LIMITS).tokens
    assert parse_torrent(data, replace(METAINFO_LIMITS, max_tokens=needed)).infohash_v1
    with pytest.raises(MetainfoError, match="tokens"):
        parse_torrent(data, replace(METAINFO_LIMITS, max_tokens=needed - 1))


@pytest.mark.parametrize("piece_length", [(1 << 28) + (1 << 27), 1 << 29, 1 << 32])
def test_pieces_longer_than_256_mib_load(piece_length: int) -> None:
    meta = _load(v1_info(**{"piece length": piece_length}, pieces=HASH))
    assert (meta.piece_length, meta.num_pieces, meta.piece_size(0)) == (piece_length, 1, 20000)
    meta = _load(v2_info({b"file.bin": leaf(20000)}, **{"piece length": 1 << 32}))
    assert meta.piece_hashes_v2(0) == (ROOT,)
    if piece_length < 536854528:  # libtorrent's own bound
        ti, _ = _libtorrent(torrent(v1_info(**{"piece length": piece_length}, pieces=HASH)))
        assert ti.piece_length() == piece_length


# --- flags, extra bytes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "private", "noted"),
    [(0, False, False), (1, True, False), (2, True, True), (-1, True, True),
     (1 << 70, True, True), (b"1", False, True), ([], False, True)],
)  # fmt: skip
def test_private_flag_other_than_0_or_1(flag: BValue, private: bool, noted: bool) -> None:
    data = torrent(v1_info(private=flag))
    meta = parse_torrent(data)
    assert meta.private == private
    assert _noted(meta, "private flag") == noted
    if isinstance(flag, int) and abs(flag) < 1 << 63:
        ti, _ = _libtorrent(data)
        assert ti.priv() == private


@pytest.mark.parametrize("tail", [b"\n", b"\r\n", b"x", b"d4:infodee", bytes(1000)])
def test_trailing_bytes_are_ignored_with_a_note(tail: bytes) -> None:
    data = torrent(v1_info(), announce=b"http://127.0.0.1/")
    meta = parse_torrent(data + tail)
    assert meta.infohash_v1 == BASE_HASH
    assert meta.announce == "http://127.0.0.1/"
    assert _noted(meta, f"bytes after the torrent dictionary ignored: {len(tail)} bytes")
    _check_prefixes(data + tail, meta)
    # A bare info dictionary is its info-hash's bytes: nothing may follow it.
    with pytest.raises(MetainfoError, match="trailing data"):
        parse_info(encode(v1_info()) + tail)


def test_length_and_files_together_use_the_files() -> None:
    data = torrent(multi_info(([b"a"], 10000), ([b"b"], 10000), length=20000))
    meta = parse_torrent(data)
    assert [f.path for f in meta.files] == [("file.bin", "a"), ("file.bin", "b")]
    assert _noted(meta, "both 'length' and 'files'")
    _, theirs = _libtorrent(data)
    assert [(f.length, f.offset) for f in meta.files] == theirs


def test_stray_meta_version_in_a_v1_torrent_is_ignored() -> None:
    meta = _load(v1_info(**{"meta version": 1}))
    assert meta.version == "v1"
    assert _noted(meta, "meta version other than 2")


# --- v2 trees: what holds no file is skipped ---------------------------------------------------


def test_v2_entries_without_a_file_are_skipped() -> None:
    meta = _load(v2_info({b"a": leaf(1000), b"e": {}, b"j": b"x", b"k": [1]}))
    assert [f.path for f in meta.files] == [("file.bin", "a")]
    assert _noted(meta, "holds no file")


def test_v2_node_that_is_both_a_file_and_a_folder() -> None:
    node: dict[bytes, BValue] = {b"": {b"length": 1000, b"pieces root": ROOT},
                                 b"b": leaf(1000, ROOT_B)}  # fmt: skip
    meta = _load(v2_info({b"a": node}))
    assert [(f.path, f.offset) for f in meta.files] == [
        (("file.bin", "a"), 0),
        (("file.bin", "a.1", "b"), 16384),
    ]
    assert _noted(meta, "both a file and a folder")
    _check_paths_are_safe(meta)


def test_v2_file_with_an_empty_name_at_the_root() -> None:
    attrs: dict[bytes, BValue] = {b"length": 1000, b"pieces root": ROOT}
    meta = _load(v2_info({b"": attrs, b"b": leaf(1000, ROOT_B)}))
    assert [(f.path, f.raw_path, f.offset) for f in meta.files] == [
        (("file.bin", "_"), (b"file.bin", b""), 0),
        (("file.bin", "b"), None, 16384),
    ]


def test_v2_pad_attribute_is_ignored() -> None:
    meta = _load(v2_info({b"a": {b"": {b"attr": b"px", b"length": 1, b"pieces root": ROOT}}}))
    assert (meta.files[0].attr, meta.files[0].pad) == ("x", False)
    assert meta.total_size == 1
    assert _noted(meta, "pad attribute")


# --- piece layers: outside the info-hash, kept only when they verify ---------------------------


def _two_files() -> tuple[dict[bytes, BValue], bytes, tuple[bytes, ...]]:
    """A v2 info of two 40000-byte files, and the first file's real root and piece layer."""
    rng = random.Random(7)
    tree = merkle.FileMerkle([16384])
    tree.update(rng.randbytes(40000))
    root = tree.pieces_root()
    assert root is not None
    layer = tuple(tree.piece_layer(16384))
    info = v2_info({b"a": leaf(40000, root), b"b": leaf(40000, ROOT_B)})
    return info, root, layer


def test_piece_layers_that_do_not_verify_are_dropped() -> None:
    info, root, layer = _two_files()
    layers: BValue = {
        root: b"".join(layer),
        ROOT_B: b"\x00" * 96,  # the right size, the wrong hashes
        b"\x44" * 32: b"\x00" * 96,  # no file has this root
    }
    meta = _load(info, piece_layers=layers)
    assert meta.piece_hashes_v2(0) == layer
    assert meta.piece_hashes_v2(1) is None  # to be asked of peers, and checked against ROOT_B
    assert _noted(meta, "does not hash to its pieces root")
    assert _noted(meta, "for no file's pieces root")
    for bad, note in (([], "not a dictionary"), ({root: b"\x00" * 64}, "wrong size"),
                      ({root: [b""]}, "wrong size")):  # fmt: skip
        meta = _load(info, piece_layers=bad)
        assert meta.piece_hashes_v2(0) is None
        assert _noted(meta, note)
    meta = _load(v1_info(), piece_layers={})
    assert _noted(meta, "piece layers in a v1-only torrent")


# --- notes: bounded, escaped -------------------------------------------------------------------


def test_notes_stay_few_and_short_whatever_the_torrent_holds() -> None:
    files = [([b"\x1b[31m" + b"n" * 3000, b"."], 10) for _ in range(3000)]
    tiers: BValue = [[b"\x00" * 2000] for _ in range(200)]
    info = multi_info(*files, name=b"\xff" * 5000, private=7)
    meta = parse_torrent(torrent(info, announce_list=tiers, announce=b"\n\r" * 100) + b"x" * 50)
    assert 5 <= len(meta.notes) <= MAX_NOTES
    assert all(len(note) <= MAX_NOTE_CHARS for note in meta.notes)
    assert all(note.isprintable() for note in meta.notes)
    assert _noted(meta, "renamed") and any("(x2999)" in note for note in meta.notes)
    _check_paths_are_safe(meta)


# --- properties --------------------------------------------------------------------------------

odd = st.sampled_from([b"", b".", b"..", b"a", b"a/b", b"a_b", b"\\"])
components = st.binary(max_size=6) | odd
paths = st.lists(components, min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(paths, st.integers(0, 40000)), min_size=1, max_size=8), components)
def test_any_v1_file_list_loads_with_safe_distinct_paths(
    files: list[tuple[list[bytes], int]], name: bytes
) -> None:
    files[0] = (files[0][0], max(files[0][1], 1))  # some data, or no torrent at all
    info = multi_info(*files, name=name)
    meta = _load(info)
    _check_paths_are_safe(meta)
    offset = 0
    for f, (raw, length) in zip(meta.files, files, strict=True):
        assert (f.length, f.offset) == (length, offset)
        offset += length
        as_given = (name, *raw)
        try:
            clean = f.path == tuple(part.decode() for part in as_given)
        except UnicodeDecodeError:
            clean = False
        assert f.raw_path == (None if clean else as_given)


def _trees(depth: int) -> st.SearchStrategy[dict[bytes, BValue]]:
    keys = st.binary(min_size=1, max_size=4) | st.sampled_from([b".", b"..", b"a/b", b"a_b"])
    file = st.builds(lambda n: leaf(n, ROOT_B) if n else leaf(0, None), st.integers(0, 40000))
    if depth == 0:
        return st.dictionaries(keys, file, min_size=1, max_size=4)
    return st.dictionaries(keys, file | _trees(depth - 1), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(_trees(3))
def test_any_v2_tree_loads_with_safe_distinct_aligned_files(tree: dict[bytes, BValue]) -> None:
    info = v2_info(tree, name=b"n")
    try:
        meta = _load(info)
    except MetainfoError as e:
        assert "holds no data" in str(e)  # every file empty: nothing to share
        return
    _check_paths_are_safe(meta)
    for f in meta.files:
        assert f.offset % 16384 == 0
        assert (f.pieces_root is None) == (f.length == 0)
    assert meta.num_pieces == sum(-(-f.length // 16384) for f in meta.files)


def test_metainfo_limits_are_those_of_a_torrent() -> None:
    # A v2 tree MAX_PATH_DEPTH deep nests four dictionaries more than its path.
    assert METAINFO_LIMITS.max_depth >= metainfo_module.MAX_PATH_DEPTH + 4
    assert not METAINFO_LIMITS.sorted_keys and not METAINFO_LIMITS.unique_keys
    assert STRICT_METAINFO_LIMITS.sorted_keys and STRICT_METAINFO_LIMITS.unique_keys
