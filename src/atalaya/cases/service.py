"""Case operations run in one transaction with their audit record (CLI and web share it).

Every operation is logged: done (outcome ok, in the same transaction as the
change, so neither exists without the other) or refused (outcome denied,
with the error shown to the user, after the refused transaction rolled
back, so nothing else is written).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from atalaya.accounts import User
from atalaya.audit.log import Outcome, lock_chain, log_event, record
from atalaya.errors import AtalayaError
from atalaya.store import begin_write

T = TypeVar("T")


class CaseAction(StrEnum):
    """Audit actions of the cases stage."""

    OPEN = "case_open"
    VIEW = "case_view"
    LIST = "case_list"
    MOVE = "case_move"
    NOTE = "case_note"
    ASSIGN = "case_assign"
    DEADLINES = "deadlines"
    ANSWER = "case_answer"  # the ISP's answer recorded (atalaya.cases.answers)
    STEP = "case_step"  # a search, seizure, charges or outcome recorded
    COMBINE = "identity_combination"  # identity shown next to traffic data
    FUNNEL = "funnel"


def audited(
    engine: Engine,
    user: User,
    action: StrEnum,
    work: Callable[[Connection], tuple[T, dict[str, Any]]],
    *,
    object_type: str = "case",
    object_id: int | str | None = None,
    details: dict[str, Any] | None = None,
    client_address: str | None = None,
) -> T:
    """Run `work(conn)` -> (result, more details) and record it; log a refusal as denied."""
    actor = user.actor(client_address)
    base = dict(details or {})
    try:
        # Every operation writes (its audit record at least): on SQLite the
        # transaction takes the write lock as it begins and waits its turn.
        with begin_write(engine) as conn:
            # The chain's lock first: on SQLite before any read.
            lock_chain(conn)
            result, more = work(conn)
            record(
                conn,
                action.value,
                actor=actor,
                object_type=object_type,
                object_id=object_id,
                details={**base, **more},
            )
    except AtalayaError as exc:
        log_event(
            engine,
            action.value,
            actor=actor,
            outcome=Outcome.DENIED,
            object_type=object_type,
            object_id=object_id,
            details={**base, "refused": str(exc)},
        )
        raise
    return result
