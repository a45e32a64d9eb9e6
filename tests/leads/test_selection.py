"""The one selection behind map, list and exports: leads inserted directly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, case, insert

from atalaya.accounts import add_unit, claim_lead
from atalaya.accounts.visibility import conflict_clause, visible_lead_ids_clause
from atalaya.leads.query import (
    latest_activity,
    lead_country,
    lead_exists,
    override_score,
)
from atalaya.leads.selection import (
    URGENT_SCORE,
    Selection,
    in_area,
    lead_rows,
    map_points,
    page_of,
    select_leads,
    urgent_counts,
    urgent_municipality_counts,
)
from atalaya.store.tables import lead, lead_province

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
WEEK = Selection(since=date(2026, 11, 9), until=date(2026, 11, 15))


def _lead(
    conn: Connection,
    lead_id: int,
    score: float,
    *,
    province: str | None = "28",
    lat: float | None = 40.4,
    lon: float | None = -3.7,
    first: datetime = datetime(2026, 11, 10, tzinfo=UTC),
    last: datetime = datetime(2026, 11, 11, tzinfo=UTC),
) -> None:
    conn.execute(
        insert(lead).values(
            id=lead_id,
            first_seen=first,
            last_seen=last,
            sightings=3,
            presences=1,
            addresses=1,
            items=2,
            known_files=lead_id % 7,
            verified_items=0,
            highest_category=3,
            networks=["bittorrent"],
            ip=f"192.0.2.{lead_id}",
            country="ES" if province else None,
            province_code=province,
            lat=lat,
            lon=lon,
            flags=[],
            score=score,
            weights_version="test",
            scored_at=NOW,
        )
    )
    if province is not None:
        # What a build writes beside the lead: units hold it by these.
        conn.execute(insert(lead_province).values(lead_id=lead_id, province_code=province))


def _ids(rows: list[object]) -> list[int]:
    return [r.id for r in rows]  # type: ignore[attr-defined]


def test_order_window_and_the_score_in_force(engine: Engine) -> None:
    with engine.begin() as conn:
        _lead(conn, 1, 50.0)
        _lead(conn, 2, 70.0)
        _lead(conn, 3, 60.0, lat=None, lon=None)
        _lead(conn, 4, 90.0, first=datetime(2026, 11, 16, tzinfo=UTC), last=NOW)  # after
        _lead(
            conn,
            5,
            95.0,
            first=datetime(2026, 10, 1, tzinfo=UTC),
            last=datetime(2026, 11, 9, 0, 0, 1, tzinfo=UTC),
        )
    override_score(engine, 1, 80.0, "confirmed by hand", "ana", now=NOW)
    with engine.connect() as conn:
        rows = select_leads(conn, WEEK, visible=None, now=NOW)
        assert _ids(rows) == [5, 1, 2, 3]
        assert [r.score for r in rows] == [95.0, 80.0, 70.0, 60.0]
        above = select_leads(
            conn, Selection(**{**WEEK.__dict__, "min_score": 75.0}), visible=None, now=NOW
        )
        assert _ids(above) == [5, 1]
        overridden = select_leads(
            conn, Selection(**{**WEEK.__dict__, "status": "overridden"}), visible=None, now=NOW
        )
        assert _ids(overridden) == [1]
        full = lead_rows(conn, [3, 1, 999])
    assert [(r.id, r.score, r.computed_score, r.overridden) for r in full] == [
        (3, 60.0, 60.0, False),
        (1, 80.0, 50.0, True),
    ]
    assert map_points(rows) == [
        [5, 40.4, -3.7, 95.0, 5],
        [1, 40.4, -3.7, 80.0, 1],
        [2, 40.4, -3.7, 70.0, 2],
    ]
    page = page_of(rows, 2, size=3)
    assert (_ids(page.rows), page.number, page.pages, page.total) == ([3], 2, 2, 4)
    assert page_of(rows, 9, size=3).number == 2
    assert page_of([], 1).pages == 1


def test_visibility_claims_and_conflicts(engine: Engine) -> None:
    with engine.begin() as conn:
        _lead(conn, 1, 10.0, province="28")
        _lead(conn, 2, 20.0, province="08", lat=41.4, lon=2.2)
        _lead(conn, 3, 30.0, province=None, lat=None, lon=None)
        madrid = add_unit(conn, "Madrid", ["28"], "desk 1", NOW)
        barcelona = add_unit(conn, "Barcelona", ["08"], "desk 2", NOW)
        claim_lead(conn, 3, barcelona.id, "bea", NOW)
        claim_lead(conn, 1, barcelona.id, "bea", NOW)
    with engine.connect() as conn:

        def ids(unit_id: int, status: str | None = None) -> list[int]:
            flt = Selection(**{**WEEK.__dict__, "status": status})
            return _ids(
                select_leads(
                    conn,
                    flt,
                    visible=visible_lead_ids_clause(unit_id),
                    now=NOW,
                    conflicts=conflict_clause(unit_id),
                )
            )

        assert ids(madrid.id) == [1]
        assert ids(barcelona.id) == [3, 2, 1]
        assert ids(madrid.id, "conflict") == [1]
        assert ids(barcelona.id, "conflict") == [1]


def test_area_is_the_polygon_not_its_box(engine: Engine) -> None:
    with engine.begin() as conn:
        _lead(conn, 1, 10.0, lat=0.5, lon=0.2)  # inside the triangle
        _lead(conn, 2, 20.0, lat=0.9, lon=0.9)  # in its box, outside the triangle
        _lead(conn, 3, 30.0, lat=0.0, lon=0.5)  # on its edge
        _lead(conn, 4, 40.0, lat=None, lon=None)
    triangle = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    with engine.connect() as conn:
        rows = select_leads(
            conn, Selection(**{**WEEK.__dict__, "area": triangle}), visible=None, now=NOW
        )
    assert _ids(rows) == [3, 1]
    # A self-crossing drawing (a bow tie) still selects what it encloses.
    bow = ((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0))
    with engine.connect() as conn:
        every = select_leads(conn, WEEK, visible=None, now=NOW)
    assert _ids(in_area(every, bow)) == [2, 1]  # 2 on an edge, 1 in the left lobe
    assert in_area([], triangle) == []


def test_days_are_utc_days_both_ends_included(engine: Engine) -> None:
    edge = datetime(2026, 11, 15, 23, 59, 59, 999999, tzinfo=UTC)
    with engine.begin() as conn:
        _lead(conn, 1, 10.0, first=edge, last=edge)
        _lead(conn, 2, 20.0, first=edge + timedelta(microseconds=1), last=NOW)
        _lead(
            conn,
            3,
            30.0,
            first=datetime(2026, 11, 1, tzinfo=UTC),
            last=datetime(2026, 11, 9, tzinfo=UTC),
        )
        _lead(
            conn,
            4,
            40.0,
            first=datetime(2026, 11, 1, tzinfo=UTC),
            last=datetime(2026, 11, 8, 23, 59, 59, 999999, tzinfo=UTC),
        )
    with engine.connect() as conn:
        assert _ids(select_leads(conn, WEEK, visible=None, now=NOW)) == [3, 1]


def test_lookups_the_web_reads_leads_by(engine: Engine) -> None:
    with engine.connect() as conn:
        assert latest_activity(conn) is None
        assert not lead_exists(conn, 1)
    with engine.begin() as conn:
        _lead(conn, 1, 50.0, last=datetime(2026, 11, 12, 8, tzinfo=UTC))
        _lead(conn, 2, 70.0, province=None, last=datetime(2026, 11, 13, 9, 30, tzinfo=UTC))
    with engine.connect() as conn:
        assert latest_activity(conn) == datetime(2026, 11, 13, 9, 30, tzinfo=UTC)
        assert lead_exists(conn, 1) and lead_exists(conn, 2) and not lead_exists(conn, 3)
        assert not lead_exists(conn, 1, lead.c.id != 1)
        assert lead_exists(conn, 2, lead.c.id != 1)
        assert (lead_country(conn, 1), lead_country(conn, 2), lead_country(conn, 3)) == (
            "ES",
            None,
            None,
        )


def test_several_provinces_and_the_one_province(engine: Engine) -> None:
    with engine.begin() as conn:
        _lead(conn, 1, 10.0, province="28")
        _lead(conn, 2, 20.0, province="08", lat=41.4, lon=2.2)
        _lead(conn, 3, 30.0, province="41", lat=37.4, lon=-6.0)
        _lead(conn, 4, 40.0, province=None, lat=None, lon=None)

    def ids(*codes: str) -> list[int]:
        with engine.connect() as conn:
            flt = Selection(**{**WEEK.__dict__, "provinces": codes})
            return _ids(select_leads(conn, flt, visible=None, now=NOW))

    assert ids() == [4, 3, 2, 1]
    assert ids("28") == [1]
    assert ids("28", "41") == [3, 1]
    assert ids("08", "28", "41") == [3, 2, 1]
    assert Selection(**{**WEEK.__dict__, "provinces": ("28",)}).province == "28"
    assert Selection(**{**WEEK.__dict__, "provinces": ("28", "41")}).province is None


def test_sort_keys_order_the_selection(engine: Engine) -> None:
    with engine.begin() as conn:
        for lead_id, score, day, province in (
            (1, 50.0, 12, "41"),
            (2, 70.0, 10, "08"),
            (3, 60.0, 14, "28"),
            (4, 60.0, 11, "28"),
        ):
            _lead(
                conn,
                lead_id,
                score,
                province=province,
                first=datetime(2026, 11, 9, tzinfo=UTC),
                last=datetime(2026, 11, day, tzinfo=UTC),
            )
        # What place sorts by: the names.
        conn.execute(
            lead.update().values(
                province_name=case(
                    {"41": "Sevilla", "08": "Barcelona", "28": "Madrid"},
                    value=lead.c.province_code,
                )
            )
        )

    def order(sort: str) -> list[int]:
        with engine.connect() as conn:
            flt = Selection(**{**WEEK.__dict__, "sort": sort})
            return _ids(select_leads(conn, flt, visible=None, now=NOW))

    assert order("-score") == [2, 3, 4, 1]  # ties by id
    assert order("score") == [1, 3, 4, 2]
    assert order("-last_seen") == [3, 1, 4, 2]
    assert order("last_seen") == [2, 4, 1, 3]
    assert order("place") == [2, 3, 4, 1]
    assert order("-id") == [4, 3, 2, 1]
    assert order("known_files") == sorted([1, 2, 3, 4], key=lambda i: (i % 7, i))
    with pytest.raises(ValueError, match="sort must be one of"):
        order("password")


def test_urgent_counts_per_province(engine: Engine) -> None:
    with engine.begin() as conn:
        _lead(conn, 1, URGENT_SCORE, province="28")
        _lead(conn, 2, URGENT_SCORE - 0.1, province="28")
        _lead(conn, 3, 95.0, province="41")
        _lead(conn, 4, 90.0, province=None)
    override_score(engine, 2, 85.0, "confirmed by hand", "ana", now=NOW)
    with engine.connect() as conn:
        rows = select_leads(conn, WEEK, visible=None, now=NOW)
    # The score in force counts (2 is overridden up); no province, no shading.
    assert urgent_counts(rows) == {"28": 2, "41": 1}


def test_urgent_counts_per_municipality(engine: Engine) -> None:
    with engine.begin() as conn:
        for lead_id, score, town in (
            (1, URGENT_SCORE, "28079"),
            (2, URGENT_SCORE - 0.1, "28079"),
            (3, 95.0, "28079"),
            (4, 90.0, "41091"),
            (5, 90.0, None),
        ):
            _lead(conn, lead_id, score)
            conn.execute(lead.update().where(lead.c.id == lead_id).values(municipality_code=town))
    override_score(engine, 2, 85.0, "confirmed by hand", "ana", now=NOW)
    with engine.connect() as conn:
        rows = select_leads(conn, WEEK, visible=None, now=NOW)
    assert urgent_municipality_counts(rows) == {"28079": 3, "41091": 1}
    # The unit's threshold, not the default.
    assert urgent_municipality_counts(rows, 92.0) == {"28079": 1}
