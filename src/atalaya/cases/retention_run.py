"""Applying the retention rules: `atalaya retention run [--dry-run]`.

One run, in one transaction, under the newest version of the rules:

1. closed cases (charged, archived, referred) closed more than
   `cases.block_after_days` ago are blocked (no longer shown), and those
   closed more than `cases.erase_after_days` ago are erased: the case, its
   events and its pins of sightings;
2. sightings older than `observations.erase_after_days` are erased, with
   their proof transcripts, unless a case still pins them or they belong
   to a lead someone acted on (a case, a claim, a score override) or that
   is under a hold; then the lead rows and the enrichment left with no
   sighting go too, and the next lead build is a full one;
3. leads last seen more than `leads.review_after_days` ago that nobody
   acted on are listed for review (nothing is erased for that).

A legal hold on a case or a lead stops all of it for what it covers. Every
block and erasure is an audit record naming the rule and its version, with
the ids and how many; `--dry-run` computes the same plan and writes nothing.

The append-only tables (case_sighting, case_event, proof_transcript) refuse
DELETE unless `retention_permit` names the row's case or sighting; the run
writes those permits inside its transaction and removes them before it
commits, so outside a run nothing can be erased through the application.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
)

from atalaya.audit.log import Actor, lock_chain, record
from atalaya.audit.shown import id_ranges
from atalaya.cases.retention_rules import (
    Hold,
    RetentionRulesError,
    StoredRules,
    active_holds,
    current_rules,
    cutoff,
)
from atalaya.cases.states import FINAL
from atalaya.leads.history import keyed_to
from atalaya.store.engine import begin_write
from atalaya.store.tables import (
    case_document,
    case_event,
    case_file,
    case_sighting,
    enrichment,
    lead,
    lead_alias,
    lead_claim,
    lead_override,
    lead_presence,
    lead_presence_day,
    lead_presence_week,
    lead_state,
    proof_transcript,
    retention_block,
    retention_permit,
    sighting,
    subscriber_identity,
)
from atalaya.store.times import utc

RUN_ACTION = "retention_run"
BLOCK_ACTION = "retention_block"
ERASE_ACTION = "retention_erase"
REVIEW_ACTION = "retention_review"
# Ids per audit record of an erasure: keeps each record far below its size limit.
IDS_PER_RECORD = 50_000
MAX_PLAIN_IDS = 16_384  # characters of ranges above which they are compressed
BATCH = 5_000


@dataclass(frozen=True)
class RetentionPlan:
    """What a run does (or, dry, would do) under `rules` at `now`."""

    rules: StoredRules
    now: datetime
    cases_to_block: list[int]
    cases_to_erase: list[int]
    cases_held: list[int]  # closed cases past a limit, kept by a hold
    sightings_to_erase: list[int]
    sightings_held: int  # sightings past the limit kept only by a hold
    leads_for_review: list[int]
    erased_ips: list[str] = field(default_factory=list)
    claims_released: list[tuple[int, int]] = field(default_factory=list)  # (unit id, lead id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_version": self.rules.version,
            "rules": self.rules.rules.as_dict(),
            "now": utc(self.now).isoformat(),
            "cases_blocked": len(self.cases_to_block),
            "case_ids_blocked": self.cases_to_block,
            "cases_erased": len(self.cases_to_erase),
            "case_ids_erased": self.cases_to_erase,
            "cases_held": self.cases_held,
            "claims_released": [list(k) for k in self.claims_released],
            "sightings_erased": len(self.sightings_to_erase),
            "sighting_ids_erased": id_ranges(self.sightings_to_erase),
            "sightings_held": self.sightings_held,
            "leads_for_review": self.leads_for_review,
        }


def _ids_entry(name: str, ids: Iterable[int]) -> dict[str, str]:
    text = id_ranges(ids)
    if len(text) <= MAX_PLAIN_IDS:
        return {name: text}
    packed = base64.b64encode(zlib.compress(text.encode("ascii"), 9)).decode("ascii")
    return {f"{name}_z": packed}


def _resolved(ids: Iterable[int], aliases: dict[int, int]) -> set[int]:
    return {aliases.get(i, i) for i in ids}


def _closed_at(conn: Connection) -> dict[int, tuple[datetime, int]]:
    """Closed cases: id -> (when it reached its final state, lead id as recorded)."""
    finals = [s.value for s in FINAL]
    last_move = (
        select(case_event.c.case_id, func.max(case_event.c.at).label("closed_at"))
        .where(case_event.c.to_state.in_(finals))
        .group_by(case_event.c.case_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            case_file.c.id,
            case_file.c.lead_id,
            func.coalesce(last_move.c.closed_at, case_file.c.updated_at),
        )
        .select_from(case_file.outerjoin(last_move, last_move.c.case_id == case_file.c.id))
        .where(case_file.c.state.in_(finals))
    )
    return {int(r[0]): (utc(r[2]), int(r[1])) for r in rows}


def _in_presence_of(lead_ids: Collection[int]) -> Any:
    """A clause on `sighting`: it falls in a presence of one of `lead_ids`."""
    return exists(
        select(lead_presence.c.id).where(
            lead_presence.c.lead_id.in_(sorted(lead_ids)),
            lead_presence.c.ip == sighting.c.ip,
            or_(lead_presence.c.port.is_(None), lead_presence.c.port == sighting.c.port),
            sighting.c.seen_at >= lead_presence.c.first_seen,
            sighting.c.seen_at <= lead_presence.c.last_seen,
        )
    )


def _pinned_by(case_ids: Collection[int]) -> Any:
    return sighting.c.id.in_(
        select(case_sighting.c.sighting_id).where(case_sighting.c.case_id.in_(sorted(case_ids)))
    )


def plan(conn: Connection, now: datetime, rules: StoredRules | None = None) -> RetentionPlan:
    """The run's plan under `rules` (default: the newest version) at `now`; reads only.

    `sightings_held` counts what the holds alone keep: the difference with
    the plan the same rules would make without any hold.
    """
    stored = rules if rules is not None else current_rules(conn)
    if stored is None:
        raise RetentionRulesError(
            "no retention rules are set: 'atalaya retention rules set FILE --reason …' first"
        )
    holds = active_holds(conn)
    planned = _plan(conn, now, stored, holds)
    if not holds:
        return planned
    unheld = _plan(conn, now, stored, [])
    kept = set(unheld.sightings_to_erase) - set(planned.sightings_to_erase)
    return replace(planned, sightings_held=len(kept))


def _plan(
    conn: Connection, now: datetime, stored: StoredRules, holds: Sequence[Hold]
) -> RetentionPlan:
    r = stored.rules
    aliases = {
        int(a): int(b) for a, b in conn.execute(select(lead_alias.c.id, lead_alias.c.lead_id))
    }
    held_cases = {h.object_id for h in holds if h.object_type == "case"}
    held_leads = _resolved((h.object_id for h in holds if h.object_type == "lead"), aliases)

    # 1. Closed cases. A case is held by its own hold or by one on its lead.
    blocked = set(conn.execute(select(retention_block.c.case_id)).scalars())
    block_cut, erase_cut = cutoff(now, r.case_block_days), cutoff(now, r.case_erase_days)
    to_block: list[int] = []
    to_erase: list[int] = []
    kept: list[int] = []
    for case_id, (closed_at, lead_id) in sorted(_closed_at(conn).items()):
        due_block = closed_at < block_cut and case_id not in blocked
        due_erase = closed_at < erase_cut
        if not (due_block or due_erase):
            continue
        if case_id in held_cases or aliases.get(lead_id, lead_id) in held_leads:
            kept.append(case_id)
        elif due_erase:
            to_erase.append(case_id)
        else:
            to_block.append(case_id)
    erased_cases = set(to_erase)

    # Cases that stay, with their leads: what someone acted on. A unit's
    # claim on a lead goes with its last case there (opening a case claims).
    cases = conn.execute(select(case_file.c.id, case_file.c.lead_id, case_file.c.unit_id)).all()
    staying_cases = [int(c.id) for c in cases if int(c.id) not in erased_cases]
    keys = {int(c.id): (int(c.unit_id), aliases.get(int(c.lead_id), int(c.lead_id))) for c in cases}
    staying_keys = {keys[c] for c in staying_cases}
    dropped = sorted({keys[c] for c in to_erase} - staying_keys)
    acted = {lead_id for _unit, lead_id in staying_keys}
    for claimed, unit_id in conn.execute(select(lead_claim.c.lead_id, lead_claim.c.unit_id)):
        key = (int(unit_id), aliases.get(int(claimed), int(claimed)))
        if key not in dropped:
            acted.add(key[1])
    acted |= _resolved(conn.execute(select(lead_override.c.lead_id)).scalars(), aliases)
    protected = acted | held_leads

    # 2. Observations.
    obs_cut = cutoff(now, r.observation_erase_days)
    old = sighting.c.seen_at < obs_cut
    keep = [_pinned_by(staying_cases), _in_presence_of(protected)]
    rows = conn.execute(
        select(sighting.c.id, sighting.c.ip).where(old, *(~k for k in keep)).order_by(sighting.c.id)
    ).all()
    erase_ids = [int(row.id) for row in rows]
    erased_ips = sorted({str(row.ip) for row in rows})

    # 3. Leads for review.
    review_cut = cutoff(now, r.lead_review_days)
    # Those last seen before the observation limit go with their sightings instead.
    review = [
        int(i)
        for i in conn.execute(
            select(lead.c.id)
            .where(lead.c.last_seen < review_cut, lead.c.last_seen >= obs_cut)
            .order_by(lead.c.id)
        ).scalars()
        if int(i) not in protected
    ]
    return RetentionPlan(
        rules=stored,
        now=utc(now),
        cases_to_block=to_block,
        cases_to_erase=to_erase,
        cases_held=kept,
        sightings_to_erase=erase_ids,
        sightings_held=0,
        leads_for_review=review,
        erased_ips=erased_ips,
        claims_released=dropped,
    )


def _permit(conn: Connection, scope: str, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        conn.execute(insert(retention_permit), [{"scope": scope, "object_id": i} for i in chunk])


def _erase_case(conn: Connection, case_id: int) -> dict[str, int]:
    pins = conn.execute(delete(case_sighting).where(case_sighting.c.case_id == case_id)).rowcount
    events = conn.execute(delete(case_event).where(case_event.c.case_id == case_id)).rowcount
    # The subscriber the ISP named goes with the case (LED art. 5: no longer than needed).
    identities = conn.execute(
        delete(subscriber_identity).where(subscriber_identity.c.case_id == case_id)
    ).rowcount
    documents = conn.execute(
        delete(case_document).where(case_document.c.case_id == case_id)
    ).rowcount
    conn.execute(delete(retention_block).where(retention_block.c.case_id == case_id))
    conn.execute(delete(case_file).where(case_file.c.id == case_id))
    return {
        "pinned_sightings": int(pins),
        "events": int(events),
        "subscriber_identities": int(identities),
        "documents": int(documents),
    }


def _erase_sightings(conn: Connection, ips: Sequence[str]) -> dict[str, int]:
    """Erase the sightings permitted, then what derived from them only."""
    permitted = select(retention_permit.c.object_id).where(retention_permit.c.scope == "sighting")
    proofs = conn.execute(
        delete(proof_transcript).where(proof_transcript.c.sighting_id.in_(permitted))
    ).rowcount
    erased = conn.execute(delete(sighting).where(sighting.c.id.in_(permitted))).rowcount
    # Presences with no sighting left in their window, then leads with no presence.
    has_sighting = exists(
        select(sighting.c.id).where(
            sighting.c.ip == lead_presence.c.ip,
            or_(lead_presence.c.port.is_(None), sighting.c.port == lead_presence.c.port),
            sighting.c.seen_at >= lead_presence.c.first_seen,
            sighting.c.seen_at <= lead_presence.c.last_seen,
        )
    )
    # Their daily and weekly chart counts first (the build's foreign keys;
    # SQLite may not cascade).
    gone = select(lead_presence.c.id).where(~has_sighting)
    conn.execute(delete(lead_presence_day).where(lead_presence_day.c.presence_id.in_(gone)))
    conn.execute(delete(lead_presence_week).where(lead_presence_week.c.presence_id.in_(gone)))
    presences = conn.execute(delete(lead_presence).where(~has_sighting)).rowcount
    leads = conn.execute(
        delete(lead).where(
            ~exists(select(lead_presence.c.id).where(lead_presence.c.lead_id == lead.c.id))
        )
    ).rowcount
    enriched = 0
    for start in range(0, len(ips), BATCH):
        chunk = list(ips[start : start + BATCH])
        enriched += conn.execute(
            delete(enrichment).where(
                enrichment.c.ip.in_(chunk),
                ~exists(select(sighting.c.id).where(sighting.c.ip == enrichment.c.ip)),
            )
        ).rowcount
    # Leads that lost only some sightings are stale: the next build regroups all.
    conn.execute(delete(lead_state).where(lead_state.c.key == "last_sighting_id"))
    return {
        "sightings": int(erased),
        "proof_transcripts": int(proofs),
        "presences": int(presences),
        "leads": int(leads),
        "enrichment_rows": int(enriched),
    }


def run_retention(
    engine: Engine,
    now: datetime,
    *,
    dry_run: bool = False,
    actor: Actor | None = None,
    context: dict[str, Any] | None = None,
) -> RetentionPlan:
    """Apply the newest rules at `now` (or, dry, only plan: nothing is written)."""
    if dry_run:
        with engine.connect() as conn:
            return plan(conn, now)
    actor = actor or Actor()
    base = dict(context or {})
    with begin_write(engine) as conn:
        lock_chain(conn)
        p = plan(conn, now)
        version = p.rules.version

        def audit(action: str, details: dict[str, Any], **kw: Any) -> None:
            record(
                conn,
                action,
                actor=actor,
                details={**base, "rule_version": version, **details},
                at=now,
                **kw,
            )

        if p.cases_to_block:
            conn.execute(
                insert(retention_block),
                [
                    {"case_id": c, "blocked_at": p.now, "rule_version": version}
                    for c in p.cases_to_block
                ],
            )
            audit(
                BLOCK_ACTION,
                {
                    "rule": "cases.block_after_days",
                    "days": p.rules.rules.case_block_days,
                    "count": len(p.cases_to_block),
                    "case_ids": id_ranges(p.cases_to_block),
                },
                object_type="case",
            )
        _permit(conn, "case", p.cases_to_erase)
        for case_id in p.cases_to_erase:
            counts = _erase_case(conn, case_id)
            audit(
                ERASE_ACTION,
                {"rule": "cases.erase_after_days", "days": p.rules.rules.case_erase_days, **counts},
                object_type="case",
                object_id=case_id,
            )
        for unit_id, lead_id in p.claims_released:
            conn.execute(
                delete(lead_claim).where(
                    lead_claim.c.unit_id == unit_id, keyed_to(lead_claim.c.lead_id, lead_id)
                )
            )
        summary: dict[str, int] = {}
        if p.sightings_to_erase:
            _permit(conn, "sighting", p.sightings_to_erase)
            summary = _erase_sightings(conn, p.erased_ips)
            ids = p.sightings_to_erase
            parts = range(0, len(ids), IDS_PER_RECORD)
            for n, start in enumerate(parts, 1):
                chunk = ids[start : start + IDS_PER_RECORD]
                audit(
                    ERASE_ACTION,
                    {
                        "rule": "observations.erase_after_days",
                        "days": p.rules.rules.observation_erase_days,
                        "count": len(chunk),
                        "part": f"{n}/{len(parts)}",
                        **_ids_entry("sighting_ids", chunk),
                        **(summary if n == 1 else {}),
                    },
                    object_type="sighting",
                )
        conn.execute(delete(retention_permit))
        if p.leads_for_review:
            audit(
                REVIEW_ACTION,
                {
                    "rule": "leads.review_after_days",
                    "days": p.rules.rules.lead_review_days,
                    "count": len(p.leads_for_review),
                    **_ids_entry("lead_ids", p.leads_for_review),
                },
                object_type="lead",
            )
        audit(
            RUN_ACTION,
            {
                "cases_blocked": len(p.cases_to_block),
                "cases_erased": len(p.cases_to_erase),
                "cases_held": len(p.cases_held),
                "sightings_erased": len(p.sightings_to_erase),
                "sightings_held": p.sightings_held,
                "leads_for_review": len(p.leads_for_review),
                "claims_released": [list(k) for k in p.claims_released],
            },
        )
    return p


def blocked_case_ids(conn: Connection) -> set[int]:
    """The cases the rules have blocked."""
    return {int(c) for c in conn.execute(select(retention_block.c.case_id)).scalars()}


__all__ = [
    "RetentionPlan",
    "blocked_case_ids",
    "plan",
    "run_retention",
]
