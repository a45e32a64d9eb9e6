"""P2P fingerprints of reference files, for the holder of a reference library.

One streaming pass over each file computes every identifier an observer can
meet on a network: md5, sha1, sha256, the eD2K hash, the BitTorrent v2
pieces root (BEP 52) and, for each power-of-two piece size from 16 KiB to
16 MiB, `btv1_<size>`: the SHA-1 of the first piece of a single-file v1
torrent of the file, i.e. of its first min(size, length) bytes. The last
comes for free: SHA-1 is streamed once and its digest is taken as it passes
each power-of-two offset.

Files are hashed in parallel in worker processes, and each file over two
threads when there are fewer files than cores; the output is CSV in the
column names of `algorithms`, which `atalaya hashsets import --format csv`
reads back.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import stat
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import IO, Final

from atalaya.errors import AtalayaError
from atalaya.hashsets.algorithms import (
    BTV1_PIECE_SIZES,
    BTV1_PREFIX,
    BTV2_ROOT,
    ED2K,
    MD5,
    SHA1,
    SHA256,
)
from atalaya.networks.bittorrent.merkle import FileMerkle
from atalaya.networks.ed2k.hashing import Ed2kHasher
from atalaya.out_file import write_out_file

# Large reads keep the per-call overhead of reading and hashing negligible.
READ_SIZE: Final = 1 << 20

BTV1_COLUMNS: Final = tuple(f"{BTV1_PREFIX}{size}" for size in BTV1_PIECE_SIZES)
FINGERPRINT_COLUMNS: Final = (MD5, SHA1, SHA256, ED2K, BTV2_ROOT, *BTV1_COLUMNS)
CATEGORY_COLUMN: Final = "category"
NAME_COLUMN: Final = "name"
CSV_COLUMNS: Final = (*FINGERPRINT_COLUMNS, CATEGORY_COLUMN, NAME_COLUMN)

# One thread runs five hash passes over each slice of this size while it is
# still in the CPU cache (measured: about 10% faster than whole 1 MiB blocks).
_CACHE_SLICE: Final = 256 * 1024
# How often (in bytes read) a worker reports progress and checks for a stop.
_REPORT_EVERY: Final = 8 * READ_SIZE
# Files handed to the workers ahead of the one whose result is due next.
_WINDOW: Final = 1024


class FingerprintStoppedError(Exception):
    """The run was stopped while this file was being read."""


class Fingerprinter:
    """All fingerprints of one byte stream, fed in any chunking."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5()  # noqa: S324 - an identifier in reference lists, not security
        self._sha1 = hashlib.sha1()  # noqa: S324 - same
        self._sha256 = hashlib.sha256()
        self._ed2k = Ed2kHasher()
        self._merkle = FileMerkle()
        self._length = 0
        self._btv1: dict[int, bytes] = {}
        self._boundaries = list(BTV1_PIECE_SIZES)
        self._next = 0  # index in _boundaries of the next offset to stop SHA-1 at

    @property
    def length(self) -> int:
        return self._length

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.update_md(view)
        self.update_sha(view)

    # The two halves below cost about the same per byte and release the GIL
    # while they hash, so two threads can each take one (`fingerprint_stream`).
    # Both must see every block, in order.

    def update_md(self, view: memoryview) -> None:
        """MD5 and eD2K (MD4)."""
        self._md5.update(view)
        self._ed2k.update(view)

    def update_sha(self, view: memoryview) -> None:
        """SHA-1 (and btv1), SHA-256 and the BEP 52 tree (SHA-256 again, per block)."""
        self._sha256.update(view)
        self._merkle.update(view)
        self._update_sha1(view)

    def _update_sha1(self, view: memoryview) -> None:
        boundaries = self._boundaries
        while self._next < len(boundaries):
            room = boundaries[self._next] - self._length
            if len(view) < room:
                break
            self._sha1.update(view[:room])
            self._length += room
            view = view[room:]
            # hashlib's digest() works on a copy of the state: SHA-1 streams on.
            self._btv1[boundaries[self._next]] = self._sha1.digest()
            self._next += 1
        self._sha1.update(view)
        self._length += len(view)

    def digests(self) -> dict[str, bytes]:
        """Every fingerprint, by column name.

        An empty stream has no BitTorrent fingerprints: BEP 52 gives an empty
        file no pieces root, and a v1 torrent of it has no first piece.
        """
        sha1 = self._sha1.digest()
        result = {
            MD5: self._md5.digest(),
            SHA1: sha1,
            SHA256: self._sha256.digest(),
            ED2K: self._ed2k.digest(),
        }
        root = self._merkle.pieces_root()
        if root is None:
            return result
        result[BTV2_ROOT] = root
        for size, column in zip(BTV1_PIECE_SIZES, BTV1_COLUMNS, strict=True):
            # A file shorter than the piece is the whole first piece.
            result[column] = self._btv1.get(size, sha1)
        return result


@dataclass(frozen=True)
class Fingerprint:
    """The fingerprints of one file."""

    path: Path
    size: int
    digests: dict[str, bytes] = field(repr=False)

    @property
    def is_empty(self) -> bool:
        return self.size == 0


def fingerprint_stream(
    stream: IO[bytes],
    on_bytes: Callable[[int], None] | None = None,
    read_size: int = READ_SIZE,
    threads: int = 1,
) -> tuple[int, dict[str, bytes]]:
    """Read `stream` to its end once; its length and fingerprints.

    With `threads` of 2 (or more) a helper thread hashes the MD half of each
    block while this one hashes the SHA half. `on_bytes(n)` hears of progress
    every few megabytes; it may raise to stop.
    """
    fingerprinter = Fingerprinter()
    buffer = bytearray(read_size)
    view = memoryview(buffer)
    unreported = 0
    helper = ThreadPoolExecutor(1, thread_name_prefix="fingerprint") if threads > 1 else None
    try:
        while True:
            n = stream.readinto(buffer)  # type: ignore[attr-defined]
            if not n:
                break
            block = view[:n]
            if helper is None:
                for start in range(0, n, _CACHE_SLICE):
                    fingerprinter.update(block[start : start + _CACHE_SLICE])
            else:
                # The buffer is refilled only once both halves are done with it.
                md_half = helper.submit(fingerprinter.update_md, block)
                fingerprinter.update_sha(block)
                md_half.result()
            unreported += n
            if on_bytes is not None and unreported >= _REPORT_EVERY:
                on_bytes(unreported)
                unreported = 0
    finally:
        if helper is not None:
            helper.shutdown(wait=True)
    if on_bytes is not None and unreported:
        on_bytes(unreported)
    return fingerprinter.length, fingerprinter.digests()


def fingerprint_file(
    path: Path, on_bytes: Callable[[int], None] | None = None, threads: int = 1
) -> Fingerprint:
    """The fingerprints of the file at `path`; AtalayaError naming it if it cannot be read."""
    try:
        with open(path, "rb", buffering=0) as stream:
            before = os.fstat(stream.fileno())
            size, digests = fingerprint_stream(stream, on_bytes, threads=threads)
            after = os.fstat(stream.fileno())
    except OSError as exc:
        raise AtalayaError(f"cannot read {path}: {exc.strerror or exc}") from None
    # A file written meanwhile gives digests of bytes that were never the file
    # at any one moment: they would match nothing, or the wrong thing.
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or (
        size != before.st_size
    ):
        raise AtalayaError(
            f"{path} changed while it was read ({before.st_size:,} bytes before, "
            f"{after.st_size:,} after, {size:,} read): fingerprint it again once it is still"
        )
    return Fingerprint(path, size, digests)


@dataclass(frozen=True)
class FileList:
    """The regular files to fingerprint, in order, with their sizes when listed."""

    files: list[Path]
    sizes: list[int]
    skipped: list[Path]  # entries inside folders that are not regular files

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)


def _sorted_entries(folder: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    """A folder's entries, last name first (they are popped from the end)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name, reverse=True)
    except OSError as exc:
        raise AtalayaError(f"cannot read folder {folder}: {exc.strerror or exc}") from None


def list_files(paths: Sequence[Path]) -> FileList:
    """The files named by `paths`, in the order given; folders walked in sorted path order.

    A named path that does not exist or is not a file or folder is an error.
    Inside folders, anything but regular files (pipes, sockets, broken links,
    links to folders, which are not followed) is skipped and listed.
    """
    files: list[Path] = []
    sizes: list[int] = []
    skipped: list[Path] = []
    for path in paths:
        try:
            info = path.stat()
        except OSError as exc:
            raise AtalayaError(f"cannot read {path}: {exc.strerror or exc}") from None
        if stat.S_ISREG(info.st_mode):
            files.append(path)
            sizes.append(info.st_size)
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise AtalayaError(f"{path} is neither a file nor a folder")
        # An explicit stack: folder depth must not become Python recursion depth.
        stack = [_sorted_entries(path)]
        while stack:
            entries = stack[-1]
            if not entries:
                stack.pop()
                continue
            entry = entries.pop()
            if entry.is_dir(follow_symlinks=False):
                stack.append(_sorted_entries(entry.path))
                continue
            try:
                entry_info = os.stat(entry.path)
            except OSError:
                entry_info = None
            if entry_info is not None and stat.S_ISREG(entry_info.st_mode):
                files.append(Path(entry.path))
                sizes.append(entry_info.st_size)
            else:
                skipped.append(Path(entry.path))
    return FileList(files, sizes, skipped)


# Worker-process state, set once by the pool initializer.
_progress: Synchronized[int] | None = None
_stop: Event | None = None


def _init_worker(progress: Synchronized[int], stop: Event) -> None:
    global _progress, _stop  # noqa: PLW0603 - per-process state for the pool
    _progress = progress
    _stop = stop


def _report(n: int) -> None:
    if _stop is not None and _stop.is_set():
        raise FingerprintStoppedError
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += n


def _worker_fingerprint(path: Path, threads: int) -> Fingerprint:
    if _stop is not None and _stop.is_set():
        raise FingerprintStoppedError
    return fingerprint_file(path, _report, threads)


def fingerprint_files(
    files: Sequence[Path],
    *,
    jobs: int,
    on_bytes: Callable[[int], None] | None = None,
    poll_seconds: float = 0.2,
) -> Generator[Fingerprint, None, None]:
    """Fingerprint `files` on `jobs` cores, yielding results in the order given.

    Files go to up to `jobs` processes; when there are fewer files than half
    the jobs, each file is also split over two threads (`fingerprint_stream`).

    The first unreadable file stops the run with its AtalayaError. Whether it
    ends that way, by an interrupt or by the caller closing the iterator
    early, the workers stop at their next read: no file is left being read
    in the background.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    processes = min(jobs, len(files))
    threads = 2 if jobs >= 2 * processes else 1
    if processes <= 1:
        for path in files:
            yield fingerprint_file(path, on_bytes, threads)
        return
    # Not fork: a progress thread may hold locks (stderr's) at fork time. The
    # fork server imports the main module once, then forks clean workers fast.
    context = multiprocessing.get_context("forkserver")
    progress: Synchronized[int] = context.Value("Q", 0)
    stop = context.Event()
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=context,
        initializer=_init_worker,
        initargs=(progress, stop),
    )
    reported = 0

    def pass_progress() -> None:
        nonlocal reported
        current = progress.value
        if on_bytes is not None and current > reported:
            on_bytes(current - reported)
        reported = current

    failures: list[Future[Fingerprint]] = []

    def note_failure(future: Future[Fingerprint]) -> None:
        if not future.cancelled() and future.exception() is not None:
            failures.append(future)

    in_flight: deque[Future[Fingerprint]] = deque()
    remaining = iter(files)

    def submit_more() -> None:
        # A bounded window keeps memory flat for any number of files, yet wide
        # enough that one large file does not leave the other workers idle.
        while len(in_flight) < _WINDOW:
            path = next(remaining, None)
            if path is None:
                return
            future = pool.submit(_worker_fingerprint, path, threads)
            future.add_done_callback(note_failure)
            in_flight.append(future)

    try:
        submit_more()
        while in_flight:
            future = in_flight[0]
            while True:
                if failures:
                    failures[0].result()  # raises the first worker error here
                done, _ = wait([future], timeout=poll_seconds)
                pass_progress()
                if done:
                    break
            in_flight.popleft()
            result = future.result()
            submit_more()
            yield result
        pass_progress()
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def csv_row(fingerprint: Fingerprint, category: str | None) -> list[str]:
    """One CSV row in CSV_COLUMNS order; the file must not be empty."""
    digests = fingerprint.digests
    name = fingerprint.path.name
    # Names are bytes on POSIX; undecodable ones are kept readable, not dropped.
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return [*(digests[column].hex() for column in FINGERPRINT_COLUMNS), category or "", name]


def new_csv_writer(stream: IO[str]) -> Callable[[list[str]], object]:
    """A CSV writer on `stream` that has already written the header."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    return writer.writerow


@dataclass(frozen=True)
class WriteSummary:
    """What `write_fingerprints` wrote."""

    files: int
    bytes: int
    empty: list[Path]  # empty files, left out: their hashes would match every empty file


def write_fingerprints(
    files: Sequence[Path],
    out: Path,
    *,
    category: str | None,
    jobs: int,
    on_bytes: Callable[[int], None] | None = None,
) -> WriteSummary:
    """Fingerprint `files` into the CSV file `out`, all or nothing.

    Rows go to a temporary file beside `out` that replaces it only once every
    file is done, so a failed or interrupted run leaves no half file (and an
    older `out` untouched). The file is created readable by its owner only,
    as a list of reference hashes deserves.
    """
    written = 0
    total = 0
    empty: list[Path] = []

    def write(stream: IO[str]) -> None:
        nonlocal written, total
        write_row = new_csv_writer(stream)
        for fingerprint in fingerprint_files(files, jobs=jobs, on_bytes=on_bytes):
            if fingerprint.is_empty:
                empty.append(fingerprint.path)
                continue
            write_row(csv_row(fingerprint, category))
            written += 1
            total += fingerprint.size

    write_out_file(out, write)
    return WriteSummary(written, total, empty)
