"""Exact-match index over every imported hash, held in memory.

Per algorithm the index keeps the distinct digests as two parallel arrays in
sorted order: the first 8 bytes as a uint64 (read big-endian, so numeric order
is byte order) and the remaining bytes as one fixed-width opaque item. The two
together are exactly the raw digests, with no per-entry overhead. A directory
of where each run of leading bits starts (one uint32 per 2 to 4 digests, at
most 7 % more than the raw digests) narrows every search to a bucket that
mostly fits one cache line.

With numba (a pinned dependency), a batch is searched by a compiled kernel
(`_search_kernel`: per query, the directory, then a short scan of the
bucket), issuing the memory reads of a group of queries together. Without
it, each step of a binary search is one vectorised numpy operation over the
whole batch, and candidates whose prefix matches then have their rest
compared. Both give the same answers (tests compare them).

The index answers only "is this digest known"; who knows it (hash sets,
categories) is fetched from the store for the hits alone (`fetch_details`).
Observers use the same index to recognise watched identifiers (`btih`,
`btv2_root`, `btv1_<size>` …): any algorithm a hash set holds is indexed.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, Engine, Select

from atalaya.hashsets import lookup
from atalaya.hashsets.algorithms import DIGEST_SIZES

PREFIX_BYTES = 8


# Digests per directory bucket, at least, on average: a bucket then mostly
# fits one cache line, so a look-up costs about two memory reads. The
# directory (4 bytes a bucket) stays under 7 % of the raw digests.
def _bucket_target(digest_size: int) -> int:
    return 2 if digest_size >= 32 else 3 if digest_size >= 20 else 4


# Queries a compiled look-up handles together: their directory and first
# prefix reads are issued back to back, so the memory system overlaps them.
_KERNEL_GROUP = 64

# Rows fetched per round trip while building from the store.
DEFAULT_CHUNK_ROWS = 100_000

# Digests per `IN (…)` when fetching details; well under every engine's limit.
DETAILS_BATCH = 500

Digests: TypeAlias = NDArray[np.uint8] | bytes | bytearray | memoryview | Iterable[bytes]
"""Queries for one algorithm: an (n, size) uint8 array, a 1-D uint8 array or a
bytes-like of n concatenated digests, or an iterable of n digests."""

Progress: TypeAlias = Callable[[int, int], None]
"""Called with (rows read, rows expected) while building from the store."""


class MatchIndexError(ValueError):
    """Digests that do not fit the algorithm, or a store the index cannot read."""


@dataclass(frozen=True, slots=True)
class AlgorithmStats:
    """What the index holds for one algorithm, and what it costs."""

    algorithm: str
    count: int
    digest_size: int
    nbytes: int

    @property
    def raw_bytes(self) -> int:
        return self.count * self.digest_size


@dataclass(frozen=True, slots=True)
class Match:
    """One hash set that knows a digest, as the store describes it."""

    algorithm: str
    digest: bytes
    hash_set: str
    # hash_set.file_sha256: the reference data version a derived result records.
    hash_set_sha256: str
    category: int
    category_label: str
    file_key: str


def _row_dtype(size: int, prefix_order: str) -> np.dtype[np.void]:
    return np.dtype([("p", f"{prefix_order}u8"), ("r", f"V{size - PREFIX_BYTES}")])


def _split(matrix: NDArray[np.uint8]) -> tuple[NDArray[np.uint64], NDArray[np.void]]:
    """Native uint64 prefixes and a (possibly strided) view of the rests."""
    size = matrix.shape[1]
    rows = matrix.view(_row_dtype(size, ">")).reshape(-1)
    return rows["p"].astype(np.uint64), rows["r"]


def _as_matrix(algorithm: str, size: int, digests: Digests) -> NDArray[np.uint8]:
    """The queries as a C-contiguous (n, size) uint8 array, or MatchIndexError."""
    if isinstance(digests, np.ndarray):
        array = digests
        if array.dtype.kind in "SV" and array.ndim == 1:
            if array.dtype.itemsize != size:
                raise MatchIndexError(
                    f"{algorithm} digests are {size} bytes, got items of {array.dtype.itemsize}"
                )
            array = np.ascontiguousarray(array).view(np.uint8)
        if array.dtype != np.uint8:
            raise MatchIndexError(f"digest arrays must be uint8, got {array.dtype}")
        if array.ndim == 1:
            if array.size % size:
                raise MatchIndexError(
                    f"{array.size} bytes are not a whole number of {size}-byte {algorithm} digests"
                )
            array = array.reshape(-1, size)
        if array.ndim != 2 or array.shape[1] != size:
            raise MatchIndexError(
                f"{algorithm} digest arrays must have shape (n, {size}), got {array.shape}"
            )
        return np.ascontiguousarray(array)
    if isinstance(digests, bytes | bytearray | memoryview):
        buffer = bytes(digests)
        if len(buffer) % size:
            raise MatchIndexError(
                f"{len(buffer)} bytes are not a whole number of {size}-byte {algorithm} digests"
            )
        return np.frombuffer(buffer, dtype=np.uint8).reshape(-1, size)
    items = digests if isinstance(digests, list | tuple) else list(digests)
    return _matrix_from_values(algorithm, size, items)


def _matrix_from_values(algorithm: str, size: int, values: Sequence[bytes]) -> NDArray[np.uint8]:
    lengths = set(map(len, values))
    if lengths - {size}:
        bad = min(lengths - {size})
        raise MatchIndexError(f"{algorithm} digests are {size} bytes, got one of {bad}")
    return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(-1, size)


def _words(rests: NDArray[np.void]) -> list[NDArray[np.uint64]]:
    """The rests as big-endian uint64 columns, most significant first (for lexsort)."""
    width = rests.dtype.itemsize
    matrix = np.ascontiguousarray(rests).view(np.uint8).reshape(-1, width)
    pad = -width % 8
    if pad:
        matrix = np.hstack([matrix, np.zeros((len(matrix), pad), dtype=np.uint8)])
    columns = np.ascontiguousarray(matrix).view(">u8")
    return [columns[:, j].astype(np.uint64) for j in range(columns.shape[1])]


class _Table:
    """The sorted distinct digests of one algorithm, and their directory."""

    __slots__ = (
        "bits",
        "digest_size",
        "directory",
        "max_run",
        "prefix",
        "rest",
        "rest_bytes",
        "shift",
        "steps",
    )

    def __init__(
        self, digest_size: int, prefix: NDArray[np.uint64], rest: NDArray[np.void]
    ) -> None:
        self.digest_size = digest_size
        self.prefix, self.rest, self.max_run = _sort_unique(prefix, rest)
        count = len(self.prefix)
        bits = max(0, (count // _bucket_target(digest_size)).bit_length() - 1)
        # Bucket b holds the digests whose top `bits` bits are b: they sit at
        # directory[b] up to directory[b + 1].
        self.bits = bits
        self.shift = np.uint64(64 - bits)
        # The same rests as bytes, for the compiled look-up (a view, no copy).
        width = digest_size - PREFIX_BYTES
        self.rest_bytes = self.rest.view(np.uint8).reshape(count, width)
        buckets = self._buckets(self.prefix)
        sizes = np.bincount(buckets, minlength=1 << bits)
        del buckets
        self.directory = np.zeros((1 << bits) + 1, dtype=np.uint32 if count < 2**32 else np.uint64)
        np.cumsum(sizes, out=self.directory[1:])
        self.steps = int(sizes.max(initial=0)).bit_length()
        for array in (self.prefix, self.rest, self.directory):
            array.flags.writeable = False

    def _buckets(self, prefix: NDArray[np.uint64]) -> NDArray[np.intp]:
        if self.shift == 64:  # one bucket; a 64-bit shift is not defined
            return np.zeros(len(prefix), dtype=np.intp)
        return (prefix >> self.shift).astype(np.intp)

    @property
    def count(self) -> int:
        return len(self.prefix)

    @property
    def nbytes(self) -> int:
        return int(self.prefix.nbytes + self.rest.nbytes + self.directory.nbytes)

    def search(self, prefix: NDArray[np.uint64], rest: NDArray[np.void]) -> NDArray[np.bool_]:
        found = np.zeros(len(prefix), dtype=np.bool_)
        if not self.count or not len(prefix):
            return found
        kernel = _compiled_search() if COMPILED else None
        if kernel is not None:
            width = self.digest_size - PREFIX_BYTES
            rest_bytes = np.ascontiguousarray(rest).view(np.uint8).reshape(len(prefix), width)
            kernel(
                self.prefix,
                self.rest_bytes,
                self.directory,
                self.bits,
                prefix,
                rest_bytes,
                found,
            )
            return found
        buckets = self._buckets(prefix)
        low = self.directory[buckets].astype(np.intp)
        high = self.directory[buckets + 1].astype(np.intp)
        del buckets
        # Lower bound of each query in its bucket. Once low == high the probe
        # is the next bucket's first digest (never smaller) or past the end;
        # `clip` reads the last digest there, and a query past it never matches.
        for _ in range(self.steps):
            middle = (low + high) >> 1
            right = np.take(self.prefix, middle, mode="clip") < prefix
            low = np.where(right, middle + 1, low)
            high = np.where(right, high, middle)
        # Distinct digests sharing a 64-bit prefix sit side by side; almost
        # always there is one, so this loop almost always runs once. A clipped
        # position only ever compares a query with a digest that is there.
        for step in range(self.max_run):
            position = low + step if step else low
            candidate = np.flatnonzero(np.take(self.prefix, position, mode="clip") == prefix)
            if not len(candidate):
                break
            at = np.take(self.rest, position[candidate], mode="clip")
            found[candidate] |= at == rest[candidate]
        return found

    def contains(self, digest: bytes) -> bool:
        key = np.uint64(int.from_bytes(digest[:PREFIX_BYTES], "big"))
        start = int(np.searchsorted(self.prefix, key))
        tail = digest[PREFIX_BYTES:]
        for position in range(start, min(start + self.max_run, self.count)):
            if self.prefix[position] != key:
                break
            if self.rest[position].tobytes() == tail:
                return True
        return False


def _sort_unique(
    prefix: NDArray[np.uint64], rest: NDArray[np.void]
) -> tuple[NDArray[np.uint64], NDArray[np.void], int]:
    """Sort by full digest, drop repeats; also the longest run of equal prefixes."""
    if len(prefix) > 1 and bool(np.any(prefix[1:] < prefix[:-1])):
        order = np.argsort(prefix)
        prefix = np.take(prefix, order)
        rest = np.take(rest, order)
        del order
    else:
        # Rows read from the store arrive sorted; keep them, only compacted.
        rest = np.ascontiguousarray(rest)
        if rest.base is not None:
            rest = rest.copy()
    # Equal prefixes (a repeated digest, or rarely two digests that share 8
    # bytes) need the rest to decide order and identity: sort just those rows.
    run_starts = np.flatnonzero(prefix[1:] == prefix[:-1])
    if not len(run_starts):
        return prefix, rest, 1
    members = np.union1d(run_starts, run_starts + 1)
    member_rest = rest[members]
    order = np.lexsort((*reversed(_words(member_rest)), prefix[members]))
    rest[members] = member_rest[order]
    repeated = run_starts[rest[run_starts + 1] == rest[run_starts]] + 1
    if len(repeated):
        keep = np.ones(len(prefix), dtype=np.bool_)
        keep[repeated] = False
        prefix = prefix[keep]
        rest = rest[keep]
    boundaries = np.flatnonzero(prefix[1:] != prefix[:-1]) + 1
    edges = np.concatenate(([0], boundaries, [len(prefix)]))
    return prefix, rest, int(np.diff(edges).max())


def _search_kernel(
    prefix: Any,
    rest: Any,
    directory: Any,
    bits: int,
    query_prefix: Any,
    query_rest: Any,
    found: Any,
) -> None:  # pragma: no cover - runs compiled by numba, where it is installed
    """`_Table.search`, one query at a time in machine code.

    Per group of queries: the directory reads first, then a touch of each
    bucket's first prefix (independent reads the memory system overlaps),
    then a short forward scan of each bucket and a compare of the rests.
    """
    count = prefix.shape[0]
    width = rest.shape[1]
    shift = np.uint64(64 - bits)
    low = np.empty(_KERNEL_GROUP, np.int64)
    total = query_prefix.shape[0]
    for group in range(0, total, _KERNEL_GROUP):
        size = min(_KERNEL_GROUP, total - group)
        for t in range(size):
            bucket = 0 if bits == 0 else np.int64(query_prefix[group + t] >> shift)
            low[t] = directory[bucket]
        touched = np.uint64(0)
        for t in range(size):
            if low[t] < count:
                touched ^= prefix[low[t]]
        if touched == np.uint64(1):
            found[group] = found[group]  # keeps the reads from being optimised away
        for t in range(size):
            i = group + t
            key = query_prefix[i]
            j = low[t]
            while j < count and prefix[j] < key:
                j += 1
            while j < count and prefix[j] == key:
                same = True
                for k in range(width):
                    if rest[j, k] != query_rest[i, k]:
                        same = False
                        break
                if same:
                    found[i] = True
                    break
                j += 1


# Whether look-ups use the compiled kernel when numba is installed (the
# benchmark turns it off to time numpy alone).
COMPILED = True
_COMPILED: list[Callable[..., None] | None] = []


def _compiled_search() -> Callable[..., None] | None:
    """`_search_kernel` compiled by numba, or None where numba is not installed."""
    if not _COMPILED:
        try:
            numba: Any = importlib.import_module("numba")
        except ImportError:
            _COMPILED.append(None)
        else:
            # Cached on disk (next to this file, else the user's cache folder):
            # compiling took about a second of every `atalaya match` start.
            try:
                compiled = numba.njit(nogil=True, cache=True)(_search_kernel)
            except RuntimeError:  # no writable place for the cache
                compiled = numba.njit(nogil=True, cache=False)(_search_kernel)
            _COMPILED.append(compiled)
    return _COMPILED[0]


class _TableBuilder:
    """Rows of one algorithm appended chunk by chunk into preallocated arrays."""

    def __init__(self, algorithm: str, digest_size: int, capacity: int) -> None:
        self.algorithm = algorithm
        self.digest_size = digest_size
        self.length = 0
        self.prefix = np.empty(capacity, dtype=np.uint64)
        self.rest = np.empty(capacity, dtype=f"V{digest_size - PREFIX_BYTES}")

    def add(self, matrix: NDArray[np.uint8]) -> None:
        end = self.length + len(matrix)
        if end > len(self.prefix):
            # More rows than counted: an import committed while we read.
            capacity = max(end, len(self.prefix) + len(self.prefix) // 4 + 1024)
            self.prefix = np.resize(self.prefix, capacity)
            self.rest = np.resize(self.rest, capacity)
        prefix, rest = _split(matrix)
        self.prefix[self.length : end] = prefix
        self.rest[self.length : end] = rest
        self.length = end

    def finish(self) -> _Table:
        prefix, rest = self.prefix, self.rest
        del self.prefix, self.rest
        if self.length < len(prefix):
            prefix = prefix[: self.length].copy()
            rest = rest[: self.length].copy()
        return _Table(self.digest_size, prefix, rest)


def _digest_size(algorithm: str) -> int:
    size = DIGEST_SIZES.get(algorithm)
    if size is None:
        raise MatchIndexError(f"unknown hash algorithm {algorithm!r}")
    return size


class MatchIndex:
    """Which digests are known, per algorithm; answers batched look-ups.

    Immutable once built: rebuild it (`from_store`) after an import.
    """

    def __init__(self) -> None:
        self._tables: dict[str, _Table] = {}

    @classmethod
    def from_arrays(cls, digests: Mapping[str, Digests]) -> MatchIndex:
        """An index of the given digests, e.g. {"sha1": (n, 20) uint8 array}."""
        index = cls()
        for algorithm, values in digests.items():
            size = _digest_size(algorithm)
            index._tables[algorithm] = _Table(size, *_split(_as_matrix(algorithm, size, values)))
        return index

    @classmethod
    def from_store(
        cls,
        engine: Engine,
        *,
        algorithms: Iterable[str] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        progress: Progress | None = None,
    ) -> MatchIndex:
        """An index of every digest the hash sets hold (or of `algorithms` only).

        Rows are streamed (a server-side cursor on PostgreSQL) in sorted order,
        straight into the index's arrays; no per-row object outlives its chunk.
        """
        index = cls()
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # One snapshot for every statement: counts and rows agree.
                conn.execution_options(isolation_level="REPEATABLE READ")
            counts = lookup.digest_counts(conn)
            wanted = sorted(counts) if algorithms is None else sorted(set(algorithms))
            for algorithm in wanted:
                _digest_size(algorithm)
            total = sum(counts.get(algorithm, 0) for algorithm in wanted)
            done = 0
            if progress is not None:
                progress(done, total)
            for algorithm in wanted:
                size = _digest_size(algorithm)
                builder = _TableBuilder(algorithm, size, counts.get(algorithm, 0))
                # Each stream is in key order (a range of an index), which spares
                # the build a sort when one stream holds them all. Repeats (one
                # digest in several hash sets) are cheaper to drop here than in SQL.
                for stmt in lookup.digest_streams(conn, algorithm):
                    for part in _stream_column(conn, stmt, chunk_rows):
                        builder.add(_matrix_from_store(algorithm, size, part))
                        done += len(part)
                        if progress is not None:
                            progress(done, total)
                index._tables[algorithm] = builder.finish()
        return index

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(sorted(self._tables))

    def count(self, algorithm: str) -> int:
        table = self._tables.get(algorithm)
        return 0 if table is None else table.count

    def __len__(self) -> int:
        return sum(table.count for table in self._tables.values())

    @property
    def nbytes(self) -> int:
        """Bytes of digest data held (the arrays; not Python's fixed overhead)."""
        return sum(table.nbytes for table in self._tables.values())

    def stats(self) -> list[AlgorithmStats]:
        return [
            AlgorithmStats(algorithm, table.count, table.digest_size, table.nbytes)
            for algorithm, table in sorted(self._tables.items())
        ]

    def lookup(self, algorithm: str, digests: Digests) -> NDArray[np.bool_]:
        """A mask over `digests`: True where the digest is known.

        `np.flatnonzero(mask)` gives the indices of the hits. An algorithm
        that the index does not hold matches nothing.
        """
        table = self._tables.get(algorithm)
        size = table.digest_size if table is not None else _digest_size(algorithm)
        matrix = _as_matrix(algorithm, size, digests)
        if table is None:
            return np.zeros(len(matrix), dtype=np.bool_)
        return table.search(*_split(matrix))

    def contains(self, algorithm: str, digest: bytes) -> bool:
        """Whether one digest is known (the per-packet path of an observer)."""
        table = self._tables.get(algorithm)
        size = table.digest_size if table is not None else _digest_size(algorithm)
        if len(digest) != size:
            raise MatchIndexError(f"{algorithm} digests are {size} bytes, got {len(digest)}")
        return table is not None and table.contains(bytes(digest))

    def details(
        self, engine: Engine, hits: Iterable[tuple[str, bytes]]
    ) -> dict[tuple[str, bytes], list[Match]]:
        """Who knows each hit, from the store: see `fetch_details`."""
        return fetch_details(engine, hits)


def _stream_column(conn: Connection, stmt: Select[Any], chunk_rows: int) -> Iterator[list[Any]]:
    """The first column of `stmt`, chunk by chunk, straight from the driver.

    A SQLAlchemy Result would build a Row per value, which at tens of millions
    of rows is most of the build time. PostgreSQL gets a server-side (named)
    cursor, so only one chunk is ever in memory.
    """
    compiled = stmt.compile(dialect=conn.dialect)
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi.cursor(name="atalaya_match_index")
    else:
        cursor = dbapi.cursor()
    try:
        cursor.execute(str(compiled), params)
        while rows := cursor.fetchmany(chunk_rows):
            yield list(map(itemgetter(0), rows))
    finally:
        cursor.close()


def _matrix_from_store(algorithm: str, size: int, values: Sequence[Any]) -> NDArray[np.uint8]:
    try:
        return _matrix_from_values(algorithm, size, values)
    except MatchIndexError as exc:
        raise MatchIndexError(f"the store holds a damaged digest: {exc}") from exc


def _chunks(items: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fetch_details(
    engine: Engine, hits: Iterable[tuple[str, bytes]], *, batch_size: int = DETAILS_BATCH
) -> dict[tuple[str, bytes], list[Match]]:
    """Every hash set that holds each (algorithm, digest), ordered by hash set name.

    Digests that no hash set holds are absent from the result, so this is also
    a correct (if slower) look-up on its own for a handful of digests.
    """
    wanted: dict[str, set[bytes]] = defaultdict(set)
    for algorithm, digest in hits:
        wanted[algorithm].add(bytes(digest))
    found: dict[tuple[str, bytes], list[Match]] = defaultdict(list)
    with engine.connect() as conn:
        for algorithm, digests in sorted(wanted.items()):
            for batch in _chunks(sorted(digests), batch_size):
                for hit in lookup.digest_hits(conn, algorithm, batch):
                    found[(algorithm, hit.value)].append(
                        Match(
                            algorithm,
                            hit.value,
                            hit.hash_set,
                            hit.hash_set_sha256,
                            hit.category,
                            hit.category_label,
                            hit.file_key,
                        )
                    )
    for matches in found.values():
        matches.sort(key=lambda m: (m.hash_set, m.file_key))
    return dict(found)
