"""Which unit holds which lead, and who to call when two units hold the same one.

A unit holds a lead when any of the lead's presences lies in the unit's
jurisdiction (lead_province against unit_province), or when the unit
claimed it (lead_claim, read through the lineage: a claim on a lead merged
away counts for the lead it went into). Any presence, not the lead's main
place: sightings added elsewhere, by the suspect or by chance, can change
which address a lead shows first, and must never take the lead away from a
unit whose province it is in. A unit sees only the leads it holds; a lead
held by more than one unit is in conflict, and each side is shown only the
others' names and contact lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError

from atalaya.leads.history import current_lead, keyed_to, refuse_moved, resolved_lead_id
from atalaya.store.tables import lead, lead_alias, lead_claim, lead_province, unit, unit_province
from atalaya.store.times import utc

CHUNK = 500


@dataclass(frozen=True)
class Holder:
    """A unit holding a lead, and why (`jurisdiction` or `claim`)."""

    unit_id: int
    name: str
    contact: str
    how: str


@dataclass(frozen=True)
class Contact:
    """All that a unit is shown about another unit holding the same lead."""

    unit: str
    contact: str


def visible_lead_ids_clause(
    unit_id: int, lead_id: ColumnElement[int] | None = None
) -> ColumnElement[bool]:
    """A WHERE clause keeping only the leads `unit_id` holds.

    Without `lead_id` it is on the `lead` table itself:
    `select(lead).where(visible_lead_ids_clause(u))`. For another table
    pass its lead id column (`lead_presence.c.lead_id`, `lead_factor.c.lead_id`…):
    the clause then tests membership in the unit's leads.
    """
    holds = or_(
        lead.c.id.in_(_in_provinces(unit_province.c.unit_id == unit_id)),
        lead.c.id.in_(_claimed(lead_claim.c.unit_id == unit_id)),
    )
    if lead_id is None:
        return holds
    return lead_id.in_(select(lead.c.id).where(holds))


def _in_provinces(which_units: ColumnElement[bool]) -> Any:
    """Ids of the leads with a presence in a province of the units chosen."""
    return (
        select(lead_province.c.lead_id)
        .join(unit_province, unit_province.c.province_code == lead_province.c.province_code)
        .where(which_units)
    )


def _claimed(which_units: ColumnElement[bool]) -> Any:
    """Ids of the leads the units chosen claimed (claims on merged leads followed)."""
    return select(resolved_lead_id(lead_claim.c.lead_id)).where(which_units)


def unit_holds(conn: Connection, unit_id: int, lead_id: int) -> bool:
    """True when `unit_id` holds `lead_id` (the check for a lead's page)."""
    return (
        conn.execute(
            select(lead.c.id).where(lead.c.id == lead_id, visible_lead_ids_clause(unit_id))
        ).first()
        is not None
    )


def _holders(conn: Connection, lead_ids: Sequence[int]) -> dict[int, list[Holder]]:
    by_province = (
        select(
            lead_province.c.lead_id,
            unit.c.id.label("unit_id"),
            unit.c.name,
            unit.c.contact,
            literal("jurisdiction").label("how"),
        )
        .join(unit_province, unit_province.c.province_code == lead_province.c.province_code)
        .join(unit, unit.c.id == unit_province.c.unit_id)
        .where(lead_province.c.lead_id.in_(lead_ids))
    )
    owner = func.coalesce(lead_alias.c.lead_id, lead_claim.c.lead_id)
    by_claim = (
        select(
            owner.label("lead_id"),
            unit.c.id.label("unit_id"),
            unit.c.name,
            unit.c.contact,
            literal("claim").label("how"),
        )
        .join(unit, unit.c.id == lead_claim.c.unit_id)
        .outerjoin(lead_alias, lead_alias.c.id == lead_claim.c.lead_id)
        .where(
            or_(
                lead_claim.c.lead_id.in_(lead_ids),
                lead_claim.c.lead_id.in_(
                    select(lead_alias.c.id).where(lead_alias.c.lead_id.in_(lead_ids))
                ),
            )
        )
    )
    result: dict[int, list[Holder]] = {}
    seen: set[tuple[int, int]] = set()
    rows = conn.execute(union_all(by_province, by_claim)).mappings().all()
    # A unit that both covers the province and claimed the lead is listed once,
    # for its jurisdiction.
    for row in sorted(rows, key=lambda r: (r["how"] != "jurisdiction", r["name"])):
        key = (int(row["lead_id"]), int(row["unit_id"]))
        if key in seen:
            continue
        seen.add(key)
        result.setdefault(key[0], []).append(
            Holder(key[1], row["name"], row["contact"], row["how"])
        )
    return result


def units_holding(conn: Connection, lead_id: int) -> list[Holder]:
    """Every unit holding `lead_id`, by name. Not for showing: see conflicts_for."""
    return sorted(_holders(conn, [lead_id]).get(lead_id, []), key=lambda h: h.name)


def conflicts_for(
    conn: Connection, unit_id: int, lead_ids: Iterable[int]
) -> dict[int, list[Contact]]:
    """For those of `lead_ids` that `unit_id` holds and others hold too: who to contact.

    Leads the unit does not hold, and leads only it holds, are absent. The
    other units appear by name and contact line only, sorted by name.
    """
    ids = sorted({int(i) for i in lead_ids})
    conflicts: dict[int, list[Contact]] = {}
    for start in range(0, len(ids), CHUNK):
        holders = _holders(conn, ids[start : start + CHUNK])
        for lead_id, units in holders.items():
            if not any(h.unit_id == unit_id for h in units):
                continue
            others = sorted(
                {Contact(h.name, h.contact) for h in units if h.unit_id != unit_id},
                key=lambda c: c.unit,
            )
            if others:
                conflicts[lead_id] = others
    return conflicts


def conflict_clause(unit_id: int) -> ColumnElement[bool]:
    """A WHERE clause on `lead`: leads another unit than `unit_id` also holds."""
    return or_(
        lead.c.id.in_(_in_provinces(unit_province.c.unit_id != unit_id)),
        lead.c.id.in_(_claimed(lead_claim.c.unit_id != unit_id)),
    )


def claim_lead(
    conn: Connection, lead_id: int, unit_id: int, claimed_by: str, now: datetime
) -> bool:
    """Record that `unit_id` claims `lead_id`; False when it had already claimed it
    (on this lead or on one merged into it).

    AtalayaError when there is no such lead; its subclass
    `atalaya.leads.history.LeadMovedError` when it was merged into another,
    which is the one to claim.
    """
    current_lead(conn, lead_id)
    mine = conn.execute(
        select(lead_claim.c.lead_id).where(
            lead_claim.c.unit_id == unit_id, keyed_to(lead_claim.c.lead_id, lead_id)
        )
    ).first()
    if mine is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                lead_claim.insert().values(
                    lead_id=lead_id, unit_id=unit_id, claimed_by=claimed_by, claimed_at=utc(now)
                )
            )
    except IntegrityError:
        return False
    return True


def release_claim(conn: Connection, lead_id: int, unit_id: int) -> bool:
    """Withdraw a unit's claim on a lead (made on it or on a lead merged into it);
    False when there was none.

    LeadMovedError for a lead merged away: release the lead it went into.
    """
    refuse_moved(conn, lead_id)
    result = conn.execute(
        delete(lead_claim).where(
            and_(lead_claim.c.unit_id == unit_id, keyed_to(lead_claim.c.lead_id, lead_id))
        )
    )
    return bool(result.rowcount)
