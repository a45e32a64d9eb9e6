"""Everything a lead's page shows, gathered from the store.

The lead itself (score factor by factor, presences, links, overrides) comes
from `atalaya.leads.query.lead_detail`; this module adds what only the page
needs: the sightings of each presence as a timeline in UTC and local time,
the files offered, the proof gathered, and other leads of the same unit
that offer the same items or reported the same peer id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select

from atalaya.hashsets import lookup
from atalaya.hashsets.categories import Category
from atalaya.leads.addresses import with_exact_addresses
from atalaya.leads.presence import ItemKey
from atalaya.leads.presences import BATCH, in_presences, presence_of, utc_day
from atalaya.leads.query import lead_detail, lead_exists
from atalaya.leads.storage import item_conditions
from atalaya.store.tables import (
    lead,
    lead_presence,
    lead_presence_item,
    lead_presence_peer,
    proof_transcript,
    sighting,
)
from atalaya.store.times import utc

TIMELINE_LIMIT = 500
RELATED_LIMIT = 20
# Piece indices read from one proof transcript: a request names a few.
MAX_INDICES = 64
MAX_TRANSCRIPT = 1 << 20


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    seen_at: datetime  # UTC
    local: str  # the same instant in the place's time zone
    time_zone: str | None
    ip: str
    port: int
    network: str
    item_kind: str
    item_value: str  # hex
    found_by: str
    client: str | None
    file_key: str | None
    category: str | None
    proof: bool
    pieces_verified: int
    bytes_downloaded: int
    # What a request needs beyond the above (all None when not recorded).
    pieces_failed: int = 0
    proof_kind: str | None = None
    piece_indices: tuple[int, ...] | None = None
    clock_offset_s: float | None = None
    hash_set: str | None = None
    hash_set_source: str | None = None
    hash_set_sha256: str | None = None
    source_label: str | None = None  # the category label as the hash set wrote it
    advertised_name: str | None = None
    peer_id: str | None = None
    observer: str | None = None


@dataclass(frozen=True)
class Reference:
    """A known file's entry in one hash set: where it comes from and its label there."""

    hash_set: str
    source: str
    label: str


@dataclass(frozen=True)
class OfferedFile:
    network: str
    kind: str
    value: str  # hex
    file_key: str | None
    category: str | None
    proof: bool
    sightings: int
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True)
class RelatedLead:
    id: int
    score: float
    place: str
    reasons: list[str]


@dataclass
class Dossier:
    detail: dict[str, Any]
    timeline: list[TimelineEntry] = field(default_factory=list)
    timeline_total: int = 0
    per_day: list[tuple[str, int]] = field(default_factory=list)
    files: list[OfferedFile] = field(default_factory=list)
    proofs: int = 0
    pieces_verified: int = 0
    bytes_verified: int = 0
    related: list[RelatedLead] = field(default_factory=list)


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_time(at: datetime, zone_name: str | None) -> str:
    """The instant in the place's zone, with its offset and abbreviation."""
    zone = _zone(zone_name)
    if zone is None:
        return "(time zone unknown)"
    local = utc(at).astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "") + local.strftime(" (%z)")


def _label(category: int | None) -> str | None:
    return Category(category).label if category is not None else None


def _timeline(conn: Connection, presences: Sequence[Any], dossier: Dossier) -> None:
    zones = {p.id: p.time_zone for p in presences}
    entries: list[TimelineEntry] = []
    per_day: dict[str, int] = {}
    total = proofs = pieces = verified_bytes = 0
    day = utc_day(conn, sighting.c.seen_at)
    for start in range(0, len(presences), BATCH):
        batch = presences[start : start + BATCH]
        match = in_presences(batch)
        for day_text, count in conn.execute(select(day, func.count()).where(match).group_by(day)):
            per_day[day_text] = per_day.get(day_text, 0) + int(count)
            total += int(count)
        proof_row = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(sighting.c.pieces_verified), 0),
                func.coalesce(func.sum(sighting.c.bytes_downloaded), 0),
            ).where(and_(match, sighting.c.proof.is_(True)))
        ).one()
        proofs += int(proof_row[0])
        pieces += int(proof_row[1])
        verified_bytes += int(proof_row[2])
        owner = presence_of(batch).label("presence_id")
        rows = conn.execute(
            select(sighting, owner)
            .where(match)
            .order_by(sighting.c.seen_at.desc(), sighting.c.id.desc())
            .limit(TIMELINE_LIMIT)
        ).mappings()
        entries.extend(_entries(conn, list(rows), zones))
    entries.sort(key=lambda e: (e.seen_at, e.id), reverse=True)
    dossier.timeline = entries[:TIMELINE_LIMIT]
    dossier.timeline_total = total
    dossier.per_day = sorted(per_day.items())
    dossier.proofs = proofs
    dossier.pieces_verified = pieces
    dossier.bytes_verified = verified_bytes


def piece_indices(body: bytes) -> tuple[int, ...] | None:
    """The verified pieces' indices in a proof transcript (canonical JSON), if it names them.

    Read defensively: the transcript's version may add fields; anything
    that is not a list of pieces with integer indices gives None.
    """
    if len(body) > MAX_TRANSCRIPT:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    pieces = doc.get("pieces") if isinstance(doc, dict) else None
    if not isinstance(pieces, list):
        return None
    found: list[int] = []
    for piece in pieces[:MAX_INDICES]:
        index = piece.get("index") if isinstance(piece, dict) else piece
        if isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            found.append(index)
    return tuple(sorted(found)) if found else None


def _references(
    conn: Connection, pairs: Iterable[tuple[str | None, str | None]]
) -> dict[tuple[str, str], tuple[str, str]]:
    """(hash set name, file key) -> (the set's source, the file's label there)."""
    wanted = {(h, k) for h, k in pairs if h and k}
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for file in lookup.files_by_keys(conn, {k for _, k in wanted}):
        if (file.hash_set, file.file_key) in wanted:
            found[(file.hash_set, file.file_key)] = (file.source, file.category_label)
    return found


def _transcripts(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[int, ...] | None]:
    found: dict[int, tuple[int, ...] | None] = {}
    for start in range(0, len(ids), 1_000):
        for sighting_id, body in conn.execute(
            select(proof_transcript.c.sighting_id, proof_transcript.c.body).where(
                proof_transcript.c.sighting_id.in_(list(ids[start : start + 1_000]))
            )
        ):
            found[int(sighting_id)] = piece_indices(bytes(body))
    return found


def _entries(
    conn: Connection, rows: Sequence[Any], zones: dict[int, str | None]
) -> list[TimelineEntry]:
    refs = _references(conn, ((r["hash_set"], r["file_key"]) for r in rows))
    indices = _transcripts(conn, [r["id"] for r in rows if r["proof"]])
    entries = []
    for s in rows:
        zone = zones.get(s["presence_id"])
        seen = utc(s["seen_at"])
        ref = refs.get((s["hash_set"], s["file_key"]))
        entries.append(
            TimelineEntry(
                id=s["id"],
                seen_at=seen,
                local=local_time(seen, zone),
                time_zone=zone,
                ip=s["ip"],
                port=s["port"],
                network=s["network"],
                item_kind=s["item_kind"],
                item_value=s["item_value"],
                found_by=s["found_by"],
                client=s["client"],
                file_key=s["file_key"],
                category=_label(s["category"]),
                proof=bool(s["proof"]),
                pieces_verified=s["pieces_verified"],
                bytes_downloaded=s["bytes_downloaded"],
                pieces_failed=s["pieces_failed"],
                proof_kind=s["proof_kind"],
                piece_indices=indices.get(s["id"]),
                clock_offset_s=s["clock_offset_s"],
                hash_set=s["hash_set"],
                hash_set_source=ref[0] if ref else None,
                hash_set_sha256=s["hash_set_sha256"],
                source_label=ref[1] if ref else None,
                advertised_name=s["advertised_name"],
                peer_id=s["peer_id"],
                observer=s["observer"],
            )
        )
    return entries


def _presences(conn: Connection, lead_id: int) -> list[Any]:
    """The lead's presences, oldest first, with the facts a timeline shows."""
    return list(
        conn.execute(
            select(
                lead_presence.c.id,
                lead_presence.c.ip,
                lead_presence.c.port,
                lead_presence.c.first_seen,
                lead_presence.c.last_seen,
                lead_presence.c.time_zone,
            )
            .where(lead_presence.c.lead_id == lead_id)
            .order_by(lead_presence.c.first_seen, lead_presence.c.id)
        ).all()
    )


def lead_sightings(engine: Engine, lead_id: int, *, batch: int = 2_000) -> Iterator[TimelineEntry]:
    """Every sighting of the lead with what a request needs, oldest first
    within each group of presences (for the per-lead export; the caller
    checks that the unit holds the lead)."""
    with engine.connect() as conn:
        presences = _presences(conn, lead_id)
        presences = with_exact_addresses(conn, presences)
        zones = {p.id: p.time_zone for p in presences}
        for start in range(0, len(presences), BATCH):
            group = presences[start : start + BATCH]
            owner = presence_of(group).label("presence_id")
            after: tuple[datetime, int] | None = None
            while True:  # keyset pages: bounded memory for any lead
                query = select(sighting, owner).where(in_presences(group))
                if after is not None:
                    query = query.where(
                        or_(
                            sighting.c.seen_at > after[0],
                            and_(sighting.c.seen_at == after[0], sighting.c.id > after[1]),
                        )
                    )
                rows = list(
                    conn.execute(
                        query.order_by(sighting.c.seen_at, sighting.c.id).limit(batch)
                    ).mappings()
                )
                if not rows:
                    break
                yield from _entries(conn, rows, zones)
                after = (rows[-1]["seen_at"], rows[-1]["id"])
                if len(rows) < batch:
                    break


def sighting_record(entry: TimelineEntry) -> dict[str, Any]:
    """One sighting as an export record: times as ISO 8601 with microseconds."""
    record = asdict(entry)
    record["seen_at"] = entry.seen_at.isoformat(timespec="microseconds")
    record["piece_indices"] = list(entry.piece_indices) if entry.piece_indices else None
    return record


def _files(conn: Connection, presence_ids: Sequence[int]) -> list[OfferedFile]:
    merged: dict[ItemKey, dict[str, Any]] = {}
    for start in range(0, len(presence_ids), 5_000):
        chunk = presence_ids[start : start + 5_000]
        for r in conn.execute(
            select(lead_presence_item).where(lead_presence_item.c.presence_id.in_(chunk))
        ).mappings():
            held = merged.setdefault(
                ItemKey(r["network"], r["kind"], r["value"]),
                {
                    "file_key": r["file_key"],
                    "category": r["category"],
                    "proof": False,
                    "sightings": 0,
                },
            )
            held["file_key"] = held["file_key"] or r["file_key"]
            if r["category"] is not None and (
                held["category"] is None or r["category"] > held["category"]
            ):
                held["category"] = r["category"]
            held["proof"] = held["proof"] or bool(r["proof"])
            held["sightings"] += int(r["sightings"])
    keys = sorted({v["file_key"] for v in merged.values() if v["file_key"]})
    references: dict[str, list[Reference]] = {}
    # By hash set name (files_by_keys' order).
    for file in lookup.files_by_keys(conn, keys):
        references.setdefault(file.file_key, []).append(
            Reference(file.hash_set, file.source, file.category_label)
        )
    files = [
        OfferedFile(
            network=h.network,
            kind=h.kind,
            value=h.value,
            file_key=v["file_key"],
            category=_label(v["category"]),
            proof=v["proof"],
            sightings=v["sightings"],
            references=tuple(references.get(v["file_key"] or "", ())),
        )
        for h, v in merged.items()
    ]
    files.sort(
        key=lambda f: (
            -(Category[f.category.upper()] if f.category else -1),
            f.network,
            f.kind,
            f.value,
        )
    )
    return files


def _related(
    conn: Connection,
    lead_id: int,
    presence_ids: Sequence[int],
    items: Sequence[ItemKey],
    visible: ColumnElement[bool] | None,
) -> list[RelatedLead]:
    reasons: dict[int, list[str]] = {}
    if items:
        item = lead_presence_item
        # One text per item: COUNT(DISTINCT) takes one expression on SQLite.
        shared = func.count(func.distinct(item.c.network + " " + item.c.kind + " " + item.c.value))
        query = (
            select(lead_presence.c.lead_id, shared)
            .join(lead_presence, lead_presence.c.id == lead_presence_item.c.presence_id)
            .join(lead, lead.c.id == lead_presence.c.lead_id)
            .where(or_(*item_conditions(item, list(items)[:5_000])))
            .where(lead_presence.c.lead_id != lead_id)
            .group_by(lead_presence.c.lead_id)
            .order_by(shared.desc(), lead_presence.c.lead_id)
            .limit(RELATED_LIMIT)
        )
        if visible is not None:
            query = query.where(visible)
        for other, count in conn.execute(query):
            reasons.setdefault(other, []).append(
                f"offers {count} of the same {len(items)} watched items"
            )
    mine = (
        select(lead_presence_peer.c.peer_id)
        .where(lead_presence_peer.c.presence_id.in_(list(presence_ids)[:5_000]))
        .scalar_subquery()
    )
    query = (
        select(lead_presence.c.lead_id, lead_presence_peer.c.peer_id)
        .join(lead_presence, lead_presence.c.id == lead_presence_peer.c.presence_id)
        .join(lead, lead.c.id == lead_presence.c.lead_id)
        .where(lead_presence_peer.c.peer_id.in_(mine))
        .where(lead_presence.c.lead_id != lead_id)
        .distinct()
        .limit(RELATED_LIMIT)
    )
    if visible is not None:
        query = query.where(visible)
    for other, peer_id in conn.execute(query):
        reasons.setdefault(other, []).append(
            f"reported the same peer id {peer_id[:16]}… at another time"
        )
    if not reasons:
        return []
    related = []
    for r in conn.execute(
        select(
            lead.c.id,
            lead.c.score,
            lead.c.municipality_name,
            lead.c.province_name,
            lead.c.country,
        ).where(lead.c.id.in_(list(reasons)))
    ):
        place = ", ".join(p for p in (r[2], r[3]) if p) or (r[4] or "unplaced")
        related.append(RelatedLead(id=r[0], score=float(r[1]), place=place, reasons=reasons[r[0]]))
    related.sort(key=lambda x: (-len(x.reasons), -x.score, x.id))
    return related


def gather(engine: Engine, lead_id: int, *, visible: ColumnElement[bool] | None) -> Dossier | None:
    """The lead's page, or None when there is no such lead the unit can see."""
    with engine.connect() as conn:
        if not lead_exists(conn, lead_id, visible):
            return None
    dossier = Dossier(detail=lead_detail(engine, lead_id))
    with engine.connect() as conn:
        presences = _presences(conn, lead_id)
        _timeline(conn, with_exact_addresses(conn, presences), dossier)
        ids = [p.id for p in presences]
        dossier.files = _files(conn, ids)
        dossier.related = _related(
            conn,
            lead_id,
            ids,
            [ItemKey(f.network, f.kind, f.value) for f in dossier.files],
            visible,
        )
    return dossier
