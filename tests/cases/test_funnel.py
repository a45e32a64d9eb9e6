"""The funnel against counts made directly in SQL, on a store with cases in every state."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, and_, func, select, union

from atalaya.cases.funnel import BASE, STEP_STATES, STEPS, Scope, funnel
from atalaya.cases.retention import DEFAULT_SETTINGS, expires_at
from atalaya.cases.states import State
from atalaya.errors import AtalayaError
from atalaya.store.tables import (
    case_event,
    case_file,
    lead,
    lead_claim,
    lead_presence,
    lead_province,
    sighting,
    unit_province,
)
from tests.cases.funnel_world import OPENED, Planned, funnel_world
from tests.cases.helpers import user

SINCE = datetime(2026, 9, 28, tzinfo=UTC)  # a Monday
UNTIL = datetime(2027, 1, 1, tzinfo=UTC)
NOW = datetime(2027, 1, 2, tzinfo=UTC)


def _sql_counts(
    engine: Engine, since: datetime, until: datetime, unit_id: int | None, province: str | None
) -> dict[str, int]:
    """Each figure as one plain query (leads in scope by their provinces and cases by
    their unit; no merges in this world, so a case's lead is its lead_id)."""
    leads_there = select(lead_province.c.lead_id).where(lead_province.c.province_code == province)
    # A unit holds the leads with a presence in its provinces, and those it claimed.
    units_leads = union(
        select(lead_province.c.lead_id)
        .join(unit_province, unit_province.c.province_code == lead_province.c.province_code)
        .where(unit_province.c.unit_id == unit_id),
        select(lead_claim.c.lead_id).where(lead_claim.c.unit_id == unit_id),
    )
    case_where = [
        *([case_file.c.unit_id == unit_id] if unit_id is not None else []),
        *([case_file.c.lead_id.in_(leads_there)] if province is not None else []),
    ]
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        counts["leads"] = conn.scalar(
            select(func.count())
            .select_from(lead)
            .where(
                lead.c.first_seen >= since,
                lead.c.first_seen < until,
                *([lead.c.id.in_(leads_there)] if province is not None else []),
                *([lead.c.id.in_(units_leads)] if unit_id is not None else []),
            )
        )
        counts["cases_opened"] = conn.scalar(
            select(func.count())
            .select_from(case_file)
            .where(case_file.c.opened_at >= since, case_file.c.opened_at < until, *case_where)
        )
        for name, state in STEP_STATES.items():
            if name == "cases_opened":
                continue
            counts[name] = conn.scalar(
                select(func.count(func.distinct(case_event.c.case_id)))
                .select_from(case_event.join(case_file, case_file.c.id == case_event.c.case_id))
                .where(
                    case_event.c.to_state == state.value,
                    case_event.c.at >= since,
                    case_event.c.at < until,
                    *case_where,
                )
            )
        in_period = [sighting.c.seen_at >= since, sighting.c.seen_at < until]
        if unit_id is None and province is None:
            query = select(func.count(func.distinct(sighting.c.ip))).where(*in_period)
        else:
            # Addresses of the presences in scope: a sighting inside one.
            p = lead_presence.c
            query = (
                select(func.count(func.distinct(sighting.c.ip)))
                .select_from(
                    sighting.join(
                        lead_presence,
                        and_(
                            p.ip == sighting.c.ip,
                            p.first_seen <= sighting.c.seen_at,
                            p.last_seen >= sighting.c.seen_at,
                        ),
                    )
                )
                .where(
                    *in_period,
                    *([p.province_code == province] if province is not None else []),
                    *([p.lead_id.in_(units_leads)] if unit_id is not None else []),
                )
            )
        counts["addresses"] = conn.scalar(query)
    return {k: int(v or 0) for k, v in counts.items()}


def _expected_medians(plan: list[Planned], since: datetime, until: datetime) -> dict[str, float]:
    chain = [State.TRIAGE, State.SENT_TO_COURT, State.AUTHORISED, State.ISP_ANSWERED,
             State.SEARCH_DONE, State.CHARGED]  # fmt: skip
    medians: dict[str, float] = {}
    for name, state in STEP_STATES.items():
        if name == "cases_opened":
            continue
        delays = []
        for p in plan:
            at = p.reached.get(state)
            if at is None or not since <= at < until:
                continue
            marks = {State.TRIAGE: p.opened_at, **p.reached}
            before = chain if state is State.ARCHIVED else chain[: chain.index(state)]
            delays.append((at - max(marks[s] for s in before if s in marks)) / timedelta(days=1))
        if delays:
            medians[name] = round(statistics.median(delays), 2)
    return medians


def test_every_figure_equals_its_sql_count(engine: Engine) -> None:
    plan = funnel_world(engine)
    reached = {s for p in plan for s in p.reached} | {State.TRIAGE}
    assert reached == set(State)  # a case in every state
    madrid, sevilla = user(engine, "ana").unit_id, user(engine, "sara").unit_id
    periods = [
        (SINCE, UNTIL),
        # Cuts through the middle of the cases' lives.
        (OPENED + timedelta(days=6), OPENED + timedelta(days=20)),
    ]
    for since, until in periods:
        for unit_id, province in ((None, None), (madrid, None), (sevilla, None), (None, "41")):
            with engine.connect() as conn:
                result = funnel(conn, Scope(since, until, province, unit_id), NOW)
            expected = _sql_counts(engine, since, until, unit_id, province)
            got = {s.name: s.count for s in result.steps}
            assert {k: got[k] for k in expected} == expected, (since, unit_id, province)
            for step in result.steps:
                base = BASE.get(step.name)
                if base and got[base]:
                    assert step.conversion == got[step.name] / got[base]
                else:
                    assert step.conversion is None
    # Every state reached at least once in the whole period; nothing before it.
    with engine.connect() as conn:
        whole = funnel(conn, Scope(SINCE, UNTIL), NOW)
        before = funnel(conn, Scope(SINCE - timedelta(days=60), SINCE), NOW)
    assert all(whole.count(name) > 0 for name in STEPS)
    assert all(before.count(name) == 0 for name in STEPS)


def test_medians_are_the_days_from_the_step_before(engine: Engine) -> None:
    plan = funnel_world(engine)
    for since, until in ((SINCE, UNTIL), (OPENED + timedelta(days=6), OPENED + timedelta(30))):
        with engine.connect() as conn:
            result = funnel(conn, Scope(since, until), NOW)
        got = {s.name: s.median_days for s in result.steps if s.median_days is not None}
        expected = _expected_medians(plan, since, until)
        assert len(expected) >= (6 if since == SINCE else 3)
        assert {k: v for k, v in got.items() if k in expected} == expected
    # Opening: from the first pinned sighting (T0 + 1 h for lead 1's cases).
    opened = next(s for s in result.steps if s.name == "cases_opened")
    assert opened.median_days is not None and opened.median_days > 3


def test_weekly_trend_counts_distinct_addresses_and_shows_the_rise(engine: Engine) -> None:
    funnel_world(engine)
    with engine.connect() as conn:
        result = funnel(conn, Scope(SINCE, SINCE + timedelta(weeks=3)), NOW)
        for week in result.weeks:
            assert week.addresses == conn.scalar(
                select(func.count(func.distinct(sighting.c.ip))).where(
                    sighting.c.seen_at >= week.start,
                    sighting.c.seen_at < week.start + timedelta(weeks=1),
                )
            )
    assert [w.start.date().isoformat() for w in result.weeks] == [
        "2026-09-28",
        "2026-10-05",
        "2026-10-12",
    ]
    assert [w.addresses for w in result.weeks] == [3, 4, 5]
    assert [w.change for w in result.weeks] == [None, 1 / 3, 0.25]
    assert not any(w.partial for w in result.weeks)
    with engine.connect() as conn:
        clipped = funnel(conn, Scope(SINCE + timedelta(days=3), SINCE + timedelta(days=8)), NOW)
    assert [w.partial for w in clipped.weeks] == [True, True]


def test_leads_lost_to_the_retention_clock(engine: Engine) -> None:
    funnel_world(engine)
    rule = DEFAULT_SETTINGS.rule_for("ES")
    with engine.connect() as conn:
        lead_rows = conn.execute(select(lead.c.id, lead.c.last_seen, lead.c.country)).all()
        sent = set(
            conn.scalars(
                select(case_file.c.lead_id).join(
                    case_event,
                    and_(
                        case_event.c.case_id == case_file.c.id,
                        case_event.c.to_state == State.SENT_TO_COURT.value,
                    ),
                )
            )
        )
    assert {r.country for r in lead_rows} == {"ES"}
    since, until, now = (datetime(2027, 9, 1, tzinfo=UTC), datetime(2027, 11, 1, tzinfo=UTC),
                         datetime(2028, 1, 1, tzinfo=UTC))  # fmt: skip
    expected = sum(
        1
        for r in lead_rows
        if r.id not in sent and since < expires_at(r.last_seen.replace(tzinfo=UTC), rule) <= until
    )
    assert expected == 1  # lead 4: no case; leads 1 and 7 were sent to court
    with engine.connect() as conn:
        assert funnel(conn, Scope(since, until), now).lost_to_retention == expected
        # Not yet lost while the period has not reached the expiry.
        early = funnel(conn, Scope(since, until), datetime(2027, 9, 2, tzinfo=UTC))
        assert early.lost_to_retention == 0
        assert funnel(conn, Scope(SINCE, UNTIL), NOW).lost_to_retention == 0


def test_a_period_must_be_ordered_and_bounded() -> None:
    with pytest.raises(AtalayaError, match="--since must come before --until"):
        Scope(UNTIL, SINCE)
    with pytest.raises(AtalayaError, match="longer than 160 weeks"):
        Scope(SINCE, SINCE + timedelta(weeks=161))
