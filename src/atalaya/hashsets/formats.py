"""Streaming readers for reference hash set files: VICS JSON, CSV and plain lists.

Each reader takes a binary stream and yields, record by record, either a
`Record` or a `Rejected` (a record that is wrong on its own: a bad hash, a
missing category; `--skip-invalid` may pass over those). A file that is not
what it claims (bad JSON, unknown columns, a truncated document) raises
`HashSetFormatError` naming the file and line. Nothing is held beyond the
record being read, so a file of any size streams in bounded memory.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

import ijson  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from atalaya.hashsets import algorithms, hexlines
from atalaya.hashsets.algorithms import HashFormatError

FORMATS: Final = ("vics", "csv", "lines")

# Bounds on what one record may hold; a real hash set is far inside them.
MAX_LABEL_CHARS: Final = 100  # reference_file.category_label is VARCHAR(100)
MAX_NAME_CHARS: Final = 4096
MAX_LINE_BYTES: Final = 1 << 20  # one CSV line
MAX_PLAIN_LINE_BYTES: Final = 1024  # one line of a plain list
MAX_JSON_DEPTH: Final = 64  # VICS media records nest four or five levels
MAX_RECORD_BYTES: Final = 4 << 20  # one VICS media record
CHUNK_BYTES: Final = 1 << 16

_BOM: Final = b"\xef\xbb\xbf"


class HashSetFormatError(ValueError):
    """A hash set file that is not what it claims; names the file and line."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Record:
    """One known file: its hashes (algorithm -> raw digest) and what the source says of it."""

    hashes: dict[str, bytes]
    category_label: str
    name: str | None
    attributes: dict[str, Any] | None
    ordinal: int  # 1-based position among the file's records
    line: int | None  # None where finding it costs a second pass (see `locate`)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that cannot be imported, and why."""

    message: str
    ordinal: int
    line: int | None


@dataclass(frozen=True, slots=True)
class DigestBatch:
    """Records of a plain list decoded together: one algorithm, one label, one hash each."""

    algorithm: str
    digests: NDArray[np.uint8]  # (n, digest size)
    category_label: str
    ordinals: NDArray[np.intp]
    lines: NDArray[np.intp]

    def records(self) -> Iterator[Record]:
        """The same records one by one (what the line-at-a-time reader yields)."""
        for row, ordinal, line in zip(
            self.digests, self.ordinals.tolist(), self.lines.tolist(), strict=True
        ):
            yield Record(
                {self.algorithm: row.tobytes()}, self.category_label, None, None, ordinal, line
            )


class HashSetReader(Protocol):
    format: str
    # The version the file states about itself (VICS: its @odata.context).
    version: str | None

    def __iter__(self) -> Iterator[Record | Rejected]: ...

    def locate(self, ordinals: Collection[int]) -> dict[int, int]:
        """Line numbers of records yielded with `line=None`."""
        ...


def format_for(path: Path, explicit: str | None = None) -> str:
    """The format named, else the one the extension says (.json, .csv, else plain list)."""
    if explicit is not None:
        if explicit not in FORMATS:
            raise ValueError(f"unknown format {explicit!r} (use one of {', '.join(FORMATS)})")
        return explicit
    suffix = path.suffix.lower()
    return {".json": "vics", ".csv": "csv"}.get(suffix, "lines")


def open_reader(
    fmt: str,
    stream: BinaryIO,
    *,
    source: str,
    reopen: Callable[[], BinaryIO],
    category: str | None = None,
    algorithm: str | None = None,
) -> HashSetReader:
    """A reader of `fmt` over `stream`; `reopen` gives a fresh stream for line look-ups.

    `category` is the label of records that carry none; `algorithm` (plain
    lists only) overrides inference from the length.
    """
    if fmt == "vics":
        return VicsReader(stream, source=source, reopen=reopen, category=category)
    if fmt == "csv":
        return CsvReader(stream, source=source, category=category)
    if fmt == "lines":
        return LinesReader(stream, source=source, category=category, algorithm=algorithm)
    raise ValueError(f"unknown format {fmt!r}")


class _InvalidRecordError(Exception):
    """A record-level problem; becomes a `Rejected`."""


def parse_btih(text: str) -> tuple[str, bytes]:
    """A BitTorrent info-hash: 40 hex digits are v1 (`btih`), 64 are v2 (`btih2`)."""
    text = text.strip()
    if len(text) == 64:
        return algorithms.BTIH2, algorithms.parse_hex(algorithms.BTIH2, text)
    if len(text) == 40:
        return algorithms.BTIH, algorithms.parse_hex(algorithms.BTIH, text)
    raise HashFormatError(f"btih must be 40 (v1) or 64 (v2) hex digits, got {len(text)} characters")


def _fast_hex(algorithm: str, text: str) -> bytes | None:
    """The digest when `text` is plainly right (the usual case); None to check slowly."""
    if len(text) == 2 * algorithms.DIGEST_SIZES.get(algorithm, -1) and text.isalnum():
        try:
            return bytes.fromhex(text)
        except ValueError:
            return None
    return None


def _parse_hash(column: str, text: str) -> tuple[str, bytes]:
    if column != algorithms.BTIH:
        digest = _fast_hex(column, text)
        if digest is not None:
            return column, digest
    try:
        if column == algorithms.BTIH:
            return parse_btih(text)
        return column, algorithms.parse_hex(column, text)
    except HashFormatError as exc:
        raise _InvalidRecordError(str(exc)) from None


def _checked_text(value: str, what: str, limit: int) -> str:
    """Text a database column can hold: bounded, no NUL, valid Unicode."""
    if len(value) > limit:
        raise _InvalidRecordError(f"{what} is longer than {limit} characters")
    if "\x00" in value:
        raise _InvalidRecordError(f"{what} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _InvalidRecordError(f"{what} is not valid UTF-8 text") from None
    return value


def _label(value: str | None, default: str | None) -> str:
    if value is None or not value.strip():
        if default is None:
            raise _InvalidRecordError(
                "no category: the record carries none and --category was not given"
            )
        value = default
    return _checked_text(value, "category", MAX_LABEL_CHARS)


def _binary_lines(stream: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """Each line without its line ending; None for a line over `limit` bytes (skipped)."""
    first = True
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if first:
            line = line.removeprefix(_BOM)
            first = False
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(CHUNK_BYTES)
            yield None
            continue
        yield line.removesuffix(b"\n").removesuffix(b"\r")


# --------------------------------------------------------------------- plain lists


class _BomLine:
    """The stream without its BOM, its first line cut where `_binary_lines` cuts it.

    `_binary_lines` reads MAX_PLAIN_LINE_BYTES + 1 bytes of the first line
    before it drops the BOM, so a first line that long is two lines to it:
    the first MAX_PLAIN_LINE_BYTES - 2 bytes, then the rest. Putting a
    newline there keeps every later line number what it always was.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._head: bytes | None = None

    def read(self, size: int) -> bytes:
        if self._head is None:
            limit = MAX_PLAIN_LINE_BYTES + 1
            head = self._stream.read(limit)
            while len(head) < limit and (more := self._stream.read(limit - len(head))):
                head += more
            if head.startswith(_BOM):
                head = head[len(_BOM) :]
                if len(head) == limit - len(_BOM) and b"\n" not in head:
                    head += b"\n"
            self._head = b""
            return head + self._stream.read(max(0, size - len(head)))
        return self._stream.read(size)


class LinesReader:
    """One hash a line; blank lines and `#` comments skipped; one category for all."""

    format = "lines"
    version: str | None = None

    def __init__(
        self,
        stream: BinaryIO,
        *,
        source: str,
        category: str | None,
        algorithm: str | None = None,
    ) -> None:
        if algorithm is not None and not algorithms.is_known(algorithm):
            raise ValueError(f"unknown hash algorithm {algorithm!r}")
        self._stream = stream
        self._source = source
        self._category = category
        self._algorithm = algorithm

    def _plain_label(self) -> str:
        if self._category is None or not self._category.strip():
            raise HashSetFormatError(
                self._source, 1, "a plain list carries no category: give --category"
            )
        try:
            return _label(self._category, None)
        except _InvalidRecordError as exc:
            raise HashSetFormatError(self._source, 1, str(exc)) from None

    def __iter__(self) -> Iterator[Record | Rejected]:
        """Line at a time: the reference `batches` must agree with."""
        label = self._plain_label()
        ordinal = 0
        for line_no, line in enumerate(_binary_lines(self._stream, MAX_PLAIN_LINE_BYTES), 1):
            text = line.strip() if line is not None else None
            if text is not None and (not text or text.startswith(b"#")):
                continue
            ordinal += 1
            try:
                hashes = self._hashes(text)
            except _InvalidRecordError as exc:
                yield Rejected(str(exc), ordinal, line_no)
                continue
            yield Record(hashes, label, None, None, ordinal, line_no)

    def _by_length(self) -> dict[int, str]:
        """The algorithm of a line of nothing but hex digits, by its length."""
        if self._algorithm is None:
            return dict(algorithms.ALGORITHM_BY_HEX_LENGTH)
        if self._algorithm == algorithms.BTIH:  # as parse_btih reads it
            return {40: algorithms.BTIH, 64: algorithms.BTIH2}
        return {2 * algorithms.DIGEST_SIZES[self._algorithm]: self._algorithm}

    def batches(self) -> Iterator[Record | Rejected | DigestBatch]:
        """What `__iter__` yields, the plain lines decoded a block at a time.

        Lines of nothing but hex digits of a known length come as
        DigestBatch; every other line is judged by the same code as
        `__iter__`, with the same ordinal, line number and message.
        """
        label = self._plain_label()
        by_length = self._by_length()
        stream = _BomLine(self._stream)
        line_no = ordinal = 0
        for block in hexlines.blocks(
            stream, max_line=MAX_PLAIN_LINE_BYTES, block_bytes=hexlines.BLOCK_BYTES
        ):
            clean = hexlines.clean_lines(block, by_length)
            is_record = clean.mask.copy()
            slow: list[tuple[int, dict[str, bytes] | str]] = []
            for i in np.flatnonzero(~clean.mask).tolist():
                content = block.line(i)
                text = None if len(content) > MAX_PLAIN_LINE_BYTES else content.strip()
                if text is not None and (not text or text.startswith(b"#")):
                    continue
                is_record[i] = True
                try:
                    slow.append((i, self._hashes(text)))
                except _InvalidRecordError as exc:
                    slow.append((i, str(exc)))
            ordinals = ordinal + np.cumsum(is_record)
            for length, (positions, digests) in clean.by_length.items():
                yield DigestBatch(
                    by_length[length],
                    digests,
                    label,
                    ordinals[positions],
                    positions + (line_no + 1),
                )
            for i, outcome in slow:
                number = int(ordinals[i])
                if isinstance(outcome, str):
                    yield Rejected(outcome, number, line_no + i + 1)
                else:
                    yield Record(outcome, label, None, None, number, line_no + i + 1)
            if len(ordinals):
                ordinal = int(ordinals[-1])
            line_no += len(block)

    def _hashes(self, raw: bytes | None) -> dict[str, bytes]:
        if raw is None:
            raise _InvalidRecordError(f"line longer than {MAX_PLAIN_LINE_BYTES} bytes")
        if not raw.isascii():
            raise _InvalidRecordError("hash has characters that are not hex digits")
        text = raw.decode("ascii")
        algorithm = self._algorithm or algorithms.ALGORITHM_BY_HEX_LENGTH.get(len(text))
        if algorithm is None:
            try:
                algorithm = algorithms.infer_algorithm(text)
            except HashFormatError as exc:
                raise _InvalidRecordError(str(exc)) from None
        name, digest = _parse_hash(algorithm, text)
        return {name: digest}

    def locate(self, ordinals: Collection[int]) -> dict[int, int]:
        return {}


# ---------------------------------------------------------------------------- CSV

_CSV_FIELDS: Final = ("category", "name", "size")
# A file's size in bytes, kept as the record's `size` attribute: an eD2K probe
# needs it to know where a file's last part ends (VICS carries `MediaSize`).
_MAX_SIZE_DIGITS: Final = 19
_MAX_SIZE: Final = 2**63 - 1


def _csv_column_help() -> str:
    return (
        "expected md5, sha1, sha256, ed2k, btih, btih2, btv2_root, btv1_<piece size>, "
        "category, name, size"
    )


def _parse_size(cell: str) -> int:
    text = cell.strip()
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_SIZE_DIGITS:
        shown = text[:30].encode("ascii", "backslashreplace").decode("ascii")
        raise _InvalidRecordError(f"size {shown!r} is not a whole number of bytes")
    size = int(text)
    if not 0 < size <= _MAX_SIZE:
        raise _InvalidRecordError(f"size {size} out of range (1 to {_MAX_SIZE})")
    return size


class CsvReader:
    """CSV with a header naming hash columns (see algorithms), `category`, `name` and `size`."""

    format = "csv"
    version: str | None = None

    def __init__(self, stream: BinaryIO, *, source: str, category: str | None) -> None:
        self._stream = stream
        self._source = source
        self._category = category
        self._line = 0

    def _text_lines(self) -> Iterator[str]:
        for raw in _binary_lines(self._stream, MAX_LINE_BYTES):
            self._line += 1
            if raw is None:
                raise HashSetFormatError(
                    self._source, self._line, f"line longer than {MAX_LINE_BYTES} bytes"
                )
            # Undecodable bytes survive as surrogates and reject only their row.
            yield raw.decode("utf-8", errors="surrogateescape") + "\n"

    def __iter__(self) -> Iterator[Record | Rejected]:
        reader = csv.reader(self._text_lines(), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise HashSetFormatError(self._source, 1, "empty file: expected a CSV header")
            columns = self._columns(header)
            ordinal = 0
            last_line = reader.line_num
            for row in reader:
                start, last_line = last_line + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                ordinal += 1
                try:
                    yield self._record(columns, row, ordinal, start)
                except _InvalidRecordError as exc:
                    yield Rejected(str(exc), ordinal, start)
        except csv.Error as exc:
            raise HashSetFormatError(
                self._source, max(self._line, 1), f"malformed CSV: {exc}"
            ) from None

    def _columns(self, header: list[str]) -> list[str]:
        columns = [cell.strip().lower() for cell in header]
        seen: set[str] = set()
        for column in columns:
            if not (algorithms.is_known(column) or column in _CSV_FIELDS):
                shown = column.encode("utf-8", "backslashreplace").decode("ascii", "replace")
                raise HashSetFormatError(
                    self._source, 1, f"unknown column {shown[:80]!r} ({_csv_column_help()})"
                )
            if column in seen:
                raise HashSetFormatError(self._source, 1, f"column {column!r} appears twice")
            seen.add(column)
        if not any(algorithms.is_known(c) for c in columns):
            raise HashSetFormatError(
                self._source, 1, f"the header names no hash column ({_csv_column_help()})"
            )
        if "category" not in seen and self._category is None:
            raise HashSetFormatError(
                self._source, 1, "no category column and no --category for the whole file"
            )
        return columns

    def _record(self, columns: list[str], row: list[str], ordinal: int, line: int) -> Record:
        if len(row) != len(columns):
            raise _InvalidRecordError(f"row has {len(row)} fields, the header has {len(columns)}")
        hashes: dict[str, bytes] = {}
        label: str | None = None
        name: str | None = None
        attributes: dict[str, Any] | None = None
        for column, cell in zip(columns, row, strict=True):
            if column == "category":
                label = cell
            elif column == "name":
                name = _checked_text(cell, "name", MAX_NAME_CHARS) if cell else None
            elif column == "size":
                attributes = {"size": _parse_size(cell)} if cell.strip() else None
            elif cell.strip():
                algorithm, digest = _parse_hash(column, cell)
                hashes[algorithm] = digest
        if not hashes:
            raise _InvalidRecordError("no hash in this row")
        return Record(hashes, _label(label, self._category), name, attributes, ordinal, line)

    def locate(self, ordinals: Collection[int]) -> dict[int, int]:
        return {}


# --------------------------------------------------------------------------- VICS

# Keys of a VICS media record that carry hashes; compared case-insensitively.
_VICS_HASH_KEYS: Final = {
    "md5": algorithms.MD5,
    "sha1": algorithms.SHA1,
    "sha256": algorithms.SHA256,
}
_VICS_CONTEXT_KEYS: Final = ("@odata.context", "odata.metadata")
_ITEM_START_EVENTS: Final = frozenset(
    {"start_map", "start_array", "string", "number", "boolean", "null"}
)

# Only []{}" matter to nesting depth; escapes are removed before this.
_NOT_STRUCTURAL: Final = bytes(c for c in range(256) if c not in b'[]{}"')
_QUOTED: Final = re.compile(rb'"[^"]*"')
_DEPTH_STEP: Final = np.zeros(256, dtype=np.int64)
_DEPTH_STEP[list(b"[{")] = 1
_DEPTH_STEP[list(b"]}")] = -1


class _VicsError(Exception):
    """Why a VICS document is rejected; `ordinal` when it is one record's start to report."""

    def __init__(self, message: str, ordinal: int | None = None) -> None:
        super().__init__(message)
        self.ordinal = ordinal


_JSON_ERRORS: Final = (ijson.JSONError, ValueError, UnicodeError, OverflowError)


def _json_message(exc: BaseException) -> str:
    # yajl's messages append a drawing of the context, sometimes as a bytes repr.
    text = str(exc).strip().removeprefix("b'").removeprefix('b"')
    first = re.split(r"\\n|\n", text, maxsplit=1)[0].strip() or type(exc).__name__
    return f"invalid JSON: {first[:120]}"


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers a key it was given twice (a dict keeps the last)."""

    # Set on the instance only when it happens: no __init__ to pay per object.
    repeated: str | None = None

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and self.repeated is None:
            self.repeated = key
        dict.__setitem__(self, key, value)


class _DepthGuard:
    """Tracks nesting depth ahead of the JSON parser, at C speed.

    ijson keeps a path prefix per open level, so its memory grows with the
    square of the depth: a few hundred kilobytes of `[` exhaust any machine.
    Strings are skipped (brackets inside them do not nest), across chunks.
    """

    def __init__(self) -> None:
        self.depth = 0
        # Arrays and objects opened inside the root: a VICS file has one, "value"
        # (a second one is looked at closely, see VicsReader).
        self.top_level_containers = 0
        self._in_string = False
        self._skip_next = False

    def feed(self, piece: bytes) -> None:
        if self._skip_next and piece:
            piece = piece[1:]
            self._skip_next = False
        if b"\\" in piece:
            trailing = len(piece) - len(piece.rstrip(b"\\"))
            if trailing % 2:
                # The last backslash escapes the next piece's first byte.
                piece = piece[:-1]
                self._skip_next = True
            piece = piece.replace(b"\\\\", b"").replace(b'\\"', b"")
        reduced = piece.translate(None, _NOT_STRUCTURAL)
        if not reduced:
            return
        if self._in_string:
            reduced = b'"' + reduced
        # Adjacent quotes enclose nothing that nests: dropping them is safe and fast.
        reduced = reduced.replace(b'""', b"")
        self._in_string = False
        if b'"' in reduced:
            reduced = _QUOTED.sub(b"", reduced)
            quote = reduced.find(b'"')
            if quote >= 0:
                self._in_string = True
                reduced = reduced[:quote]
        if not reduced:
            return
        opens = reduced.count(b"[") + reduced.count(b"{")
        closes = len(reduced) - opens
        if self.depth + opens <= MAX_JSON_DEPTH and self.depth - closes > 1:
            # Neither too deep nor back at the top level anywhere in this piece.
            self.depth += opens - closes
            return
        steps = _DEPTH_STEP[np.frombuffer(reduced, dtype=np.uint8)]
        levels = np.cumsum(steps) + self.depth
        if int(levels.max()) > MAX_JSON_DEPTH:
            raise _VicsError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        self.top_level_containers += int(np.count_nonzero((levels == 2) & (steps == 1)))
        self.depth = max(0, int(levels[-1]))


class _VicsScan:
    """One pass over a VICS document, fed piece by piece.

    The fast pass feeds large chunks and knows no line numbers; an exact pass
    (only after an error, or to place rejected records) feeds one line at a
    time and notes the line where each wanted record starts.
    """

    def __init__(self, track: Collection[int] | None) -> None:
        self._items: list[Any] = ijson.sendable_list()
        self._item_parser = ijson.items_coro(
            self._items, "value.item", map_type=_JsonObject, use_float=True
        )
        self._events: list[tuple[str, str, Any]] = ijson.sendable_list()
        self._event_parser = ijson.parse_coro(self._events, use_float=True)
        self._guard = _DepthGuard()
        self._exact = track is not None
        self._track = track if track is not None else ()
        self.starts: dict[int, int] = {}
        self._started = 0
        self._in_header = True  # events needed until the "value" array opens
        self._seen_root = False
        self._value_next = False
        self.version: str | None = None
        self.line = 1
        self.records = 0
        self._since_record = 0
        self.bytes = 0

    def feed(self, piece: bytes) -> list[Any]:
        self.bytes += len(piece)
        self._guard.feed(piece)
        if self._in_header or self._exact:
            self._event_parser.send(piece)
            self._read_events()
        self._item_parser.send(piece)
        return self._take(len(piece))

    def close(self) -> list[Any]:
        if self.bytes == 0:
            raise _VicsError("empty file: expected a VICS JSON document")
        self._item_parser.close()
        if self._in_header or self._exact:
            self._event_parser.close()
            self._read_events()
        if self._in_header:
            raise _VicsError('no "value" array of media records: not a VICS hash set')
        return self._take(0)

    @property
    def top_level_containers(self) -> int:
        return self._guard.top_level_containers

    def _take(self, size: int) -> list[Any]:
        if not self._items:
            self._since_record += size
            if self._since_record > MAX_RECORD_BYTES:
                raise _VicsError(
                    f"a media record is larger than {MAX_RECORD_BYTES >> 20} MiB",
                    ordinal=self.records + 1,
                )
            return []
        items = list(self._items)
        self._items.clear()
        self.records += len(items)
        self._since_record = 0
        return items

    def _read_events(self) -> None:
        for prefix, event, value in self._events:
            if self._value_next:
                self._value_next = False
                if event != "start_array":
                    raise _VicsError('"value" must be an array of media records')
                self._in_header = False
            elif prefix == "":
                if not self._seen_root:
                    if event != "start_map":
                        raise _VicsError("not a VICS file: the top level is not a JSON object")
                    self._seen_root = True
                elif event == "map_key" and value == "value":
                    self._value_next = True
            elif prefix in _VICS_CONTEXT_KEYS and event == "string" and self.version is None:
                self.version = str(value)[:200]
            elif self._exact and prefix == "value.item" and event in _ITEM_START_EVENTS:
                self._started += 1
                if self._started in self._track:
                    self.starts[self._started] = self.line
        self._events.clear()


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    first = True
    while chunk := stream.read(CHUNK_BYTES):
        if first:
            chunk = chunk.removeprefix(_BOM)
            first = False
        yield chunk


def _line_pieces(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number, piece): lines, cut into pieces of at most CHUNK_BYTES."""
    line = 1
    first = True
    while piece := stream.readline(CHUNK_BYTES):
        if first:
            piece = piece.removeprefix(_BOM)
            first = False
        yield line, piece
        if piece.endswith(b"\n"):
            line += 1


class VicsReader:
    """Project VIC / VICS JSON: `{"@odata.context": …, "value": [media records]}`.

    Each media record gives MD5 and/or SHA1 (hex, any case) and Category;
    its other fields (MediaID, MediaSize, DateUpdated, nested MediaFiles…)
    are kept as attributes. Streams with ijson; a guard bounds nesting depth
    and record size first, since ijson's memory grows with the square of depth.
    """

    format = "vics"

    def __init__(
        self,
        stream: BinaryIO,
        *,
        source: str,
        reopen: Callable[[], BinaryIO],
        category: str | None,
    ) -> None:
        self._stream = stream
        self._source = source
        self._reopen = reopen
        self._category = category
        self.version: str | None = None

    def __iter__(self) -> Iterator[Record | Rejected]:
        scan = _VicsScan(track=None)
        ordinal = 0
        try:
            for chunk in _chunks(self._stream):
                items = scan.feed(chunk)
                self.version = scan.version
                for item in items:
                    ordinal += 1
                    yield self._record(item, ordinal)
            for item in scan.close():
                ordinal += 1
                yield self._record(item, ordinal)
        except _VicsError as exc:
            raise self._located(str(exc), exc.ordinal) from None
        except _JSON_ERRORS as exc:
            raise self._located(_json_message(exc), None) from None
        if scan.top_level_containers > 1:
            second = self._second_value_line()
            if second is not None:
                raise HashSetFormatError(
                    self._source, second, 'a second top-level "value" array: a VICS file has one'
                )

    def _second_value_line(self) -> int | None:
        """The line of a second top-level "value" key, if there is one.

        ijson reads two such arrays as one, a dict would keep the last: which
        one holds the set? The fast pass only counts top-level containers;
        this pass, run only when there is more than one, finds the key itself.
        """
        events: list[tuple[str, str, Any]] = ijson.sendable_list()
        parser = ijson.parse_coro(events, use_float=True)
        seen = 0
        with self._reopen() as stream:
            for line, piece in _line_pieces(stream):
                parser.send(piece)
                for prefix, event, value in events:
                    if prefix == "" and event == "map_key" and value == "value":
                        seen += 1
                        if seen == 2:
                            return line
                events.clear()
        return None

    def _record(self, item: Any, ordinal: int) -> Record | Rejected:
        try:
            return self._media(item, ordinal)
        except _InvalidRecordError as exc:
            return Rejected(str(exc), ordinal, None)

    def _media(self, item: Any, ordinal: int) -> Record:
        if not isinstance(item, dict):
            raise _InvalidRecordError(
                f"a media record must be a JSON object, not {_json_type(item)}"
            )
        repeated = getattr(item, "repeated", None)
        if repeated is not None:
            raise _InvalidRecordError(f"key {repeated!r} appears twice in this media record")
        hashes: dict[str, bytes] = {}
        label: str | None = None
        attributes: dict[str, Any] = {}
        for key, value in item.items():
            folded = key.casefold()
            algorithm = _VICS_HASH_KEYS.get(folded)
            if algorithm is not None:
                if algorithm in hashes:
                    raise _InvalidRecordError(f"{key}: a second {algorithm} in this media record")
                if value is None or value == "":
                    continue
                if not isinstance(value, str):
                    raise _InvalidRecordError(f"{key} must be a string of hex digits")
                try:
                    hashes[algorithm] = algorithms.parse_hex(algorithm, value)
                except HashFormatError as exc:
                    raise _InvalidRecordError(f"{key}: {exc}") from None
            elif folded == "category":
                if label is not None:
                    raise _InvalidRecordError(f"{key}: a second category in this media record")
                label = _vics_category(key, value)
            else:
                attributes[key] = value
        if not hashes:
            if "media" in (k.casefold() for k in item):
                raise _InvalidRecordError(
                    "record has no MD5 or SHA1 but a Media list: this is a VICS case "
                    "export, not a hash set"
                )
            raise _InvalidRecordError("media record has no MD5 or SHA1")
        return Record(
            hashes, _label(label, self._category), None, attributes or None, ordinal, None
        )

    def _located(self, message: str, ordinal: int | None) -> HashSetFormatError:
        track = {ordinal} if ordinal is not None else set()
        scan = _VicsScan(track=track)
        try:
            with self._reopen() as stream:
                for line, piece in _line_pieces(stream):
                    scan.line = line
                    scan.feed(piece)
            scan.close()
        except (_VicsError, OSError, *_JSON_ERRORS):
            pass
        line = scan.starts.get(ordinal, scan.line) if ordinal is not None else scan.line
        return HashSetFormatError(self._source, line, message)

    def locate(self, ordinals: Collection[int]) -> dict[int, int]:
        wanted = set(ordinals)
        if not wanted:
            return {}
        scan = _VicsScan(track=wanted)
        try:
            with self._reopen() as stream:
                for line, piece in _line_pieces(stream):
                    scan.line = line
                    scan.feed(piece)
                    if len(scan.starts) == len(wanted):
                        break
        except (_VicsError, OSError, *_JSON_ERRORS):
            pass
        return scan.starts


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _vics_category(key: str, value: Any) -> str | None:
    """The category label verbatim: VICS gives an integer, some exporters a string."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _InvalidRecordError(f"{key} must be an integer or a label, not {_json_type(value)}")
    return str(value)
