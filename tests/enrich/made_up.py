"""A made-up Spain and world on the equator, as TopoJSON atlases (see test_atlas)."""

from __future__ import annotations

from atalaya.enrich.atlas import Jurisdictions, country_areas, municipality_areas, province_areas
from atalaya.enrich.topojson import decode
from tests.enrich.topo import encode, square

# A made-up country on the equator (a degree is about 111 km): provinces 01
# and 02 share the edge y=1; 01001 and 01002 the edge x=1; 53001 is land held
# in common inside province 03; 54 plays Gibraltar.
MUNICIPALITIES = [
    ("01001", "Uno", [[square(0, 0, 1)]]),
    ("01002", "Dos", [[square(1, 0, 1)]]),
    ("02001", "Norte", [[square(0, 1, 1)]]),
    ("53001", "Comunidad de 03001", [[square(3, 0, 1)]]),
    ("03001", "Tres", [[square(4, 0, 1)]]),
    ("54001", "Roca", [[square(6, 0, 1)]]),
]
PROVINCES = [
    ("01", "Provincia Uno", [[[(0, 0), (2, 0), (2, 1), (0, 1), (0, 0)]]]),
    ("02", "Provincia Dos", [[square(0, 1, 1)]]),
    ("03", "Provincia Tres", [[[(3, 0), (5, 0), (5, 1), (3, 1), (3, 0)]]]),
    ("54", "Roca", [[square(6, 0, 1)]]),
]
COUNTRIES = [
    ("620", "Portugal", [[[(-3, 0), (-1, 0), (-1, 2), (-3, 2), (-3, 0)]]]),
    ("250", "France", [[square(0, 3, 2)]]),
    ("276", "Germany", [[square(2, 3, 1)]]),
    # The world atlas's own Spain is ignored: es-atlas decides what is Spain.
    ("724", "Spain", [[[(0, 0), (8, 0), (8, 2.5), (0, 2.5), (0, 0)]]]),
    ("999", "Nowhere", [[square(20, 20, 1)]]),  # no ISO code: left out
]


def made_up_jurisdictions(coast_km: float = 5.0) -> Jurisdictions:
    spain = decode(encode({"municipalities": MUNICIPALITIES, "provinces": PROVINCES}))
    world = decode(encode({"countries": COUNTRIES}))
    return Jurisdictions(
        municipality_areas(spain), province_areas(spain), country_areas(world), coast_km=coast_km
    )
