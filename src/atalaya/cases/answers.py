"""What follows a request: the ISP's answer, then search, seizure, charges and outcome.

- `record_answer`: the operator's answer goes into `subscriber_identity`
  (see atalaya.cases.identity for who reads it) and, for a case still at
  sent_to_isp, moves it to isp_answered in the same transaction. The case's
  event says that an answer came, never what it says: every user of the
  unit reads events, only case roles read identities.
- `record_step`: a search carried out (search_authorised → search_done),
  a seizure (after the search), charges (→ charged) and the court's outcome
  (on a charged case), each a case event of its own kind with the date it
  happened; a step that changes the state does it through `move_case`, so
  the transition is checked and recorded like any other.

Everything is checked before anything is written: bad input raises one
AtalayaError and the caller's transaction writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, insert

from atalaya.accounts import Permission, User, require
from atalaya.cases.identity import SUBSCRIBER, Addressing, AnswerOutcome
from atalaya.cases.records import Case, get_case, move_case, record_event, touch_case
from atalaya.cases.states import State, TransitionError
from atalaya.errors import N_, Alternatives, AtalayaError, Listed, Msgid
from atalaya.store.tables import subscriber_identity
from atalaya.store.times import utc

ANSWER = "answer"
MAX_NOTES = 4000
# Longest value per field (the table's column sizes).
LIMITS: Mapping[str, int] = {
    "name": 300,
    "id_number": 40,
    "address": 2000,
    "line": 200,
    "operator_reference": 200,
    "notes": MAX_NOTES,
}
# The fields as messages name them (the web translates them).
FIELD_WORDS: Mapping[str, Msgid] = {
    "name": N_("name"),
    "id_number": N_("id number"),
    "address": N_("address"),
    "line": N_("line"),
    "operator_reference": N_("operator reference"),
    "notes": N_("notes"),
    "addressing": N_("addressing"),
}
# An answer is recorded while the request is at the ISP, or to correct one.
ANSWER_STATES = frozenset({State.SENT_TO_ISP, State.ISP_ANSWERED})


@dataclass(frozen=True)
class Answer:
    """What an operator answered, as typed by the unit (checked by `check_answer`)."""

    outcome: AnswerOutcome
    received_at: datetime
    name: str = ""
    id_number: str = ""
    address: str = ""
    line: str = ""
    addressing: Addressing | None = None
    notes: str = ""
    operator_reference: str = ""


def parse_outcome(text: str) -> AnswerOutcome:
    name = text.strip().lower().replace("-", "_")
    try:
        return AnswerOutcome(name)
    except ValueError:
        raise AtalayaError(
            N_("unknown answer outcome %(text)r: use one of %(names)s"),
            text=text,
            names=Listed(o.value for o in AnswerOutcome),
        ) from None


def parse_addressing(text: str | None) -> Addressing | None:
    """static/dynamic ("estática"/"dinámica" too); None for an empty value."""
    if text is None or not text.strip():
        return None
    name = text.strip().lower()
    aliases = {"estatica": "static", "estática": "static", "dinamica": "dynamic"}
    aliases["dinámica"] = "dynamic"
    try:
        return Addressing(aliases.get(name, name))
    except ValueError:
        raise AtalayaError(
            N_("unknown addressing %(text)r: use static or dynamic"), text=text
        ) from None


def _field(value: str, what: str) -> str:
    text = value.strip()
    if "\x00" in text:
        raise AtalayaError(N_("the %(field)s holds a NUL character"), field=FIELD_WORDS[what])
    limit = LIMITS[what]
    if len(text) > limit:
        raise AtalayaError(
            N_("the %(field)s is %(length)s characters long; at most %(most)s"),
            field=FIELD_WORDS[what],
            length=len(text),
            most=limit,
        )
    return text


def check_answer(answer: Answer, now: datetime) -> Answer:
    """The answer with its fields stripped; AtalayaError naming the first problem.

    An identified subscriber needs a name, an ID number and an installation
    address (what the request asks the operator for); a "no data" answer
    must name nobody.
    """
    fields = {
        name: _field(getattr(answer, name), name)
        for name in ("name", "id_number", "address", "line", "notes", "operator_reference")
    }
    received = utc(answer.received_at)
    if received > utc(now):
        raise AtalayaError(N_("the answer cannot have been received in the future"))
    if answer.outcome is AnswerOutcome.IDENTIFIED:
        missing = [FIELD_WORDS[n] for n in ("name", "id_number", "address") if not fields[n]]
        if missing:
            raise AtalayaError(
                N_(
                    "an answer naming a subscriber needs the %(missing)s (or say that the "
                    "operator has no data: outcome no_data)"
                ),
                missing=Listed(missing),
            )
    else:
        given = [FIELD_WORDS[n] for n in ("name", "id_number", "address", "line") if fields[n]]
        if given or answer.addressing is not None:
            named = Listed(given + ([FIELD_WORDS["addressing"]] if answer.addressing else []))
            raise AtalayaError(
                N_("a no_data answer names nobody: leave out the %(named)s"), named=named
            )
    return Answer(answer.outcome, received, addressing=answer.addressing, **fields)


def record_answer(
    conn: Connection, user: User, case_id: int, answer: Answer, now: datetime
) -> tuple[Case, int]:
    """Record the ISP's answer for the case; (the case, the answer's id).

    A case at sent_to_isp moves to isp_answered; one at isp_answered gets a
    correction (the newest answer applies). Any other state, or bad input:
    AtalayaError, nothing written.
    """
    require(user.role, Permission.CHANGE_LEADS)
    checked = check_answer(answer, now)
    case = get_case(conn, user, case_id)
    if case.state not in ANSWER_STATES:
        raise TransitionError(
            N_(
                "case %(case)s is %(state)s: an ISP's answer is recorded once the "
                "request is sent to the ISP (state sent_to_isp)"
            ),
            case=case_id,
            state=case.state,
        )
    at = utc(now)
    answer_id = int(
        conn.execute(
            insert(subscriber_identity)
            .values(
                case_id=case.id,
                outcome=checked.outcome.value,
                subject_category=SUBSCRIBER,
                name=checked.name or None,
                id_number=checked.id_number or None,
                address=checked.address or None,
                line=checked.line or None,
                addressing=None if checked.addressing is None else checked.addressing.value,
                notes=checked.notes,
                operator_reference=checked.operator_reference,
                received_at=checked.received_at,
                recorded_at=at,
                recorded_by=user.username,
            )
            .returning(subscriber_identity.c.id)
        ).scalar_one()
    )
    correction = case.state is State.ISP_ANSWERED
    # No identity in the event: events are read by every user of the unit.
    record_event(
        conn,
        case.id,
        user,
        at,
        ANSWER,
        details={
            "answer": answer_id,
            "outcome": checked.outcome.value,
            "received_at": checked.received_at.isoformat(timespec="microseconds"),
            "correction": correction,
        },
    )
    if not correction:
        why = (
            "the ISP identified the subscriber"
            if checked.outcome is AnswerOutcome.IDENTIFIED
            else "the ISP has no data"
        )
        case = move_case(conn, user, case.id, State.ISP_ANSWERED, why, at)
    else:
        case = get_case(conn, user, case.id)
    return case, answer_id


class Step(StrEnum):
    """What happened after the answer, as case events of these kinds."""

    SEARCH = "search"  # entry and search carried out (LECrim 545 ff.)
    SEIZURE = "seizure"  # devices or material seized
    CHARGES = "charges"  # the accusation: offences, court, proceedings
    OUTCOME = "outcome"  # the court's outcome on a charged case


@dataclass(frozen=True)
class StepRule:
    allowed_in: frozenset[State]
    moves_to: State | None


STEP_RULES: Mapping[Step, StepRule] = {
    Step.SEARCH: StepRule(frozenset({State.SEARCH_AUTHORISED}), State.SEARCH_DONE),
    Step.SEIZURE: StepRule(frozenset({State.SEARCH_DONE, State.CHARGED}), None),
    Step.CHARGES: StepRule(frozenset({State.ISP_ANSWERED, State.SEARCH_DONE}), State.CHARGED),
    Step.OUTCOME: StepRule(frozenset({State.CHARGED}), None),
}


def parse_step(text: str) -> Step:
    name = text.strip().lower()
    try:
        return Step(name)
    except ValueError:
        raise AtalayaError(
            N_("unknown step %(text)r: use one of %(names)s"), text=text, names=Listed(Step)
        ) from None


def record_step(
    conn: Connection,
    user: User,
    case_id: int,
    step: Step,
    text: str,
    now: datetime,
    *,
    on: datetime | None = None,
) -> Case:
    """Record a search, seizure, charges or outcome (`text` says what), moving
    the case where the step does; TransitionError in a state it does not fit."""
    require(user.role, Permission.CHANGE_LEADS)
    what = text.strip()
    if not what:
        raise AtalayaError(N_("say what the %(step)s was: the text is required"), step=step)
    if len(what) > MAX_NOTES:
        raise AtalayaError(
            N_("the text is %(length)s characters long; at most %(most)s"),
            length=len(what),
            most=MAX_NOTES,
        )
    happened = utc(on if on is not None else now)
    if happened > utc(now):
        raise AtalayaError(N_("the %(step)s cannot have happened in the future"), step=step)
    case = get_case(conn, user, case_id)
    rule = STEP_RULES[step]
    if case.state not in rule.allowed_in:
        raise TransitionError(
            N_("case %(case)s is %(state)s: a %(step)s is recorded on a case in %(states)s"),
            case=case_id,
            state=case.state,
            step=step,
            states=Alternatives(sorted(rule.allowed_in, key=lambda s: s.value)),
        )
    at = utc(now)
    record_event(
        conn,
        case.id,
        user,
        at,
        step.value,
        text=what,
        details={"on": happened.isoformat(timespec="microseconds")},
    )
    if rule.moves_to is not None:
        return move_case(conn, user, case.id, rule.moves_to, f"{step.value} recorded", at)
    touch_case(conn, case.id, at)
    return get_case(conn, user, case.id)
