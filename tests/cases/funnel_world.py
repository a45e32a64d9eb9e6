"""A store with cases in every state, at planned instants: the funnel's test world.

On top of `tests.cases.helpers.world` (leads 1 and 4 in Madrid, 7 in
Sevilla), extra sightings over three weeks for the weekly trend, and one
case per state (two archived: from triage and after a "no data" answer),
walked there through the real functions, each step at a planned instant.
`PLAN` keeps, per case, when it reached each state: what the tests check
the funnel's medians against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, literal, select

from atalaya.accounts import User
from atalaya.cases.answers import Answer, Step, record_answer, record_step
from atalaya.cases.identity import AnswerOutcome
from atalaya.cases.records import OPEN, move_case, record_event
from atalaya.cases.states import State
from atalaya.store.tables import case_file, case_sighting, sighting
from tests.cases.helpers import user, world
from tests.leads.helpers import item, write
from tests.leads.helpers import sighting as s

OPENED = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
# How many days after the state before it each state is reached.
DAYS = {
    State.REQUEST_DRAFTED: 1.0,
    State.SENT_TO_COURT: 2.0,
    State.AUTHORISED: 3.0,
    State.REFUSED: 4.0,
    State.SENT_TO_ISP: 1.0,
    State.ISP_ANSWERED: 6.0,
    State.SEARCH_AUTHORISED: 2.0,
    State.SEARCH_DONE: 1.5,
    State.CHARGED: 5.0,
    State.ARCHIVED: 1.0,
    State.REFERRED: 2.0,
}
TO_ISP = [State.REQUEST_DRAFTED, State.SENT_TO_COURT, State.AUTHORISED, State.SENT_TO_ISP]
ANSWERED = [*TO_ISP, State.ISP_ANSWERED]
# (unit's user, lead, path): one case each.
CASES: list[tuple[str, str, list[State]]] = [
    ("ana", "madrid", []),
    ("ana", "madrid", [State.REQUEST_DRAFTED]),
    ("ana", "madrid", TO_ISP[:2]),
    ("ana", "madrid", TO_ISP[:3]),
    ("ana", "madrid", [*TO_ISP[:2], State.REFUSED]),
    ("ana", "madrid", TO_ISP),
    ("ana", "madrid", ANSWERED),
    ("ana", "madrid", [*ANSWERED, State.SEARCH_AUTHORISED]),
    ("ana", "madrid", [*ANSWERED, State.SEARCH_AUTHORISED, State.SEARCH_DONE]),
    ("ana", "madrid", [*ANSWERED, State.SEARCH_AUTHORISED, State.SEARCH_DONE, State.CHARGED]),
    ("ana", "madrid", [*ANSWERED, State.CHARGED]),
    ("ana", "madrid", [State.ARCHIVED]),
    ("ana", "madrid", [*ANSWERED, State.ARCHIVED]),
    ("ana", "madrid", [*TO_ISP[:2], State.REFUSED, State.REFERRED]),
    ("sara", "sevilla", TO_ISP[:2]),
    ("sara", "sevilla", [*ANSWERED, State.CHARGED]),
]


@dataclass(frozen=True)
class Planned:
    case_id: int
    unit_user: str
    lead_id: int
    opened_at: datetime
    reached: dict[State, datetime]


def _answer(at: datetime, no_data: bool) -> Answer:
    if no_data:
        return Answer(AnswerOutcome.NO_DATA, at)
    return Answer(AnswerOutcome.IDENTIFIED, at, "Abonado Ficticio", "00000000T", "Calle Falsa 0")


def _walk(
    engine: Engine, who: User, case_id: int, path: list[State], start: datetime
) -> dict[State, datetime]:
    reached: dict[State, datetime] = {}
    at = start
    for n, state in enumerate(path):
        # Each case a little slower than the one before: medians mean something.
        at = at + timedelta(days=DAYS[state] * (1 + case_id / 10))
        with engine.begin() as conn:
            if state is State.ISP_ANSWERED:
                no_data = path[n + 1 :] == [State.ARCHIVED]
                record_answer(conn, who, case_id, _answer(at, no_data), at)
            elif state is State.SEARCH_DONE:
                record_step(conn, who, case_id, Step.SEARCH, "searched", at)
            elif state is State.CHARGED:
                record_step(conn, who, case_id, Step.CHARGES, "CP 189.1.b", at)
            else:
                move_case(conn, who, case_id, state, f"to {state.value}", at)
        reached[state] = at
    return reached


def funnel_world(engine: Engine) -> list[Planned]:
    w = world(engine)
    leads = {"madrid": w.madrid, "sevilla": w.sevilla}
    ips = {"madrid": "10.1.0.1", "sevilla": "10.2.0.1"}
    # Addresses seen in the weeks of 2026-10-05 (4) and 2026-10-12 (5): +25 %.
    week = 24 * 7
    write(engine, [s(f"10.9.0.{n}", item(40 + n), 4 * 24 + n) for n in range(1, 5)])
    write(engine, [s(f"10.9.1.{n}", item(50 + n), 4 * 24 + week + n) for n in range(1, 6)])
    plan: list[Planned] = []
    for index, (name, lead_key, path) in enumerate(CASES):
        who = user(engine, name)
        opened = OPENED + timedelta(days=index)
        with engine.begin() as conn:
            case_id = int(
                conn.execute(
                    insert(case_file)
                    .values(
                        lead_id=leads[lead_key],
                        unit_id=who.unit_id,
                        state=State.TRIAGE.value,
                        assignee=name,
                        opened_by=name,
                        opened_at=opened,
                        updated_at=opened,
                    )
                    .returning(case_file.c.id)
                ).scalar_one()
            )
            conn.execute(
                insert(case_sighting).from_select(
                    ["case_id", "sighting_id"],
                    select(literal(case_id), sighting.c.id).where(sighting.c.ip == ips[lead_key]),
                )
            )
            record_event(conn, case_id, who, opened, OPEN, to_state=State.TRIAGE)
        reached = _walk(engine, who, case_id, path, opened)
        plan.append(Planned(case_id, name, leads[lead_key], opened, reached))
    return plan
