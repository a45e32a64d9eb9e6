"""The purpose a web session declared for its reads (Law Enforcement Directive art. 25).

A session starts in "triage" (looking through leads to decide which to take
up) until its user picks a case; the choice is kept with the session, and
every audit record made for the session carries it (see
`atalaya.audit.purpose`). Each change is itself audited (`purpose_set`).
Whether a case id names one of the user's unit's cases is for the caller
to check (`atalaya.cases`), which this stage cannot import.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, insert, select

from atalaya.accounts.sessions import Session
from atalaya.audit.log import record
from atalaya.audit.purpose import TRIAGE, parse_purpose
from atalaya.store.engine import begin_write
from atalaya.store.tables import session_purpose
from atalaya.store.times import utc

PURPOSE_SET_ACTION = "purpose_set"
DEFAULT_PURPOSE = TRIAGE


def get_session_purpose(engine: Engine, session: Session) -> str:
    """The purpose the session declared; "triage" until it declared one."""
    with engine.connect() as conn:
        found = conn.execute(
            select(session_purpose.c.purpose).where(session_purpose.c.session_id == session.id)
        ).scalar_one_or_none()
    return DEFAULT_PURPOSE if found is None else str(found)


def set_session_purpose(
    engine: Engine,
    session: Session,
    purpose: str,
    now: datetime,
    client_address: str | None = None,
) -> str:
    """Declare `purpose` ("triage" or "case:N") for the session's reads from now on, audited."""
    chosen = parse_purpose(purpose)
    with begin_write(engine) as conn:
        record(
            conn,
            PURPOSE_SET_ACTION,
            actor=session.actor(client_address),
            object_type="session",
            object_id=session.id,
            details={"purpose": chosen},
            at=now,
        )
        conn.execute(delete(session_purpose).where(session_purpose.c.session_id == session.id))
        conn.execute(
            insert(session_purpose).values(session_id=session.id, purpose=chosen, set_at=utc(now))
        )
    return chosen
