"""Import a hash set file into the store: streamed, batched, all or nothing.

The whole file is read inside ONE transaction: a rejected file rolls back and
leaves the database exactly as it was. Rows go in with prepared executemany
batches of INSERT … ON CONFLICT DO NOTHING, so re-importing a file adds
nothing and changes nothing (the hash_set row is touched only when something
was added). The file's SHA-256 is computed from the same bytes the readers
consume, and is the reference data version derived results record.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    column,
    delete,
    func,
    select,
    update,
)
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import postgresql, sqlite

from atalaya.errors import AtalayaError
from atalaya.hashsets import algorithms
from atalaya.hashsets.categories import Category, CategoryError, CategoryMap
from atalaya.hashsets.formats import (
    DigestBatch,
    HashSetFormatError,
    HashSetReader,
    LinesReader,
    Record,
    Rejected,
    format_for,
    open_reader,
)
from atalaya.store.engine import begin_write
from atalaya.store.tables import (
    hash_set,
    reference_digest,
    reference_file,
    reference_hash,
    reference_label,
)
from atalaya.store.times import utc

BATCH_RECORDS: Final = 10_000
# Bare records per write: sorted, a batch this large touches each page of the
# key once or twice rather than once per row.
BATCH_DIGESTS: Final = 200_000
# Labels a set's bare records can carry (reference_label.label is SMALLINT).
MAX_LABELS: Final = 32_767
REPORTED_REJECTIONS: Final = 20
MAX_SET_NAME: Final = 200
# Page cache for the importing SQLite connection (KiB, as PRAGMA cache_size wants it negative).
SQLITE_IMPORT_CACHE_KIB: Final = 256 * 1024

_FILE_COLUMNS: Final = (
    "hash_set_id",
    "file_key",
    "category",
    "category_label",
    "name",
    "attributes",
)
_HASH_COLUMNS: Final = ("hash_set_id", "algorithm", "value", "file_key")


class HashSetImportError(AtalayaError):
    """The file was rejected; the database is as it was."""


@dataclass
class ImportReport:
    """What an import did. `rejected_lines` holds the first few rejected lines."""

    hash_set: str
    path: str
    format: str
    version: str | None
    file_sha256: str
    created: bool
    records: int = 0
    files_new: int = 0
    files_known: int = 0
    hashes_new: int = 0
    hashes_known: int = 0
    rejected: int = 0
    rejected_lines: list[int] = field(default_factory=list)
    rejected_reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class HashSetInfo:
    """One row of `atalaya hashsets list`."""

    name: str
    source: str
    format: str
    version: str | None
    files: int
    hashes: int
    imported_at: datetime
    updated_at: datetime
    file_sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Metered(io.RawIOBase):
    """Counts and hashes every byte the readers consume, and reports progress."""

    def __init__(self, raw: io.RawIOBase, on_read: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._on_read = on_read
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = self._raw.readinto(view) or 0
        if n:
            self.sha256.update(view[:n])
            self.bytes += n
            if self._on_read is not None:
                self._on_read(self.bytes)
        return n


def _now() -> datetime:
    return datetime.now(UTC)


class _Inserter:
    """INSERT … ON CONFLICT DO NOTHING into one table, built from the dialect's construct.

    SQLite: one prepared statement run by the driver's executemany (a C loop).
    PostgreSQL: the rows are streamed with COPY into a temporary table (no
    per-row statement, parameter or round trip) and moved with one INSERT …
    SELECT … ON CONFLICT DO NOTHING, which also counts the new ones.
    """

    def __init__(self, conn: Connection, table: Any, columns: Sequence[str]) -> None:
        self._conn = conn
        dialect = conn.dialect
        self._copy = dialect.name == "postgresql"
        if dialect.name == "sqlite":
            values: dict[str, Any] = {c: bindparam(c) for c in columns}
            stmt: Any = sqlite.insert(table).values(values).on_conflict_do_nothing()
            compiled = stmt.compile(dialect=dialect)
            if list(compiled.positiontup or ()) != list(columns):
                raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
            self._sql = str(compiled)
        elif dialect.name == "postgresql":
            names = ", ".join(columns)
            self._staging = f"atalaya_import_{table.name}"
            conn.exec_driver_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {self._staging} "
                f"(LIKE {table.name}) ON COMMIT DROP"
            )
            self._copy_sql = f"COPY {self._staging} ({names}) FROM STDIN"
            staging = sql_table(self._staging, *[column(c) for c in columns])
            move = postgresql.insert(table).from_select(list(columns), select(*staging.c))
            self._sql = str(move.on_conflict_do_nothing().compile(dialect=dialect))
        else:  # pragma: no cover - create_store_engine admits only these two
            raise AtalayaError(f"unsupported database {dialect.name!r}")

    def stage_text(self, data: bytes) -> None:
        """COPY lines already in PostgreSQL's text format into the staging table."""
        dbapi: Any = self._conn.connection.dbapi_connection
        with dbapi.cursor() as cursor, cursor.copy(self._copy_sql) as copy:
            copy.write(data)

    def move_sorted(self, order: str) -> int:
        """Move every staged row, in `order`; how many were new."""
        dbapi: Any = self._conn.connection.dbapi_connection
        with dbapi.cursor() as cursor:
            cursor.execute(self._sql.replace(" ON CONFLICT", f" ORDER BY {order} ON CONFLICT"))
            count = _rowcount(cursor)
            cursor.execute(f"TRUNCATE {self._staging}")
        return count

    def insert(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert `rows` (tuples in column order); how many were new."""
        if not self._copy:
            return _rowcount(self._conn.exec_driver_sql(self._sql, rows))
        dbapi: Any = self._conn.connection.dbapi_connection
        with dbapi.cursor() as cursor:
            with cursor.copy(self._copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(self._sql)
            count = _rowcount(cursor)
            cursor.execute(f"TRUNCATE {self._staging}")
        return count


_HEX_DIGITS: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _copy_text(prefix: bytes, digests: NDArray[np.uint8], suffix: bytes) -> bytes:
    """COPY text lines: `prefix`, the digest as bytea hex, `suffix`, built as one array.

    COPY's text format reads a backslash as an escape: the two written here
    reach bytea's input as the one of its hex form (`\\x0a1b…`).
    """
    count, size = digests.shape
    head = np.frombuffer(prefix + b"\\\\x", dtype=np.uint8)
    tail = np.frombuffer(suffix + b"\n", dtype=np.uint8)
    width = len(head) + 2 * size + len(tail)
    out = np.empty((count, width), dtype=np.uint8)
    out[:, : len(head)] = head
    hex_part = out[:, len(head) : len(head) + 2 * size]
    hex_part[:, 0::2] = _HEX_DIGITS[digests >> 4]
    hex_part[:, 1::2] = _HEX_DIGITS[digests & 15]
    out[:, len(head) + 2 * size :] = tail
    return out.tobytes()


# Row n of the blob parameter is bytes n * size to (n + 1) * size. WHERE true:
# SQLite's parser needs it between a SELECT and an upsert clause.
_SQLITE_DIGESTS: Final = (
    "WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ?) "
    "INSERT INTO reference_digest (hash_set_id, algorithm, value, label) "
    "SELECT ?, ?, substr(?, n * ? + 1, ?), ? FROM i WHERE true ON CONFLICT DO NOTHING"
)


class _DigestInserter:
    """Bare records into reference_digest, a sorted matrix of digests at a time.

    No Python call or parameter per row on either engine. SQLite: the digests
    go in as ONE blob, cut into rows by a recursive CTE inside the INSERT …
    ON CONFLICT DO NOTHING (an executemany binds and steps each row from
    Python: 4 to 5 times slower). PostgreSQL: the COPY text is built with
    numpy, copied into a temporary table and moved with one INSERT … SELECT …
    ON CONFLICT DO NOTHING, which counts the new rows.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._copy = conn.dialect.name == "postgresql"
        if self._copy:
            columns = ("hash_set_id", "algorithm", "value", "label")
            self._inner = _Inserter(conn, reference_digest, columns)
            self._staged = 0

    def finish(self) -> tuple[int, int]:
        """(rows written, rows new) of what was staged and is now moved (PostgreSQL)."""
        if not self._copy or not self._staged:
            return 0, 0
        # One move in key order: the primary key then grows at its right edge
        # (PostgreSQL's fast path for the rightmost leaf), not at random pages.
        staged, self._staged = self._staged, 0
        new = self._inner.move_sorted("hash_set_id, algorithm, value")
        return staged, new

    def insert(
        self, set_id: int, code: int, label: int, digests: NDArray[np.uint8]
    ) -> tuple[int, int]:
        """(rows written, rows new); on PostgreSQL (0, 0): rows are staged until `finish`."""
        count, size = digests.shape
        if not count:
            return 0, 0
        if self._copy:
            data = _copy_text(f"{set_id}\t{code}\t".encode(), digests, f"\t{label}".encode())
            self._inner.stage_text(data)
            self._staged += count
            return 0, 0
        # In key order (by the first 8 bytes: near enough, and a numeric sort):
        # each page of the key is then written once or twice, not once per row.
        prefix = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel().astype(np.uint64)
        digests = digests[np.argsort(prefix)]
        blob = np.ascontiguousarray(digests).tobytes()
        self._conn.exec_driver_sql(_SQLITE_DIGESTS, (count, set_id, code, blob, size, size, label))
        # A statement that starts with WITH reports no rowcount; changes() does.
        return count, int(self._conn.exec_driver_sql("SELECT changes()").scalar_one())


def _rowcount(result: Any) -> int:
    count = result.rowcount
    if count is None or count < 0:  # pragma: no cover - both drivers report it
        raise AtalayaError("the database driver did not report inserted rows")
    return int(count)


class _Writer:
    """Buffers rows and writes them in batches.

    With `compact`, bare records (one hash, no name, no attributes) go to
    reference_digest, one row each; everything else to reference_file and
    reference_hash.
    """

    def __init__(self, conn: Connection, set_id: int, *, compact: bool = False) -> None:
        self._conn = conn
        self._set_id = set_id
        self._file_insert = _Inserter(conn, reference_file, _FILE_COLUMNS)
        self._hash_insert = _Inserter(conn, reference_hash, _HASH_COLUMNS)
        self._files: list[tuple[Any, ...]] = []
        self._hashes: list[tuple[Any, ...]] = []
        self.files_new = 0
        self.hashes_new = 0
        self.files_written = 0
        self.hashes_written = 0
        self._compact = compact
        self._digest_insert = _DigestInserter(conn) if compact else None
        # (algorithm code, label number) -> digest matrices waiting, and their rows.
        self._digests: dict[tuple[int, int], list[NDArray[np.uint8]]] = {}
        self._pending_digests = 0
        self._labels: dict[tuple[str, int], int] = {}
        if compact:
            rows = conn.execute(
                select(
                    reference_label.c.category_label,
                    reference_label.c.category,
                    reference_label.c.label,
                ).where(reference_label.c.hash_set_id == set_id)
            )
            self._labels = {(text, int(cat)): int(n) for text, cat, n in rows}

    def _label(self, text: str, category: Category) -> int:
        known = self._labels.get((text, int(category)))
        if known is not None:
            return known
        number = max(self._labels.values(), default=-1) + 1
        if number > MAX_LABELS:
            raise HashSetImportError(f"more than {MAX_LABELS} category labels in one hash set")
        self._conn.execute(
            reference_label.insert().values(
                hash_set_id=self._set_id,
                label=number,
                category=int(category),
                category_label=text,
            )
        )
        self._labels[(text, int(category))] = number
        return number

    def _add_digests(
        self, algorithm: str, label: str, category: Category, digests: NDArray[np.uint8]
    ) -> None:
        key = (algorithms.CODES[algorithm], self._label(label, category))
        self._digests.setdefault(key, []).append(digests)
        self._pending_digests += len(digests)
        if self._pending_digests >= BATCH_DIGESTS:
            self._flush_digests()

    def _count(self, written: int, new: int) -> None:
        # A bare record is one file and one hash.
        self.files_written += written
        self.hashes_written += written
        self.files_new += new
        self.hashes_new += new

    def _flush_digests(self) -> None:
        if self._digest_insert is None:
            return
        for (code, label), parts in sorted(self._digests.items()):
            matrix = np.concatenate(parts) if len(parts) > 1 else parts[0]
            self._count(*self._digest_insert.insert(self._set_id, code, label, matrix))
        self._digests = {}
        self._pending_digests = 0

    def add(self, record: Record, category: Category) -> None:
        if (
            self._compact
            and len(record.hashes) == 1
            and record.name is None
            and record.attributes is None
        ):
            ((algorithm, value),) = record.hashes.items()
            digest = np.frombuffer(value, dtype=np.uint8).reshape(1, len(value))
            self._add_digests(algorithm, record.category_label, category, digest)
            return
        key = algorithms.file_key(record.hashes)
        attributes = (
            json.dumps(record.attributes, separators=(",", ":"))
            if record.attributes is not None
            else None
        )
        self._files.append(
            (self._set_id, key, int(category), record.category_label, record.name, attributes)
        )
        for algorithm, value in record.hashes.items():
            self._hashes.append((self._set_id, algorithm, value, key))
        if len(self._files) >= BATCH_RECORDS:
            self.flush()

    def add_batch(self, batch: DigestBatch, category: Category) -> None:
        """Rows for a batch of one-hash records, built a column at a time."""
        if self._compact:
            self._add_digests(batch.algorithm, batch.category_label, category, batch.digests)
            return
        name, width = batch.algorithm, 2 * batch.digests.shape[1]
        text = np.ascontiguousarray(batch.digests).tobytes().hex()
        # A one-hash record's key is always "algorithm:hex" (algorithms.file_key).
        keys = [f"{name}:{text[i : i + width]}" for i in range(0, len(text), width)]
        values = _rows(batch.digests)
        set_id, code, label = self._set_id, int(category), batch.category_label
        self._files.extend([(set_id, key, code, label, None, None) for key in keys])
        self._hashes.extend(
            [(set_id, name, value, key) for value, key in zip(values, keys, strict=True)]
        )
        if len(self._files) >= BATCH_RECORDS:
            self.flush()

    def flush(self) -> None:
        self._flush_digests()
        if self._digest_insert is not None:
            self._count(*self._digest_insert.finish())
        if self._files:
            # Sorted keys touch neighbouring index pages: fewer page writes.
            self._files.sort(key=lambda row: row[1])
            self.files_new += self._file_insert.insert(self._files)
            self.files_written += len(self._files)
            self._files = []
        if self._hashes:
            self._hashes.sort(key=lambda row: (row[1], row[2]))
            self.hashes_new += self._hash_insert.insert(self._hashes)
            self.hashes_written += len(self._hashes)
            self._hashes = []


def _open_set(
    conn: Connection, name: str, source: str, fmt: str, version: str | None
) -> tuple[int, bool]:
    """The id of hash set `name`, creating it (inside this transaction) if new.

    Two first imports of one new name at once: on PostgreSQL the second
    INSERT waits for the first transaction and, once that commits, does
    nothing; the second import then adds its records to the same set
    instead of failing on the unique name.
    """
    row = conn.execute(select(hash_set.c.id).where(hash_set.c.name == name)).first()
    if row is not None:
        return int(row.id), False
    now = _now()
    values = {
        "name": name,
        "source": source,
        "format": fmt,
        "version": version,
        "imported_at": now,
        "updated_at": now,
        "file_sha256": "",
        "file_count": 0,
        "hash_count": 0,
    }
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        dialect_insert(hash_set)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[hash_set.c.name])
        .returning(hash_set.c.id)
    )
    created = conn.execute(stmt).first()
    if created is not None:
        return int(created.id), True
    # READ COMMITTED: this new statement sees the set the other import committed.
    row = conn.execute(select(hash_set.c.id).where(hash_set.c.name == name)).first()
    if row is None:  # pragma: no cover - the conflict was with a committed row
        raise AtalayaError(f"hash set {name!r} could not be created: try the import again")
    return int(row.id), False


class _SqliteTuning:
    """A larger page cache for the importing connection, restored afterwards."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._previous: Any = None

    def __enter__(self) -> None:
        if self._conn.dialect.name != "sqlite":
            return
        self._previous = self._conn.exec_driver_sql("PRAGMA cache_size").scalar()
        self._conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            self._conn.exec_driver_sql(f"PRAGMA cache_size={int(self._previous)}")


def _check_options(
    fmt: str, name: str, category: str | None, algorithm: str | None, cmap: CategoryMap
) -> None:
    if not name.strip() or len(name) > MAX_SET_NAME:
        raise HashSetImportError(
            f"hash set name must be 1 to {MAX_SET_NAME} characters (--source NAME)"
        )
    if algorithm is not None:
        if fmt != "lines":
            raise HashSetImportError("--algorithm applies to plain lists only (--format lines)")
        if not algorithms.is_known(algorithm):
            known = ", ".join(a for a in algorithms.DIGEST_SIZES if not a.startswith("btv1_"))
            raise HashSetImportError(
                f"unknown --algorithm {algorithm!r} (use one of {known}, btv1_<piece size>)"
            )
    if fmt == "lines" and category is None:
        raise HashSetImportError(
            "a plain list carries no category: give --category (for example --category abuse)"
        )
    if category is not None:
        try:
            cmap.resolve(category)
        except CategoryError as exc:
            raise HashSetImportError(f"--category: {exc}") from None


def import_hash_set(
    engine: Engine,
    path: Path,
    *,
    fmt: str | None = None,
    name: str | None = None,
    category: str | None = None,
    algorithm: str | None = None,
    version: str | None = None,
    skip_invalid: bool = False,
    category_map: Mapping[str, Category] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import `path` into hash set `name` (default: the file's stem).

    Strict by default: the first bad record rejects the whole file
    (HashSetImportError, `FILE:LINE: what is wrong`) and nothing changes.
    With `skip_invalid`, bad records are counted and skipped.
    """
    try:
        fmt = format_for(path, fmt)
    except ValueError as exc:
        raise HashSetImportError(str(exc)) from None
    set_name = name if name is not None else path.stem
    cmap = CategoryMap(category_map)
    _check_options(fmt, set_name, category, algorithm, cmap)
    try:
        raw = path.open("rb", buffering=0)
    except OSError as exc:
        raise HashSetImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    with raw:
        metered = _Metered(raw, on_progress)
        stream = io.BufferedReader(metered, buffer_size=1 << 16)
        reader = open_reader(
            fmt,
            stream,
            source=str(path),
            reopen=lambda: path.open("rb"),
            category=category,
            algorithm=algorithm,
        )
        report = ImportReport(
            hash_set=set_name,
            path=str(path),
            format=fmt,
            version=version,
            file_sha256="",
            created=False,
        )
        try:
            with begin_write(engine) as conn, _SqliteTuning(conn):
                _run(
                    conn,
                    reader,
                    stream=stream,
                    metered=metered,
                    report=report,
                    cmap=cmap,
                    skip_invalid=skip_invalid,
                    path=path,
                )
        except HashSetFormatError as exc:
            raise HashSetImportError(f"{exc} (nothing imported)") from None
    return report


def _rows(matrix: NDArray[np.uint8]) -> list[bytes]:
    # A void view gives `bytes` of the full width ("S" would drop trailing zeros).
    if not matrix.size:
        return []
    rows: list[bytes] = np.ascontiguousarray(matrix).view(f"V{matrix.shape[1]}").ravel().tolist()
    return rows


def _records(
    reader: HashSetReader, cmap: CategoryMap
) -> Iterator[tuple[Record | DigestBatch, Category] | Rejected]:
    """Records with their internal category; unknown labels become rejections.

    A plain list comes in batches of decoded lines (LinesReader.batches).
    """
    context: str | None = None
    items: Iterator[Record | Rejected | DigestBatch]
    items = reader.batches() if isinstance(reader, LinesReader) else iter(reader)
    for item in items:
        if isinstance(item, DigestBatch):
            try:
                yield item, cmap.resolve(item.category_label)
            except CategoryError as exc:
                for record in item.records():
                    yield Rejected(str(exc), record.ordinal, record.line)
            continue
        if isinstance(item, Rejected):
            yield item
            continue
        if reader.version != context:
            context = reader.version
            cmap.set_vics_context(context)
        try:
            yield item, cmap.resolve(item.category_label)
        except CategoryError as exc:
            yield Rejected(str(exc), item.ordinal, item.line)


def _line_of(reader: HashSetReader, item: Rejected) -> int:
    if item.line is not None:
        return item.line
    return reader.locate({item.ordinal}).get(item.ordinal, 0)


def _compact(conn: Connection, set_id: int, fmt: str) -> bool:
    """Whether this import writes bare records as compact rows.

    A plain list does, unless its set already holds rich records: a digest
    of the set is then in one layout only, as one row (the rich one).
    """
    if fmt != "lines":
        return False
    rich = conn.execute(
        select(reference_hash.c.hash_set_id).where(reference_hash.c.hash_set_id == set_id).limit(1)
    ).first()
    return rich is None


def _run(
    conn: Connection,
    reader: HashSetReader,
    *,
    stream: BinaryIO,
    metered: _Metered,
    report: ImportReport,
    cmap: CategoryMap,
    skip_invalid: bool,
    path: Path,
) -> None:
    set_id, report.created = _open_set(
        conn, report.hash_set, path.name, report.format, report.version
    )
    writer = _Writer(conn, set_id, compact=_compact(conn, set_id, report.format))
    pending: list[Rejected] = []  # first rejections, lines to find when unknown
    for item in _records(reader, cmap):
        if isinstance(item, Rejected):
            if not skip_invalid:
                line = _line_of(reader, item)
                raise HashSetImportError(
                    f"{path}:{line}: {item.message} (nothing imported; "
                    "--skip-invalid imports the other records)"
                )
            report.rejected += 1
            if len(pending) < REPORTED_REJECTIONS:
                pending.append(item)
            continue
        record, category = item
        if isinstance(record, DigestBatch):
            report.records += len(record.digests)
            writer.add_batch(record, category)
            continue
        report.records += 1
        writer.add(record, category)
    writer.flush()
    # Read whatever the reader left (trailing bytes) so the digest covers the file.
    while stream.read(1 << 20):
        pass
    unknown = {r.ordinal for r in pending if r.line is None}
    lines = reader.locate(unknown) if unknown else {}
    report.rejected_lines = [
        r.line if r.line is not None else lines.get(r.ordinal, 0) for r in pending
    ]
    report.rejected_reasons = [r.message for r in pending]
    report.file_sha256 = metered.sha256.hexdigest()
    report.files_new = writer.files_new
    report.files_known = writer.files_written - writer.files_new
    report.hashes_new = writer.hashes_new
    report.hashes_known = writer.hashes_written - writer.hashes_new
    if report.version is None:
        report.version = reader.version
    if report.created and report.records == 0:
        # Nothing accepted: a new set is not worth a row (the database stays as it was).
        conn.execute(delete(hash_set).where(hash_set.c.id == set_id))
        report.created = False
        return
    if report.created or report.files_new or report.hashes_new:
        conn.execute(
            update(hash_set)
            .where(hash_set.c.id == set_id)
            .values(
                source=path.name,
                format=report.format,
                version=report.version,
                updated_at=_now(),
                file_sha256=report.file_sha256,
                file_count=hash_set.c.file_count + report.files_new,
                hash_count=hash_set.c.hash_count + report.hashes_new,
            )
        )


def list_hash_sets(engine: Engine) -> list[HashSetInfo]:
    """Every hash set, by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(hash_set).order_by(hash_set.c.name)).all()
    return [_info(row) for row in rows]


def _info(row: Any) -> HashSetInfo:
    return HashSetInfo(
        name=row.name,
        source=row.source,
        format=row.format,
        version=row.version,
        files=int(row.file_count),
        hashes=int(row.hash_count),
        imported_at=utc(row.imported_at),
        updated_at=utc(row.updated_at),
        file_sha256=row.file_sha256,
    )


def find_hash_set(engine: Engine, name: str) -> HashSetInfo | None:
    """Hash set `name`, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(hash_set).where(hash_set.c.name == name)).first()
    return _info(row) if row is not None else None


def remove_hash_set(engine: Engine, name: str) -> HashSetInfo:
    """Delete hash set `name` with its files and hashes; what it was, for the record.

    On SQLite the import's larger page cache: each deleted row is also taken
    out of the (algorithm, value) index, whose pages it reaches at random.
    """
    with begin_write(engine) as conn, _SqliteTuning(conn):
        row = conn.execute(select(hash_set).where(hash_set.c.name == name)).first()
        if row is None:
            names = conn.execute(select(func.count()).select_from(hash_set)).scalar_one()
            hint = "see 'atalaya hashsets list'" if names else "no hash set is imported"
            raise AtalayaError(f"no hash set named {name!r} ({hint})")
        info = _info(row)
        # Explicit deletes: correct even where foreign keys are not enforced.
        # Bare rows are keyed by set first: their delete is one range of the key.
        conn.execute(delete(reference_digest).where(reference_digest.c.hash_set_id == row.id))
        conn.execute(delete(reference_label).where(reference_label.c.hash_set_id == row.id))
        conn.execute(delete(reference_hash).where(reference_hash.c.hash_set_id == row.id))
        conn.execute(delete(reference_file).where(reference_file.c.hash_set_id == row.id))
        conn.execute(delete(hash_set).where(hash_set.c.id == row.id))
    return info
