"""Reads of the reference data, whichever way a record is stored.

A hash set's records live in one of two layouts (atalaya.store.tables):
rich records (VICS, CSV: a name, attributes, several hashes) in
`reference_file` and `reference_hash`; bare records (plain lists: one digest)
as one compact `reference_digest` row each, whose file_key is derived
("algorithm:hex"). Other stages read reference data only through these
functions, so neither they nor their tests know which layout holds a record.

Every function takes an open Connection, so a caller's reads share one
snapshot; none writes.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, func, select

from atalaya.hashsets.algorithms import CODES, NAMES_BY_CODE, parse_file_key
from atalaya.store.tables import (
    hash_set,
    reference_digest,
    reference_file,
    reference_hash,
    reference_label,
)

# Keys or digests per `IN (…)`: well under every engine's parameter limit.
BATCH = 500

_d, _l, _hs = reference_digest.c, reference_label.c, hash_set.c
_rf, _rh = reference_file.c, reference_hash.c


@dataclass(frozen=True, slots=True)
class ReferenceFile:
    """One record of one hash set, with what the set says about it."""

    hash_set_id: int
    hash_set: str
    source: str
    hash_set_sha256: str
    file_key: str
    category: int
    category_label: str
    name: str | None = None
    attributes: Any = None  # the source's extra fields (VICS); None for a bare record
    bare: bool = False  # a plain list's record: its one hash is the one its key names


@dataclass(frozen=True, slots=True)
class DigestHit:
    """A record of a hash set that holds one digest."""

    value: bytes
    hash_set: str
    hash_set_sha256: str
    category: int
    category_label: str
    file_key: str


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _set_ids(conn: Connection) -> list[int]:
    # Bare rows are keyed by set first: a digest is found with one probe per set.
    return [int(i) for i in conn.scalars(select(_hs.id).order_by(_hs.id))]


def _bare_key(code: int, value: bytes) -> str:
    return f"{NAMES_BY_CODE[code]}:{bytes(value).hex()}"


def _bare_by_digest(
    conn: Connection, code: int, values: Sequence[bytes], set_ids: Sequence[int]
) -> Iterator[Any]:
    """Bare rows of `code` with one of `values`, joined to their label and set."""
    if not set_ids or not values:
        return
    stmt = (
        select(
            _d.hash_set_id,
            _d.value,
            _hs.name,
            _hs.source,
            _hs.file_sha256,
            _l.category,
            _l.category_label,
        )
        .select_from(
            reference_digest.join(
                reference_label,
                and_(_l.hash_set_id == _d.hash_set_id, _l.label == _d.label),
            ).join(hash_set, _hs.id == _d.hash_set_id)
        )
        .where(_d.hash_set_id.in_(list(set_ids)))
        .where(_d.algorithm == code)
        .where(_d.value.in_(list(values)))
    )
    yield from conn.execute(stmt)


def files_by_keys(
    conn: Connection, keys: Iterable[str], *, hash_set_ids: Collection[int] | None = None
) -> list[ReferenceFile]:
    """Every record with one of `keys`, in every hash set (or in `hash_set_ids`).

    Ordered by hash set name, then key.
    """
    wanted = sorted(set(keys))
    found: list[ReferenceFile] = []
    rich = (
        select(
            _rf.hash_set_id,
            _hs.name.label("set_name"),
            _hs.source,
            _hs.file_sha256,
            _rf.file_key,
            _rf.category,
            _rf.category_label,
            _rf.name,
            _rf.attributes,
        )
        .join(hash_set, _hs.id == _rf.hash_set_id)
        .where(_rf.file_key.in_(bindparam("keys", expanding=True)))
    )
    if hash_set_ids is not None:
        rich = rich.where(_rf.hash_set_id.in_(sorted(hash_set_ids)))
    for part in _chunks(wanted):
        for r in conn.execute(rich, {"keys": list(part)}):
            found.append(
                ReferenceFile(
                    int(r.hash_set_id),
                    r.set_name,
                    r.source,
                    r.file_sha256,
                    r.file_key,
                    int(r.category),
                    r.category_label,
                    r.name,
                    r.attributes,
                )
            )
    by_code: dict[int, list[bytes]] = defaultdict(list)
    for key in wanted:
        parsed = parse_file_key(key)
        # Bare keys are written from bytes.hex(): lower case only.
        if parsed is not None and key == f"{parsed[0]}:{parsed[1].hex()}":
            by_code[CODES[parsed[0]]].append(parsed[1])
    if by_code:
        set_ids = _set_ids(conn)
        if hash_set_ids is not None:
            set_ids = [i for i in set_ids if i in hash_set_ids]
        for code, values in sorted(by_code.items()):
            for part in _chunks(values):
                for r in _bare_by_digest(conn, code, part, set_ids):
                    found.append(
                        ReferenceFile(
                            int(r.hash_set_id),
                            r.name,
                            r.source,
                            r.file_sha256,
                            _bare_key(code, r.value),
                            int(r.category),
                            r.category_label,
                            bare=True,
                        )
                    )
    found.sort(key=lambda f: (f.hash_set, f.file_key))
    return found


def file_hashes(conn: Connection, keys: Iterable[str]) -> dict[tuple[int, str], dict[str, bytes]]:
    """The hashes of each record with one of `keys`: (hash set id, key) -> {algorithm: digest}."""
    wanted = sorted(set(keys))
    found: dict[tuple[int, str], dict[str, bytes]] = defaultdict(dict)
    stmt = select(_rh.hash_set_id, _rh.file_key, _rh.algorithm, _rh.value).where(
        _rh.file_key.in_(bindparam("keys", expanding=True))
    )
    for part in _chunks(wanted):
        for set_id, key, algorithm, value in conn.execute(stmt, {"keys": list(part)}):
            found[(int(set_id), key)][str(algorithm)] = bytes(value)
    # A bare record's only hash is the one its key names.
    for f in files_by_keys(conn, [k for k in wanted if ":" in k]):
        if f.bare and (f.hash_set_id, f.file_key) not in found:
            parsed = parse_file_key(f.file_key)
            if parsed is not None:
                found[(f.hash_set_id, f.file_key)] = {parsed[0]: parsed[1]}
    return dict(found)


def hashes_of_file(conn: Connection, key: str) -> dict[str, bytes]:
    """Every hash the hash sets hold for the record `key`, by algorithm (all sets together)."""
    merged: dict[str, bytes] = {}
    for hashes in file_hashes(conn, [key]).values():
        merged.update(hashes)
    return merged


def file_keys_for_digest(conn: Connection, algorithms: Iterable[str], digest: bytes) -> set[str]:
    """The keys of every record, in any hash set, that holds `digest` under one of `algorithms`."""
    names = sorted(set(algorithms))
    if not names:
        return set()
    keys = set(
        conn.scalars(
            select(_rh.file_key).where(_rh.algorithm.in_(names), _rh.value == bytes(digest))
        )
    )
    set_ids = _set_ids(conn)
    for name in names:
        code = CODES.get(name)
        if code is not None and set_ids:
            present = conn.execute(
                select(_d.hash_set_id)
                .where(_d.hash_set_id.in_(set_ids), _d.algorithm == code)
                .where(_d.value == bytes(digest))
                .limit(1)
            ).first()
            if present is not None:
                keys.add(_bare_key(code, digest))
    return keys


def watch_rows(
    conn: Connection, algorithms: Iterable[str]
) -> Iterator[tuple[str, bytes, str, int, str, str]]:
    """(algorithm, digest, file key, category, set name, set file SHA-256) of every hash
    of `algorithms` in every set, by set name and then digest."""
    names = sorted(set(algorithms))
    codes = [CODES[n] for n in names if n in CODES]
    sets = conn.execute(select(_hs.id, _hs.name, _hs.file_sha256).order_by(_hs.name)).all()
    for set_id, set_name, digest in sets:
        rich = (
            select(_rh.algorithm, _rh.value, _rh.file_key, _rf.category)
            .join(
                reference_file,
                (_rf.hash_set_id == _rh.hash_set_id) & (_rf.file_key == _rh.file_key),
            )
            .where(_rh.hash_set_id == set_id, _rh.algorithm.in_(names))
            .order_by(_rh.value)
        )
        rich_rows = ((bytes(v), str(a), k, int(c)) for a, v, k, c in conn.execute(rich))
        bare = (
            select(_d.algorithm, _d.value, _l.category)
            .join(reference_label, (_l.hash_set_id == _d.hash_set_id) & (_l.label == _d.label))
            .where(_d.hash_set_id == set_id, _d.algorithm.in_(codes))
            .order_by(_d.value)
        )
        bare_rows = (
            (bytes(v), NAMES_BY_CODE[int(a)], _bare_key(int(a), v), int(c))
            for a, v, c in (conn.execute(bare) if codes else ())
        )
        for value, algorithm, key, category in heapq.merge(rich_rows, bare_rows, key=itemgetter(0)):
            yield algorithm, value, key, category, set_name, digest


def digest_counts(conn: Connection) -> dict[str, int]:
    """How many hashes of each algorithm the sets hold (a digest in two sets counts twice)."""
    counts: dict[str, int] = defaultdict(int)
    for algorithm, n in conn.execute(select(_rh.algorithm, func.count()).group_by(_rh.algorithm)):
        counts[str(algorithm)] += int(n)
    for code, n in conn.execute(select(_d.algorithm, func.count()).group_by(_d.algorithm)):
        name = NAMES_BY_CODE.get(int(code))
        if name is not None:
            counts[name] += int(n)
    return dict(counts)


def digest_streams(conn: Connection, algorithm: str) -> list[Select[Any]]:
    """Statements whose one column gives every stored digest of `algorithm`.

    Each gives its digests in order (a range of a primary key or index); the
    streams together are not in order, and repeat a digest held twice.
    """
    stmts: list[Select[Any]] = [
        select(_rh.value).where(_rh.algorithm == algorithm).order_by(_rh.value)
    ]
    code = CODES.get(algorithm)
    if code is not None:
        for set_id in _set_ids(conn):
            stmts.append(
                select(_d.value)
                .where(_d.hash_set_id == set_id, _d.algorithm == code)
                .order_by(_d.value)
            )
    return stmts


def digest_hits(conn: Connection, algorithm: str, digests: Sequence[bytes]) -> list[DigestHit]:
    """Every record of every set that holds one of `digests` (at most BATCH of them)."""
    rh, rf, hs = reference_hash, reference_file, hash_set
    rich = (
        select(
            rh.c.value,
            hs.c.name,
            hs.c.file_sha256,
            rf.c.category,
            rf.c.category_label,
            rf.c.file_key,
        )
        .select_from(
            rh.join(
                rf, and_(rf.c.hash_set_id == rh.c.hash_set_id, rf.c.file_key == rh.c.file_key)
            ).join(hs, hs.c.id == rh.c.hash_set_id)
        )
        .where(rh.c.algorithm == algorithm)
        .where(rh.c.value.in_(list(digests)))
    )
    hits = [DigestHit(bytes(v), n, s, int(c), lab, k) for v, n, s, c, lab, k in conn.execute(rich)]
    code = CODES.get(algorithm)
    if code is not None:
        for r in _bare_by_digest(conn, code, digests, _set_ids(conn)):
            hits.append(
                DigestHit(
                    bytes(r.value),
                    r.name,
                    r.file_sha256,
                    int(r.category),
                    r.category_label,
                    _bare_key(code, r.value),
                )
            )
    return hits
