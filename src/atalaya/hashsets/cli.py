"""`atalaya hashsets …` and `atalaya match`."""

from __future__ import annotations

import errno
import itertools
import os
import stat
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from numpy.typing import NDArray
from sqlalchemy import Engine, func, select

from atalaya.console import err, out, print_json, progress, store_engine
from atalaya.errors import AtalayaError
from atalaya.hashsets import hexlines
from atalaya.hashsets.algorithms import (
    ALGORITHM_BY_HEX_LENGTH,
    DIGEST_SIZES,
    HashFormatError,
    infer_algorithm,
    is_known,
    parse_hex,
)
from atalaya.hashsets.categories import Category, CategoryError, parse_category_map
from atalaya.hashsets.fingerprint import list_files, write_fingerprints
from atalaya.hashsets.importer import (
    ImportReport,
    find_hash_set,
    import_hash_set,
    list_hash_sets,
    remove_hash_set,
)
from atalaya.hashsets.index import Match, MatchIndex, fetch_details
from atalaya.store.tables import hash_set

app = typer.Typer(
    help="Reference hash sets: import, list, remove, fingerprint.", no_args_is_help=True
)


class ImportFormat(StrEnum):
    """The hash set formats `hashsets import` reads."""

    VICS = "vics"
    CSV = "csv"
    LINES = "lines"


# Progress is redrawn at most once per this many bytes read.
_PROGRESS_STEP = 1 << 20


@app.command("import")
def import_command(
    ctx: typer.Context,
    path: Annotated[
        # readable=False: Click's own check would answer in a box; ours is one line.
        Path, typer.Argument(help="The hash set file.", show_default=False, readable=False)
    ],
    *,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            # Checked here rather than by Click: a bad value is then one line, not a box.
            metavar="vics|csv|lines",
            help="vics (Project VIC JSON), csv, or lines (one hash a line). "
            "Default: from the extension, .json vics, .csv csv, anything else lines.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Name of the hash set (default: the file's stem).", show_default=False
        ),
    ] = None,
    category: Annotated[
        str | None,
        typer.Option(
            "--category",
            help="Category of records that carry none (required for plain lists): a "
            "Project VIC number, A/B/C, or not_pertinent, unrated, exploitative, abuse, "
            "severe_abuse.",
            show_default=False,
        ),
    ] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(
            "--algorithm",
            help="Algorithm of a plain list's hashes (default: from the length, 32 hex "
            "digits md5, 40 sha1, 64 sha256).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Version of the set (default: the VICS @odata.context).",
            show_default=False,
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Skip bad records and report their lines, instead of rejecting the file.",
        ),
    ] = False,
    category_map: Annotated[
        list[str] | None,
        typer.Option(
            "--category-map",
            help="LABEL=INTERNAL: map a source label onto the internal scale (repeatable).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Import a reference hash set: all of it, or nothing if the file is rejected.

    Re-importing a file changes nothing; importing into an existing set
    (same --source) adds what is new.
    """
    try:
        overrides = parse_category_map(category_map or ())
    except CategoryError as exc:
        raise AtalayaError(str(exc)) from None
    if fmt is not None and fmt not in ImportFormat.__members__.values():
        formats = ", ".join(f.value for f in ImportFormat)
        raise AtalayaError(f"--format {fmt!r} is not one of {formats}")
    _check_hash_set_file(path)
    engine = store_engine(ctx)
    size = path.stat().st_size
    with progress(transfer=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(f"importing {path.name}", total=size or None)
        shown = 0

        def advance(done: int) -> None:
            nonlocal shown
            if done - shown >= _PROGRESS_STEP or done == size:
                shown = done
                bar.update(task, completed=done)

        report = import_hash_set(
            engine,
            path,
            fmt=fmt,
            name=source,
            category=category,
            algorithm=algorithm,
            version=version,
            skip_invalid=skip_invalid,
            category_map=overrides,
            on_progress=advance,
        )
    if report.records == 0:
        # Not a success: a set that "exists" with nothing in it would only mislead.
        for line, reason in zip(report.rejected_lines, report.rejected_reasons, strict=True):
            err.print(f"rejected {path}:{line}: {reason}", markup=False)
        what = "every record was rejected" if report.rejected else "it holds no records"
        raise AtalayaError(f"nothing imported from {path}: {what}")
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)
    for line, reason in zip(report.rejected_lines, report.rejected_reasons, strict=True):
        err.print(f"rejected {path}:{line}: {reason}", markup=False)


def _check_hash_set_file(path: Path) -> None:
    """AtalayaError saying exactly why `path` is not a file an import can read."""
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise AtalayaError(f"{path}: no such file") from None
        if exc.errno == errno.ELOOP:
            raise AtalayaError(f"{path}: a loop of symbolic links, not a file") from None
        raise AtalayaError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise AtalayaError(f"{path} is a folder: give the hash set file inside it")
    if stat.S_ISFIFO(info.st_mode):
        # The reader goes back over the file to name the line of an error.
        raise AtalayaError(f"{path} is a named pipe: save it to a file and import that")
    if not stat.S_ISREG(info.st_mode):
        raise AtalayaError(f"{path} is not a regular file (a device or a socket)")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise AtalayaError(f"cannot read {path}: {exc.strerror or exc}") from None


def _print_report(report: ImportReport) -> None:
    state = "new" if report.created else "existing"
    out.print(
        f"hash set {report.hash_set!r} ({state}, {report.format}): "
        f"{report.records:,} records imported from {report.path}",
        markup=False,
    )
    out.print(
        f"  files:  {report.files_new:,} new, {report.files_known:,} already known", markup=False
    )
    out.print(
        f"  hashes: {report.hashes_new:,} new, {report.hashes_known:,} already known",
        markup=False,
    )
    if report.rejected:
        lines = ", ".join(str(n) for n in report.rejected_lines)
        more = report.rejected - len(report.rejected_lines)
        tail = f" and {more:,} more" if more else ""
        out.print(f"  rejected: {report.rejected:,} records, lines {lines}{tail}", markup=False)
    else:
        out.print("  rejected: 0", markup=False)
    out.print(f"  sha256: {report.file_sha256}", markup=False)


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line instead of a table.")
    ] = False,
) -> None:
    """List the imported hash sets with their counts, version and file digest."""
    sets = list_hash_sets(store_engine(ctx))
    if as_json:
        for info in sets:
            print_json(info.as_dict())
        return
    if not sets:
        err.print("no hash sets imported: see 'atalaya hashsets import --help'")
        return
    header = ("name", "source", "format", "version", "files", "hashes", "imported", "updated")
    rows = [
        (
            s.name,
            s.source,
            s.format,
            s.version or "-",
            f"{s.files:,}",
            f"{s.hashes:,}",
            s.imported_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            s.updated_at.strftime("%Y-%m-%d %H:%M:%SZ"),
        )
        for s in sets
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(),
            markup=False,
        )
    for s in sets:
        out.print(f"{s.name}: sha256 {s.file_sha256}", markup=False)


@app.command("remove")
def remove_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the hash set.", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a hash set with all its files and hashes."""
    engine = store_engine(ctx)
    info = find_hash_set(engine, name)
    if info is None:
        raise AtalayaError(f"no hash set named {name!r} (see 'atalaya hashsets list')")
    if not yes:
        if not sys.stdin.isatty():
            raise AtalayaError(
                f"refusing to remove hash set {name!r} without --yes "
                "(standard input is not a terminal)"
            )
        if not typer.confirm(
            f"remove hash set {name!r} ({info.files:,} files, {info.hashes:,} hashes)?"
        ):
            err.print("nothing removed")
            raise typer.Exit(1)
    removed = remove_hash_set(engine, name)
    err.print(
        f"removed hash set {removed.name!r}: {removed.files:,} files, {removed.hashes:,} hashes",
        markup=False,
    )


@app.command("fingerprint")
def fingerprint_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files, or folders to walk (sorted).", show_default=False, readable=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="CSV file to write.", show_default=False),
    ],
    category: Annotated[
        str | None,
        typer.Option(
            help="Category label for every row (one `hashsets import` knows, or maps "
            "with --category-map).",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(min=1, help="Cores to use (default: all of them).", show_default=False),
    ] = None,
) -> None:
    """Write md5, sha1, sha256, ed2k, btv2_root and btv1_<piece size> of files as CSV.

    The CSV imports with `atalaya hashsets import FILE --format csv`. Each file
    is read once; `--out` is written only when every file is done.
    """
    listing = list_files(paths)
    if not listing.files:
        raise AtalayaError("no files found in the paths given: nothing to fingerprint")
    started = time.monotonic()
    with progress(transfer=True) as bar:
        task = bar.add_task("fingerprinting", total=listing.total_bytes)
        summary = write_fingerprints(
            listing.files,
            out,
            category=category,
            jobs=jobs or os.cpu_count() or 1,
            on_bytes=lambda n: bar.advance(task, n),
        )
    elapsed = max(time.monotonic() - started, 1e-9)
    for path in listing.skipped:
        err.print(f"skipped {path}: not a regular file", markup=False)
    for path in summary.empty:
        err.print(f"skipped {path}: empty (its hashes would match every empty file)", markup=False)
    err.print(
        f"fingerprinted {summary.files} file{'' if summary.files == 1 else 's'}, "
        f"{summary.bytes:,} bytes in {elapsed:.1f} s "
        f"({summary.bytes / elapsed / 1e6:.0f} MB/s): {out}",
        markup=False,
    )


class MatchUsing(StrEnum):
    """How `atalaya match` answers: see its --using option."""

    AUTO = "auto"
    INDEX = "index"
    STORE = "store"


# Hashes read and looked up together: bounds memory however long stdin is.
MATCH_BATCH = 100_000
# `--using auto` asks the store per batch until the hashes read so far reach
# this share of the stored reference hashes, then builds the index: on SQLite
# one stored row costs the build about 1.3 µs, one hash asked of the store
# about 27 µs, so past this share the index is the cheaper way on.
INDEX_BREAK_EVEN = 0.05


def match_command(
    ctx: typer.Context,
    hashes: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hashes in hex. None given: read stdin, one a line.", show_default=False
        ),
    ] = None,
    *,
    algorithm: Annotated[
        str | None,
        typer.Option(
            "--algorithm",
            "-a",
            help="Algorithm of every hash (ed2k, btih, btv2_root…). Default: from the "
            "length, 32 hex digits md5, 40 sha1, 64 sha256.",
            show_default=False,
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip lines that are not a hash.")
    ] = False,
    count: Annotated[
        bool, typer.Option("--count", help="Print only the number of matches.")
    ] = False,
    using: Annotated[
        MatchUsing,
        typer.Option(
            help="index: load every reference hash into memory first (for many hashes); "
            "store: ask the database (for a few); auto: the store, then the index once "
            "the input is long enough to pay for it."
        ),
    ] = MatchUsing.AUTO,
    batch: Annotated[int, typer.Option(min=1, hidden=True)] = MATCH_BATCH,
) -> None:
    """Look hashes up in every imported hash set: one JSON line per match.

    A match is {"hash", "algorithm", "category", "category_label", "hashset"},
    one line for each hash set that holds the hash, in input order. A line
    that is not a hash stops with an error naming it, after the matches of the
    lines before it; --skip-invalid skips such lines. Exits 0 whether anything
    matched or not.
    """
    engine = store_engine(ctx)
    if algorithm is not None and not is_known(algorithm):
        raise AtalayaError(f"unknown algorithm {algorithm!r}: use one of {', '.join(DIGEST_SIZES)}")
    inferable = sorted(set(ALGORITHM_BY_HEX_LENGTH.values()))
    matcher = _Matcher(engine, using, [algorithm] if algorithm else inferable)
    matched = skipped = 0
    batches: Iterator[_Queries]
    if hashes:
        lines = ((f"argument {n}", text) for n, text in enumerate(hashes, 1))
        batches = _argument_batches(lines, batch, algorithm, skip_invalid)
    else:
        batches = _stdin_batches(batch, algorithm, skip_invalid)
    for queries in batches:
        skipped += queries.skipped
        for match in matcher.matches(queries):
            matched += 1
            if not count:
                print_json(
                    {
                        "hash": match.digest.hex(),
                        "algorithm": match.algorithm,
                        "category": _category_name(match.category),
                        "category_label": match.category_label,
                        "hashset": match.hash_set,
                    }
                )
        if queries.error is not None:
            raise queries.error
    if count:
        sys.stdout.write(f"{matched}\n")
    if skipped:
        err.print(f"skipped {skipped:,} lines that are not a hash")


# The longest hash in hex is 64 digits; room for spaces and a CRLF, nothing more.
MAX_MATCH_LINE = 1024


@dataclass
class _Queries:
    """One batch of input: per algorithm, the digests and their places in the input.

    Places order the output (matches come in input order); everything up to
    the first bad line is here, and `error` is that line's (None with
    --skip-invalid, or when every line was fine).
    """

    digests: dict[str, tuple[NDArray[np.intp], NDArray[np.uint8]]]
    skipped: int = 0
    error: AtalayaError | None = None

    def pairs(self) -> list[tuple[int, str, bytes]]:
        """(place, algorithm, digest) of every query, in input order."""
        out: list[tuple[int, str, bytes]] = []
        for name, (places, matrix) in self.digests.items():
            out.extend(zip(places.tolist(), itertools.repeat(name), _rows(matrix), strict=False))
        out.sort(key=lambda item: item[0])
        return out


def _rows(matrix: NDArray[np.uint8]) -> list[bytes]:
    # A void view gives `bytes` of the full width ("S" would drop trailing zeros).
    rows: list[bytes] = (
        np.ascontiguousarray(matrix).view(f"V{matrix.shape[1]}").ravel().tolist()
        if matrix.size
        else []
    )
    return rows


def _gather(
    parts: dict[str, list[tuple[NDArray[np.intp], NDArray[np.uint8]]]], limit: int
) -> dict[str, tuple[NDArray[np.intp], NDArray[np.uint8]]]:
    """Per algorithm, the parts joined, without the places from `limit` on."""
    joined: dict[str, tuple[NDArray[np.intp], NDArray[np.uint8]]] = {}
    for name, pieces in parts.items():
        places = np.concatenate([p for p, _ in pieces])
        matrix = np.concatenate([m for _, m in pieces])
        keep = places < limit
        if not keep.all():
            places, matrix = places[keep], matrix[keep]
        if len(places):
            joined[name] = (places, matrix)
    return joined


def _argument_batches(
    lines: Iterator[tuple[str, str]], batch: int, algorithm: str | None, skip_invalid: bool
) -> Iterator[_Queries]:
    place = 0
    while chunk := list(itertools.islice(lines, batch)):
        queries, skips, error = _parse_hashes(chunk, algorithm, skip_invalid)
        parts: dict[str, list[tuple[NDArray[np.intp], NDArray[np.uint8]]]] = defaultdict(list)
        for name, digest in queries:
            parts[name].append((np.array([place]), np.frombuffer(digest, np.uint8)[None, :]))
            place += 1
        yield _Queries(_gather(parts, place), skips, error)


def _stdin_batches(batch: int, algorithm: str | None, skip_invalid: bool) -> Iterator[_Queries]:
    """Stdin's lines parsed a block at a time (see hexlines).

    Lines that are plainly a hash are decoded with numpy; any other line goes
    through `_parse_hashes`, one at a time, as it always did: same checks,
    same messages, same line numbers. Memory stays bounded whatever the input
    (an over-long line is cut, see `hexlines.blocks`).
    """
    if algorithm is not None:
        by_length = {2 * DIGEST_SIZES[algorithm]: algorithm}
    else:
        by_length = dict(ALGORITHM_BY_HEX_LENGTH)
    line_no = 0
    for whole in hexlines.blocks(
        sys.stdin.buffer, max_line=MAX_MATCH_LINE, block_bytes=hexlines.BLOCK_BYTES
    ):
        for block in whole.parts(batch):
            clean = hexlines.clean_lines(block, by_length)
            parts: dict[str, list[tuple[NDArray[np.intp], NDArray[np.uint8]]]] = defaultdict(list)
            for length, piece in clean.by_length.items():
                parts[by_length[length]].append(piece)
            skipped = 0
            error: AtalayaError | None = None
            limit = len(block)
            for i in np.flatnonzero(~clean.mask).tolist():
                # What the line-at-a-time reader gave: at most MAX_MATCH_LINE + 1
                # bytes, decoded leniently (a stray byte is a bad line, not a crash).
                raw = block.raw_line(i)[: MAX_MATCH_LINE + 1].decode("utf-8", "replace")
                queries, skips, error = _parse_hashes(
                    [(f"line {line_no + i + 1}", raw)], algorithm, skip_invalid
                )
                skipped += skips
                for name, digest in queries:
                    parts[name].append((np.array([i]), np.frombuffer(digest, np.uint8)[None, :]))
                if error is not None:
                    limit = i
                    break
            line_no += len(block)
            yield _Queries(_gather(parts, limit), skipped, error)
            if error is not None:
                return


def _parse_hashes(
    chunk: list[tuple[str, str]], algorithm: str | None, skip_invalid: bool
) -> tuple[list[tuple[str, bytes]], int, AtalayaError | None]:
    """(algorithm, digest) of each line up to the first bad one, the lines
    skipped, and the error for the bad one (None with --skip-invalid)."""
    queries: list[tuple[str, bytes]] = []
    skipped = 0
    for where, raw in chunk:
        text = raw.strip()
        if not text:
            continue
        try:
            if len(raw) > MAX_MATCH_LINE:
                raise HashFormatError(f"longer than {MAX_MATCH_LINE} bytes: not a hash")
            name = algorithm or infer_algorithm(text)
            queries.append((name, parse_hex(name, text)))
        except HashFormatError as exc:
            if not skip_invalid:
                return queries, skipped, AtalayaError(f"{where}: {exc} (--skip-invalid skips it)")
            skipped += 1
    return queries, skipped, None


def _category_name(value: int) -> str:
    try:
        return Category(value).label
    except ValueError:
        return str(value)


class _Matcher:
    """Finds who holds each hash: from the store, or the index once it pays off."""

    def __init__(self, engine: Engine, using: MatchUsing, algorithms: list[str]) -> None:
        self.engine = engine
        self.using = using
        self.algorithms = algorithms
        self.index: MatchIndex | None = None
        self.seen = 0
        self.references = 0
        if using is MatchUsing.AUTO:
            with engine.connect() as conn:
                total = conn.execute(select(func.sum(hash_set.c.hash_count))).scalar()
            self.references = int(total or 0)

    def matches(self, queries: _Queries) -> Iterator[Match]:
        """Every match of the batch, in input order (a hash held by two sets: two)."""
        self.seen += sum(len(places) for places, _ in queries.digests.values())
        if self.index is None and (
            self.using is MatchUsing.INDEX
            or (self.using is MatchUsing.AUTO and self.seen > INDEX_BREAK_EVEN * self.references)
        ):
            self.index = self._load_index()
        if self.index is None:
            hits = queries.pairs()
        else:
            hits = []
            for name, (places, matrix) in queries.digests.items():
                found = np.flatnonzero(self.index.lookup(name, matrix))
                if len(found):
                    hits.extend(
                        zip(places[found].tolist(), itertools.repeat(name), _rows(matrix[found]))
                    )
            hits.sort(key=itemgetter(0))
        if not hits:
            return
        details = fetch_details(self.engine, [(name, digest) for _, name, digest in hits])
        for _, name, digest in hits:
            yield from details.get((name, digest), ())

    def _load_index(self) -> MatchIndex:
        with progress(disable=not err.is_terminal) as bar:
            task = bar.add_task("loading the match index", total=None)
            index = MatchIndex.from_store(
                self.engine,
                algorithms=self.algorithms,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        err.print(f"match index: {len(index):,} hashes in {index.nbytes:,} bytes")
        return index
