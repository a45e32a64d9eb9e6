"""The lab's own location database: lab peers placed in real Spanish towns.

Loopback addresses are in no real location database, so `atalaya lab up`
writes a small MaxMind-format file (`geo.mmdb` in the lab folder, named in
the manifest) with a GeoIP2-City-style record and an ASN for every host of
the lab's /24. Places are real municipalities (points inside them, with
their INE codes, so tests can check jurisdiction) and a few towns abroad for
the referral list; the ISPs and AS numbers (private-use range) are made up.
Point enrichment at it: `atalaya enrich --city-db lab-run/geo.mmdb --asn-db lab-run/geo.mmdb`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from atalaya.errors import AtalayaError

DATABASE_TYPE = "Atalaya-Lab-City-ASN"
ACCURACY_KM = 5


@dataclass(frozen=True)
class LabPlace:
    country: str
    country_name: str
    region: str
    city: str
    latitude: float
    longitude: float
    time_zone: str
    municipality_code: str | None = None  # INE, for places in Spain


@dataclass(frozen=True)
class LabIsp:
    asn: int  # RFC 6996 private-use AS numbers: no real network is named
    name: str


PLACES = (
    LabPlace("ES", "Spain", "Madrid", "Madrid", 40.4168, -3.7038, "Europe/Madrid", "28079"),
    LabPlace("ES", "Spain", "Catalonia", "Barcelona", 41.3851, 2.1734, "Europe/Madrid", "08019"),
    LabPlace("ES", "Spain", "Valencia", "València", 39.4699, -0.3763, "Europe/Madrid", "46250"),
    LabPlace("ES", "Spain", "Andalusia", "Sevilla", 37.3891, -5.9845, "Europe/Madrid", "41091"),
    LabPlace("ES", "Spain", "Aragon", "Zaragoza", 41.6488, -0.8891, "Europe/Madrid", "50297"),
    LabPlace("ES", "Spain", "Andalusia", "Málaga", 36.7213, -4.4214, "Europe/Madrid", "29067"),
    LabPlace("ES", "Spain", "Basque Country", "Bilbao", 43.2630, -2.9350, "Europe/Madrid", "48020"),
    LabPlace("ES", "Spain", "Galicia", "A Coruña", 43.3623, -8.4115, "Europe/Madrid", "15030"),
    LabPlace(
        "ES",
        "Spain",
        "Canary Islands",
        "Las Palmas de Gran Canaria",
        28.1235,
        -15.4363,
        "Atlantic/Canary",
        "35016",
    ),
    LabPlace("ES", "Spain", "Balearic Islands", "Palma", 39.5696, 2.6502, "Europe/Madrid", "07040"),
    LabPlace("PT", "Portugal", "Lisbon", "Lisbon", 38.7223, -9.1393, "Europe/Lisbon"),
    LabPlace(
        "ES", "Spain", "Castile and León", "Valladolid", 41.6523, -4.7245, "Europe/Madrid", "47186"
    ),
    LabPlace("ES", "Spain", "Murcia", "Murcia", 37.9922, -1.1307, "Europe/Madrid", "30030"),
    LabPlace("ES", "Spain", "Ceuta", "Ceuta", 35.8894, -5.3213, "Africa/Ceuta", "51001"),
    LabPlace("FR", "France", "Occitanie", "Toulouse", 43.6047, 1.4442, "Europe/Paris"),
    LabPlace("ES", "Spain", "Navarre", "Pamplona", 42.8125, -1.6458, "Europe/Madrid", "31201"),
)

ISPS = (
    LabIsp(64512, "Red Lab Ibérica (made up)"),
    LabIsp(64513, "Fibra Ficticia S.L. (made up)"),
    LabIsp(64514, "Móvil Inventado (made up)"),
    LabIsp(64515, "Nube de Pruebas Hosting (made up)"),
)


def place_of(host: int) -> LabPlace:
    """Where the lab puts host N of its /24: seeders (.10+) from Madrid on, through
    the Spanish towns; leechers (.50+) from Lisbon on, so the default lab has a
    referral abroad."""
    index = host - 10 if host < 50 else host - 40
    return PLACES[index % len(PLACES)]


def isp_of(host: int) -> LabIsp:
    return ISPS[host % len(ISPS)]


def record_of(host: int) -> dict[str, Any]:
    """The GeoIP2-City-style record (with ASN fields) of host N."""
    place, isp = place_of(host), isp_of(host)
    return {
        "country": {"iso_code": place.country, "names": {"en": place.country_name}},
        "subdivisions": [{"names": {"en": place.region}}],
        "city": {"names": {"en": place.city}},
        "location": {
            "latitude": place.latitude,
            "longitude": place.longitude,
            "accuracy_radius": ACCURACY_KM,
            "time_zone": place.time_zone,
        },
        "autonomous_system_number": isp.asn,
        "autonomous_system_organization": isp.name,
        "isp": isp.name,
    }


def write_lab_geo_db(path: Path, ip_prefix: str) -> Path:
    """Write the database for addresses `ip_prefix`.1-254 to `path` (atomically)."""
    parts = ip_prefix.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise AtalayaError(f"lab address prefix {ip_prefix!r} must look like 127.77.0")
    writer = MMDBWriter(
        ip_version=4,
        database_type=DATABASE_TYPE,
        languages=["en"],
        description="Atalaya lab: made-up ISPs in real towns, for loopback peers",
        int_type="u32",
    )
    for host in range(1, 255):
        writer.insert_network(IPSet([f"{ip_prefix}.{host}/32"]), record_of(host))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    writer.to_db_file(str(partial))
    os.replace(partial, path)
    return path
