"""The lab's own location database: lab peers placed in real Spanish towns.

Lab addresses are in no real location database, so `atalaya lab up` writes a
small MaxMind-format file (`geo.mmdb` in the lab folder, named in the
manifest) with a GeoIP2-City-style record and an ASN for every host of the
lab's /24. Places are real municipalities (points inside them, with their
INE codes, so tests can check jurisdiction) and a few towns abroad for the
referral list; the ISPs and AS numbers (private-use range) are made up.

Labs in network namespaces put their peers on RFC 6598 shared space
(100.64.0.0/10) and on IPv6 unique local addresses (RFC 4193, fd00::/8):
the file is an IPv6 one (IPv4 inside it at ::/96, as GeoLite2 and DB-IP
files hold it) that places host N of each of the lab's subnets as host N of
the /24, and every other address of those two ranges by its /16, so a peer
anywhere in them is somewhere made up.
Point enrichment at it: `atalaya enrich --city-db lab-run/geo.mmdb --asn-db lab-run/geo.mmdb`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from atalaya.errors import AtalayaError

DATABASE_TYPE = "Atalaya-Lab-City-ASN"
ACCURACY_KM = 5
# Where lab peers may be: loopback, and the namespace labs' ranges.
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")
UNIQUE_LOCAL = ipaddress.ip_network("fd00::/8")
LAB_RANGES = (LOOPBACK, SHARED_SPACE, UNIQUE_LOCAL)
HOSTS = range(1, 255)


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
    return _record(place_of(host), isp_of(host))


def block_record(block: int) -> dict[str, Any]:
    """The record of the Nth /16 of a namespace range (outside the lab's subnets)."""
    return _record(PLACES[block % len(PLACES)], ISPS[block % len(ISPS)])


def _record(place: LabPlace, isp: LabIsp) -> dict[str, Any]:
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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def lab_subnet(text: str) -> Network:
    """A subnet the lab puts peers on: inside 127.0.0.0/8, 100.64.0.0/10 or
    fd00::/8, with room for hosts 1 to 254 (an IPv4 /24, an IPv6 /120 or
    wider). AtalayaError otherwise: the lab never places real addresses."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        raise AtalayaError(
            f"lab subnet {text[:60]!r} is not a network such as fd00:77::/64"
        ) from None
    inside = any(
        network.version == lab.version and network.subnet_of(lab)  # type: ignore[arg-type]
        for lab in LAB_RANGES
    )
    if not inside or network.num_addresses < 256:
        raise AtalayaError(
            f"lab subnet {network} must be a /24 or wider (IPv6: /120 or wider) inside "
            "127.0.0.0/8, 100.64.0.0/10 or fd00::/8"
        )
    return network


def _blocks(network: Network) -> Iterable[tuple[int, str]]:
    """(index, text) of the /16s of a namespace range."""
    step = 1 << (network.max_prefixlen - 16)
    first = int(network.network_address)
    for index in range(network.num_addresses // step):
        address = ipaddress.ip_address(first + index * step)
        yield index, f"{address}/16"


def write_lab_geo_db(path: Path, ip_prefix: str, *, subnets: Iterable[str] = ()) -> Path:
    """Write the database to `path` (atomically): host N (1-254) of the /24
    `ip_prefix` (such as 127.77.0) and of each of `subnets` (such as
    100.64.77.0/24 or fd00:77::/64; see `lab_subnet`) at `place_of(N)` with
    `isp_of(N)`, and the rest of 100.64.0.0/10 and fd00::/8 by /16."""
    parts = ip_prefix.split(".")
    if len(parts) != 3 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise AtalayaError(f"lab address prefix {ip_prefix!r} must look like 127.77.0")
    hosts = [ipaddress.ip_network(f"{ip_prefix}.0/24"), *(lab_subnet(s) for s in subnets)]
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=DATABASE_TYPE,
        languages=["en"],
        description="Atalaya lab: made-up ISPs in real towns, for loopback and namespace peers",
        int_type="u32",
    )
    # Wide blocks first: a later, narrower network is carved out of them.
    for wide in (SHARED_SPACE, UNIQUE_LOCAL):
        for index, block in _blocks(wide):
            writer.insert_network(IPSet([block]), block_record(index))
    for network in hosts:
        first = int(network.network_address)
        for host in HOSTS:
            address = ipaddress.ip_address(first + host)
            writer.insert_network(IPSet([f"{address}/{network.max_prefixlen}"]), record_of(host))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    writer.to_db_file(str(partial))
    os.replace(partial, path)
    return path
