"""The ISP's answer, who may read it, and the steps after it: search, seizure, charges, outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from atalaya.accounts import User, add_user
from atalaya.audit.log import AuditQuery, read_records
from atalaya.cases.answers import (
    Answer,
    Step,
    check_answer,
    parse_addressing,
    parse_outcome,
    record_answer,
    record_step,
)
from atalaya.cases.identity import (
    SUBSCRIBER,
    Addressing,
    AnswerOutcome,
    IdentityAccessDeniedError,
    combination_details,
    combine,
    read_identities,
)
from atalaya.cases.records import CaseNotFoundError, case_events, get_case, move_case, open_case
from atalaya.cases.service import CaseAction, audited
from atalaya.cases.states import State, TransitionError
from atalaya.errors import AtalayaError
from atalaya.store.tables import case_event, case_file, subscriber_identity
from tests.accounts.helpers import FAST, PASSWORD
from tests.cases.helpers import user, world
from tests.leads.helpers import NOW

LATER = NOW + timedelta(hours=1)
TO_THE_ISP = (State.REQUEST_DRAFTED, State.SENT_TO_COURT, State.AUTHORISED, State.SENT_TO_ISP)
GARCIA = Answer(
    outcome=AnswerOutcome.IDENTIFIED,
    received_at=NOW,
    name="  Abonada Ficticia Uno ",
    id_number="00000000T",
    address="Calle Inventada 1, 28999 Ninguna",
    line="900 000 000",
    addressing=Addressing.DYNAMIC,
    notes="made-up subscriber for a test",
    operator_reference="OP-REF-1",
)


def _at_the_isp(engine: Engine, who: User, lead_id: int) -> int:
    with engine.begin() as conn:
        case = open_case(conn, who, lead_id, NOW)
        for state in TO_THE_ISP:
            move_case(conn, who, case.id, state, f"to {state.value}", NOW)
    return case.id


def _counts(engine: Engine) -> tuple[int, int, str]:
    with engine.connect() as conn:
        answers = conn.scalar(select(func.count()).select_from(subscriber_identity)) or 0
        events = conn.scalar(select(func.count()).select_from(case_event)) or 0
        states = ",".join(conn.scalars(select(case_file.c.state).order_by(case_file.c.id)))
    return int(answers), int(events), states


def test_an_answer_is_kept_apart_moves_the_case_and_its_event_names_nobody(
    engine: Engine,
) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    case_id = _at_the_isp(engine, ana, w.madrid)
    with engine.begin() as conn:
        case, answer_id = record_answer(conn, ana, case_id, GARCIA, LATER)
    assert case.state is State.ISP_ANSWERED
    with engine.connect() as conn:
        row = conn.execute(select(subscriber_identity)).one()
        events = case_events(conn, case_id)
    assert (row.id, row.case_id, row.outcome, row.subject_category) == (
        answer_id,
        case_id,
        "identified",
        SUBSCRIBER,
    )
    assert (row.name, row.addressing, row.recorded_by) == ("Abonada Ficticia Uno", "dynamic", "ana")
    assert [(e.kind, e.to_state) for e in events[-2:]] == [
        ("answer", None),
        ("move", State.ISP_ANSWERED),
    ]
    with engine.connect() as conn:
        details = [r.details for r in conn.execute(select(case_event.c.details, case_event.c.text))]
        texts = list(conn.scalars(select(case_event.c.text)))
    shown = repr(details) + repr(texts)
    for secret in ("Ficticia", "00000000T", "Inventada", "900 000 000"):
        assert secret not in shown

    # A second answer corrects the first: the case stays, the newest applies.
    corrected = Answer(**{**GARCIA.__dict__, "address": "Calle Inventada 2"})
    with engine.begin() as conn:
        case, second = record_answer(conn, ana, case_id, corrected, LATER)
        found = read_identities(conn, ana, case_id)
    assert case.state is State.ISP_ANSWERED
    assert [i.id for i in found] == [second, answer_id]
    assert found[0].address == "Calle Inventada 2"


def test_isp_answered_needs_an_answer_and_bad_answers_write_nothing(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    case_id = _at_the_isp(engine, ana, w.madrid)
    before = _counts(engine)
    with (
        pytest.raises(TransitionError, match="has no answer from the ISP yet"),
        engine.begin() as conn,
    ):
        move_case(conn, ana, case_id, State.ISP_ANSWERED, "answered by phone", LATER)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": " "}, "needs the name"),
        ({"id_number": "", "address": ""}, "needs the id number, address"),
        ({"outcome": AnswerOutcome.NO_DATA}, "a no_data answer names nobody"),
        ({"received_at": LATER + timedelta(seconds=1)}, "received in the future"),
        ({"name": "x" * 301}, "the name is 301 characters long; at most 300"),
        ({"notes": "a\x00b"}, "the notes holds a NUL character"),
    ]
    for change, message in bad:
        answer = Answer(**{**GARCIA.__dict__, **change})
        with pytest.raises(AtalayaError, match=message), engine.begin() as conn:
            record_answer(conn, ana, case_id, answer, LATER)
    assert _counts(engine) == before
    # Not yet at the ISP: refused too.
    with engine.begin() as conn:
        early = open_case(conn, ana, w.other_madrid, NOW).id
    before = _counts(engine)
    with (
        pytest.raises(TransitionError, match="is triage: an ISP's answer is recorded once"),
        engine.begin() as conn,
    ):
        record_answer(conn, ana, early, GARCIA, LATER)
    assert _counts(engine) == before
    # "No data" is an answer too, naming nobody.
    nothing = Answer(AnswerOutcome.NO_DATA, NOW, notes="data already erased")
    with engine.begin() as conn:
        case, _ = record_answer(conn, ana, case_id, nothing, LATER)
        assert case.state is State.ISP_ANSWERED
        assert read_identities(conn, ana, case_id)[0].name is None


def test_identity_is_read_only_by_the_cases_unit_in_a_case_role(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    case_id = _at_the_isp(engine, ana, w.madrid)
    with engine.begin() as conn:
        record_answer(conn, ana, case_id, GARCIA, LATER)
        add_user(conn, "adela", "Madrid", "administrator", PASSWORD, NOW, FAST)
        add_user(conn, "nora", "Madrid", "national_auditor", PASSWORD, NOW, FAST)
    for name in ("ana", "luis"):
        with engine.connect() as conn:
            assert read_identities(conn, user(engine, name), case_id)[0].id_number == "00000000T"
    for name in ("olga", "adela", "nora"):  # the case's unit, not a case role
        with engine.connect() as conn, pytest.raises(IdentityAccessDeniedError):
            read_identities(conn, user(engine, name), case_id)
    # Another unit, in a case role: the same answer as for no case at all.
    with engine.connect() as conn, pytest.raises(CaseNotFoundError, match=f"no case {case_id}"):
        read_identities(conn, user(engine, "sara"), case_id)


def test_a_combination_is_audited_with_who_why_and_ids_only(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    case_id = _at_the_isp(engine, ana, w.madrid)
    with engine.begin() as conn:
        _, answer_id = record_answer(conn, ana, case_id, GARCIA, LATER)

    def work(who: User) -> Any:
        def run(conn: Any) -> Any:
            found = combine(conn, who, case_id, "  search warrant application ")
            return found, combination_details(found)

        return run

    found = audited(engine, user(engine, "luis"), CaseAction.COMBINE, work(user(engine, "luis")),
                    object_id=case_id)  # fmt: skip
    assert found.identities[0].name == "Abonada Ficticia Uno"
    assert found.traffic_total == 3 and len(found.traffic) == 3
    assert {t.ip for t in found.traffic} == {"10.1.0.1"}
    for who in ("sara", "olga"):
        with pytest.raises(AtalayaError):
            audited(engine, user(engine, who), CaseAction.COMBINE, work(user(engine, who)),
                    object_id=case_id)  # fmt: skip
    with pytest.raises(AtalayaError, match="the purpose is required"), engine.connect() as conn:
        combine(conn, ana, case_id, "  ")
    with engine.connect() as conn:
        records = read_records(conn, AuditQuery(action="identity_combination"))
    assert [(r.fields.username, r.fields.outcome) for r in records] == [
        ("luis", "ok"),
        ("sara", "denied"),
        ("olga", "denied"),
    ]
    details = records[0].fields.details
    assert details["purpose"] == "search warrant application"
    assert details["answers"] == [answer_id] and len(details["sightings"]) == 3
    assert "Ficticia" not in repr([r.fields.details for r in records])


def test_search_seizure_charges_and_outcome_follow_the_states(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    case_id = _at_the_isp(engine, ana, w.madrid)
    with engine.begin() as conn:
        record_answer(conn, ana, case_id, GARCIA, LATER)
    before = _counts(engine)
    with (
        pytest.raises(TransitionError, match="a search is recorded on a case in search_author"),
        engine.begin() as conn,
    ):
        record_step(conn, ana, case_id, Step.SEARCH, "flat searched", LATER)
    with pytest.raises(AtalayaError, match="the text is required"), engine.begin() as conn:
        record_step(conn, ana, case_id, Step.CHARGES, " ", LATER)
    with pytest.raises(AtalayaError, match="in the future"), engine.begin() as conn:
        record_step(conn, ana, case_id, Step.CHARGES, "189.1.b", LATER, on=LATER + timedelta(1))
    assert _counts(engine) == before
    with engine.begin() as conn:
        move_case(conn, ana, case_id, State.SEARCH_AUTHORISED, "judge ordered", LATER)
        done = record_step(conn, ana, case_id, Step.SEARCH, "flat searched", LATER, on=NOW)
        assert done.state is State.SEARCH_DONE
        seized = record_step(conn, ana, case_id, Step.SEIZURE, "two laptops, one phone", LATER)
        assert seized.state is State.SEARCH_DONE
        charged = record_step(conn, ana, case_id, Step.CHARGES, "CP 189.1.b, JI 3", LATER)
        assert charged.state is State.CHARGED
        ended = record_step(conn, ana, case_id, Step.OUTCOME, "conviction", LATER)
        assert ended.state is State.CHARGED and ended.updated_at == LATER
        events = case_events(conn, case_id)
    assert [(e.kind, e.to_state) for e in events][-7:] == [
        ("move", State.SEARCH_AUTHORISED),
        ("search", None),
        ("move", State.SEARCH_DONE),
        ("seizure", None),
        ("charges", None),
        ("move", State.CHARGED),
        ("outcome", None),
    ]
    with engine.connect() as conn:
        search = next(e for e in case_events(conn, case_id) if e.kind == "search")
        row = conn.execute(select(case_event.c.details).where(case_event.c.id == search.id)).one()
    assert row.details == {"on": NOW.isoformat(timespec="microseconds")}
    with engine.connect() as conn:
        assert get_case(conn, ana, case_id).state is State.CHARGED


@given(
    fields=st.fixed_dictionaries(
        {
            k: st.sampled_from(["", " ", "Abonado Ficticio"]) | st.text(max_size=400)
            for k in ("name", "id_number", "address", "line", "notes", "operator_reference")
        }
    ),
    outcome=st.sampled_from(["identified", "no_data", "No-Data", " IDENTIFIED ", "x"])
    | st.text(max_size=12),
    addressing=st.sampled_from(["", "static", "Dinámica", "dynamic", "x"]) | st.text(max_size=12),
    received=st.datetimes(timezones=st.just(UTC)),
)
def test_any_typed_answer_is_accepted_or_refused_with_one_clear_error(
    fields: dict[str, str], outcome: str, addressing: str, received: datetime
) -> None:
    try:
        answer = Answer(
            parse_outcome(outcome), received, addressing=parse_addressing(addressing), **fields
        )
        checked = check_answer(answer, NOW)
    except AtalayaError as exc:
        assert str(exc)
        return
    assert checked.received_at <= NOW
    if checked.outcome is AnswerOutcome.IDENTIFIED:
        assert checked.name and checked.id_number and checked.address
    else:
        assert not (checked.name or checked.id_number or checked.address or checked.line)
