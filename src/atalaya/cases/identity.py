"""Who the subscriber behind a case is, and who may read it (the "watertight separation").

The ISP's answer names a person: the subscriber of the line, a data subject
of the category "abonado" (LED art. 6), not a suspect: the person using the
connection may be someone else. It is kept in its own table
(`subscriber_identity`), apart from the traffic data (sightings) that led
to it, as the CJEU asks of data retained for access by the authorities
(C-511/18 La Quadrature du Net, C-746/18 Prokuratuur).

Who may read it: users of the case's unit (the unit that holds the case
and its lead, `records.get_case`) whose role works cases, i.e. the roles in
`IDENTITY_ROLES`: analyst and supervisor. Auditors (unit or national) read
that a combination happened, in the audit log, never the identity itself;
administrators manage accounts, not cases. The set is named here rather
than derived from a permission, so that giving a role a new permission
never gives it identities too.

Reading it is always a *combination*: the identity is shown next to the
traffic data it answers (address, port, instant of the pinned sightings).
Each one is audited (`CaseAction.COMBINE`) with who, when and the purpose
given for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from atalaya.accounts import AccessDeniedError, User
from atalaya.accounts.roles import Role
from atalaya.cases.records import Case, get_case, pinned_sightings
from atalaya.errors import N_, AtalayaError
from atalaya.observe import sightings_by_id
from atalaya.store.tables import subscriber_identity
from atalaya.store.times import utc

IDENTITY_ROLES = frozenset({Role.ANALYST, Role.SUPERVISOR})

# The data-subject category of whoever an ISP names (LED art. 6: a person
# who is neither suspect nor convicted until the investigation says more).
SUBSCRIBER = "abonado"

MAX_PURPOSE = 400
# Traffic rows shown next to an identity at most (the case's pinned sightings).
TRAFFIC_SHOWN = 200


class AnswerOutcome(StrEnum):
    IDENTIFIED = "identified"  # the operator named a subscriber
    NO_DATA = "no_data"  # the operator has nothing (expired, not its customer, …)


class Addressing(StrEnum):
    STATIC = "static"
    DYNAMIC = "dynamic"


class IdentityAccessDeniedError(AccessDeniedError):
    """The user's role may not read subscriber identities."""


@dataclass(frozen=True)
class Identity:
    """One recorded answer of an ISP for a case."""

    id: int
    case_id: int
    outcome: AnswerOutcome
    subject_category: str
    name: str | None
    id_number: str | None
    address: str | None
    line: str | None
    addressing: Addressing | None
    notes: str
    operator_reference: str
    received_at: datetime
    recorded_at: datetime
    recorded_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "outcome": self.outcome.value,
            "subject_category": self.subject_category,
            "name": self.name,
            "id_number": self.id_number,
            "address": self.address,
            "line": self.line,
            "addressing": None if self.addressing is None else self.addressing.value,
            "notes": self.notes,
            "operator_reference": self.operator_reference,
            "received_at": self.received_at.isoformat(timespec="microseconds"),
            "recorded_at": self.recorded_at.isoformat(timespec="microseconds"),
            "recorded_by": self.recorded_by,
        }


@dataclass(frozen=True)
class Combination:
    """A case's identities next to its traffic data: what a combination shows."""

    case: Case
    purpose: str
    identities: list[Identity]  # newest first: the first applies
    traffic: list[Any]  # (id, network, ip, port, seen_at) of pinned sightings, oldest first
    traffic_total: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.id,
            "lead_id": self.case.lead_id,
            "purpose": self.purpose,
            "identities": [i.as_dict() for i in self.identities],
            "traffic": [
                {
                    "sighting": int(t.id),
                    "network": t.network,
                    "ip": t.ip,
                    "port": int(t.port),
                    "seen_at": utc(t.seen_at).isoformat(timespec="microseconds"),
                }
                for t in self.traffic
            ],
            "traffic_total": self.traffic_total,
        }


def may_read_identity(user: User) -> bool:
    """True when the user's role reads identities (the unit is checked per case)."""
    return user.role in IDENTITY_ROLES


def require_identity_role(user: User) -> None:
    if not may_read_identity(user):
        roles = " and ".join(sorted(r.value for r in IDENTITY_ROLES))
        raise IdentityAccessDeniedError(
            f"the {user.role} role may not read subscriber identities (only {roles})"
        )


def check_purpose(purpose: str) -> str:
    """The purpose of a combination, stripped; AtalayaError when empty or too long."""
    text = purpose.strip()
    if not text:
        raise AtalayaError(N_("say why the identity is shown: the purpose is required"))
    if len(text) > MAX_PURPOSE:
        raise AtalayaError(
            N_("the purpose is %(length)s characters long; at most %(most)s"),
            length=len(text),
            most=MAX_PURPOSE,
        )
    return text


def _identity(row: Any) -> Identity:
    return Identity(
        id=int(row.id),
        case_id=int(row.case_id),
        outcome=AnswerOutcome(row.outcome),
        subject_category=row.subject_category,
        name=row.name,
        id_number=row.id_number,
        address=row.address,
        line=row.line,
        addressing=None if row.addressing is None else Addressing(row.addressing),
        notes=row.notes,
        operator_reference=row.operator_reference,
        received_at=utc(row.received_at),
        recorded_at=utc(row.recorded_at),
        recorded_by=row.recorded_by,
    )


def read_identities(conn: Connection, user: User, case_id: int) -> list[Identity]:
    """The case's recorded answers, newest first, for a user who may read them.

    CaseNotFoundError for a case the user's unit does not hold (the same as
    for none); IdentityAccessDeniedError for a role outside IDENTITY_ROLES.
    """
    require_identity_role(user)
    case = get_case(conn, user, case_id)
    rows = conn.execute(
        select(subscriber_identity)
        .where(subscriber_identity.c.case_id == case.id)
        .order_by(subscriber_identity.c.id.desc())
    )
    return [_identity(r) for r in rows]


def combine(conn: Connection, user: User, case_id: int, purpose: str) -> Combination:
    """The case's identities next to its pinned traffic data (run it audited:
    `service.audited(..., CaseAction.COMBINE, ...)` with `combination_details`)."""
    why = check_purpose(purpose)
    identities = read_identities(conn, user, case_id)
    case = get_case(conn, user, case_id)
    ids = pinned_sightings(conn, case.id)
    return Combination(case, why, identities, sightings_by_id(conn, ids[:TRAFFIC_SHOWN]), len(ids))


def combination_details(found: Combination) -> dict[str, Any]:
    """What the audit record of a combination keeps: which answers met which traffic, why.

    Ids only: the audit log must not become a second copy of the identity.
    """
    return {
        "purpose": found.purpose,
        "lead": found.case.lead_id,
        "answers": [i.id for i in found.identities],
        "sightings": [int(t.id) for t in found.traffic],
        "sightings_total": found.traffic_total,
    }
