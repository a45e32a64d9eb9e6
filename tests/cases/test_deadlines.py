"""The retention clock in the store: what expires soon, what is requested, what is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from atalaya.cases.deadlines import case_clock, lead_clock, upcoming
from atalaya.cases.records import move_case, open_case
from atalaya.cases.states import State
from tests.cases.helpers import user, world

# Lead 1's sightings are on 2026-10-01 (09:00-11:00 UTC), lead 4's on
# 2026-10-02: in Spain they expire at 2027-09-30 00:00 and 2027-10-01 00:00.
LEAD_1_EXPIRES = datetime(2027, 9, 30, tzinfo=UTC)
LEAD_4_EXPIRES = datetime(2027, 10, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def _ids(engine: Engine, unit_id: int, now: datetime, within: int) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [(u.lead_id, u.days_left) for u in upcoming(conn, unit_id, now, within)]


def test_upcoming_lists_the_units_leads_most_urgent_first_to_the_microsecond(
    engine: Engine,
) -> None:
    w = world(engine)
    madrid, sevilla = user(engine, "ana").unit_id, user(engine, "sara").unit_id
    now = LEAD_1_EXPIRES - timedelta(days=10)
    assert _ids(engine, madrid, now, 10) == [(w.madrid, 10)]
    assert _ids(engine, madrid, now - MICRO, 10) == []
    assert _ids(engine, madrid, now, 11) == [(w.madrid, 10), (w.other_madrid, 11)]
    # Sevilla's lead expires later (2027-10-03) and is Sevilla's only.
    assert _ids(engine, sevilla, now, 11) == []
    assert _ids(engine, sevilla, now, 13) == [(w.sevilla, 13)]
    with engine.connect() as conn:
        [first, _] = upcoming(conn, madrid, now, 11)
    assert first.expires_at == LEAD_1_EXPIRES and first.observations == 3
    assert first.oldest == datetime(2026, 10, 1, 9, tzinfo=UTC)
    assert first.case_id is None


def test_a_case_sent_to_court_takes_its_observations_off_the_list(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    now = LEAD_1_EXPIRES - timedelta(days=10)
    with engine.begin() as conn:
        case = open_case(conn, ana, w.madrid, now)
        move_case(conn, ana, case.id, State.REQUEST_DRAFTED, "drafted", now)
    with engine.connect() as conn:
        [listed] = upcoming(conn, ana.unit_id, now, 10)
        assert (listed.lead_id, listed.case_id, listed.case_state) == (
            w.madrid,
            case.id,
            State.REQUEST_DRAFTED,
        )
        clock = lead_clock(conn, w.madrid, now)
        assert clock is not None
        assert (clock.next_expiry, clock.days_left, clock.all_expired) == (
            LEAD_1_EXPIRES,
            10,
            False,
        )
    with engine.begin() as conn:
        move_case(conn, ana, case.id, State.SENT_TO_COURT, "sent to court 3", now)
    with engine.connect() as conn:
        assert upcoming(conn, ana.unit_id, now, 10) == []
        clock = lead_clock(conn, w.madrid, now)
        assert clock is not None and clock.next_expiry is None and not clock.all_expired
        assert clock.text() == "every live observation is already requested"
        # The case's own clock still runs: its request must reach the ISP in time.
        own = case_clock(conn, case.id, "ES", now)
        assert (own.next_expiry, own.days_left) == (LEAD_1_EXPIRES, 10)


def test_a_lead_whose_every_observation_expired_is_marked_so(engine: Engine) -> None:
    w = world(engine)
    ana = user(engine, "ana")
    with engine.connect() as conn:
        just_before = lead_clock(conn, w.madrid, LEAD_1_EXPIRES - MICRO)
        at_deadline = lead_clock(conn, w.madrid, LEAD_1_EXPIRES)
        [left] = upcoming(conn, ana.unit_id, LEAD_1_EXPIRES, 5)
        assert lead_clock(conn, 424242, LEAD_1_EXPIRES) is None
    assert just_before is not None and just_before.days_left == 0
    assert not just_before.all_expired
    assert at_deadline is not None and at_deadline.all_expired
    assert at_deadline.text() == "every observation has expired at the ISP"
    # Lead 1 is lost and no longer listed; lead 4 has a day left.
    assert (left.lead_id, left.days_left) == (w.other_madrid, 1)
    assert left.expires_at == LEAD_4_EXPIRES
