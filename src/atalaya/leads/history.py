"""A lead's history in the store, and records that follow it through merges and splits.

Claims, overrides and whatever else is keyed by lead keep the id they were
made on: that is what the analyst saw, and overrides are append-only. Every
build records what it changed (`record_build`):

- each merge and split in `lead_lineage`, with the build;
- the ids merged away in `lead_alias`, each with the lead its records
  belong to now (merges followed to their end; an id that becomes a lead
  again is dropped from it, and its records are its own again);
- each jurisdiction change (the provinces of a lead's presences) in
  `lead_history`;
- the claims on a lead that split, copied to the part split off.

Reading goes through `resolved_lead_id`: a record belongs to the lead its id
resolves to. So after a merge the lead shows its own records and those of
the leads merged into it; after a split the records stay with the part that
kept the id.

Why claims are copied to both parts of a split while overrides are not: a
claim says "this unit works this target". Which part of a split lead is the
target the unit meant cannot be known from the sightings, and a claim left
on one part only would drop the other from the unit's view (when outside
its provinces) and let another unit take it up without any conflict
showing: the failure claims exist to prevent. So both parts stay claimed
and the unit releases the part it does not want. An override is an
analyst's judgement of the score of the lead as it was; it stays with the
part that kept the id, and the part split off is scored as computed until
someone looks at it.

A rebuild clears and rewrites the lead tables but keeps all of this: it
records as lineage whatever it groups differently from the builds before
it, like any build (on the same sightings, settings and code it groups
nothing differently, and records nothing).

A record made on a lead just before a build merges or splits it, in a
transaction the build does not see, still resolves through the alias; the
copy of a claim to a part split off is made only for the claims the build
saw.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Subquery,
    Table,
    bindparam,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)

from atalaya.errors import N_, AtalayaError
from atalaya.leads.lineage import JURISDICTION, MERGE, SPLIT, Change, PlaceChange
from atalaya.leads.storage import chunks, stored_holders
from atalaya.store.tables import (
    case_file,
    lead,
    lead_alias,
    lead_build,
    lead_claim,
    lead_history,
    lead_lineage,
    lead_override,
    override_decision,
    unit,
)
from atalaya.store.times import utc

# Every table whose rows are keyed by a lead id (table, column): records that
# must follow merges. A table that hangs on leads (cases, legal requests…)
# adds itself here and reads through `resolved_lead_id`.
KEYED_BY_LEAD: tuple[tuple[Table, str], ...] = (
    (lead_claim, "lead_id"),
    (lead_override, "lead_id"),
    (case_file, "lead_id"),
)


class LeadMovedError(AtalayaError):
    """The id asked for is no lead any more: it was merged into `current`."""

    def __init__(self, asked: int, current: int, into: int, build: int, at: datetime) -> None:
        self.asked = asked
        self.current = current
        self.into = into
        self.build = build
        self.at = at
        when = at.isoformat(timespec="seconds")
        if into != current:
            super().__init__(
                N_("lead %(asked)s was merged into lead %(into)s by build %(build)s (%(at)s); "
                   "lead %(into)s is now part of lead %(current)s"),
                asked=asked, into=into, build=build, at=when, current=current,
            )  # fmt: skip
        else:
            super().__init__(
                N_("lead %(asked)s was merged into lead %(into)s by build %(build)s (%(at)s)"),
                asked=asked, into=into, build=build, at=when,
            )  # fmt: skip


# --- reading through the lineage ------------------------------------------------


def resolved_lead_id(column: ColumnElement[int]) -> ColumnElement[int]:
    """The lead a record keyed by `column` belongs to now (itself unless merged away)."""
    alias = select(lead_alias.c.lead_id).where(lead_alias.c.id == column).scalar_subquery()
    return func.coalesce(alias, column)


def keyed_to(column: ColumnElement[int], lead_id: int) -> ColumnElement[bool]:
    """A WHERE clause: records keyed by `column` that belong to lead `lead_id`."""
    merged = select(lead_alias.c.id).where(lead_alias.c.lead_id == lead_id)
    return or_(column == lead_id, column.in_(merged))


def override_in_force() -> Subquery:
    """The latest override in force of each lead, its own or one of a lead merged into it.

    In force: made without needing approval, or approved by a supervisor.

    Columns: those of lead_override, with `lead_id` the lead it belongs to
    now and `made_on` the id it was made on.
    """
    target = func.coalesce(lead_alias.c.lead_id, lead_override.c.lead_id)
    approved = (
        select(override_decision.c.id)
        .where(
            override_decision.c.override_id == lead_override.c.id,
            override_decision.c.approved.is_(true()),
        )
        .exists()
    )
    owned = (
        select(lead_override.c.id, target.label("lead_id"))
        .outerjoin(lead_alias, lead_alias.c.id == lead_override.c.lead_id)
        # One waiting for a supervisor, or refused, is on record and not in force.
        .where(or_(lead_override.c.pending.is_(false()), approved))
        .subquery("owned_override")
    )
    latest = (
        select(func.max(owned.c.id).label("id"), owned.c.lead_id)
        .group_by(owned.c.lead_id)
        .subquery("latest_override")
    )
    o = lead_override.c
    return (
        select(
            o.id,
            latest.c.lead_id,
            o.lead_id.label("made_on"),
            o.score,
            o.reason,
            o.analyst,
            o.created_at,
            o.computed_score,
            o.weights_version,
        )
        .join(latest, latest.c.id == o.id)
        .subquery("override_in_force")
    )


@dataclass(frozen=True)
class Moved:
    asked: int
    into: int  # the lead it was merged into
    current: int  # the lead its records belong to now
    build: int
    at: datetime


def moved(conn: Connection, lead_id: int) -> Moved | None:
    """Where a lead merged away went; None for a lead, or an id never a lead."""
    if conn.execute(select(lead.c.id).where(lead.c.id == lead_id)).first() is not None:
        return None
    current = conn.scalar(select(lead_alias.c.lead_id).where(lead_alias.c.id == lead_id))
    if current is None:
        return None
    step = conn.execute(
        select(lead_lineage.c.new_id, lead_build.c.id, lead_build.c.at)
        .join(lead_build, lead_build.c.id == lead_lineage.c.build_id)
        .where(lead_lineage.c.old_id == lead_id, lead_lineage.c.kind == MERGE)
        .order_by(lead_lineage.c.id.desc())
        .limit(1)
    ).one()
    return Moved(lead_id, int(step.new_id), int(current), int(step.id), utc(step.at))


def refuse_moved(conn: Connection, lead_id: int) -> None:
    """LeadMovedError when `lead_id` was merged into another lead."""
    where = moved(conn, lead_id)
    if where is not None:
        raise LeadMovedError(where.asked, where.current, where.into, where.build, where.at)


def current_lead(conn: Connection, lead_id: int) -> int:
    """`lead_id` when it is a lead; LeadMovedError when merged away, else AtalayaError."""
    if conn.execute(select(lead.c.id).where(lead.c.id == lead_id)).first() is not None:
        return lead_id
    refuse_moved(conn, lead_id)
    raise AtalayaError(
        N_("no lead %(lead)s: 'atalaya leads list' shows the lead ids"), lead=lead_id
    )


def history_of(conn: Connection, lead_id: int) -> list[dict[str, Any]]:
    """What builds did to this lead and to the leads merged into it, oldest first."""
    ids = {lead_id, *conn.scalars(select(lead_alias.c.id).where(lead_alias.c.lead_id == lead_id))}
    events: list[tuple[int, int, dict[str, Any]]] = []
    ln = lead_lineage.c
    for part in chunks(sorted(ids)):
        query = (
            select(ln.id, ln.old_id, ln.new_id, ln.kind, lead_build.c.id.label("build"))
            .add_columns(lead_build.c.at)
            .join(lead_build, lead_build.c.id == ln.build_id)
            .where(or_(ln.old_id.in_(part), ln.new_id.in_(part)))
        )
        for r in conn.execute(query):
            events.append(
                (
                    r.build,
                    r.id,
                    {
                        "build": r.build,
                        "at": utc(r.at).isoformat(timespec="microseconds"),
                        "kind": r.kind,
                        "old_id": r.old_id,
                        "new_id": r.new_id,
                        "text": _lineage_text(r.kind, r.old_id, r.new_id),
                    },
                )
            )
        hs = lead_history.c
        query = (
            select(hs.id, hs.lead_id, hs.kind, hs.details, lead_build.c.id.label("build"))
            .add_columns(lead_build.c.at)
            .join(lead_build, lead_build.c.id == hs.build_id)
            .where(hs.lead_id.in_(part))
        )
        for r in conn.execute(query):
            events.append(
                (
                    r.build,
                    r.id,
                    {
                        "build": r.build,
                        "at": utc(r.at).isoformat(timespec="microseconds"),
                        "kind": r.kind,
                        "lead_id": r.lead_id,
                        **r.details,
                        "text": _history_text(r.kind, r.lead_id, r.details),
                    },
                )
            )
    # Within a build, lineage before history: a merge explains a new province.
    events.sort(key=lambda e: (e[0], e[2]["kind"] == JURISDICTION, e[1]))
    return [e[2] for e in events]


def _lineage_text(kind: str, old_id: int, new_id: int) -> str:
    if kind == MERGE:
        return f"lead {old_id} merged into lead {new_id}"
    return f"lead {new_id} split from lead {old_id}"


def _history_text(kind: str, lead_id: int, details: dict[str, Any]) -> str:
    if kind == JURISDICTION:
        before = ", ".join(details.get("before", [])) or "none"
        after = ", ".join(details.get("after", [])) or "none"
        return f"lead {lead_id}: provinces {before} → {after}"
    return f"lead {lead_id}: {kind}"


def claims_of(conn: Connection, lead_id: int) -> list[dict[str, Any]]:
    """The claims that belong to a lead: its own and those of leads merged into it."""
    c = lead_claim.c
    query = (
        select(c.lead_id, c.unit_id, unit.c.name, c.claimed_by, c.claimed_at, c.carried_from)
        .join(unit, unit.c.id == c.unit_id)
        .where(keyed_to(c.lead_id, lead_id))
        .order_by(unit.c.name, c.claimed_at, c.lead_id)
    )
    return [
        {
            "unit_id": r.unit_id,
            "unit": r.name,
            "claimed_by": r.claimed_by,
            "claimed_at": utc(r.claimed_at).isoformat(timespec="microseconds"),
            "made_on": r.lead_id,
            "carried_from": r.carried_from,
        }
        for r in conn.execute(query)
    ]


# --- recording a build ---------------------------------------------------------


def orphans(conn: Connection, skip: set[int]) -> list[int]:
    """Ids records are keyed by that are neither a lead nor merged away (nor in `skip`).

    Merges made before lineage was kept left records like these.
    """
    found: set[int] = set()
    for table, name in KEYED_BY_LEAD:
        column = table.c[name]
        found.update(
            conn.scalars(
                select(column)
                .distinct()
                .where(
                    column.not_in(select(lead.c.id)),
                    column.not_in(select(lead_alias.c.id)),
                )
            )
        )
    return sorted(found - skip)


def reattach(conn: Connection, ids: Sequence[int]) -> list[Change]:
    """Merges that explain orphaned ids: the lead now holding each one's first sighting."""
    holders = stored_holders(conn, ids)
    return [Change(i, holders[i], MERGE) for i in ids if holders.get(i, i) != i]


def record_build(
    conn: Connection,
    *,
    at: datetime,
    mode: str,
    reason: str,
    algorithm: str,
    last_sighting_id: int,
    lineage: Sequence[Change],
    places: Sequence[PlaceChange],
) -> int:
    """Store a build with what it changed; returns the build's id.

    Call after the build wrote its leads, in its transaction.
    """
    build_id = int(
        conn.execute(
            insert(lead_build)
            .values(
                at=at,
                mode=mode,
                reason=reason,
                algorithm=algorithm,
                last_sighting_id=last_sighting_id,
            )
            .returning(lead_build.c.id)
        ).scalar_one()
    )
    merges = [c for c in lineage if c.kind == MERGE]
    splits = [c for c in lineage if c.kind == SPLIT]
    # Claims are carried while aliases still say where they belonged before.
    _carry_claims(conn, splits)
    if lineage:
        conn.execute(
            insert(lead_lineage),
            [
                {"build_id": build_id, "old_id": c.old_id, "new_id": c.new_id, "kind": c.kind}
                for c in lineage
            ],
        )
    _follow_merges(conn, merges)
    if places:
        conn.execute(
            insert(lead_history),
            [
                {
                    "build_id": build_id,
                    "lead_id": p.lead_id,
                    "kind": JURISDICTION,
                    "details": {"before": list(p.before), "after": list(p.after)},
                }
                for p in places
            ],
        )
    return build_id


def _carry_claims(conn: Connection, splits: Sequence[Change]) -> None:
    """Copy the claims on each lead that split to the part split off (see module doc)."""
    if not splits:
        return
    parents = sorted({c.old_id for c in splits})
    target = func.coalesce(lead_alias.c.lead_id, lead_claim.c.lead_id)
    earliest: dict[tuple[int, int], tuple[datetime, str]] = {}
    for part in chunks(parents):
        query = (
            select(target.label("owner"), lead_claim.c.unit_id)
            .add_columns(lead_claim.c.claimed_at, lead_claim.c.claimed_by)
            .outerjoin(lead_alias, lead_alias.c.id == lead_claim.c.lead_id)
            .where(target.in_(part))
        )
        for r in conn.execute(query):
            key = (int(r.owner), int(r.unit_id))
            value = (utc(r.claimed_at), str(r.claimed_by))
            if key not in earliest or value < earliest[key]:
                earliest[key] = value
    if not earliest:
        return
    by_parent: dict[int, list[tuple[int, datetime, str]]] = defaultdict(list)
    for (owner, unit_id), (claimed_at, claimed_by) in earliest.items():
        by_parent[owner].append((unit_id, claimed_at, claimed_by))
    children = sorted({c.new_id for c in splits})
    existing = {
        (int(r.lead_id), int(r.unit_id))
        for part in chunks(children)
        for r in conn.execute(
            select(lead_claim.c.lead_id, lead_claim.c.unit_id).where(lead_claim.c.lead_id.in_(part))
        )
    }
    rows: list[dict[str, Any]] = []
    for c in splits:
        for unit_id, claimed_at, claimed_by in sorted(by_parent.get(c.old_id, [])):
            if (c.new_id, unit_id) in existing:
                continue
            existing.add((c.new_id, unit_id))
            rows.append(
                {
                    "lead_id": c.new_id,
                    "unit_id": unit_id,
                    "claimed_by": claimed_by,
                    "claimed_at": claimed_at,
                    "carried_from": c.old_id,
                }
            )
    if rows:
        conn.execute(insert(lead_claim), rows)


def _follow_merges(conn: Connection, merges: Sequence[Change]) -> None:
    """Bring lead_alias up to date: merged ids point at the lead they went into."""
    if merges:
        conn.execute(
            update(lead_alias)
            .where(lead_alias.c.lead_id == bindparam("old"))
            .values(lead_id=bindparam("new")),
            [{"old": c.old_id, "new": c.new_id} for c in merges],
        )
        for part in chunks([c.old_id for c in merges]):
            conn.execute(delete(lead_alias).where(lead_alias.c.id.in_(part)))
        conn.execute(insert(lead_alias), [{"id": c.old_id, "lead_id": c.new_id} for c in merges])
    # An id that is a lead again owns its records again.
    conn.execute(delete(lead_alias).where(lead_alias.c.id.in_(select(lead.c.id))))
