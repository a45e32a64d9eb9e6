"""Reading leads for analysts: filtered lists, one lead in full, overrides.

The score an analyst sees is the latest override where there is one, else
the computed score; both are always shown, with the override's reason.
Overrides and claims made on a lead merged into this one count as this
lead's (`atalaya.leads.history`); asking for a lead merged away raises
`LeadMovedError`, which names the lead it went into.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, or_, select

from atalaya.enrich.store import attribution_of
from atalaya.errors import N_, AtalayaError
from atalaya.hashsets.categories import Category
from atalaya.leads.history import (
    LeadMovedError,
    claims_of,
    current_lead,
    history_of,
    keyed_to,
    override_in_force,
)
from atalaya.leads.scoring import check_override_score
from atalaya.store.tables import (
    lead,
    lead_factor,
    lead_link,
    lead_override,
    lead_presence,
    override_decision,
)
from atalaya.store.times import utc

MAX_REASON = 2_000
MAX_ANALYST = 200
_IN_CHUNK = 1_000


@dataclass(frozen=True)
class LeadFilter:
    province: str | None = None  # INE code or name, any case
    since: datetime | None = None  # active at or after
    until: datetime | None = None  # active before
    min_score: float | None = None  # on the score in force (override or computed)
    limit: int | None = None


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return utc(value).isoformat(timespec="microseconds")


def score_in_force() -> tuple[ColumnElement[Any], Any]:
    """The score-in-force expression and the latest-override subquery it reads.

    The one definition every reader of leads uses (lists, exports, the web's
    map and pages): the latest analyst override where there is one, else the
    computed score; overrides of leads merged into a lead count as its own.
    Join the subquery with `.outerjoin(override, override.c.lead_id == lead.c.id)`.
    """
    override = override_in_force()
    return func.coalesce(override.c.score, lead.c.score), override


def _query(flt: LeadFilter) -> Any:
    in_force, ov = score_in_force()
    query = select(
        lead,
        in_force.label("score_in_force"),
        ov.c.score.label("override_score"),
        ov.c.reason.label("override_reason"),
        ov.c.analyst.label("override_analyst"),
        ov.c.created_at.label("override_at"),
        ov.c.made_on.label("override_made_on"),
    ).outerjoin(ov, ov.c.lead_id == lead.c.id)
    if flt.province is not None:
        wanted = flt.province.strip().lower()
        query = query.where(
            or_(
                func.lower(lead.c.province_code) == wanted,
                func.lower(lead.c.province_name) == wanted,
            )
        )
    if flt.since is not None:
        query = query.where(lead.c.last_seen >= flt.since)
    if flt.until is not None:
        query = query.where(lead.c.first_seen < flt.until)
    if flt.min_score is not None:
        query = query.where(in_force >= flt.min_score)
    query = query.order_by(in_force.desc(), lead.c.id)
    if flt.limit is not None:
        query = query.limit(flt.limit)
    return query


def _record(
    row: Any, attributions: dict[str | None, str | None], conn: Connection
) -> dict[str, Any]:
    m = row._mapping
    version = m["facts_version"]
    if version not in attributions:
        attributions[version] = attribution_of(conn, version) if version else None
    category = m["highest_category"]
    override = None
    if m["override_score"] is not None:
        override = {
            "score": m["override_score"],
            "reason": m["override_reason"],
            "analyst": m["override_analyst"],
            "at": iso(m["override_at"]),
            "made_on": m["override_made_on"],
        }
    return {
        "id": m["id"],
        "score": m["score_in_force"],
        "computed_score": m["score"],
        "override": override,
        "weights_version": m["weights_version"],
        "scored_at": iso(m["scored_at"]),
        "first_seen": iso(m["first_seen"]),
        "last_seen": iso(m["last_seen"]),
        "sightings": m["sightings"],
        "presences": m["presences"],
        "addresses": m["addresses"],
        "items": m["items"],
        "known_files": m["known_files"],
        "verified_items": m["verified_items"],
        "highest_category": Category(category).label if category is not None else None,
        "networks": list(m["networks"]),
        "ip": m["ip"],
        "client": m["client"],
        "country": m["country"],
        "province_code": m["province_code"],
        "province_name": m["province_name"],
        "municipality_code": m["municipality_code"],
        "municipality_name": m["municipality_name"],
        "lat": m["lat"],
        "lon": m["lon"],
        "accuracy_km": m["accuracy_km"],
        "asn": m["asn"],
        "isp": m["isp"],
        "time_zone": m["time_zone"],
        "flags": list(m["flags"]),
        "facts_version": version,
        "attribution": attributions[version],
    }


def _records(
    conn: Connection,
    rows: Sequence[Any],
    attributions: dict[str | None, str | None],
    *,
    factors: bool,
) -> list[dict[str, Any]]:
    scored: dict[int, list[dict[str, Any]]] = {}
    if factors:
        ids = [r.id for r in rows]
        for f in conn.execute(
            select(lead_factor)
            .where(lead_factor.c.lead_id.in_(ids))
            .order_by(lead_factor.c.lead_id, lead_factor.c.name)
        ).mappings():
            scored.setdefault(f["lead_id"], []).append(
                {k: f[k] for k in ("name", "raw", "value", "weight", "contribution")}
            )
    records = []
    for row in rows:
        record = _record(row, attributions, conn)
        if factors:
            record["factors"] = scored.get(row.id, [])
        records.append(record)
    return records


def iter_leads(
    engine: Engine, flt: LeadFilter = LeadFilter(), *, factors: bool = False
) -> Iterator[dict[str, Any]]:
    """Leads as plain records, highest score in force first."""
    attributions: dict[str | None, str | None] = {}
    with engine.connect() as conn:
        rows = conn.execute(_query(flt)).all()
        for part_start in range(0, len(rows), _IN_CHUNK):
            part = rows[part_start : part_start + _IN_CHUNK]
            yield from _records(conn, part, attributions, factors=factors)


def lead_records(
    conn: Connection, ids: Sequence[int], *, factors: bool = False
) -> list[dict[str, Any]]:
    """The leads `ids` as `iter_leads` gives them, in that order (ids no longer
    there are left out): the web exports a selection it made with these."""
    attributions: dict[str | None, str | None] = {}
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[start : start + _IN_CHUNK])
        rows = conn.execute(_query(LeadFilter()).where(lead.c.id.in_(chunk))).all()
        for record in _records(conn, rows, attributions, factors=factors):
            found[record["id"]] = record
    return [found[i] for i in ids if i in found]


def lead_exists(conn: Connection, lead_id: int, visible: ColumnElement[bool] | None = None) -> bool:
    """Whether a lead of that id is in the store now (not merged away), and
    among the leads `visible` allows (None: any)."""
    query = select(lead.c.id).where(lead.c.id == lead_id)
    if visible is not None:
        query = query.where(visible)
    return conn.execute(query).first() is not None


def lead_country(conn: Connection, lead_id: int) -> str | None:
    """The country of the lead's place (ISO code), None when unplaced or absent."""
    return conn.scalar(select(lead.c.country).where(lead.c.id == lead_id))


def latest_activity(conn: Connection) -> datetime | None:
    """The last sighting of the most recently active lead; None with no leads."""
    latest = conn.scalar(select(func.max(lead.c.last_seen)))
    return utc(latest) if latest is not None else None


def lead_detail(engine: Engine, lead_id: int) -> dict[str, Any]:
    """One lead with its factors, presences, links, overrides, claims and history.

    LeadMovedError when `lead_id` was merged into another lead.
    """
    with engine.connect() as conn:
        current_lead(conn, lead_id)
        row = conn.execute(_query(LeadFilter()).where(lead.c.id == lead_id)).first()
        if row is None:
            raise AtalayaError(
                N_("no lead %(lead)s: 'atalaya leads list' shows the lead ids"), lead=lead_id
            )
        record = _record(row, {}, conn)
        record["factors"] = [
            dict(f)
            for f in conn.execute(
                select(
                    lead_factor.c.name,
                    lead_factor.c.raw,
                    lead_factor.c.value,
                    lead_factor.c.weight,
                    lead_factor.c.contribution,
                )
                .where(lead_factor.c.lead_id == lead_id)
                .order_by(lead_factor.c.name)
            ).mappings()
        ]
        record["presences"] = [
            {
                "id": p["id"],
                "ip": p["ip"],
                "port": p["port"],
                "ports": list(p["ports"]),
                "first_seen": iso(p["first_seen"]),
                "last_seen": iso(p["last_seen"]),
                "sightings": p["sightings"],
                "opened_by": p["opened_by"],
                "client": p["client"],
                "asn": p["asn"],
                "isp": p["isp"],
                "province_code": p["province_code"],
                "municipality_name": p["municipality_name"],
                "flags": list(p["flags"]),
            }
            for p in conn.execute(
                select(lead_presence)
                .where(lead_presence.c.lead_id == lead_id)
                .order_by(lead_presence.c.first_seen, lead_presence.c.id)
            ).mappings()
        ]
        record["links"] = [
            {
                "presence_a": k["presence_a"],
                "presence_b": k["presence_b"],
                "reason": k["reason"],
                "evidence": k["evidence"],
            }
            for k in conn.execute(
                select(lead_link)
                .where(lead_link.c.lead_id == lead_id)
                .order_by(lead_link.c.presence_a, lead_link.c.presence_b, lead_link.c.reason)
            ).mappings()
        ]
        record["overrides"] = override_history(conn, lead_id)
        record["claims"] = claims_of(conn, lead_id)
        record["history"] = history_of(conn, lead_id)
    return record


def override_history(conn: Connection, lead_id: int) -> list[dict[str, Any]]:
    """Every override of the lead, its own and those of leads merged into it.

    `state`: "in_force_rule" for one that needed no approval, else
    "pending", "approved" or "refused" with the supervisor's `decision`.
    """
    d = override_decision.c
    rows = conn.execute(
        select(
            lead_override,
            d.approved.label("decision_approved"),
            d.reason.label("decision_reason"),
            d.supervisor.label("decision_supervisor"),
            d.created_at.label("decision_at"),
        )
        .outerjoin(override_decision, d.override_id == lead_override.c.id)
        .where(keyed_to(lead_override.c.lead_id, lead_id))
        .order_by(lead_override.c.id)
    ).mappings()
    return [_override_record(o) for o in rows]


def _override_record(o: Any) -> dict[str, Any]:
    decided = o["decision_approved"] is not None
    if not o["pending"]:
        state = "no_approval_needed"
    elif not decided:
        state = "pending"
    else:
        state = "approved" if o["decision_approved"] else "refused"
    return {
        "id": o["id"],
        "lead_id": o["lead_id"],  # the lead it was made on
        "score": o["score"],
        "reason": o["reason"],
        "analyst": o["analyst"],
        "at": iso(o["created_at"]),
        "computed_score": o["computed_score"],
        "weights_version": o["weights_version"],
        "unit_id": o["unit_id"],
        "state": state,
        "decision": (
            {
                "approved": bool(o["decision_approved"]),
                "reason": o["decision_reason"],
                "supervisor": o["decision_supervisor"],
                "at": iso(o["decision_at"]),
            }
            if decided
            else None
        ),
    }


def override_score(
    engine: Engine,
    lead_id: int,
    score: float,
    reason: str,
    analyst: str,
    *,
    now: datetime,
    unit_id: int | None = None,
    urgent_score: float | None = None,
) -> dict[str, Any]:
    """Record an analyst's score for a lead, with the reason; returns the record.

    With the analyst's unit and its urgency threshold: an override that
    raises the lead from below the threshold to at or above it is recorded
    as pending (`state` "pending"), in force only once a supervisor of that
    unit approves it (atalaya.leads.approval).

    LeadMovedError for a lead merged away: the analyst judged a lead that is
    now part of another, which deserves a look before its score changes.
    """
    reason = reason.strip()
    if not reason:
        raise AtalayaError(N_("--reason must say why the score is overridden"))
    if len(reason) > MAX_REASON:
        raise AtalayaError(
            N_("--reason is %(length)s characters; keep it under %(most)s"),
            length=len(reason),
            most=MAX_REASON,
        )
    analyst = analyst.strip()[:MAX_ANALYST] or "unknown"
    # Bounded here too, not only where the CLI and the web parse it: every
    # caller of the store gets the same 0-100 rule.
    check_override_score(score)
    with engine.begin() as conn:
        current_lead(conn, lead_id)
        current = conn.execute(
            select(lead.c.score, lead.c.weights_version).where(lead.c.id == lead_id)
        ).first()
        if current is None:
            raise AtalayaError(
                N_("no lead %(lead)s: 'atalaya leads list' shows the lead ids"), lead=lead_id
            )
        pending = False
        if urgent_score is not None:
            in_force, ov = score_in_force()
            now_score = conn.scalar(
                select(in_force)
                .outerjoin(ov, ov.c.lead_id == lead.c.id)
                .where(lead.c.id == lead_id)
            )
            pending = float(now_score or 0.0) < urgent_score <= score
        conn.execute(
            insert(lead_override).values(
                lead_id=lead_id,
                score=score,
                reason=reason,
                analyst=analyst,
                created_at=now,
                computed_score=current.score,
                weights_version=current.weights_version,
                unit_id=unit_id,
                pending=pending,
            )
        )
        history = override_history(conn, lead_id)
    return history[-1]


__all__ = [
    "LeadFilter",
    "LeadMovedError",
    "iter_leads",
    "latest_activity",
    "lead_country",
    "lead_detail",
    "lead_exists",
    "lead_records",
    "override_history",
    "override_score",
    "score_in_force",
]
