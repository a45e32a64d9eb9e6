"""A supervisor's decision on an override that would make a lead urgent.

An analyst's override that raises a lead from below their unit's urgency
threshold to at or above it is recorded as pending (atalaya.leads.query.
override_score) and is not in force: urgency moves a lead ahead of others
in the queue of requests to a judge, so a second person of the same unit,
a supervisor, approves or refuses it, with a reason. The decision is
append-only and final; a new override starts over.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from atalaya.errors import N_, AtalayaError
from atalaya.leads.history import current_lead, keyed_to
from atalaya.leads.query import MAX_REASON, override_history
from atalaya.store.tables import lead_override, override_decision

MAX_SUPERVISOR = 200


class DecisionError(AtalayaError):
    """The decision cannot be recorded (not pending, same person, other unit…)."""


def decide_override(
    engine: Engine,
    lead_id: int,
    override_id: int,
    *,
    approve: bool,
    reason: str,
    supervisor: str,
    unit_id: int,
    now: datetime,
) -> dict[str, Any]:
    """Approve or refuse a pending override of `lead_id`; returns the override as it is now.

    The caller checks the role (a supervisor) and that the unit holds the
    lead; this checks what the records say: the override belongs to the
    lead, is pending and undecided, was made in `unit_id`, and by someone
    else than `supervisor`.
    """
    reason = reason.strip()
    if not reason:
        raise DecisionError(N_("a decision needs a reason"))
    if len(reason) > MAX_REASON:
        raise DecisionError(
            N_("the reason is %(length)s characters; keep it under %(most)s"),
            length=len(reason),
            most=MAX_REASON,
        )
    supervisor = supervisor.strip()[:MAX_SUPERVISOR]
    try:
        return _decide(engine, lead_id, override_id, approve, reason, supervisor, unit_id, now)
    except IntegrityError:
        # Another supervisor decided between our check and our insert.
        raise DecisionError(
            N_("override %(override)s is already decided"), override=override_id
        ) from None


def _decide(
    engine: Engine,
    lead_id: int,
    override_id: int,
    approve: bool,
    reason: str,
    supervisor: str,
    unit_id: int,
    now: datetime,
) -> dict[str, Any]:
    with engine.begin() as conn:
        current_lead(conn, lead_id)
        row = conn.execute(
            select(lead_override).where(
                lead_override.c.id == override_id, keyed_to(lead_override.c.lead_id, lead_id)
            )
        ).first()
        if row is None:
            raise DecisionError(
                N_("lead %(lead)s has no override %(override)s"), lead=lead_id, override=override_id
            )
        if not row.pending:
            raise DecisionError(
                N_("override %(override)s needed no approval"), override=override_id
            )
        if row.unit_id != unit_id:
            raise DecisionError(
                N_("override %(override)s was made in another unit"), override=override_id
            )
        if row.analyst == supervisor:
            raise DecisionError(N_("an override is approved by a supervisor other than its author"))
        decided = conn.scalar(
            select(override_decision.c.id).where(override_decision.c.override_id == override_id)
        )
        if decided is not None:
            raise DecisionError(
                N_("override %(override)s is already decided"), override=override_id
            )
        conn.execute(
            insert(override_decision).values(
                override_id=override_id,
                approved=approve,
                reason=reason,
                supervisor=supervisor,
                created_at=now,
            )
        )
        history = override_history(conn, lead_id)
    return next(o for o in history if o["id"] == override_id)


def pending_overrides(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The overrides of a lead's history that wait for a supervisor."""
    return [o for o in history if o["state"] == "pending"]
