"""Cases in the store: open, read, move, note, assign, each checked against the user's unit.

A case belongs to the unit that opened it, and only while that unit holds
its lead (atalaya.accounts.visibility): anyone else asking for it gets the
same "no case N" as for an id that does not exist, so a guessed id tells
nothing. Opening a case also claims the lead for the unit: a case says
"this unit works this target", which is what a claim tells other units,
and the claim keeps the lead (and so the case) with the unit wherever the
lead's presences move.

A case keys its lead by the id it was opened on and reads it through
`resolved_lead_id`, so it follows merges of that lead (it is registered in
`KEYED_BY_LEAD`). The sightings it relies on are pinned at opening, in
`case_sighting`, and never change: later builds regroup leads, never what
was asked of a judge.

Functions take a Connection in the caller's transaction; `atalaya.cases.service`
runs them audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from atalaya.accounts import (
    Permission,
    User,
    claim_lead,
    find_user,
    has_permission,
    require,
    unit_holds,
)
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.cases.states import FINAL, INITIAL, State, TransitionError, check_transition
from atalaya.errors import N_, AtalayaError
from atalaya.leads.history import LeadMovedError, moved, resolved_lead_id
from atalaya.store.tables import (
    case_event,
    case_file,
    case_sighting,
    lead_presence,
    retention_block,
    sighting,
    subscriber_identity,
    unit,
)
from atalaya.store.times import utc

MAX_TEXT = 4000
# Presences per INSERT … SELECT when pinning a lead's sightings.
PRESENCE_BATCH = 100

OPEN, MOVE, NOTE, ASSIGN = "open", "move", "note", "assign"


class CaseNotFoundError(AtalayaError):
    """No such case for this user: missing, or another unit's (the same answer)."""

    def __init__(self, case_id: int) -> None:
        self.case_id = case_id
        super().__init__(
            N_("no case %(case)s: 'atalaya cases list' shows your unit's cases"), case=case_id
        )


class LeadNotFoundError(AtalayaError):
    """No such lead for this user: missing, or not held by the user's unit."""

    def __init__(self, lead_id: int) -> None:
        self.lead_id = lead_id
        super().__init__(
            N_("no lead %(lead)s: 'atalaya leads list' shows the lead ids"), lead=lead_id
        )


@dataclass(frozen=True)
class Case:
    id: int
    lead_id: int  # the lead it belongs to now
    made_on: int  # the lead id it was opened on
    unit_id: int
    unit: str
    state: State
    assignee: str | None
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    deadline: datetime | None
    sightings: int

    @property
    def closed(self) -> bool:
        return self.state in FINAL

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "lead_id": self.lead_id,
            "made_on": self.made_on,
            "unit": self.unit,
            "state": self.state.value,
            "assignee": self.assignee,
            "opened_by": self.opened_by,
            "opened_at": self.opened_at.isoformat(timespec="microseconds"),
            "updated_at": self.updated_at.isoformat(timespec="microseconds"),
            "deadline": None if self.deadline is None else self.deadline.isoformat(),
            "sightings": self.sightings,
        }


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    actor: str
    kind: str
    from_state: State | None
    to_state: State | None
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(timespec="microseconds"),
            "actor": self.actor,
            "kind": self.kind,
            "from_state": None if self.from_state is None else self.from_state.value,
            "to_state": None if self.to_state is None else self.to_state.value,
            "text": self.text,
        }


def _text(value: str, what: str, *, required: bool) -> str:
    text = value.strip()
    if required and not text:
        raise AtalayaError(N_("%(what)s is required and cannot be empty"), what=what)
    if len(text) > MAX_TEXT:
        raise AtalayaError(
            N_("%(what)s is %(length)s characters long; at most %(most)s"),
            what=what,
            length=len(text),
            most=MAX_TEXT,
        )
    return text


@lru_cache(maxsize=64)
def visible_cases_clause(unit_id: int) -> ColumnElement[bool]:
    """A WHERE clause on case_file: the unit's cases on leads it holds now.

    Cases the retention rules blocked (atalaya.cases.retention_run) are shown to nobody.
    Built once per unit (a clause is immutable, and building this one costs more
    than running it: a batch of requests asks for it several times per case).
    """
    return and_(
        case_file.c.unit_id == unit_id,
        visible_lead_ids_clause(unit_id, resolved_lead_id(case_file.c.lead_id)),
        case_file.c.id.not_in(select(retention_block.c.case_id)),
    )


def _sightings_count() -> Any:
    return (
        select(func.count())
        .where(case_sighting.c.case_id == case_file.c.id)
        .scalar_subquery()
        .label("sightings")
    )


def _case_query() -> Any:
    return select(
        case_file,
        resolved_lead_id(case_file.c.lead_id).label("current_lead"),
        unit.c.name.label("unit_name"),
        _sightings_count(),
    ).join(unit, unit.c.id == case_file.c.unit_id)


def _case(row: Any) -> Case:
    return Case(
        id=int(row.id),
        lead_id=int(row.current_lead),
        made_on=int(row.lead_id),
        unit_id=int(row.unit_id),
        unit=str(row.unit_name),
        state=State(row.state),
        assignee=row.assignee,
        opened_by=row.opened_by,
        opened_at=utc(row.opened_at),
        updated_at=utc(row.updated_at),
        deadline=None if row.deadline is None else utc(row.deadline),
        sightings=int(row.sightings),
    )


def get_case(conn: Connection, user: User, case_id: int) -> Case:
    """The case, when the user's unit may see it; CaseNotFoundError otherwise."""
    require(user.role, Permission.VIEW_LEADS)
    row = conn.execute(
        _case_query().where(case_file.c.id == case_id, visible_cases_clause(user.unit_id))
    ).first()
    if row is None:
        raise CaseNotFoundError(case_id)
    return _case(row)


def list_cases(
    conn: Connection,
    user: User,
    *,
    states: Sequence[State] = (),
    lead_id: int | None = None,
    open_only: bool = False,
    limit: int | None = None,
) -> list[Case]:
    """The unit's cases, most recently changed first."""
    require(user.role, Permission.VIEW_LEADS)
    query = _case_query().where(visible_cases_clause(user.unit_id))
    if states:
        query = query.where(case_file.c.state.in_([s.value for s in states]))
    if open_only:
        query = query.where(case_file.c.state.not_in([s.value for s in FINAL]))
    if lead_id is not None:
        query = query.where(resolved_lead_id(case_file.c.lead_id) == lead_id)
    query = query.order_by(case_file.c.updated_at.desc(), case_file.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_case(r) for r in conn.execute(query)]


def case_events(conn: Connection, case_id: int) -> list[Event]:
    """A case's events, oldest first (call after `get_case` said the user may see it)."""
    e = case_event.c
    rows = conn.execute(
        select(e.id, e.at, e.actor, e.kind, e.from_state, e.to_state, e.text)
        .where(e.case_id == case_id)
        .order_by(e.id)
    )
    return [
        Event(
            id=int(r.id),
            at=utc(r.at),
            actor=r.actor,
            kind=r.kind,
            from_state=None if r.from_state is None else State(r.from_state),
            to_state=None if r.to_state is None else State(r.to_state),
            text=r.text,
        )
        for r in rows
    ]


def pinned_sightings(conn: Connection, case_id: int) -> list[int]:
    """The ids of the sightings the case relies on, ascending."""
    return [
        int(i)
        for i in conn.scalars(
            select(case_sighting.c.sighting_id)
            .where(case_sighting.c.case_id == case_id)
            .order_by(case_sighting.c.sighting_id)
        )
    ]


def has_answer(conn: Connection, case_id: int) -> bool:
    """True when an ISP's answer is recorded for the case (atalaya.cases.answers).

    Reads whether one exists, never what it says: the identity itself is
    for atalaya.cases.identity to show.
    """
    found = exists().where(subscriber_identity.c.case_id == case_id)
    return bool(conn.scalar(select(found)))


def _event(
    conn: Connection,
    case_id: int,
    user: User,
    now: datetime,
    kind: str,
    *,
    from_state: State | None = None,
    to_state: State | None = None,
    text: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(case_event).values(
            case_id=case_id,
            at=utc(now),
            actor=user.username,
            kind=kind,
            from_state=None if from_state is None else from_state.value,
            to_state=None if to_state is None else to_state.value,
            text=text,
            details=details or {},
        )
    )


# For the other modules of the stage that add events of their own kinds
# (atalaya.cases.answers): one writer of case_event, one of updated_at.
record_event = _event


def touch_case(conn: Connection, case_id: int, now: datetime) -> None:
    """Mark the case changed at `now` (an event that does not move it was added)."""
    _touch(conn, case_id, now)


def held_lead(conn: Connection, user: User, lead_id: int) -> int:
    """`lead_id` when it is a lead the user's unit holds.

    LeadMovedError (naming the lead it went into) when it was merged into a
    lead the unit holds; LeadNotFoundError for anything else.
    """
    if unit_holds(conn, user.unit_id, lead_id):
        return lead_id
    where = moved(conn, lead_id)
    if where is not None and unit_holds(conn, user.unit_id, where.current):
        raise LeadMovedError(where.asked, where.current, where.into, where.build, where.at)
    raise LeadNotFoundError(lead_id)


def _presence_batches(conn: Connection, lead_id: int) -> list[ColumnElement[bool]]:
    """WHERE clauses on sighting, one per PRESENCE_BATCH of the lead's presences."""
    presences = conn.execute(
        select(
            lead_presence.c.ip,
            lead_presence.c.port,
            lead_presence.c.first_seen,
            lead_presence.c.last_seen,
        )
        .where(lead_presence.c.lead_id == lead_id)
        .order_by(lead_presence.c.id)
    ).all()
    return [
        or_(
            *(
                and_(
                    sighting.c.ip == p.ip,
                    sighting.c.seen_at >= p.first_seen,
                    sighting.c.seen_at <= p.last_seen,
                    *([sighting.c.port == p.port] if p.port is not None else []),
                )
                for p in presences[start : start + PRESENCE_BATCH]
            )
        )
        for start in range(0, len(presences), PRESENCE_BATCH)
    ]


def sightings_to_pin(conn: Connection, lead_id: int) -> list[int]:
    """The ids, ascending, of the sightings a case opened now on the lead would pin."""
    found: set[int] = set()
    for inside in _presence_batches(conn, lead_id):
        found.update(int(i) for i in conn.scalars(select(sighting.c.id).where(inside)))
    return sorted(found)


def _pin(conn: Connection, case_id: int, lead_id: int) -> int:
    """Pin every sighting of the lead's presences to the case; how many."""
    pinned = select(case_sighting.c.sighting_id).where(case_sighting.c.case_id == case_id)
    for inside in _presence_batches(conn, lead_id):
        conn.execute(
            insert(case_sighting).from_select(
                ["case_id", "sighting_id"],
                select(literal(case_id), sighting.c.id).where(inside, sighting.c.id.not_in(pinned)),
            )
        )
    count = select(func.count()).where(case_sighting.c.case_id == case_id)
    return int(conn.scalar(count) or 0)


def open_case(
    conn: Connection,
    user: User,
    lead_id: int,
    now: datetime,
    *,
    reason: str = "",
    deadline: datetime | None = None,
) -> Case:
    """Open a case on a lead the user's unit holds, pinning the lead's sightings now.

    Refused (AtalayaError, nothing written) when the unit already has a
    case on this lead that is not closed.
    """
    require(user.role, Permission.CHANGE_LEADS)
    why = _text(reason, N_("the reason"), required=False)
    lead_id = held_lead(conn, user, lead_id)
    existing = list_cases(conn, user, lead_id=lead_id, open_only=True)
    if existing:
        raise AtalayaError(
            N_(
                "lead %(lead)s already has case %(case)s (%(state)s) for your unit: "
                "'atalaya cases show' it"
            ),
            lead=lead_id,
            case=existing[0].id,
            state=existing[0].state,
        )
    at = utc(now)
    case_id = int(
        conn.execute(
            insert(case_file)
            .values(
                lead_id=lead_id,
                unit_id=user.unit_id,
                state=INITIAL.value,
                assignee=user.username,
                opened_by=user.username,
                opened_at=at,
                updated_at=at,
                deadline=None if deadline is None else utc(deadline),
            )
            .returning(case_file.c.id)
        ).scalar_one()
    )
    count = _pin(conn, case_id, lead_id)
    if count == 0:
        raise AtalayaError(N_("lead %(lead)s has no sightings to open a case on"), lead=lead_id)
    claimed = claim_lead(conn, lead_id, user.unit_id, user.username, at)
    _event(
        conn,
        case_id,
        user,
        at,
        OPEN,
        to_state=INITIAL,
        text=why,
        details={"lead_id": lead_id, "sightings": count, "claimed": claimed},
    )
    return get_case(conn, user, case_id)


def _touch(conn: Connection, case_id: int, now: datetime, **values: Any) -> None:
    conn.execute(
        update(case_file).where(case_file.c.id == case_id).values(updated_at=utc(now), **values)
    )


def move_case(
    conn: Connection, user: User, case_id: int, target: State, reason: str, now: datetime
) -> Case:
    """Move the case to `target`, with why; TransitionError out of order (nothing written)."""
    require(user.role, Permission.CHANGE_LEADS)
    why = _text(reason, N_("the reason"), required=True)
    case = get_case(conn, user, case_id)
    check_transition(case.state, target)
    if target is State.ISP_ANSWERED and not has_answer(conn, case_id):
        raise TransitionError(
            N_(
                "case %(case)s has no answer from the ISP yet: 'atalaya cases answer %(case)s' "
                "records it and moves the case to isp_answered"
            ),
            case=case_id,
        )
    # Only from the state read: a concurrent move makes this one change nothing.
    done = conn.execute(
        update(case_file)
        .where(case_file.c.id == case_id, case_file.c.state == case.state.value)
        .values(state=target.value, updated_at=utc(now))
    )
    if done.rowcount != 1:
        raise AtalayaError(
            N_("case %(case)s changed meanwhile: show it and try again"), case=case_id
        )
    _event(conn, case_id, user, now, MOVE, from_state=case.state, to_state=target, text=why)
    return get_case(conn, user, case_id)


def note_case(conn: Connection, user: User, case_id: int, text: str, now: datetime) -> Case:
    require(user.role, Permission.CHANGE_LEADS)
    note = _text(text, N_("the note"), required=True)
    case = get_case(conn, user, case_id)
    _touch(conn, case_id, now)
    _event(conn, case_id, user, now, NOTE, text=note)
    return get_case(conn, user, case.id)


def assign_case(
    conn: Connection, user: User, case_id: int, username: str, now: datetime, reason: str = ""
) -> Case:
    """Give the case to a user of the same unit who may work cases."""
    require(user.role, Permission.CHANGE_LEADS)
    why = _text(reason, N_("the reason"), required=False)
    case = get_case(conn, user, case_id)
    assignee = find_user(conn, username)
    if (
        assignee is None
        or assignee.unit_id != user.unit_id
        or assignee.disabled
        or not has_permission(assignee.role, Permission.CHANGE_LEADS)
    ):
        raise AtalayaError(
            N_("no user %(user)r in your unit who may work cases ('atalaya users list')"),
            user=username,
        )
    _touch(conn, case_id, now, assignee=assignee.username)
    _event(
        conn,
        case_id,
        user,
        now,
        ASSIGN,
        text=why,
        details={"from": case.assignee, "to": assignee.username},
    )
    return get_case(conn, user, case_id)
