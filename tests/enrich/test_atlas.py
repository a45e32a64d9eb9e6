from __future__ import annotations

from pathlib import Path

import pytest

from atalaya.enrich.atlas import (
    AtlasError,
    Jurisdictions,
    Place,
    country_areas,
    haversine_km,
    municipality_areas,
    province_areas,
)
from atalaya.enrich.record import (
    FLAG_COUNTRY_BORDER,
    FLAG_MUNICIPALITY_BORDER,
    FLAG_OFFSHORE,
    FLAG_PROVINCE_BORDER,
    FLAG_UNPLACED,
)
from atalaya.enrich.topojson import decode
from tests.enrich.borders import border_point
from tests.enrich.made_up import COUNTRIES, MUNICIPALITIES, PROVINCES, made_up_jurisdictions
from tests.enrich.topo import encode, square


@pytest.fixture(scope="module")
def made_up() -> Jurisdictions:
    return made_up_jurisdictions()


def spanish(muni: str, province: str, *flags: str) -> Place:
    names = {m[0]: m[1] for m in MUNICIPALITIES}
    provinces = {p[0]: p[1] for p in PROVINCES}
    return Place(
        "ES",
        province_code=province,
        province_name=provinces[province],
        municipality_code=muni,
        municipality_name=names[muni],
        flags=frozenset(flags),
    )


KM = 1 / 111.195  # degrees of latitude in one km


@pytest.mark.parametrize(
    ("lon", "lat", "want"),
    [
        (0.5, 0.5, spanish("01001", "01")),
        (1.5, 0.5, spanish("01002", "01")),
        (0.5, 1.5, spanish("02001", "02")),
        # On the edge between two municipalities of one province.
        (1.0, 0.5, spanish("01001", "01", FLAG_MUNICIPALITY_BORDER)),
        # On a province border: the lowest code, flagged.
        (0.5, 1.0, spanish("01001", "01", FLAG_PROVINCE_BORDER)),
        (1.0, 1.0, spanish("01001", "01", FLAG_PROVINCE_BORDER)),
        # Just either side of the province border: no doubt.
        (0.5, 1.0 - 0.1 * KM, spanish("01001", "01")),
        (0.5, 1.0 + 0.1 * KM, spanish("02001", "02")),
        # Land held in common: its province is the province polygon's; a
        # municipality proper on the same point wins.
        (3.5, 0.5, spanish("53001", "03")),
        (4.0, 0.5, spanish("03001", "03")),
        # Gibraltar's code in es-atlas is not Spain.
        (6.5, 0.5, Place("GI")),
        # Abroad, and on a border between two countries.
        (1.0, 3.5, Place("FR")),
        (-2.0, 1.0, Place("PT")),
        (2.0, 3.5, Place("DE", flags=frozenset({FLAG_COUNTRY_BORDER}))),
        # In the sea within 5 km of a coast: the nearest coast, flagged.
        (0.5, -2 * KM, spanish("01001", "01", FLAG_OFFSHORE)),
        (3.5, -4 * KM, spanish("53001", "03", FLAG_OFFSHORE)),
        (-1 + 2 * KM, 0.5, Place("PT", flags=frozenset({FLAG_OFFSHORE}))),
        (-3 * KM, 0.5, spanish("01001", "01", FLAG_OFFSHORE)),
        # Farther out: no jurisdiction.
        (0.5, -6 * KM, Place(None, flags=frozenset({FLAG_UNPLACED}))),
        (-0.5, 0.5, Place(None, flags=frozenset({FLAG_UNPLACED}))),
        (20.5, 20.5, Place(None, flags=frozenset({FLAG_UNPLACED}))),
    ],
)
def test_made_up_points_get_their_jurisdiction(
    made_up: Jurisdictions, lon: float, lat: float, want: Place
) -> None:
    assert made_up.locate(lon, lat) == want


def test_locate_many_keeps_order_and_matches_locate(made_up: Jurisdictions) -> None:
    points = [(0.5, 0.5), (20.5, 20.5), (1.0, 3.5), (0.5, 1.5), (0.5, -2 * KM)]
    assert made_up.locate_many(points) == [made_up.locate(*p) for p in points]
    assert made_up.locate_many([]) == []


def test_coast_distance_is_configurable() -> None:
    spain = decode(encode({"municipalities": MUNICIPALITIES, "provinces": PROVINCES}))
    world = decode(encode({"countries": COUNTRIES}))
    strict = Jurisdictions(
        municipality_areas(spain), province_areas(spain), country_areas(world), coast_km=0
    )
    assert strict.locate(0.5, -2 * KM).flags == {FLAG_UNPLACED}


def test_haversine_matches_known_distances() -> None:
    assert haversine_km(0, 0, 0, 1) == pytest.approx(111.195, rel=1e-4)
    # Madrid to Barcelona, about 505 km.
    assert haversine_km(-3.7038, 40.4168, 2.1734, 41.3851) == pytest.approx(505, abs=3)


def test_atlases_without_what_jurisdiction_needs_are_refused() -> None:
    topo = decode(encode({"countries": COUNTRIES}))
    with pytest.raises(AtlasError, match="municipalities"):
        municipality_areas(topo)
    with pytest.raises(AtlasError, match="provinces"):
        province_areas(topo)
    bad = decode(encode({"municipalities": [("1", "x", [[square(0, 0, 1)]])]}))
    with pytest.raises(AtlasError, match="INE"):
        municipality_areas(bad)
    nowhere = decode(encode({"countries": [("999", "Nowhere", [[square(0, 0, 1)]])]}))
    with pytest.raises(AtlasError, match="ISO"):
        country_areas(nowhere)


# -- the real atlases (es-atlas, world-atlas) -----------------------------------------


@pytest.mark.parametrize(
    ("lon", "lat", "municipality", "province"),
    [
        (-3.7038, 40.4168, "28079", "28"),  # Madrid, Puerta del Sol
        (2.1734, 41.3851, "08019", "08"),  # Barcelona
        (-0.3763, 39.4699, "46250", "46"),  # València
        (-15.4363, 28.1235, "35016", "35"),  # Las Palmas de Gran Canaria
        (2.6502, 39.5696, "07040", "07"),  # Palma
        (-5.3213, 35.8894, "51001", "51"),  # Ceuta
        (-2.9350, 43.2630, "48020", "48"),  # Bilbao
    ],
)
def test_real_places_fall_in_their_municipality(
    jurisdictions: Jurisdictions, lon: float, lat: float, municipality: str, province: str
) -> None:
    place = jurisdictions.locate(lon, lat)
    assert place.country == "ES"
    assert place.municipality_code == municipality
    assert place.province_code == province
    assert place.flags == frozenset()


@pytest.mark.parametrize(
    ("lon", "lat", "country"),
    [
        (-9.1393, 38.7223, "PT"),  # Lisbon
        (2.3522, 48.8566, "FR"),  # Paris
        (-5.3536, 36.1408, "GI"),  # Gibraltar
        (1.5218, 42.5063, "AD"),  # Andorra la Vella
        (-7.5898, 33.5731, "MA"),  # Casablanca
    ],
)
def test_real_places_abroad_get_their_country(
    jurisdictions: Jurisdictions, lon: float, lat: float, country: str
) -> None:
    place = jurisdictions.locate(lon, lat)
    assert place.country == country
    assert place.province_code is None
    assert place.municipality_code is None


def test_real_points_at_sea(jurisdictions: Jurisdictions) -> None:
    # 2 km off Málaga's beach: Málaga, flagged offshore.
    offshore = jurisdictions.locate(-4.4214, 36.7000)
    assert (offshore.country, offshore.municipality_code) == ("ES", "29067")
    assert offshore.flags == {FLAG_OFFSHORE}
    # The middle of the Bay of Biscay: nobody's.
    assert jurisdictions.locate(-5.0, 45.0) == Place(None, flags=frozenset({FLAG_UNPLACED}))


def test_a_real_point_on_a_province_border(geo_data: Path, jurisdictions: Jurisdictions) -> None:
    (lon, lat), (low, high), nx, ny = border_point(geo_data)
    place = jurisdictions.locate(lon, lat)
    assert FLAG_PROVINCE_BORDER in place.flags
    assert place.municipality_code == low  # the lowest code of the two
    assert place.province_code == low[:2]
    # 30 m either side of the border, across the middle of the next segment,
    # each municipality has the point to itself.
    step = 30 / 111_195
    mx, my = lon + ny * step / 2, lat - nx * step / 2  # a little along the arc
    sides = {
        jurisdictions.locate(mx + nx * step, my + ny * step).municipality_code,
        jurisdictions.locate(mx - nx * step, my - ny * step).municipality_code,
    }
    assert sides == {low, high}
