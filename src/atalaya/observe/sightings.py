"""Sightings: the immutable record of one peer seen offering one watched item.

Observers build `Sighting` values from protocol results and hand them to a
`SightingWriter`, which appends them in small transactions so that a stop
(Ctrl-C, --duration) loses nothing already written. A sighting's proof
transcript (see `atalaya.observe.transcripts`) is written in the same
transaction as the sighting, or not at all.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, Engine, insert, select

from atalaya import __version__
from atalaya.csv_cells import neutralise_row
from atalaya.hashsets.categories import Category
from atalaya.observe.transcripts import transcript_row
from atalaya.store import begin_write
from atalaya.store.tables import proof_transcript, sighting
from atalaya.store.times import utc

OBSERVER = f"atalaya/{__version__}"
PROOF_PIECES = "pieces"  # pieces verified against the torrent's metadata
PROOF_FULL_FILE = "full_file"  # the known file's own hashes recomputed over all its bytes
PROOF_KINDS = (None, PROOF_PIECES, PROOF_FULL_FILE)


@dataclass(frozen=True)
class Sighting:
    network: str
    item_kind: str  # "btih", "btih2", …: the names of atalaya.hashsets.algorithms
    item_value: str  # lowercase hex
    ip: str
    port: int
    seen_at: datetime
    found_by: str
    run_id: str
    client: str | None = None
    peer_id: str | None = None
    advertised_name: str | None = None
    have_fraction: float | None = None
    pieces_verified: int = 0
    pieces_failed: int = 0
    bytes_downloaded: int = 0
    file_key: str | None = None  # "algorithm:hex" of the reference file matched
    category: int | None = None
    hash_set: str | None = None
    hash_set_sha256: str | None = None  # the hash set file's digest: its version
    local_ip: str | None = None
    local_port: int | None = None
    clock_offset_s: float | None = None
    observer: str = OBSERVER
    details: dict[str, Any] = field(default_factory=dict)
    # Which proof was reached: "pieces" | "full_file"; None: none.
    proof_kind: str | None = None
    # The proof transcript's canonical body (not a column of `sighting`).
    transcript: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.proof_kind not in PROOF_KINDS:
            raise ValueError(f"proof_kind must be one of {PROOF_KINDS}, got {self.proof_kind!r}")
        if self.seen_at.tzinfo is None or self.seen_at.utcoffset() != UTC.utcoffset(None):
            raise ValueError("seen_at must be an aware UTC datetime")
        object.__setattr__(self, "ip", canonical_ip(self.ip))
        if self.local_ip is not None:
            object.__setattr__(self, "local_ip", canonical_ip(self.local_ip))

    @property
    def proof(self) -> bool:
        """Possession is proven only by verified data and no failed data."""
        return self.pieces_verified > 0 and self.pieces_failed == 0


def canonical_ip(text: str) -> str:
    """The one text a sighting stores for an address; ValueError if it is none.

    IPv6 in RFC 5952 form (lower case, shortest), so that one address is one
    string for joins, enrichment and the IPv6 prefix patterns of the leads
    stage. An IPv4-mapped address (::ffff:a.b.c.d, RFC 4291 2.5.5.2) is how
    a dual-stack socket reports an IPv4 peer: it is stored as that IPv4
    address, the one its ISP knows, enrichment looks up and grouping shares
    with the peer's other IPv4 sightings. A zone id (fe80::1%eth0) names our
    interface, not the peer, and is left out.
    """
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Address(int(address)))
    return str(address)


def new_run_id() -> str:
    return str(uuid.uuid4())


class SightingWriter:
    """Appends sightings and their transcripts; each `write` is its own transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.written = 0

    def write(self, items: Iterable[Sighting]) -> int:
        batch = list(items)
        if not batch:
            return 0
        rows = [_row(s) for s in batch]
        with begin_write(self.engine) as conn:
            if any(s.transcript is not None for s in batch):
                ids = (
                    conn.execute(
                        insert(sighting).returning(sighting.c.id, sort_by_parameter_order=True),
                        rows,
                    )
                    .scalars()
                    .all()
                )
                transcripts = [
                    transcript_row(int(sighting_id), s.transcript)
                    for sighting_id, s in zip(ids, batch, strict=True)
                    if s.transcript is not None
                ]
                conn.execute(insert(proof_transcript), transcripts)
            else:
                conn.execute(insert(sighting), rows)
        self.written += len(rows)
        return len(rows)


def _row(s: Sighting) -> dict[str, Any]:
    row = asdict(s)
    del row["transcript"]
    row["proof"] = s.proof
    return row


# The export columns, in the order the issue names them, then the rest.
EXPORT_FIELDS = (
    "network",
    "item_kind",
    "item_value",
    "ip",
    "port",
    "seen_at",
    "found_by",
    "client",
    "peer_id",
    "have_fraction",
    "pieces_verified",
    "pieces_failed",
    "file_key",
    "category",
    "proof",
    "advertised_name",
    "bytes_downloaded",
    "hash_set",
    "hash_set_sha256",
    "local_ip",
    "local_port",
    "observer",
    "run_id",
    "clock_offset_s",
    "proof_kind",
)
assert set(EXPORT_FIELDS) <= {f.name for f in fields(Sighting)} | {"proof"}


def sightings_by_id(conn: Connection, ids: Sequence[int]) -> list[Any]:
    """(id, network, ip, port, seen_at) of the sightings `ids`, oldest first."""
    s = sighting.c
    return list(
        conn.execute(
            select(s.id, s.network, s.ip, s.port, s.seen_at)
            .where(s.id.in_(list(ids)))
            .order_by(s.seen_at, s.id)
        ).all()
    )


def iter_export_rows(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Sightings in the order they were seen, as plain values ready to print."""
    query = select(*(sighting.c[name] for name in EXPORT_FIELDS)).order_by(
        sighting.c.seen_at, sighting.c.id
    )
    if since is not None:
        query = query.where(sighting.c.seen_at >= since)
    if until is not None:
        query = query.where(sighting.c.seen_at < until)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=1000).execute(query):
            record = dict(row._mapping)
            record["seen_at"] = utc(record["seen_at"]).isoformat(timespec="microseconds")
            if record["category"] is not None:
                record["category"] = Category(record["category"]).name.lower()
            yield record


def write_jsonl(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(rows: Iterable[dict[str, Any]], stream: IO[str]) -> int:
    writer = csv.DictWriter(stream, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(neutralise_row(row))
        count += 1
    return count
