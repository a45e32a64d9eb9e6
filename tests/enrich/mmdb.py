"""Made-up MaxMind-format databases for tests, written with mmdb-writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def write_mmdb(
    path: Path,
    records: dict[str, dict[str, Any]],
    *,
    ip_version: int = 6,
    database_type: str = "Test-City-ISP",
) -> Path:
    """`records`: CIDR -> record. IPv4 blocks go into an IPv6 file as ::/96."""
    writer = MMDBWriter(
        ip_version=ip_version,
        database_type=database_type,
        languages=["en"],
        description="made-up test data",
        ipv4_compatible=ip_version == 6,
        int_type="u32",
    )
    for cidr, record in records.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


def city_record(
    country: str,
    lat: float,
    lon: float,
    *,
    city: str = "",
    region: str = "",
    radius: int | None = 10,
    time_zone: str | None = None,
    asn: int | None = None,
    isp: str | None = None,
) -> dict[str, Any]:
    """A GeoIP2-City-style record (with ISP fields when given)."""
    location: dict[str, Any] = {"latitude": lat, "longitude": lon}
    if radius is not None:
        location["accuracy_radius"] = radius
    if time_zone is not None:
        location["time_zone"] = time_zone
    record: dict[str, Any] = {
        "country": {"iso_code": country, "names": {"en": country}},
        "location": location,
    }
    if city:
        record["city"] = {"names": {"en": city, "es": city + " (es)"}}
    if region:
        record["subdivisions"] = [{"iso_code": "XX", "names": {"en": region}}]
    if asn is not None:
        record["autonomous_system_number"] = asn
    if isp is not None:
        record["isp"] = isp
        record["autonomous_system_organization"] = isp
    return record
