"""Filters from query strings: defaults, every parameter, round trips, and
nothing but FilterError for any input."""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import MultiDict

from atalaya.hashsets.categories import Category
from atalaya.leads import SORT_KEYS
from atalaya.observe.registry import names as network_names
from atalaya.web.filters import (
    MAX_VERTICES,
    STATUSES,
    FilterError,
    Filters,
    iso_week,
    parse_filters,
)

TODAY = date(2026, 11, 20)
NAMES = (
    "from",
    "to",
    "week",
    "province",
    "municipality",
    "area",
    "network",
    "category",
    "min_score",
    "status",
    "sort",
    "page",
)


def test_the_default_is_the_week_up_to_today() -> None:
    flt = parse_filters({}, today=TODAY)
    assert (flt.since, flt.until) == (date(2026, 11, 14), TODAY)
    assert flt.start == datetime(2026, 11, 14, tzinfo=UTC)
    assert flt.end == datetime(2026, 11, 21, tzinfo=UTC)
    assert flt.days == 7
    assert flt.params() == {"from": "2026-11-14", "to": "2026-11-20"}


def test_a_week_is_monday_to_sunday() -> None:
    assert iso_week("2026-W47") == (date(2026, 11, 16), date(2026, 11, 22))
    assert iso_week("2026-W01") == (date(2025, 12, 29), date(2026, 1, 4))
    assert iso_week("2026-W53") == (date(2026, 12, 28), date(2027, 1, 3))
    flt = parse_filters({"week": "2026-W47", "from": "2020-01-01"}, today=TODAY)
    assert (flt.since, flt.until) == (date(2026, 11, 16), date(2026, 11, 22))
    with pytest.raises(FilterError, match="does not exist"):
        iso_week("2025-W53")
    with pytest.raises(FilterError, match="ISO week"):
        iso_week("2026-47")


def test_every_parameter() -> None:
    flt = parse_filters(
        {
            "from": "2026-11-01",
            "to": "2026-11-15",
            "province": "8",
            "municipality": "08019",
            "area": "-3.8 40.3, -3.6 40.3,-3.6 40.5,-3.8 40.3",
            "network": "bittorrent",
            "category": "ABUSE",
            "min_score": "42.5",
            "status": "conflict",
            "page": "3",
        },
        today=TODAY,
    )
    assert flt.province == "08" and flt.municipality == "08019"
    assert flt.area == ((-3.8, 40.3), (-3.6, 40.3), (-3.6, 40.5))  # closing vertex dropped
    assert flt.bbox() == (-3.8, 40.3, -3.6, 40.5)
    assert flt.category is Category.ABUSE and flt.min_score == 42.5
    assert (flt.network, flt.status, flt.page) == ("bittorrent", "conflict", 3)
    assert parse_filters(flt.params(), today=TODAY) == flt
    assert "page" not in flt.params(page=False)


def test_a_municipality_of_another_province_is_dropped() -> None:
    flt = parse_filters({"province": "28", "municipality": "08019"}, today=TODAY)
    assert (flt.province, flt.municipality) == ("28", None)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-11-21", "to": "2026-11-20"}, "after"),
        ({"from": "2000-01-01", "to": "2026-11-20"}, "longer"),
        ({"to": "2026/11/20"}, "not a date"),
        ({"province": "Madrid"}, "two-digit"),
        ({"province": "280"}, "two-digit"),
        ({"municipality": "28079x"}, "five-digit"),
        ({"area": "1 2,3 4"}, "three vertices"),
        ({"area": "1 2,3 4,x 5"}, "numbers"),
        ({"area": "1 2,3 4,500 5"}, "longitude"),
        ({"area": "1 2,3 4,nan 5"}, "finite"),
        ({"area": ",".join(["1 2"] * (MAX_VERTICES + 1))}, "vertices"),
        ({"network": "gnutella"}, "network"),
        ({"category": "worst"}, "category"),
        ({"min_score": "inf"}, "finite"),
        ({"min_score": "lots"}, "number"),
        ({"status": "closed"}, "status"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "9" * 50}, "page"),
        ({"province": "2" * 10_000}, "too long"),
    ],
)
def test_bad_values_say_what_is_wrong(params: dict[str, str], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filters(params, today=TODAY)


@given(st.dictionaries(st.sampled_from(NAMES), st.text(max_size=60), max_size=len(NAMES)))
def test_any_query_gives_filters_or_filter_error(params: dict[str, str]) -> None:
    try:
        flt = parse_filters(params, today=TODAY)
    except FilterError:
        return
    assert parse_filters(flt.params(), today=TODAY) == flt


coordinates = st.tuples(
    st.floats(-180, 180, allow_nan=False).map(lambda x: round(x, 6)),
    st.floats(-90, 90, allow_nan=False).map(lambda x: round(x, 6)),
)


@given(
    since=st.dates(date(2000, 1, 1), date(2030, 12, 31)),
    days=st.integers(0, 400),
    provinces=st.lists(st.integers(1, 52).map(lambda n: f"{n:02d}"), unique=True, max_size=5),
    area=st.none() | st.lists(coordinates, min_size=3, max_size=12, unique=True),
    network=st.none() | st.sampled_from(network_names()),
    category=st.none() | st.sampled_from(list(Category)),
    min_score=st.none() | st.integers(-100, 200).map(float),
    status=st.none() | st.sampled_from(STATUSES),
    sort=st.sampled_from(SORT_KEYS).flatmap(lambda k: st.sampled_from([k, f"-{k}"])),
    page=st.integers(1, 1000),
)
def test_filters_round_trip_through_the_url(
    since: date,
    days: int,
    provinces: list[str],
    area: list[tuple[float, float]] | None,
    network: str | None,
    category: Category | None,
    min_score: float | None,
    status: str | None,
    sort: str,
    page: int,
) -> None:
    if area is not None and area[0] == area[-1]:
        return
    flt = Filters(
        since=since,
        until=date.fromordinal(since.toordinal() + days),
        provinces=tuple(sorted(provinces)),
        area=tuple(area) if area else None,
        network=network,
        category=category,
        min_score=min_score,
        status=status,
        sort=sort,
        page=page,
    )
    # Repeated `province` parameters, as a URL has them.
    assert parse_filters(MultiDict(parse_qsl(flt.query())), today=TODAY) == flt
    # Joined by commas, as the audit log records them.
    assert parse_filters(flt.params(), today=TODAY) == flt


def test_several_provinces() -> None:
    flt = parse_filters(
        MultiDict([("province", "28"), ("province", "8"), ("province", "28,41")]), today=TODAY
    )
    assert flt.provinces == ("08", "28", "41")
    assert flt.province is None  # not one province: no single name, no municipalities
    assert flt.query().count("province=") == 3
    one = parse_filters({"province": "28", "municipality": "28079"}, today=TODAY)
    assert one.province == "28" and one.municipality == "28079"
    # A municipality beside several provinces is dropped: they win.
    two = parse_filters(
        MultiDict([("province", "28"), ("province", "08"), ("municipality", "28079")]), today=TODAY
    )
    assert two.municipality is None
    with pytest.raises(FilterError, match="province"):
        parse_filters(MultiDict([("province", "28"), ("province", "x")]), today=TODAY)
    with pytest.raises(FilterError, match="more than"):
        parse_filters(MultiDict([("province", "28")] * 61), today=TODAY)


def test_sort_keys_are_a_whitelist() -> None:
    assert parse_filters({}, today=TODAY).sort == "-score"
    assert parse_filters({"sort": "last_seen"}, today=TODAY).sort == "last_seen"
    assert "sort" not in parse_filters({}, today=TODAY).params()
    for bad in ("score; drop table lead", "--score", "password_hash", "-"):
        with pytest.raises(FilterError, match="sort must be one of"):
            parse_filters({"sort": bad}, today=TODAY)
