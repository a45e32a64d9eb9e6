"""The charts add up the daily counts builds store, and answer what counting sightings did.

A seeded random store (IPv4 homes in two provinces, a carrier-grade NAT
address told apart by port, an IPv6 /64 of rotating addresses, an address
without facts; BitTorrent and eD2K) is built, then grown and built
incrementally, then rebuilt. After each step every chart of a range of
selections (period, week, province, network, category, score, status,
drawn area, a unit's visibility) must equal the request-time computation
the application used before (`tests.support.charts_reference`), on both
engines, and exactly the chunked sums `chart_data` made before its one
statement (`charts_by_lead_chunks`); the stored counts after the
incremental build must be exactly those of the rebuild. Small stores then
pin the edges one by one: a lead claimed by another unit, an override
moving a lead across a score filter, a drawn area, and the instant a week
ends.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ColumnElement, Engine, event, func, select

from atalaya.accounts import claim_lead
from atalaya.accounts.visibility import conflict_clause, visible_lead_ids_clause
from atalaya.hashsets.categories import Category
from atalaya.leads.build import build_leads
from atalaya.leads.charts import ChartData, chart_data, iso_week_of
from atalaya.leads.config import LeadsConfig
from atalaya.leads.days import as_date, day_counts, monday
from atalaya.leads.facts import IpFacts
from atalaya.leads.presence import US_PER_DAY, SightingRow, scan_address
from atalaya.leads.query import override_score
from atalaya.leads.selection import Selection
from atalaya.observe.sightings import Sighting
from atalaya.store.tables import (
    lead,
    lead_presence,
    lead_presence_day,
    lead_presence_week,
    sighting,
)
from tests.leads.helpers import CGNAT, ELSEWHERE, HOME, NOW, T0, facts, item, peer_id, write
from tests.leads.helpers import sighting as s
from tests.leads.scenarios import add_units
from tests.support.charts_reference import charts_by_lead_chunks, charts_from_sightings

CONFIG = LeadsConfig()
V6 = "2001:db8:7:9:"
HOSTS: dict[str, IpFacts | None] = {
    "10.7.0.1": HOME,
    "10.7.0.2": HOME,
    "10.7.0.3": ELSEWHERE,
    "10.7.0.4": ELSEWHERE,
    "10.7.0.5": None,  # no facts: unplaced
    "100.64.7.1": CGNAT,
    **{f"{V6}{n:x}:1:2:3": HOME for n in range(1, 5)},
}
ED2K_HOSTS = ("10.7.0.2", "10.7.0.4")
FIRST_DAY = T0.date()


def _random_sightings(rng: random.Random, n: int, hours: tuple[float, float]) -> list[Sighting]:
    out = []
    for _ in range(n):
        ip = rng.choice(list(HOSTS))
        port = rng.choice((40001, 40002, 40003)) if ip.startswith("100.64.") else 6881
        when = rng.uniform(*hours)
        category = rng.choice((None, 1, 2, 3, 4))
        peer = peer_id(rng.randrange(6)) if rng.random() < 0.3 else None
        if ip in ED2K_HOSTS and rng.random() < 0.5:
            value = f"{rng.randrange(12):032x}"
            out.append(
                s(ip, value, when, port=port, category=category, network="ed2k", kind="ed2k")
            )
        else:
            out.append(
                s(ip, item(rng.randrange(12)), when, port=port, peer=peer, category=category)
            )
    return out


def _facts() -> Any:
    return facts({ip: f for ip, f in HOSTS.items() if f is not None})


def _selections(until: date) -> list[Selection]:
    wide = Selection(since=FIRST_DAY, until=until)
    week = Selection(since=date(2026, 11, 9), until=date(2026, 11, 15))
    madrid = ((-4.5, 40.0), (-3.0, 40.0), (-3.0, 41.0), (-4.5, 41.0))
    return [
        wide,
        week,
        Selection(since=date(2026, 10, 20), until=date(2026, 10, 20)),
        Selection(since=FIRST_DAY - timedelta(days=900), until=until),  # capped at 104 weeks
        # From a Wednesday to a Monday: two cut weeks around two whole ones.
        Selection(since=date(2026, 10, 7), until=date(2026, 10, 26)),
        Selection(since=FIRST_DAY, until=until, provinces=("28",)),
        Selection(since=week.since, until=week.until, provinces=("41",)),
        Selection(since=FIRST_DAY, until=until, network="ed2k"),
        Selection(since=FIRST_DAY, until=until, category=Category.SEVERE_ABUSE),
        Selection(since=FIRST_DAY, until=until, min_score=20.0),
        Selection(since=FIRST_DAY, until=until, status="active"),
        Selection(since=FIRST_DAY, until=until, status="dormant"),
        Selection(since=FIRST_DAY, until=until, status="conflict"),
        Selection(since=FIRST_DAY, until=until, area=madrid),
    ]


def _views(engine: Engine) -> list[tuple[ColumnElement[bool] | None, ColumnElement[bool] | None]]:
    units = add_units(engine)
    return [(None, None)] + [
        (visible_lead_ids_clause(u), conflict_clause(u)) for u in (units["Madrid"], units["Norte"])
    ]


def _assert_same_charts(
    engine: Engine, views: Sequence[Any], until: date, now_days: int
) -> list[ChartData]:
    now = NOW + timedelta(days=now_days)
    found = []
    with engine.connect() as conn:
        for visible, conflicts in views:
            for flt in _selections(until):
                found.append(_same_as_before(conn, flt, visible, conflicts, now))
    return found


def _same_as_before(
    conn: Any,
    flt: Selection,
    visible: ColumnElement[bool] | None,
    conflicts: ColumnElement[bool] | None,
    now: datetime,
) -> ChartData:
    """`chart_data`, checked against both earlier computations."""
    new = chart_data(conn, flt, visible=visible, now=now, conflicts=conflicts)
    chunked = charts_by_lead_chunks(conn, flt, visible=visible, now=now, conflicts=conflicts)
    assert new == chunked, flt
    old = charts_from_sightings(conn, flt, visible=visible, now=now, conflicts=conflicts)
    # The count of sightings predates the province codes and the partial
    # week, which are checked on their own.
    assert replace(new, province_codes=[], partial_week=None) == old, flt
    assert len(new.province_codes) == len(new.provinces)
    return new


def _stored_days(engine: Engine) -> list[tuple[Any, ...]]:
    d = lead_presence_day
    with engine.connect() as conn:
        query = select(d.c.presence_id, d.c.day, d.c.week, d.c.sightings).order_by(
            d.c.presence_id, d.c.day
        )
        return [tuple(r) for r in conn.execute(query)]


def _stored_weeks(engine: Engine) -> list[tuple[Any, ...]]:
    """The weekly counts, which must be the daily ones summed per week."""
    w, d = lead_presence_week, lead_presence_day
    with engine.connect() as conn:
        query = select(w.c.presence_id, w.c.week, w.c.sightings).order_by(w.c.presence_id, w.c.week)
        weeks = [tuple(r) for r in conn.execute(query)]
        summed = select(d.c.presence_id, d.c.week, func.sum(d.c.sightings)).group_by(
            d.c.presence_id, d.c.week
        )
        assert sorted(tuple(r) for r in conn.execute(summed)) == weeks
    return weeks


def test_charts_equal_the_request_time_count_after_full_incremental_and_rebuild(
    engine: Engine,
) -> None:
    rng = random.Random(1013)
    views = _views(engine)
    first = _random_sightings(rng, 600, (0, 24 * 45))
    write(engine, first)
    build_leads(engine, _facts(), CONFIG, now=NOW)
    charts = _assert_same_charts(engine, views, NOW.date(), 0)

    # The checks can fail: everything counted, IPv6 and unplaced included.
    wide = charts[0]
    assert sum(wide.sightings_per_week) == sum(wide.sightings_per_province) == len(first)
    assert set(wide.provinces) == {"Madrid", "Sevilla", "(no province)"}
    codes = dict(zip(wide.provinces, wide.province_codes, strict=True))
    assert codes == {"Madrid": "28", "Sevilla": "41", "(no province)": ""}
    # The charts end with the week of NOW, which has not ended yet.
    assert wide.partial_week == wide.weeks[-1] == iso_week_of(NOW.date())
    with engine.connect() as conn:
        v6 = conn.scalar(
            select(func.sum(lead_presence_day.c.sightings))
            .join(lead_presence, lead_presence.c.id == lead_presence_day.c.presence_id)
            .where(lead_presence.c.ip.like(f"{V6}%"))
        )
    assert v6 == sum(1 for x in first if x.ip.startswith(V6))

    # New sightings after the last ones, and late ones among the old.
    later = _random_sightings(rng, 150, (24 * 45, 24 * 55)) + _random_sightings(
        rng, 60, (24 * 10, 24 * 30)
    )
    write(engine, later)
    report = build_leads(engine, _facts(), CONFIG, now=NOW + timedelta(days=10))
    assert report.mode == "incremental"
    until = NOW.date() + timedelta(days=10)
    charts = _assert_same_charts(engine, views, until, 10)
    assert sum(charts[0].sightings_per_week) == len(first) + len(later)
    incremental = _stored_days(engine)
    incremental_weeks = _stored_weeks(engine)

    rebuilt = build_leads(engine, _facts(), CONFIG, now=NOW + timedelta(days=10), rebuild=True)
    assert rebuilt.mode == "full"
    assert _stored_days(engine) == incremental
    assert _stored_weeks(engine) == incremental_weeks
    _assert_same_charts(engine, views, until, 10)


def test_stored_days_and_weeks_are_dates_with_their_monday(engine: Engine) -> None:
    # 2026-11-15 is a Sunday: its week began on Monday 2026-11-09.
    write(engine, [s("10.7.0.1", item(1), h) for h in (24 * 45 - 1, 24 * 45 - 0.5, 24 * 46)])
    build_leads(engine, _facts(), CONFIG, now=NOW)
    rows = [r[1:] for r in _stored_days(engine)]
    assert rows == [
        (date(2026, 11, 15), date(2026, 11, 9), 2),
        (date(2026, 11, 16), date(2026, 11, 16), 1),
    ]
    assert [r[1:] for r in _stored_weeks(engine)] == [
        (date(2026, 11, 9), 2),
        (date(2026, 11, 16), 1),
    ]


def test_a_chart_is_one_statement_whatever_the_sightings(engine: Engine) -> None:
    # The old computation ran one query per 100 presences, the chunked sums
    # one per 2,000 leads after the selection; now the selection is nested
    # in the sums. A drawn area still reads the selection first.
    rng = random.Random(7)
    write(engine, _random_sightings(rng, 400, (0, 24 * 45)))
    build_leads(engine, _facts(), CONFIG, now=NOW)
    units = add_units(engine)
    statements: list[str] = []

    def count(*args: Any) -> None:
        if args[2].startswith(("SELECT", "WITH")):
            statements.append(args[2])

    everything, *_ = _selections(NOW.date())
    drawn = _selections(NOW.date())[-1]
    assert drawn.area
    madrid = units["Madrid"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.connect() as conn:
            chart_data(conn, everything, visible=None, now=NOW)
            one = list(statements)
            chart_data(
                conn,
                everything,
                visible=visible_lead_ids_clause(madrid),
                now=NOW,
                conflicts=conflict_clause(madrid),
            )
            visible = statements[len(one) :]
            chart_data(conn, drawn, visible=None, now=NOW)
            area = statements[len(one) + len(visible) :]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    for queries in (one, visible, area):
        assert not any("FROM sighting" in sql for sql in queries)
    assert len(one) == len(visible) == 1
    assert len(area) == 2  # the selection, then the sums of its ids


# --- edges, each on a small store and checked against both earlier computations ----------


def _lead_of(engine: Engine, ip: str) -> int:
    with engine.connect() as conn:
        found = conn.scalar(select(lead_presence.c.lead_id).where(lead_presence.c.ip == ip))
    assert found is not None
    return int(found)


def _two_leads(engine: Engine) -> tuple[int, int]:
    """A lead in Madrid (10.7.0.1) and one in Sevilla (10.7.0.3), built."""
    write(
        engine,
        [s("10.7.0.1", item(1), h) for h in (0, 5, 20)]
        + [s("10.7.0.3", item(2), h) for h in (1, 6, 7, 21)],
    )
    build_leads(engine, _facts(), CONFIG, now=NOW)
    return _lead_of(engine, "10.7.0.1"), _lead_of(engine, "10.7.0.3")


def _view(unit_id: int) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return visible_lead_ids_clause(unit_id), conflict_clause(unit_id)


def test_a_lead_claimed_by_another_unit_counts_for_that_unit(engine: Engine) -> None:
    madrid_lead, sevilla_lead = _two_leads(engine)
    units = add_units(engine)
    with engine.begin() as conn:
        assert claim_lead(conn, sevilla_lead, units["Norte"], "analyst-n", NOW)
    flt = Selection(since=FIRST_DAY, until=NOW.date())
    with engine.connect() as conn:
        norte = _same_as_before(conn, flt, *_view(units["Norte"]), NOW)
        madrid = _same_as_before(conn, flt, *_view(units["Madrid"]), NOW)
        sevilla = _same_as_before(conn, flt, *_view(units["Sevilla"]), NOW)
        # Sevilla holds the lead by jurisdiction, Norte by its claim: a conflict
        # for both, none for Madrid.
        conflict = replace(flt, status="conflict")
        sevilla_conflict = _same_as_before(conn, conflict, *_view(units["Sevilla"]), NOW)
        madrid_conflict = _same_as_before(conn, conflict, *_view(units["Madrid"]), NOW)
    # Norte covers no province of either lead: only its claim shows.
    assert (norte.leads, norte.provinces, norte.sightings_per_province) == (1, ["Sevilla"], [4])
    assert (madrid.leads, madrid.provinces, madrid.sightings_per_province) == (1, ["Madrid"], [3])
    assert sevilla == norte
    assert sevilla_conflict == sevilla
    assert (madrid_conflict.leads, sum(madrid_conflict.sightings_per_week)) == (0, 0)
    assert madrid_lead != sevilla_lead


def test_an_override_moves_a_lead_across_a_score_filter(engine: Engine) -> None:
    madrid_lead, sevilla_lead = _two_leads(engine)
    with engine.connect() as conn:
        computed = dict(conn.execute(select(lead.c.id, lead.c.score)).all())
    low, high = sorted(computed.values())
    assert high < 99  # room for an override above both
    flt = Selection(since=FIRST_DAY, until=NOW.date(), min_score=high + 0.5)
    at_high = Selection(since=FIRST_DAY, until=NOW.date(), min_score=high)

    def provinces(selection: Selection) -> list[str]:
        with engine.connect() as conn:
            return _same_as_before(conn, selection, None, None, NOW).provinces

    assert provinces(flt) == []
    above = madrid_lead if computed[madrid_lead] == low else sevilla_lead
    below = sevilla_lead if above == madrid_lead else madrid_lead
    # The lower lead, overridden to 100, enters the filter; the higher one,
    # overridden to 0, leaves the filter it met by its computed score.
    override_score(engine, above, 100.0, "seen offering new files", "analyst-a", now=NOW)
    expected_in = "Madrid" if above == madrid_lead else "Sevilla"
    assert provinces(flt) == [expected_in]
    assert set(provinces(at_high)) == {"Madrid", "Sevilla"}
    override_score(engine, below, 0.0, "a shared library, not a collector", "analyst-a", now=NOW)
    assert provinces(at_high) == [expected_in]
    assert provinces(replace(at_high, min_score=0.0)) == sorted(["Madrid", "Sevilla"])
    assert provinces(replace(at_high, status="overridden", min_score=None)) == sorted(
        ["Madrid", "Sevilla"]
    )


def test_a_drawn_area_keeps_the_leads_inside_it(engine: Engine) -> None:
    _two_leads(engine)
    units = add_units(engine)
    around_madrid = ((-4.5, 40.0), (-3.0, 40.0), (-3.0, 41.0), (-4.5, 41.0))
    around_sevilla = ((-6.5, 37.0), (-5.5, 37.0), (-5.5, 37.8), (-6.5, 37.8))
    flt = Selection(since=FIRST_DAY, until=NOW.date(), area=around_madrid)
    with engine.connect() as conn:
        inside = _same_as_before(conn, flt, None, None, NOW)
        seen_by_sevilla = _same_as_before(conn, flt, *_view(units["Sevilla"]), NOW)
        south = _same_as_before(conn, replace(flt, area=around_sevilla), None, None, NOW)
    assert (inside.leads, inside.provinces, inside.province_codes) == (1, ["Madrid"], ["28"])
    assert sum(inside.sightings_per_week) == 3
    assert (seen_by_sevilla.leads, sum(seen_by_sevilla.sightings_per_week)) == (0, 0)
    assert (south.leads, south.provinces) == (1, ["Sevilla"])


def test_a_week_ends_at_sunday_midnight_utc(engine: Engine) -> None:
    # 2026-11-15 is a Sunday: its last microsecond is in week 46, the next
    # instant opens week 47. One address, so one presence and one lead.
    sunday = datetime(2026, 11, 15, 23, 59, 59, 999999, tzinfo=UTC)
    monday = datetime(2026, 11, 16, 0, 0, 0, tzinfo=UTC)
    base = s("10.7.0.1", item(1), 0)
    write(engine, [replace(base, seen_at=sunday), replace(base, seen_at=monday)])
    build_leads(engine, _facts(), CONFIG, now=monday + timedelta(days=3))
    now = monday + timedelta(days=3)
    week_46 = Selection(since=date(2026, 11, 9), until=date(2026, 11, 15))
    week_47 = Selection(since=date(2026, 11, 16), until=date(2026, 11, 22))
    the_sunday = Selection(since=date(2026, 11, 15), until=date(2026, 11, 15))
    with engine.connect() as conn:
        charts = {
            name: _same_as_before(conn, flt, None, None, now)
            for name, flt in (("46", week_46), ("47", week_47), ("sunday", the_sunday))
        }
    for name, data in charts.items():
        weekly = dict(zip(data.weeks, data.sightings_per_week, strict=True))
        leads = dict(zip(data.weeks, data.leads_per_week, strict=True))
        assert (weekly["2026-W46"], leads["2026-W46"]) == (1, 1)
        # Only week 47's chart reaches week 47.
        assert (weekly.get("2026-W47"), leads.get("2026-W47")) == (
            (1, 1) if name == "47" else (None, None)
        )
        assert sum(data.sightings_per_week) == (2 if name == "47" else 1)
    assert charts["46"].sightings_per_province == [1]
    assert charts["47"].sightings_per_province == [1]
    assert charts["sunday"].sightings_per_province == [1]
    # Week 47 holds `now`, so its bars are partial; week 46 has ended.
    assert charts["47"].partial_week == "2026-W47"
    assert charts["46"].weeks[-1] == "2026-W46"
    assert charts["46"].partial_week is None


# --- day_counts: the runs of scan, property-tested -----------------------------------


@st.composite
def _address_rows(draw: st.DrawFn) -> list[SightingRow]:
    times = draw(st.lists(st.integers(0, 40 * US_PER_DAY), min_size=1, max_size=60))
    rows = []
    for n, at in enumerate(sorted(times)):
        port = draw(st.sampled_from((1000, 1001, 1002)))
        rows.append(
            SightingRow(
                id=draw(st.integers(1, 10**6)) * 100 + n,
                ip="10.9.0.1",
                port=port,
                at=at,
                network="bittorrent",
                item_kind="btih",
                item_value=item(draw(st.integers(0, 5))),
                file_key=None,
                category=None,
                proof=False,
                peer_id=None,
                client=draw(st.sampled_from((None, "A", "B"))),
            )
        )
    rows.sort(key=lambda r: (r.at, r.id))
    return rows


# No deadline: on a loaded machine an example's time says nothing about the code.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_address_rows(), shared=st.booleans())
def test_day_counts_split_the_rows_into_their_presences(
    rows: list[SightingRow], shared: bool
) -> None:
    presences = list(scan_address(rows, CONFIG.grouping, shared=shared))
    counts = day_counts(rows, presences)
    assert set(counts) == {p.id for p in presences}
    # Each sighting in the one presence whose bounds (and port, where
    # shared) hold it: what the request-time count found by bounds.
    expected: dict[int, dict[int, int]] = {p.id: {} for p in presences}
    for row in rows:
        (owner,) = [
            p for p in presences if p.first_at <= row.at <= p.last_at and p.port in (None, row.port)
        ]
        day = row.at // US_PER_DAY
        expected[owner.id][day] = expected[owner.id].get(day, 0) + 1
    assert counts == expected
    for p in presences:
        assert sum(counts[p.id].values()) == p.sightings
        assert set(counts[p.id]) == p.days


def test_day_counts_refuse_rows_that_are_not_the_presences() -> None:
    typed = [
        SightingRow(
            i,
            "10.9.0.1",
            1000,
            i * US_PER_DAY,
            "bittorrent",
            "btih",
            item(1),
            None,
            None,
            False,
            None,
            None,
        )
        for i in range(1, 4)
    ]
    presences = list(scan_address(typed, CONFIG.grouping, shared=False))
    with pytest.raises(ValueError, match="rows left over"):
        day_counts([*typed, typed[-1]._replace(id=99, at=typed[-1].at + 1)], presences)
    with pytest.raises(ValueError, match="not a run"):
        day_counts(typed[:2], presences)


def test_as_date_and_monday() -> None:
    assert as_date(0) == date(1970, 1, 1)
    assert as_date(20_407) == date(2025, 11, 15)
    assert monday(date(2026, 11, 15)) == date(2026, 11, 9)
    assert monday(date(2026, 11, 9)) == date(2026, 11, 9)


def test_sightings_left_unbuilt_are_not_counted(engine: Engine) -> None:
    # The request-time count found any sighting inside a presence's bounds,
    # built or not; the stored counts hold what the build grouped.
    write(engine, [s("10.7.0.1", item(1), h) for h in (0, 5, 10)])
    build_leads(engine, _facts(), CONFIG, now=NOW)
    write(engine, [s("10.7.0.1", item(1), 7)])
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(sighting)) == 4
        data = chart_data(conn, Selection(since=FIRST_DAY, until=NOW.date()), visible=None, now=NOW)
    assert sum(data.sightings_per_week) == 3
