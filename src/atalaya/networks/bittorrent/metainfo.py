"""Metainfo (BEP 3, 47, 52): .torrent files and bare info dictionaries, v1, v2, hybrid.

Sans-I/O: bytes in, a frozen `Metainfo` out. The info-hashes are digests of
the info dictionary's bytes exactly as they appear in the input, never of a
re-encoding. Everything a hostile file can inflate is bounded, path components
that could escape a download folder are refused, and every failure is a
`MetainfoError`.

Piece space: files lie end to end in list order, v1 pad files included. In
v2 each file starts on a piece boundary (a hybrid's v1 pad files make both
spaces coincide), and a v2-only piece holds only its file's bytes: the gap to
the next boundary carries no data and is left out of `piece_size`.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Final, Literal

from atalaya.networks.bittorrent import merkle
from atalaya.networks.bittorrent.bencode import (
    METAINFO_LIMITS,
    BencodeError,
    BValue,
    Limits,
    decode,
    decode_prefix,
)

TorrentVersion = Literal["v1", "v2", "hybrid"]

MAX_FILES: Final = 100_000
MAX_FILE_SIZE: Final = 1 << 48  # 256 TiB
MAX_PIECE_LENGTH: Final = 1 << 28  # 256 MiB
MIN_V2_PIECE_LENGTH: Final = merkle.BLOCK_SIZE
MAX_PATH_DEPTH: Final = 64
MAX_COMPONENT_BYTES: Final = 1024
MAX_ATTR_BYTES: Final = 64
MAX_URL_BYTES: Final = 2048
MAX_TRACKERS: Final = 256
MAX_TOP_LEVEL_KEYS: Final = 1024
SHA1_SIZE: Final = 20


class MetainfoError(ValueError):
    """The bytes are not a metainfo file or info dictionary this parser accepts."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the torrent, in piece-space order.

    `path` starts with the torrent's name: `(name,)` for a single-file
    torrent, `(name, dir, …, file)` otherwise. `offset` is where the file's
    first byte sits in the piece space. Pad files (BEP 47 attribute 'p') are
    listed, as they take up piece space, but carry no content.
    """

    path: tuple[str, ...]
    length: int
    offset: int
    attr: str = ""
    pieces_root: bytes | None = None  # v2: merkle root of the file; None when empty or v1

    @property
    def pad(self) -> bool:
        return "p" in self.attr


@dataclass(frozen=True)
class Span:
    """Part of a piece that belongs to one file."""

    file_index: int
    file_offset: int  # where in the file the span starts
    piece_offset: int  # where in the piece the span starts
    length: int


@dataclass(frozen=True)
class FirstPiece:
    """A v1 piece hash that is a fingerprint of one file alone.

    The file starts on a piece boundary and either fills its first piece or
    ends the torrent, so the piece holds only its bytes. `sha1` then equals
    the file's `btv1_<piece_length>` fingerprint; when `whole_file`, it is
    also the SHA-1 of the whole file.
    """

    file_index: int
    piece_length: int
    sha1: bytes
    whole_file: bool

    @property
    def algorithm(self) -> str:
        return f"btv1_{self.piece_length}"


@dataclass(frozen=True)
class Metainfo:
    """A parsed torrent: identity, files and the hashes to verify pieces with."""

    version: TorrentVersion
    info_hash_v1: bytes | None  # SHA-1 of the info dictionary; None for v2-only
    info_hash_v2: bytes | None  # SHA-256 of the info dictionary; None for v1-only
    info_size: int  # bytes of the info dictionary (BEP 9 metadata_size)
    name: str
    piece_length: int
    files: tuple[FileEntry, ...]
    pieces: bytes  # v1 piece hashes, 20 bytes each; empty for v2-only
    num_pieces: int
    piece_layers: Mapping[bytes, tuple[bytes, ...]]  # pieces root -> piece hashes (v2)
    private: bool
    announce: str | None
    announce_list: tuple[tuple[str, ...], ...]

    @property
    def total_size(self) -> int:
        """Bytes of content, pad files left out."""
        return sum(f.length for f in self.files if not f.pad)

    @property
    def trackers(self) -> tuple[str, ...]:
        """Tracker URLs, tiers flattened in order; `announce` when there is no list (BEP 12)."""
        if self.announce_list:
            seen: dict[str, None] = {}
            for tier in self.announce_list:
                seen.update(dict.fromkeys(tier))
            return tuple(seen)
        return (self.announce,) if self.announce else ()

    @property
    def swarm_hashes(self) -> tuple[bytes, ...]:
        """The 20-byte swarm keys (v2 truncated) used in the DHT, trackers and handshakes."""
        return tuple(h[:SHA1_SIZE] for h in (self.info_hash_v1, self.info_hash_v2) if h)

    def matches(self, info_hash: bytes) -> bool:
        """Whether `info_hash` (v1, v2, or v2 truncated to 20 bytes) names this torrent."""
        if len(info_hash) == SHA1_SIZE:
            return info_hash in self.swarm_hashes
        return info_hash == self.info_hash_v2

    def v2_roots(self) -> tuple[tuple[int, bytes], ...]:
        """(file index, pieces root) for every file that has a v2 root."""
        return tuple((i, f.pieces_root) for i, f in enumerate(self.files) if f.pieces_root)

    def first_pieces(self) -> tuple[FirstPiece, ...]:
        """The v1 piece hashes that fingerprint a single file each (see `FirstPiece`)."""
        if not self.pieces:
            return ()
        plen = self.piece_length
        end_of_torrent = self._end
        found = []
        for index, f in enumerate(self.files):
            if f.pad or f.length == 0 or f.offset % plen:
                continue
            if f.length < plen and f.offset + f.length != end_of_torrent:
                continue  # the rest of its first piece is another file's or padding
            piece = f.offset // plen
            found.append(
                FirstPiece(
                    file_index=index,
                    piece_length=plen,
                    sha1=self.pieces[piece * SHA1_SIZE : (piece + 1) * SHA1_SIZE],
                    whole_file=f.length <= plen,
                )
            )
        return tuple(found)

    def piece_hash_v1(self, piece: int) -> bytes:
        """The SHA-1 piece `piece` must hash to."""
        if not self.pieces:
            raise MetainfoError("a v2-only torrent has no v1 piece hashes")
        self._check_piece(piece)
        return self.pieces[piece * SHA1_SIZE : (piece + 1) * SHA1_SIZE]

    def piece_hashes_v2(self, file_index: int) -> tuple[bytes, ...] | None:
        """The v2 hashes of a file's pieces, in order, for `merkle.verify_piece`.

        A file of one piece has its pieces root as its only piece hash. None
        when the file's piece layer is unknown (a bare info dictionary), or
        the file has no v2 hashes (v1, empty, pad). The merkle tree covers the
        file's bytes only: in a hybrid, leave out the pad bytes that follow
        the file's last piece (its span in `spans` says how many are the file's).
        """
        if not 0 <= file_index < len(self.files):
            raise MetainfoError(f"file index {file_index} out of range")
        f = self.files[file_index]
        if f.pieces_root is None:
            return None
        if f.length <= self.piece_length:
            return (f.pieces_root,)
        return self.piece_layers.get(f.pieces_root)

    def piece_size(self, piece: int) -> int:
        """Bytes of piece `piece` that a peer sends (the last piece of the torrent is shorter)."""
        self._check_piece(piece)
        start = piece * self.piece_length
        end = min(start + self.piece_length, self._end)
        if not self.pieces:
            # v2-only: a piece never crosses a file, and ends where its file does.
            first = self._span_files(start, start + 1)
            if first:
                f = self.files[first[0]]
                end = min(end, f.offset + f.length)
        return end - start

    def file_pieces(self, file_index: int) -> range:
        """The pieces that hold any byte of the file (empty for an empty file)."""
        if not 0 <= file_index < len(self.files):
            raise MetainfoError(f"file index {file_index} out of range")
        f = self.files[file_index]
        if f.length == 0:
            return range(0)
        plen = self.piece_length
        return range(f.offset // plen, (f.offset + f.length - 1) // plen + 1)

    def spans(self, piece: int, begin: int = 0, length: int | None = None) -> tuple[Span, ...]:
        """Which bytes of which files lie in `length` bytes of `piece` from `begin`.

        Without `length`, to the end of the piece. Pad files appear as spans
        of their own; a v1 piece hash covers their (zero) bytes too.
        """
        size = self.piece_size(piece)
        if length is None:
            length = size - begin
        if begin < 0 or length < 0 or begin + length > size:
            raise MetainfoError(
                f"range {begin}+{length} lies outside piece {piece} of {size} bytes"
            )
        if length == 0:
            return ()
        start = piece * self.piece_length + begin
        end = start + length
        spans = []
        for index in self._span_files(start, end):
            f = self.files[index]
            lo = max(start, f.offset)
            hi = min(end, f.offset + f.length)
            spans.append(Span(index, lo - f.offset, lo - start + begin, hi - lo))
        return tuple(spans)

    @cached_property
    def _end(self) -> int:
        """The end of the piece space: where the last file's bytes stop."""
        return max((f.offset + f.length for f in self.files), default=0)

    @cached_property
    def _offsets(self) -> list[int]:
        return [f.offset for f in self.files]

    def _check_piece(self, piece: int) -> None:
        if not 0 <= piece < self.num_pieces:
            raise MetainfoError(f"piece {piece} out of range 0..{self.num_pieces - 1}")

    def _span_files(self, start: int, end: int) -> list[int]:
        """Indexes of non-empty files overlapping [start, end), in order."""
        i = max(bisect_right(self._offsets, start) - 1, 0)
        found = []
        while i < len(self.files) and self.files[i].offset < end:
            f = self.files[i]
            if f.length and f.offset + f.length > start:
                found.append(i)
            i += 1
        return found


def parse_torrent(data: bytes, limits: Limits = METAINFO_LIMITS) -> Metainfo:
    """Parse a .torrent file: the info dictionary plus trackers and piece layers."""
    top = _top_level(data, limits)
    if b"info" not in top:
        raise MetainfoError("no info dictionary")
    info_value, start, end = top[b"info"]
    announce = None
    if b"announce" in top:
        announce = _url(top[b"announce"][0], "announce")
    announce_list: tuple[tuple[str, ...], ...] = ()
    if b"announce-list" in top:
        announce_list = _announce_list(top[b"announce-list"][0])
    layers_value = top[b"piece layers"][0] if b"piece layers" in top else None
    return _build(info_value, data[start:end], layers_value, announce, announce_list)


def parse_info(data: bytes, limits: Limits = METAINFO_LIMITS) -> Metainfo:
    """Parse a bare info dictionary, as fetched from peers with ut_metadata (BEP 9)."""
    try:
        value = decode(data, limits)
    except BencodeError as e:
        raise MetainfoError(f"info dictionary is not valid bencode: {e}") from e
    return _build(value, data, None, None, ())


def _top_level(data: bytes, limits: Limits) -> dict[bytes, tuple[BValue, int, int]]:
    """The .torrent's top-level keys, each with its value and where its bytes lie.

    Walked key by key, so that the info dictionary's exact bytes are known.
    """
    if len(data) > limits.max_size:
        raise MetainfoError(f"torrent file larger than {limits.max_size} bytes")
    if not data.startswith(b"d"):
        raise MetainfoError("torrent file is not a bencoded dictionary")
    inner = Limits(
        max_size=limits.max_size,
        max_depth=max(limits.max_depth - 1, 0),
        max_tokens=limits.max_tokens,
        max_string=limits.max_string,
        max_int_digits=limits.max_int_digits,
    )
    items: dict[bytes, tuple[BValue, int, int]] = {}
    last: bytes | None = None
    pos = 1
    try:
        while True:
            if pos >= len(data):
                raise BencodeError("unexpected end of input", pos)
            if data[pos] == 0x65:  # 'e'
                pos += 1
                break
            if not 0x30 <= data[pos] <= 0x39:
                raise BencodeError("dictionary key is not a string", pos)
            if len(items) >= MAX_TOP_LEVEL_KEYS:
                raise MetainfoError(f"more than {MAX_TOP_LEVEL_KEYS} top-level keys")
            key, pos = decode_prefix(data, inner, pos)
            assert isinstance(key, bytes)  # a digit starts a string
            if last is not None and key <= last:
                what = "duplicate" if key == last else "unsorted"
                raise BencodeError(f"{what} dictionary key", pos)
            last = key
            start = pos
            value, pos = decode_prefix(data, inner, pos)
            items[key] = (value, start, pos)
    except BencodeError as e:
        raise MetainfoError(f"torrent file is not valid bencode: {e}") from e
    if pos != len(data):
        raise MetainfoError(f"trailing data after the torrent dictionary at byte {pos}")
    return items


def _build(
    info: BValue,
    raw: bytes,
    layers_value: BValue | None,
    announce: str | None,
    announce_list: tuple[tuple[str, ...], ...],
) -> Metainfo:
    if not isinstance(info, dict):
        raise MetainfoError("info is not a dictionary")
    has_v1 = b"pieces" in info
    has_v2 = b"meta version" in info or b"file tree" in info
    if not has_v1 and not has_v2:
        raise MetainfoError("info dictionary has neither v1 'pieces' nor a v2 'file tree'")
    plen = _int(info, b"piece length", "piece length")
    if not 0 < plen <= MAX_PIECE_LENGTH:
        raise MetainfoError(f"piece length {plen} outside 1..{MAX_PIECE_LENGTH}")
    private = False
    if b"private" in info:
        flag = _int(info, b"private", "private")
        if flag not in (0, 1):
            raise MetainfoError(f"private flag must be 0 or 1, got {flag}")
        private = flag == 1

    v1_files: list[FileEntry] | None = None
    pieces = b""
    if has_v1:
        name = _v1_name(info)
        v1_files = _v1_files(info, name)
        pieces = _bytes(info, b"pieces", "pieces")
        if len(pieces) % SHA1_SIZE:
            raise MetainfoError("pieces is not a whole number of 20-byte hashes")
        if not any(f.length for f in v1_files if not f.pad):
            raise MetainfoError("torrent holds no data")
        end = _end_of(v1_files)
        expected = -(-end // plen)
        if len(pieces) // SHA1_SIZE != expected:
            raise MetainfoError(
                f"{len(pieces) // SHA1_SIZE} piece hashes for {end} bytes in pieces of {plen}"
                f" (expected {expected})"
            )

    v2_files: list[FileEntry] | None = None
    if has_v2:
        if _int(info, b"meta version", "meta version") != 2:
            raise MetainfoError("meta version must be 2")
        if plen < MIN_V2_PIECE_LENGTH or plen & (plen - 1):
            raise MetainfoError(f"v2 piece length must be a power of two >= 16 KiB, got {plen}")
        name = _component(_bytes(info, b"name", "name"), "name", lenient=False)
        single = (b"length" in info) if has_v1 else None
        v2_files = _file_tree(info.get(b"file tree"), name, plen, single)
    if v1_files is not None and v2_files is not None:
        files = _merge_hybrid(v1_files, v2_files, plen)
        version: TorrentVersion = "hybrid"
    elif v1_files is not None:
        files, version = v1_files, "v1"
    else:
        assert v2_files is not None
        files, version = v2_files, "v2"
    num_pieces = len(pieces) // SHA1_SIZE
    if version == "v2":
        num_pieces = sum(-(-f.length // plen) for f in files)
        if num_pieces == 0:
            raise MetainfoError("torrent holds no data")

    layers: Mapping[bytes, tuple[bytes, ...]] = MappingProxyType({})
    if layers_value is not None:
        if v2_files is None:
            raise MetainfoError("piece layers in a v1-only torrent")
        layers = _piece_layers(layers_value, files, plen)
    return Metainfo(
        version=version,
        info_hash_v1=hashlib.sha1(raw, usedforsecurity=False).digest() if has_v1 else None,
        info_hash_v2=hashlib.sha256(raw).digest() if has_v2 else None,
        info_size=len(raw),
        name=name,
        piece_length=plen,
        files=tuple(files),
        pieces=pieces,
        num_pieces=num_pieces,
        piece_layers=layers,
        private=private,
        announce=announce,
        announce_list=announce_list,
    )


def _v1_name(info: dict[bytes, BValue]) -> str:
    raw = info.get(b"name.utf-8", info.get(b"name"))
    if not isinstance(raw, bytes):
        raise MetainfoError("name missing or not a string")
    return _component(raw, "name", lenient=True)


def _v1_files(info: dict[bytes, BValue], name: str) -> list[FileEntry]:
    if b"files" in info:
        if b"length" in info:
            raise MetainfoError("info dictionary has both 'length' and 'files'")
        entries = info[b"files"]
        if not isinstance(entries, list) or not entries:
            raise MetainfoError("files is not a non-empty list")
        if len(entries) > MAX_FILES:
            raise MetainfoError(f"more than {MAX_FILES} files")
        files = []
        offset = 0
        for n, entry in enumerate(entries):
            what = f"files[{n}]"
            if not isinstance(entry, dict):
                raise MetainfoError(f"{what} is not a dictionary")
            length = _length(entry, what)
            raw_path = entry.get(b"path.utf-8", entry.get(b"path"))
            if not isinstance(raw_path, list) or not raw_path:
                raise MetainfoError(f"{what} path missing or not a non-empty list")
            if len(raw_path) > MAX_PATH_DEPTH:
                raise MetainfoError(f"{what} path deeper than {MAX_PATH_DEPTH}")
            path = [name]
            for part in raw_path:
                if not isinstance(part, bytes):
                    raise MetainfoError(f"{what} path has a component that is not a string")
                path.append(_component(part, f"{what} path", lenient=True))
            attr = _attr(entry, what)
            files.append(FileEntry(tuple(path), length, offset, attr))
            offset += length
        _check_unique_paths(files)
    else:
        length = _length(info, "info")
        attr = _attr(info, "info")
        if "p" in attr:
            raise MetainfoError("the only file of a single-file torrent is a pad file")
        files = [FileEntry((name,), length, 0, attr)]
    if _end_of(files) > MAX_FILE_SIZE:
        raise MetainfoError(f"torrent larger than {MAX_FILE_SIZE} bytes")
    return files


def _end_of(files: list[FileEntry]) -> int:
    return files[-1].offset + files[-1].length if files else 0


def _check_unique_paths(files: list[FileEntry]) -> None:
    # Two files at one path, or a file where another needs a folder, cannot both be written.
    paths: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for f in files:
        if f.pad:
            continue
        if f.path in paths or f.path in folders:
            raise MetainfoError(f"two files at path {'/'.join(f.path)!r}")
        paths.add(f.path)
        for depth in range(1, len(f.path)):
            folder = f.path[:depth]
            if folder in paths:
                raise MetainfoError(f"{'/'.join(folder)!r} is both a file and a folder")
            folders.add(folder)


def _file_tree(tree: BValue | None, name: str, plen: int, single: bool | None) -> list[FileEntry]:
    """Flatten a v2 file tree in key order, placing each file on a piece boundary.

    A tree of one file named like the torrent is a single-file torrent, unless
    a hybrid's v1 part (`single`) says otherwise.
    """
    if not isinstance(tree, dict) or not tree:
        raise MetainfoError("file tree missing or empty")
    if single is None:
        only = tree.get(name.encode())
        single = len(tree) == 1 and isinstance(only, dict) and b"" in only
    files: list[FileEntry] = []
    offset = 0
    # Explicit stack of iterators: depth costs memory bounded by bencode's depth limit.
    stack: list[tuple[tuple[str, ...], Iterator[tuple[bytes, BValue]]]] = [
        (() if single else (name,), iter(tree.items()))
    ]
    while stack:
        prefix, children = stack[-1]
        item = next(children, None)
        if item is None:
            stack.pop()
            continue
        key, child = item
        path = (*prefix, _component(key, "file tree path", lenient=False))
        where = "/".join(path)
        if len(path) > MAX_PATH_DEPTH:
            raise MetainfoError(f"file tree deeper than {MAX_PATH_DEPTH}")
        if not isinstance(child, dict) or not child:
            raise MetainfoError(f"file tree node {where!r} is not a non-empty dictionary")
        if b"" not in child:
            stack.append((path, iter(child.items())))
            continue
        if len(child) != 1:
            raise MetainfoError(f"file tree node {where!r} is both a file and a folder")
        if single and path != (name,):
            raise MetainfoError(f"single-file torrent has a file {where!r} not named {name!r}")
        if len(files) >= MAX_FILES:
            raise MetainfoError(f"more than {MAX_FILES} files")
        attrs = child[b""]
        what = f"file {where!r}"
        if not isinstance(attrs, dict):
            raise MetainfoError(f"{what} has attributes that are not a dictionary")
        length = _length(attrs, what)
        root = None
        if length > 0:
            root = _bytes(attrs, b"pieces root", f"{what} pieces root")
            if len(root) != merkle.HASH_SIZE:
                raise MetainfoError(f"{what} pieces root is not {merkle.HASH_SIZE} bytes")
        attr = _attr(attrs, what)
        if "p" in attr:
            raise MetainfoError(f"{what} is marked as a pad file in a v2 file tree")
        offset = -(-offset // plen) * plen
        files.append(FileEntry(path, length, offset, attr, root))
        offset += length
        if offset > MAX_FILE_SIZE:
            raise MetainfoError(f"torrent larger than {MAX_FILE_SIZE} bytes")
    return files


def _merge_hybrid(
    v1_files: list[FileEntry], v2_files: list[FileEntry], plen: int
) -> list[FileEntry]:
    """The v1 file list with the v2 roots, after checking both describe the same bytes."""
    real = [(i, f) for i, f in enumerate(v1_files) if not f.pad]
    if len(real) != len(v2_files):
        raise MetainfoError(
            f"hybrid torrent lists {len(real)} v1 files but {len(v2_files)} v2 files"
        )
    merged = list(v1_files)
    for (index, f1), f2 in zip(real, v2_files, strict=True):
        if f1.path != f2.path or f1.length != f2.length:
            raise MetainfoError(
                f"hybrid v1 file {'/'.join(f1.path)!r} ({f1.length} bytes) does not match"
                f" v2 file {'/'.join(f2.path)!r} ({f2.length} bytes)"
            )
        if f1.length and f1.offset != f2.offset:
            raise MetainfoError(
                f"hybrid v1 file {'/'.join(f1.path)!r} does not start on a piece boundary"
            )
        merged[index] = FileEntry(f1.path, f1.length, f1.offset, f1.attr, f2.pieces_root)
    v1_pieces = -(-_end_of(v1_files) // plen)
    v2_pieces = sum(-(-f.length // plen) for f in v2_files)
    if v1_pieces != v2_pieces:
        raise MetainfoError(f"hybrid torrent has {v1_pieces} v1 pieces but {v2_pieces} v2 pieces")
    return merged


def _piece_layers(
    value: BValue, files: list[FileEntry], plen: int
) -> Mapping[bytes, tuple[bytes, ...]]:
    if not isinstance(value, dict):
        raise MetainfoError("piece layers is not a dictionary")
    wanted = {f.pieces_root: f.length for f in files if f.pieces_root and f.length > plen}
    layers: dict[bytes, tuple[bytes, ...]] = {}
    for root, layer in value.items():
        if root not in wanted:
            raise MetainfoError(f"piece layer for unknown pieces root {root.hex()[:64]}")
        if not isinstance(layer, bytes):
            raise MetainfoError(f"piece layer {root.hex()} is not a string")
        count = -(-wanted[root] // plen)
        if len(layer) != count * merkle.HASH_SIZE:
            raise MetainfoError(
                f"piece layer {root.hex()} has {len(layer)} bytes, expected {count} hashes"
            )
        hashes = tuple(layer[i : i + merkle.HASH_SIZE] for i in range(0, len(layer), 32))
        if merkle.root_from_piece_layer(hashes, plen) != root:
            raise MetainfoError(f"piece layer {root.hex()} does not hash to its pieces root")
        layers[root] = hashes
    return MappingProxyType(layers)


def _announce_list(value: BValue) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise MetainfoError("announce-list is not a list")
    tiers = []
    count = 0
    for tier in value:
        if not isinstance(tier, list):
            raise MetainfoError("announce-list tier is not a list")
        count += len(tier)
        if count > MAX_TRACKERS:
            raise MetainfoError(f"more than {MAX_TRACKERS} trackers")
        urls = tuple(_url(url, "announce-list") for url in tier)
        if urls:
            tiers.append(urls)
    return tuple(tiers)


def _url(value: BValue, what: str) -> str:
    if not isinstance(value, bytes):
        raise MetainfoError(f"{what} URL is not a string")
    if len(value) > MAX_URL_BYTES:
        raise MetainfoError(f"{what} URL longer than {MAX_URL_BYTES} bytes")
    try:
        url = value.decode()
    except UnicodeDecodeError as e:
        raise MetainfoError(f"{what} URL is not UTF-8") from e
    if not url or not url.isprintable() or " " in url:
        raise MetainfoError(f"{what} URL {url!r} is empty or has spaces or control characters")
    return url


def _int(d: dict[bytes, BValue], key: bytes, what: str) -> int:
    value = d.get(key)
    if not isinstance(value, int):
        raise MetainfoError(f"{what} missing or not an integer")
    return value


def _bytes(d: dict[bytes, BValue], key: bytes, what: str) -> bytes:
    value = d.get(key)
    if not isinstance(value, bytes):
        raise MetainfoError(f"{what} missing or not a string")
    return value


def _length(d: dict[bytes, BValue], what: str) -> int:
    length = _int(d, b"length", f"{what} length")
    if not 0 <= length <= MAX_FILE_SIZE:
        raise MetainfoError(f"{what} length {length} outside 0..{MAX_FILE_SIZE}")
    return length


def _attr(d: dict[bytes, BValue], what: str) -> str:
    if b"attr" not in d:
        return ""
    value = d[b"attr"]
    if not isinstance(value, bytes) or len(value) > MAX_ATTR_BYTES:
        raise MetainfoError(f"{what} attr is not a string of at most {MAX_ATTR_BYTES} bytes")
    # BEP 47: unknown attribute characters are ignored, not refused.
    return value.decode("latin-1")


def _component(raw: bytes, what: str, *, lenient: bool) -> str:
    """One name or path component, refused if it could leave the download folder.

    Old v1 torrents often carry names in legacy code pages: those are kept
    with replacement characters (the info-hash does not depend on them). v2
    requires UTF-8.
    """
    if len(raw) > MAX_COMPONENT_BYTES:
        raise MetainfoError(f"{what} component longer than {MAX_COMPONENT_BYTES} bytes")
    try:
        text = raw.decode()
    except UnicodeDecodeError as e:
        if not lenient:
            raise MetainfoError(f"{what} component is not UTF-8") from e
        text = raw.decode(errors="replace")
    if text in ("", ".", ".."):
        raise MetainfoError(f"{what} component {text!r} is not a file name")
    if "/" in text or "\\" in text or "\x00" in text:
        raise MetainfoError(f"{what} component {text!r} has a path separator or NUL")
    return text
