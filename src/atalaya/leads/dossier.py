"""Everything a lead's page shows, gathered from the store.

The lead itself (score factor by factor, presences, links, overrides) comes
from `atalaya.leads.query.lead_detail`; this module adds what only the page
needs: the sightings of each presence as a timeline in UTC and local time,
the files offered, the proof gathered, and other leads of the same unit
that offer the same items or reported the same peer id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_, select

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
    sighting,
)
from atalaya.store.times import utc

TIMELINE_LIMIT = 500
RELATED_LIMIT = 20


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


@dataclass(frozen=True)
class OfferedFile:
    network: str
    kind: str
    value: str  # hex
    file_key: str | None
    category: str | None
    proof: bool
    sightings: int


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
        for s in rows:
            zone = zones.get(s["presence_id"])
            seen = utc(s["seen_at"])
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
                )
            )
    entries.sort(key=lambda e: (e.seen_at, e.id), reverse=True)
    dossier.timeline = entries[:TIMELINE_LIMIT]
    dossier.timeline_total = total
    dossier.per_day = sorted(per_day.items())
    dossier.proofs = proofs
    dossier.pieces_verified = pieces
    dossier.bytes_verified = verified_bytes


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
    files = [
        OfferedFile(
            network=h.network,
            kind=h.kind,
            value=h.value,
            file_key=v["file_key"],
            category=_label(v["category"]),
            proof=v["proof"],
            sightings=v["sightings"],
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
        presences = conn.execute(
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
