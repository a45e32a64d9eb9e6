"""Metainfo (BEP 3, 47, 52): .torrent files and bare info dictionaries, v1, v2, hybrid.

Sans-I/O: bytes in, a frozen `Metainfo` out. The info-hashes are digests of
the info dictionary's bytes exactly as they appear in the input, never of a
re-encoding. Everything a hostile file can inflate is bounded, and every
failure is a `MetainfoError`.

Strict only where the identity is: a torrent that an observer refuses is an
offender missed. What decides which bytes are whose and how they verify
(piece length, file lengths and their order, piece hashes, pieces roots) is
checked; what the info-hash does not depend on, or what only names things,
is accepted and what was forgiven is listed in `Metainfo.notes`: trackers
that are not URLs, piece layers that do not verify (peers give them again),
unsorted or duplicate keys (BEP 3 allows either), trailing bytes after the
.torrent's dictionary, file names that could leave a download folder or
collide (sanitised and renamed, the raw bytes kept in `FileEntry.raw_path`).

Piece space: files lie end to end in list order, v1 pad files included. In
v2 each file starts on a piece boundary (a hybrid's v1 pad files make both
spaces coincide), and a v2-only piece holds only its file's bytes: the gap to
the next boundary carries no data and is left out of `piece_size`. A symlink
(BEP 47 attribute 'l') takes no piece space, whatever length it states.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from functools import cached_property
from types import MappingProxyType
from typing import Final, Literal

from atalaya.networks.bittorrent import merkle
from atalaya.networks.bittorrent.bencode import (
    BencodeError,
    BValue,
    Limits,
    encode,
    scan,
)
from atalaya.networks.bittorrent.notes import Notes, shown

TorrentVersion = Literal["v1", "v2", "hybrid"]

MAX_FILES: Final = 100_000
MAX_FILE_SIZE: Final = 1 << 48  # 256 TiB
# A peer sends a piece in blocks whose offset is a 32-bit field (BEP 3 "request"),
# so no longer piece can be exchanged at all. That is the only bound: parsing
# allocates nothing by piece length, and what buffers whole pieces (the probe)
# bounds its memory by its own byte budget, not by this. (libtorrent stops at
# 512 MiB; the 256 MiB this parser once had refused torrents libtorrent loads.)
MAX_PIECE_LENGTH: Final = 1 << 32
MIN_V2_PIECE_LENGTH: Final = merkle.BLOCK_SIZE
# Components of one file's path below the torrent's name (a v1 "path" list,
# the levels of a v2 file tree). Deep software trees (node_modules) reach a
# few dozen; a path of 1024 components is already longer than most systems
# can open. The bencode nesting limit follows from it (a v2 tree nests one
# dictionary per level), and MAX_PATH_PARTS bounds the work and memory that
# deep trees with many files would otherwise multiply.
MAX_PATH_DEPTH: Final = 1024
MAX_PATH_PARTS: Final = 4_000_000  # path components summed over every file and folder
MAX_COMPONENT_BYTES: Final = 1024  # longer names are cut (raw bytes kept)
MAX_ATTR_BYTES: Final = 64
MAX_URL_BYTES: Final = 2048
MAX_TRACKERS: Final = 256
SHA1_SIZE: Final = 20

# A .torrent's bencode: megabytes of piece hashes, keys in whatever order the
# maker wrote them (the info-hash covers the bytes as they are), a first value
# kept where a key repeats, and nesting as deep as the file tree allows (the
# top dictionary, info, file tree, one level per path component, a leaf's own
# dictionary: MAX_PATH_DEPTH + 4; a little room above that).
METAINFO_LIMITS: Final = Limits(
    max_size=64 << 20,
    max_depth=MAX_PATH_DEPTH + 8,
    max_tokens=2_000_000,
    max_string=64 << 20,
    sorted_keys=False,
    unique_keys=False,
)

# What a bare info dictionary's key order can be, for a caller that wants strict.
STRICT_METAINFO_LIMITS: Final = dataclass_replace(
    METAINFO_LIMITS, sorted_keys=True, unique_keys=True
)

# BitComet names its pad files so (libtorrent treats them as pad files too).
_BITCOMET_PAD: Final = b"_____padding_file_"


class MetainfoError(ValueError):
    """The bytes are not a metainfo file or info dictionary this parser accepts."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the torrent, in piece-space order.

    `path` starts with the torrent's name: `(name,)` for a single-file
    torrent, `(name, dir, …, file)` otherwise. Its components are safe to
    join under a download folder: never empty, "." or "..", never holding
    "/", "\\" or NUL, and no two files share a path or need a file as a
    folder (the later one is renamed "stem.N.ext"). `raw_path` keeps what
    the torrent wrote, name first, when `path` differs from its UTF-8 text;
    None when it does not. `offset` is where the file's first byte sits in
    the piece space. Pad files (BEP 47 attribute 'p') are listed, as they
    take up piece space, but carry no content; a symlink ('l') has length 0.
    """

    path: tuple[str, ...]
    length: int
    offset: int
    attr: str = ""
    pieces_root: bytes | None = None  # v2: merkle root of the file; None when empty or v1
    raw_path: tuple[bytes, ...] | None = None

    @property
    def pad(self) -> bool:
        return "p" in self.attr

    @property
    def symlink(self) -> bool:
        return "l" in self.attr


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
    infohash_v1: bytes | None  # SHA-1 of the info dictionary; None for v2-only
    infohash_v2: bytes | None  # SHA-256 of the info dictionary; None for v1-only
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
    # What was forgiven while parsing, one short line per kind (see `notes.Notes`);
    # about the file's bytes, not the torrent, so it takes no part in equality.
    notes: tuple[str, ...] = field(default=(), compare=False)

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
        return tuple(h[:SHA1_SIZE] for h in (self.infohash_v1, self.infohash_v2) if h)

    def matches(self, infohash: bytes) -> bool:
        """Whether `info_hash` (v1, v2, or v2 truncated to 20 bytes) names this torrent."""
        if len(infohash) == SHA1_SIZE:
            return infohash in self.swarm_hashes
        return infohash == self.infohash_v2

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
    notes = Notes()
    top = _top_level(data, limits, notes)
    if b"info" not in top:
        raise MetainfoError("no info dictionary")
    info_value, start, end = top[b"info"]
    announce = None
    if b"announce" in top:
        announce = _tracker(top[b"announce"][0], notes)
    announce_list: tuple[tuple[str, ...], ...] = ()
    if b"announce-list" in top:
        announce_list = _announce_list(top[b"announce-list"][0], notes)
    layers_value = top[b"piece layers"][0] if b"piece layers" in top else None
    return _build(info_value, data[start:end], layers_value, announce, announce_list, notes)


def parse_info(data: bytes, limits: Limits = METAINFO_LIMITS) -> Metainfo:
    """Parse a bare info dictionary, as fetched from peers with ut_metadata (BEP 9).

    Unlike a .torrent, nothing may follow the dictionary: its info-hash covers
    every byte given.
    """
    notes = Notes()
    try:
        found = scan(data, limits)
        if found.end != len(data):
            raise BencodeError("trailing data after value", found.end)
    except BencodeError as e:
        raise MetainfoError(f"info dictionary is not valid bencode: {e}") from e
    _note_key_faults(found.unsorted_keys, found.duplicate_keys, "info dictionary", notes)
    return _build(found.value, data, None, None, (), notes)


# The top-level keys this parser reads; others are walked over and dropped.
_TOP_KEYS: Final = frozenset({b"info", b"announce", b"announce-list", b"piece layers"})


def _top_level(data: bytes, limits: Limits, notes: Notes) -> dict[bytes, tuple[BValue, int, int]]:
    """The .torrent's top-level keys, each with its value and where its bytes lie.

    Walked key by key, so that the info dictionary's exact bytes are known,
    with one token budget for the whole file, as if decoded at once. Key
    order and repeats follow `limits`, as for any dictionary (a repeated key
    keeps its first value); bytes after the dictionary are noted and ignored,
    since no key of the torrent lies there.
    """
    if len(data) > limits.max_size:
        raise MetainfoError(f"torrent file larger than {limits.max_size} bytes")
    if not data.startswith(b"d"):
        raise MetainfoError("torrent file is not a bencoded dictionary")
    depth = max(limits.max_depth - 1, 0)
    tokens = limits.max_tokens - 1  # the dictionary's own 'd'
    items: dict[bytes, tuple[BValue, int, int]] = {}
    seen: set[bytes] = set()
    unsorted = duplicates = 0
    last: bytes | None = None
    pos = 1
    try:
        while True:
            if pos >= len(data):
                raise BencodeError("unexpected end of input", pos)
            if data[pos] == 0x65:  # 'e', the last token
                if tokens < 1:
                    raise BencodeError(f"more than {limits.max_tokens} tokens", pos)
                pos += 1
                break
            if not 0x30 <= data[pos] <= 0x39:
                raise BencodeError("dictionary key is not a string", pos)
            key_scan = scan(data, dataclass_replace(limits, max_tokens=tokens), pos)
            key, pos = key_scan.value, key_scan.end
            tokens -= key_scan.tokens
            assert isinstance(key, bytes)  # a digit starts a string
            if last is not None and key < last:
                if limits.sorted_keys:
                    raise BencodeError("unsorted dictionary key", pos)
                unsorted += 1
            if key in seen:
                if limits.unique_keys:
                    raise BencodeError("duplicate dictionary key", pos)
                duplicates += 1
            last = key
            seen.add(key)
            start = pos
            found = scan(data, dataclass_replace(limits, max_depth=depth, max_tokens=tokens), pos)
            pos = found.end
            tokens -= found.tokens
            if key == b"info" and key not in items:
                _note_key_faults(
                    found.unsorted_keys, found.duplicate_keys, "info dictionary", notes
                )
            if key in _TOP_KEYS and key not in items:
                items[key] = (found.value, start, pos)
    except BencodeError as e:
        raise MetainfoError(f"torrent file is not valid bencode: {e}") from e
    _note_key_faults(unsorted, duplicates, "torrent dictionary", notes)
    if pos != len(data):
        notes.add("bytes after the torrent dictionary ignored", f"{len(data) - pos} bytes")
    return items


def _note_key_faults(unsorted: int, duplicates: int, where: str, notes: Notes) -> None:
    if unsorted:
        notes.add(f"unsorted keys in the {where} (BEP 3 allows it)", str(unsorted))
    if duplicates:
        notes.add(f"repeated keys in the {where}, first value kept", str(duplicates))


@dataclass(slots=True)
class _RawFile:
    """A file as the torrent describes it, before its path is made safe.

    `parts` are the raw path components below the torrent's name (empty for
    the file of a single-file torrent). `stand_in` says some of them are not
    what the torrent wrote there but stand for it (the bencoding of a value
    that is not a string, an empty name for a missing path).
    """

    parts: tuple[bytes, ...]
    length: int
    offset: int
    attr: str
    pieces_root: bytes | None = None
    stand_in: bool = False

    @property
    def pad(self) -> bool:
        return "p" in self.attr


class _PartBudget:
    """Path components built so far, against MAX_PATH_PARTS."""

    def __init__(self) -> None:
        self.used = 0

    def spend(self, parts: int) -> None:
        self.used += parts
        if self.used > MAX_PATH_PARTS:
            raise MetainfoError(f"more than {MAX_PATH_PARTS} path components in all")


def _build(
    info: BValue,
    raw: bytes,
    layers_value: BValue | None,
    announce: str | None,
    announce_list: tuple[tuple[str, ...], ...],
    notes: Notes,
) -> Metainfo:
    if not isinstance(info, dict):
        raise MetainfoError("info is not a dictionary")
    has_v1 = b"pieces" in info
    has_v2 = _has_v2(info, has_v1, notes)
    if not has_v1 and not has_v2:
        raise MetainfoError("info dictionary has neither v1 'pieces' nor a v2 'file tree'")
    plen = _int(info, b"piece length", "piece length")
    if not 0 < plen <= MAX_PIECE_LENGTH:
        raise MetainfoError(f"piece length {plen} outside 1..{MAX_PIECE_LENGTH}")
    private = _private(info, notes)
    raw_name, name, name_changed = _name(info, raw, notes)
    budget = _PartBudget()

    v1_files: list[_RawFile] | None = None
    v1_single = not isinstance(info.get(b"files"), list)
    pieces = b""
    if has_v1:
        v1_files = _v1_files(info, notes, budget)
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

    v2_files: list[_RawFile] | None = None
    single = v1_single
    if has_v2:
        if plen < MIN_V2_PIECE_LENGTH or plen & (plen - 1):
            raise MetainfoError(f"v2 piece length must be a power of two >= 16 KiB, got {plen}")
        tree = info.get(b"file tree")
        if not has_v1:
            single = _single_file_tree(tree, raw_name)
        v2_files = _file_tree(tree, raw_name, plen, single, notes, budget)
    if v1_files is not None and v2_files is not None:
        raw_files = _merge_hybrid(v1_files, v2_files, plen)
        version: TorrentVersion = "hybrid"
    elif v1_files is not None:
        raw_files, version = v1_files, "v1"
    else:
        assert v2_files is not None
        raw_files, version = v2_files, "v2"
    num_pieces = len(pieces) // SHA1_SIZE
    if version == "v2":
        num_pieces = sum(-(-f.length // plen) for f in raw_files)
        if num_pieces == 0:
            raise MetainfoError("torrent holds no data")
    files = _safe_paths(raw_files, raw_name, name, name_changed, single, notes)

    layers: Mapping[bytes, tuple[bytes, ...]] = MappingProxyType({})
    if layers_value is not None:
        if v2_files is None:
            notes.add("piece layers in a v1-only torrent ignored")
        else:
            layers = _piece_layers(layers_value, files, plen, notes)
    return Metainfo(
        version=version,
        infohash_v1=hashlib.sha1(raw, usedforsecurity=False).digest() if has_v1 else None,
        infohash_v2=hashlib.sha256(raw).digest() if has_v2 else None,
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
        notes=notes.freeze(),
    )


def _has_v2(info: dict[bytes, BValue], has_v1: bool, notes: Notes) -> bool:
    """Whether the info dictionary has a v2 part (BEP 52 "meta version" 2 and a file tree)."""
    if b"meta version" not in info:
        if b"file tree" in info:
            raise MetainfoError("file tree without a meta version: meta version missing")
        return False
    version = info[b"meta version"]
    if version == 2 and isinstance(version, int):
        return True
    if b"file tree" in info or not has_v1:
        raise MetainfoError(f"meta version must be 2, got {shown(str(version))}")
    # A stray version key in a v1 torrent: nothing of v2 to read.
    notes.add("meta version other than 2 in a v1 torrent ignored", shown(str(version)))
    return False


def _private(info: dict[bytes, BValue], notes: Notes) -> bool:
    """BEP 27: any integer but 0 marks the torrent private, as libtorrent reads it."""
    if b"private" not in info:
        return False
    flag = info[b"private"]
    if not isinstance(flag, int):
        notes.add("private flag that is not an integer ignored")
        return False
    if flag not in (0, 1):
        notes.add("private flag other than 0 or 1 taken as private", shown(str(flag)))
    return flag != 0


def _name(info: dict[bytes, BValue], raw: bytes, notes: Notes) -> tuple[bytes, str, bool]:
    """(raw bytes, safe text, whether they differ) of the torrent's name.

    "name.utf-8" wins over "name" (it is more likely UTF-8). A torrent without
    a usable name is named by the hex SHA-1 of its info dictionary, as
    libtorrent does, so that both show one name.
    """
    for key in (b"name.utf-8", b"name"):
        value = info.get(key)
        if isinstance(value, bytes):
            text, clean = _component(value, notes)
            if not clean:
                notes.add("torrent name made safe", shown(value))
            return value, text, not clean
    notes.add("torrent has no name: the hex SHA-1 of its info dictionary used")
    return b"", hashlib.sha1(raw, usedforsecurity=False).hexdigest(), True


def _v1_files(info: dict[bytes, BValue], notes: Notes, budget: _PartBudget) -> list[_RawFile]:
    """The v1 file list, or the single file; a 'files' list wins over 'length', as in libtorrent."""
    entries = info.get(b"files")
    if not isinstance(entries, list):
        if entries is not None:
            notes.add("'files' that is not a list ignored")
        if b"length" not in info:
            raise MetainfoError("info dictionary has neither 'length' nor a 'files' list")
        attr = _attr(info, notes)
        if "p" in attr:
            raise MetainfoError("the only file of a single-file torrent is a pad file")
        length = _file_length(info, attr, "info", notes)
        files = [_RawFile((), length, 0, attr)]
        if length > MAX_FILE_SIZE:
            raise MetainfoError(f"torrent larger than {MAX_FILE_SIZE} bytes")
        return files
    if b"length" in info:
        notes.add("info has both 'length' and 'files': 'files' used")
    if not entries:
        raise MetainfoError("files is an empty list")
    if len(entries) > MAX_FILES:
        raise MetainfoError(f"more than {MAX_FILES} files")
    files = []
    offset = 0
    for n, entry in enumerate(entries):
        what = f"files[{n}]"
        if not isinstance(entry, dict):
            raise MetainfoError(f"{what} is not a dictionary")
        attr = _attr(entry, notes)
        length = _file_length(entry, attr, what, notes)
        parts, stand_in = _v1_path(entry, length, "p" in attr, what, notes)
        budget.spend(len(parts))
        if "p" not in attr and _BITCOMET_PAD in parts[-1]:
            attr += "p"
        files.append(_RawFile(parts, length, offset, attr, stand_in=stand_in))
        offset += length
        if offset > MAX_FILE_SIZE:
            raise MetainfoError(f"torrent larger than {MAX_FILE_SIZE} bytes")
    return files


def _v1_path(
    entry: dict[bytes, BValue], length: int, pad: bool, what: str, notes: Notes
) -> tuple[tuple[bytes, ...], bool]:
    """A v1 file's raw path, and whether any of it stands in for what was not a name.

    A pad file needs no path (BEP 47): it gets libtorrent's ".pad/<length>".
    Any other file without one is named "_"; a component that is not a string
    is named by its bencoding. Only names are lost that way, never bytes.
    """
    value = entry.get(b"path.utf-8")
    if not isinstance(value, list) or not value:
        value = entry.get(b"path")
    if not isinstance(value, list) or not value:
        if pad:
            return (b".pad", b"%d" % length), False
        notes.add("file without a path named '_'", what)
        return (b"",), True
    if len(value) > MAX_PATH_DEPTH:
        raise MetainfoError(f"{what} path deeper than {MAX_PATH_DEPTH}")
    parts = []
    stand_in = False
    for part in value:
        if isinstance(part, bytes):
            parts.append(part)
        else:
            notes.add("path component that is not a string named by its bencoding", what)
            parts.append(encode(part))
            stand_in = True
    return tuple(parts), stand_in


def _end_of(files: list[_RawFile]) -> int:
    return files[-1].offset + files[-1].length if files else 0


def _single_file_tree(tree: BValue | None, raw_name: bytes) -> bool:
    """A v2-only tree of one file named like the torrent is a single-file torrent."""
    if not isinstance(tree, dict) or len(tree) != 1:
        return False
    only = tree.get(raw_name)
    return isinstance(only, dict) and b"" in only


def _file_tree(
    tree: BValue | None,
    raw_name: bytes,
    plen: int,
    single: bool,
    notes: Notes,
    budget: _PartBudget,
) -> list[_RawFile]:
    """Flatten a v2 file tree in key order, placing each file on a piece boundary.

    `single` (from the v1 part of a hybrid, or `_single_file_tree`) says the
    tree must hold one file named like the torrent. Entries that hold no file
    (empty folders, values that are not dictionaries) are noted and skipped;
    a node that is both a file and a folder gives the file, then the folder.
    """
    if not isinstance(tree, dict) or not tree:
        raise MetainfoError("file tree missing or empty")
    files: list[_RawFile] = []
    offset = 0
    # Explicit stack of iterators: depth costs memory bounded by bencode's depth limit.
    stack: list[tuple[tuple[bytes, ...], Iterator[tuple[bytes, BValue]]]] = [
        ((), iter(tree.items()))
    ]
    while stack:
        prefix, children = stack[-1]
        item = next(children, None)
        if item is None:
            stack.pop()
            continue
        key, child = item
        if key == b"" and prefix:
            continue  # a file's own attributes, read when its node was entered
        path = (*prefix, key)
        budget.spend(len(path))
        if len(path) > MAX_PATH_DEPTH:
            raise MetainfoError(f"file tree deeper than {MAX_PATH_DEPTH}")
        if not isinstance(child, dict) or not child:
            notes.add("file tree entry that holds no file skipped", shown(b"/".join(path)))
            continue
        if key == b"":
            attrs: BValue = child  # a file with an empty name, at the root
        elif b"" not in child:
            stack.append((path, iter(child.items())))
            continue
        else:
            attrs = child[b""]
            if len(child) > 1:
                notes.add("file tree node that is both a file and a folder", shown(key))
                stack.append((path, iter(child.items())))
        where = f"file {shown(b'/'.join(path))}"
        if single and path != (raw_name,):
            raise MetainfoError(f"single-file torrent has a {where} not named {shown(raw_name)}")
        if len(files) >= MAX_FILES:
            raise MetainfoError(f"more than {MAX_FILES} files")
        if not isinstance(attrs, dict):
            raise MetainfoError(f"{where} has attributes that are not a dictionary")
        attr = _attr(attrs, notes)
        if "p" in attr:
            # BEP 47 pads only v1 lists; in a tree the file is a file like any other.
            notes.add("pad attribute in a v2 file tree ignored", where)
            attr = attr.replace("p", "")
        length = _file_length(attrs, attr, where, notes)
        root = None
        if length > 0:
            root = _bytes(attrs, b"pieces root", f"{where} pieces root")
            if len(root) != merkle.HASH_SIZE:
                raise MetainfoError(f"{where} pieces root is not {merkle.HASH_SIZE} bytes")
            if root == merkle.ZERO_HASH:
                # No file's merkle tree hashes to zeros; a maker wrote a placeholder.
                raise MetainfoError(f"{where} pieces root is all zeros")
        offset = -(-offset // plen) * plen
        files.append(_RawFile(() if single else path, length, offset, attr, root))
        offset += length
        if offset > MAX_FILE_SIZE:
            raise MetainfoError(f"torrent larger than {MAX_FILE_SIZE} bytes")
    return files


def _merge_hybrid(v1_files: list[_RawFile], v2_files: list[_RawFile], plen: int) -> list[_RawFile]:
    """The v1 file list with the v2 roots, after checking both describe the same bytes."""
    real = [(i, f) for i, f in enumerate(v1_files) if not f.pad]
    if len(real) != len(v2_files):
        raise MetainfoError(
            f"hybrid torrent lists {len(real)} v1 files but {len(v2_files)} v2 files"
        )
    merged = list(v1_files)
    for (index, f1), f2 in zip(real, v2_files, strict=True):
        if f1.parts != f2.parts or f1.length != f2.length:
            raise MetainfoError(
                f"hybrid v1 file {shown(b'/'.join(f1.parts))} ({f1.length} bytes) does not"
                f" match v2 file {shown(b'/'.join(f2.parts))} ({f2.length} bytes)"
            )
        if f1.length and f1.offset != f2.offset:
            raise MetainfoError(
                f"hybrid v1 file {shown(b'/'.join(f1.parts))} does not start on a piece boundary"
            )
        merged[index] = _RawFile(f1.parts, f1.length, f1.offset, f1.attr, f2.pieces_root)
    v1_pieces = -(-_end_of(v1_files) // plen)
    v2_pieces = sum(-(-f.length // plen) for f in v2_files)
    if v1_pieces != v2_pieces:
        raise MetainfoError(f"hybrid torrent has {v1_pieces} v1 pieces but {v2_pieces} v2 pieces")
    return merged


# A folder in `_safe_paths`' tree: name -> sub-folder, or None for a file.
_Folder = dict[str, "_Folder | None"]


def _safe_paths(
    raw_files: list[_RawFile],
    raw_name: bytes,
    name: str,
    name_changed: bool,
    single: bool,
    notes: Notes,
) -> list[FileEntry]:
    """Safe, distinct paths for every file, the raw bytes kept where they differ.

    Each component is made safe alone (`_component`). Then, in file order, a
    file whose path is already a file or a folder is renamed "stem.N.ext",
    and a folder that is already a file is renamed the same way for this
    file and every later one in it, as libtorrent resolves duplicates: two
    files can then both be written, and the earlier one keeps its name.
    """
    texts: dict[bytes, tuple[str, bool]] = {}
    root: _Folder = {}
    next_suffix: dict[tuple[int, str], int] = {}
    folder_alias: dict[tuple[int, str], str] = {}
    out = []
    for f in raw_files:
        if single:
            out.append(_entry(f, (name,), (raw_name,) if name_changed else None))
            continue
        comps = []
        changed = name_changed or f.stand_in
        for part in f.parts:
            known = texts.get(part)
            if known is None:
                known = texts[part] = _component(part, notes)
            comps.append(known[0])
            changed = changed or not known[1]
        if not f.pad:
            renamed = _claim(root, comps, next_suffix, folder_alias)
            if renamed:
                notes.add("path taken by another file renamed", shown("/".join((name, *comps))))
            changed = changed or renamed
        raw_path = (raw_name, *f.parts) if changed else None
        out.append(_entry(f, (name, *comps), raw_path))
    return out


def _entry(f: _RawFile, path: tuple[str, ...], raw_path: tuple[bytes, ...] | None) -> FileEntry:
    return FileEntry(path, f.length, f.offset, f.attr, f.pieces_root, raw_path)


def _claim(
    root: _Folder,
    comps: list[str],
    next_suffix: dict[tuple[int, str], int],
    folder_alias: dict[tuple[int, str], str],
) -> bool:
    """Place a file at `comps` in the tree, renaming in place what collides; True if renamed."""
    renamed = False
    folder = root
    for i in range(len(comps) - 1):
        comp = comps[i]
        if comp in folder and folder[comp] is None:  # a file holds the folder's name
            key = (id(folder), comp)
            alias = folder_alias.get(key)
            if alias is None:
                alias = folder_alias[key] = _free_name(folder, comp, next_suffix)
            comps[i] = comp = alias
            renamed = True
        child = folder.get(comp)
        if child is None:
            child = folder[comp] = {}
        folder = child
    last = comps[-1]
    if last in folder:
        comps[-1] = last = _free_name(folder, last, next_suffix)
        renamed = True
    folder[last] = None
    return renamed


def _free_name(folder: _Folder, name: str, next_suffix: dict[tuple[int, str], int]) -> str:
    """The first "stem.N.ext" not yet in `folder`; the count resumes where it stopped."""
    key = (id(folder), name)
    n = next_suffix.get(key, 0)
    stem, dot, ext = name.rpartition(".")
    if not stem:  # no extension, or a leading dot only (".hidden")
        stem, dot, ext = name, "", ""
    while True:
        n += 1
        candidate = f"{stem}.{n}{dot}{ext}"
        if candidate not in folder:
            next_suffix[key] = n
            return candidate


def _component(raw: bytes, notes: Notes) -> tuple[str, bool]:
    """One name or path component made safe to join under a folder, and whether it was already.

    Names in legacy code pages (old v1 torrents) keep replacement characters;
    names longer than MAX_COMPONENT_BYTES are cut; "", "." and ".." become
    "_", as do "/", "\\" and NUL within a name. None of this touches the
    info-hash, and the caller keeps `raw`.
    """
    try:
        text = raw.decode()
        clean = True
    except UnicodeDecodeError:
        text = raw.decode(errors="replace")
        clean = False
        notes.add("name that is not UTF-8 kept with replacement characters", shown(raw))
    if len(raw) > MAX_COMPONENT_BYTES:
        text = text.encode()[:MAX_COMPONENT_BYTES].decode(errors="ignore")
        clean = False
        notes.add(f"name longer than {MAX_COMPONENT_BYTES} bytes cut", shown(raw))
    if text in ("", ".", ".."):
        notes.add("path component that is not a file name replaced by '_'", shown(raw))
        return "_", False
    if "/" in text or "\\" in text or "\x00" in text:
        notes.add("path separator or NUL in a name replaced by '_'", shown(raw))
        return text.replace("/", "_").replace("\\", "_").replace("\x00", "_"), False
    return text, clean


def _piece_layers(
    value: BValue, files: list[FileEntry], plen: int, notes: Notes
) -> Mapping[bytes, tuple[bytes, ...]]:
    """The piece layers that hash to a file's pieces root; the others are noted and dropped.

    Layers lie outside the info dictionary: a bad one only means its hashes
    are asked of peers (BEP 52 hash request) instead, still checked against
    the root. None is ever used unverified.
    """
    if not isinstance(value, dict):
        notes.add("piece layers that are not a dictionary ignored")
        return MappingProxyType({})
    wanted = {f.pieces_root: f.length for f in files if f.pieces_root and f.length > plen}
    layers: dict[bytes, tuple[bytes, ...]] = {}
    for root, layer in value.items():
        if root not in wanted:
            notes.add("piece layer for no file's pieces root ignored", root.hex()[:64])
            continue
        count = -(-wanted[root] // plen)
        if not isinstance(layer, bytes) or len(layer) != count * merkle.HASH_SIZE:
            notes.add("piece layer of the wrong size dropped", f"{root.hex()}, {count} hashes")
            continue
        hashes = tuple(layer[i : i + merkle.HASH_SIZE] for i in range(0, len(layer), 32))
        if merkle.root_from_piece_layer(hashes, plen) != root:
            notes.add("piece layer that does not hash to its pieces root dropped", root.hex())
            continue
        layers[root] = hashes
    return MappingProxyType(layers)


def _announce_list(value: BValue, notes: Notes) -> tuple[tuple[str, ...], ...]:
    """BEP 12 tiers; what is not a tracker URL is noted and dropped, the rest kept in order."""
    if not isinstance(value, list):
        notes.add("announce-list that is not a list ignored")
        return ()
    tiers = []
    count = 0
    for value_tier in value:
        tier: list[BValue]
        if isinstance(value_tier, bytes):
            notes.add("announce-list tier that is a bare URL taken as a tier of one")
            tier = [value_tier]
        elif isinstance(value_tier, list):
            tier = value_tier
        else:
            notes.add("announce-list tier that is not a list dropped")
            continue
        urls: list[str] = []
        for item in tier:
            if count >= MAX_TRACKERS:
                notes.add(f"trackers after the first {MAX_TRACKERS} dropped")
                break
            url = _tracker(item, notes)
            if url is not None and url not in urls:
                urls.append(url)
                count += 1
        if urls:
            tiers.append(tuple(urls))
    return tuple(tiers)


def _tracker(value: BValue, notes: Notes) -> str | None:
    """A tracker URL, trimmed of surrounding whitespace; None (noted) when it is not one."""
    if not isinstance(value, bytes):
        notes.add("tracker URL that is not a string dropped")
        return None
    if len(value) > MAX_URL_BYTES:
        notes.add(f"tracker URL longer than {MAX_URL_BYTES} bytes dropped", shown(value))
        return None
    try:
        text = value.decode()
    except UnicodeDecodeError:
        notes.add("tracker URL that is not UTF-8 dropped", shown(value))
        return None
    url = text.strip()
    if url != text and url:
        notes.add("tracker URL trimmed of surrounding whitespace", shown(url))
    if not url or not url.isprintable() or " " in url:
        notes.add("tracker URL empty or with spaces or control characters dropped", shown(text))
        return None
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


def _file_length(d: dict[bytes, BValue], attr: str, what: str, notes: Notes) -> int:
    """A file's length; a symlink's is 0 whatever it states (BEP 47), as libtorrent reads it."""
    if "l" in attr:
        if d.get(b"length", 0) != 0:
            notes.add("symlink's stated length taken as 0", what)
        return 0
    length = _int(d, b"length", f"{what} length")
    if not 0 <= length <= MAX_FILE_SIZE:
        raise MetainfoError(f"{what} length {length} outside 0..{MAX_FILE_SIZE}")
    return length


_KNOWN_ATTRS: Final = "lpxh"


def _attr(d: dict[bytes, BValue], notes: Notes) -> str:
    """BEP 47 attributes: optional; unknown letters are kept but mean nothing."""
    value = d.get(b"attr")
    if value is None:
        return ""
    if not isinstance(value, bytes):
        notes.add("file attributes that are not a string ignored")
        return ""
    text = value.decode("latin-1")
    if len(value) > MAX_ATTR_BYTES:
        notes.add(f"attributes longer than {MAX_ATTR_BYTES} bytes cut to the known letters")
        text = "".join(dict.fromkeys(c for c in text if c in _KNOWN_ATTRS))
    return text
