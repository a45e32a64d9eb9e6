"""Cases in the store: who may open and see them, pinned sightings, events, merges."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from atalaya.accounts import AccessDeniedError
from atalaya.cases.records import (
    CaseNotFoundError,
    LeadNotFoundError,
    assign_case,
    case_events,
    get_case,
    list_cases,
    move_case,
    note_case,
    open_case,
    pinned_sightings,
)
from atalaya.cases.states import State, TransitionError
from atalaya.errors import AtalayaError
from atalaya.leads.history import LeadMovedError
from atalaya.store.tables import (
    app_user,
    case_event,
    case_file,
    case_sighting,
    lead_claim,
    sighting,
)
from tests.cases.helpers import merge, user, world
from tests.leads.helpers import NOW

LATER = NOW + timedelta(hours=1)


def _sighting_ids(engine: Engine, ip: str) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.scalars(select(sighting.c.id).where(sighting.c.ip == ip)))


def _counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in (case_file, case_sighting, case_event)
        )


def test_open_pins_the_leads_sightings_claims_it_and_records_who(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, w.madrid, NOW, reason="three files in a week")
    assert (case.lead_id, case.made_on, case.state, case.assignee) == (
        w.madrid,
        w.madrid,
        State.TRIAGE,
        "ana",
    )
    assert case.sightings == 3
    with engine.connect() as conn:
        assert pinned_sightings(conn, case.id) == _sighting_ids(engine, "10.1.0.1")
        events = case_events(conn, case.id)
        claims = conn.execute(select(lead_claim.c.lead_id, lead_claim.c.claimed_by)).all()
    assert [(e.kind, e.actor, e.to_state, e.text) for e in events] == [
        ("open", "ana", State.TRIAGE, "three files in a week")
    ]
    assert claims == [(w.madrid, "ana")]


def test_a_second_open_case_on_the_same_lead_is_refused(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        first = open_case(conn, ana, w.madrid, NOW)
    before = _counts(engine)
    with (
        pytest.raises(AtalayaError, match=f"already has case {first.id} \\(triage\\)"),
        engine.begin() as conn,
    ):
        open_case(conn, ana, w.madrid, NOW)
    assert _counts(engine) == before
    # Once closed, a new case may be opened.
    with engine.begin() as conn:
        move_case(conn, ana, first.id, State.ARCHIVED, "no prospects", LATER)
        assert open_case(conn, ana, w.madrid, LATER).id != first.id


def test_other_units_get_no_such_case_and_no_such_lead(engine: Engine) -> None:
    w = world(engine)
    ana, sara = user(engine, "ana"), user(engine, "sara")
    with engine.begin() as conn:
        case = open_case(conn, ana, w.madrid, NOW)
    with engine.begin() as conn:
        with pytest.raises(CaseNotFoundError) as foreign:
            get_case(conn, sara, case.id)
        with pytest.raises(CaseNotFoundError) as missing:
            get_case(conn, sara, 999)
        assert str(foreign.value).replace(str(case.id), "N") == str(missing.value).replace(
            "999", "N"
        )
        for attempt in (
            lambda: move_case(conn, sara, case.id, State.REQUEST_DRAFTED, "mine", NOW),
            lambda: note_case(conn, sara, case.id, "hello", NOW),
            lambda: assign_case(conn, sara, case.id, "sara", NOW),
        ):
            with pytest.raises(CaseNotFoundError):
                attempt()
        assert list_cases(conn, sara) == []
        # Sevilla does not hold Madrid's lead: opening on it is "no lead".
        with pytest.raises(LeadNotFoundError, match=f"no lead {w.madrid}:"):
            open_case(conn, sara, w.madrid, NOW)
        with pytest.raises(LeadNotFoundError, match="no lead 424242:"):
            open_case(conn, sara, 424242, NOW)
    assert [c.id for c in list_cases(engine.connect(), ana)] == [case.id]


def test_an_auditor_may_not_work_cases(engine: Engine) -> None:
    w = world(engine)
    olga = user(engine, "olga")
    with engine.begin() as conn, pytest.raises(AccessDeniedError):
        open_case(conn, olga, w.madrid, NOW)


def test_moves_follow_the_state_machine_and_an_error_writes_nothing(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, w.madrid, NOW)
    before = _counts(engine)
    with (
        pytest.raises(TransitionError, match="cannot go from triage to authorised"),
        engine.begin() as conn,
    ):
        move_case(conn, ana, case.id, State.AUTHORISED, "skipping ahead", LATER)
    with pytest.raises(AtalayaError, match="the reason is required"), engine.begin() as conn:
        move_case(conn, ana, case.id, State.REQUEST_DRAFTED, "   ", LATER)
    assert _counts(engine) == before
    with engine.begin() as conn:
        moved = move_case(conn, ana, case.id, State.REQUEST_DRAFTED, "drafted", LATER)
        note_case(conn, ana, case.id, "called the ISP's desk", LATER)
        assigned = assign_case(conn, ana, case.id, "LUIS", LATER, "on duty")
    assert moved.state is State.REQUEST_DRAFTED and moved.updated_at == LATER
    assert assigned.assignee == "luis"
    with engine.connect() as conn:
        events = [(e.kind, e.from_state, e.to_state, e.text) for e in case_events(conn, case.id)]
    assert events == [
        ("open", None, State.TRIAGE, ""),
        ("move", State.TRIAGE, State.REQUEST_DRAFTED, "drafted"),
        ("note", None, None, "called the ISP's desk"),
        ("assign", None, None, "on duty"),
    ]
    # Only a user of the unit who may work cases can be assigned.
    for name in ("sara", "olga", "nobody"):
        with engine.begin() as conn, pytest.raises(AtalayaError, match=f"no user '{name}'"):
            assign_case(conn, ana, case.id, name, LATER)


def test_a_case_follows_its_lead_into_a_merge_and_keeps_its_sightings(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, w.other_madrid, NOW)
        pinned = pinned_sightings(conn, case.id)
    assert pinned == _sighting_ids(engine, "10.1.0.2")

    merge(engine)

    with engine.begin() as conn:
        after = get_case(conn, ana, case.id)
        assert (after.lead_id, after.made_on) == (w.madrid, w.other_madrid)
        assert pinned_sightings(conn, case.id) == pinned
        assert [c.id for c in list_cases(conn, ana, lead_id=w.madrid)] == [case.id]
        assert list_cases(conn, ana, lead_id=w.other_madrid) == []
        # The lead it went into now has an open case: no second one.
        with pytest.raises(AtalayaError, match=f"lead {w.madrid} already has case {case.id}"):
            open_case(conn, ana, w.madrid, LATER)
        # The merged id names the lead it went into.
        with pytest.raises(LeadMovedError, match=f"merged into lead {w.madrid}"):
            open_case(conn, ana, w.other_madrid, LATER)


def test_pinned_sightings_and_events_cannot_be_changed(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, w.madrid, NOW)
    for statement in (
        update(case_sighting).values(sighting_id=case_sighting.c.sighting_id + 100),
        delete(case_sighting),
        update(case_event).values(text="rewritten"),
        delete(case_event),
    ):
        with (
            pytest.raises(DBAPIError, match="cannot be changed or deleted"),
            engine.begin() as conn,
        ):
            conn.execute(statement)
    if engine.dialect.name == "postgresql":
        for table in ("case_sighting", "case_event"):
            with (
                pytest.raises(DBAPIError, match="cannot be changed or deleted"),
                engine.begin() as conn,
            ):
                conn.execute(text(f"TRUNCATE {table} CASCADE"))
    with engine.connect() as conn:
        assert len(pinned_sightings(conn, case.id)) == 3


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(targets=st.lists(st.sampled_from(list(State)), min_size=1, max_size=12))
def test_random_moves_in_the_store_record_exactly_the_accepted_path(
    engine: Engine, targets: list[State]
) -> None:
    """Each example gets a case of its own (made in the table directly: opening
    would refuse a second open case on the lead)."""
    if not _has_world(engine):
        world(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case_id = int(
            conn.execute(
                insert(case_file)
                .values(
                    lead_id=1,
                    unit_id=ana.unit_id,
                    state=State.TRIAGE.value,
                    opened_by="ana",
                    opened_at=NOW,
                    updated_at=NOW,
                )
                .returning(case_file.c.id)
            ).scalar_one()
        )
    path = [State.TRIAGE]
    for target in targets:
        try:
            with engine.begin() as conn:
                move_case(conn, ana, case_id, target, f"to {target.value}", LATER)
        except TransitionError:
            continue
        path.append(target)
    with engine.connect() as conn:
        events = [(e.from_state, e.to_state) for e in case_events(conn, case_id)]
        assert get_case(conn, ana, case_id).state is path[-1]
    assert events == list(itertools.pairwise(path))


def _has_world(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(app_user)) != 0
