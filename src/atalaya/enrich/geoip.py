"""Location and network databases: what each says about one IP address.

Reads MaxMind-format files with `maxminddb` (GeoIP2/GeoLite2 City, Country,
ISP, ASN, Enterprise; DB-IP's own files; ip-location-db's flat records) and
ip-location-db's ASN range CSV. Records are read field by field and a field
of the wrong type is ignored, so an odd database gives less, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, Protocol

import maxminddb

from atalaya.enrich.asn_csv import AsnCsvError, AsnTable, parse_asn_text
from atalaya.errors import AtalayaError

IPAddress = IPv4Address | IPv6Address
_MAX_TEXT = 300


@dataclass(frozen=True)
class GeoRecord:
    """What one database says about one address; None where it says nothing."""

    country: str | None = None
    region: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    accuracy_km: float | None = None
    time_zone: str | None = None
    asn: int | None = None
    isp: str | None = None
    org: str | None = None

    @property
    def has_location(self) -> bool:
        return self.country is not None or self.latitude is not None

    @property
    def has_network(self) -> bool:
        return self.asn is not None or self.isp is not None or self.org is not None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value[:_MAX_TEXT] if value else None
    return None


def _names(value: Any) -> str | None:
    """GeoIP2 `{"names": {"en": …}}`: English, else any language."""
    if not isinstance(value, dict):
        return None
    names = value.get("names")
    if isinstance(names, dict):
        for key in ("en", *sorted(k for k in names if isinstance(k, str))):
            text = _text(names.get(key))
            if text is not None:
                return text
    return None


def _country_code(value: Any) -> str | None:
    text = _text(value)
    if text is not None and len(text) == 2 and text.isascii() and text.isalpha():
        return text.upper()
    return None


def _coordinate(value: Any, limit: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and -limit <= number <= limit else None


def _count(value: Any, limit: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= limit else None


_EMPTY: dict[str, Any] = {}
_NETWORK_KEYS = frozenset(
    {"autonomous_system_number", "autonomous_system_organization", "isp", "organization"}
)
_MAX_ASN = 2**32 - 1


def _network(record: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    """(asn, isp, org) from top-level ISP/ASN fields or GeoIP2 `traits`."""
    traits = record.get("traits")
    traits = traits if isinstance(traits, dict) else _EMPTY
    asn = _count(record.get("autonomous_system_number"), _MAX_ASN)
    if asn is None:
        asn = _count(traits.get("autonomous_system_number"), _MAX_ASN)
    isp = _text(record.get("isp")) or _text(traits.get("isp"))
    org = _text(record.get("organization")) or _text(traits.get("organization"))
    as_org = _text(record.get("autonomous_system_organization")) or _text(
        traits.get("autonomous_system_organization")
    )
    org = org or as_org
    return asn, isp or org, org


def parse_record(record: Any) -> GeoRecord:
    """The fields of a MaxMind-format record that Atalaya uses, whatever its layout."""
    if not isinstance(record, dict):
        return GeoRecord()
    get = record.get
    location = get("location")
    location = location if isinstance(location, dict) else _EMPTY
    country = None
    for key in ("country", "registered_country"):
        value = get(key)
        if isinstance(value, dict):
            country = _country_code(value.get("iso_code"))
            if country is not None:
                break
    if country is None:
        country = _country_code(get("country_code"))
    subdivisions = get("subdivisions")
    region = None
    if isinstance(subdivisions, list) and subdivisions:
        region = _names(subdivisions[0])
    region = region or _text(get("state1"))
    raw_city = get("city")
    city = _names(raw_city) if isinstance(raw_city, dict) else _text(raw_city)
    lat = _coordinate(location.get("latitude", get("latitude")), 90.0)
    lon = _coordinate(location.get("longitude", get("longitude")), 180.0)
    if lat is None or lon is None:
        lat = lon = None
    radius = _count(location.get("accuracy_radius"), 40_075)
    time_zone = _text(location.get("time_zone")) or _text(get("timezone"))
    asn = isp = org = None
    if "traits" in record or not _NETWORK_KEYS.isdisjoint(record):
        asn, isp, org = _network(record)
    return GeoRecord(
        country,
        region,
        city,
        lat,
        lon,
        float(radius) if radius is not None else None,
        time_zone[:64] if time_zone else None,
        asn,
        isp,
        org,
    )


class GeoSource(Protocol):
    """A database that may know something about an address."""

    def lookup(self, ip: IPAddress) -> GeoRecord | None: ...

    def describe(self) -> dict[str, Any]:
        """Which data this is: type, build, version (what a result records)."""
        ...

    def close(self) -> None: ...


def npm_package(path: Path) -> str | None:
    """`name@version` of the npm package a data file came in, if any."""
    for folder in list(path.parents)[:3]:
        manifest = folder / "package.json"
        if manifest.is_file():
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            if isinstance(data, dict) and "name" in data and "version" in data:
                return f"{data['name']}@{data['version']}"
            return None
    return None


class MmdbSource:
    """A MaxMind-format database file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.reader = maxminddb.open_database(str(path))
        except FileNotFoundError:
            raise AtalayaError(
                f"location database {path} not found: run scripts/setup.sh or set "
                "ATALAYA_GEO_CITY_DB / ATALAYA_GEO_ASN_DB"
            ) from None
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise AtalayaError(f"{path} is not a MaxMind-format database: {exc}") from None
        meta = self.reader.metadata()
        self.ip_version = int(meta.ip_version)
        self._description = {
            "kind": "mmdb",
            "file": path.name,
            "database_type": str(meta.database_type),
            "build_epoch": int(meta.build_epoch),
            "ip_version": self.ip_version,
            "node_count": int(meta.node_count),
            "size": path.stat().st_size,
            "package": npm_package(path),
        }

    def lookup(self, ip: IPAddress) -> GeoRecord | None:
        if ip.version == 6 and self.ip_version == 4:
            return None
        try:
            record = self.reader.get(ip)
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None
        return parse_record(record) if record is not None else None

    def describe(self) -> dict[str, Any]:
        return dict(self._description)

    def close(self) -> None:
        self.reader.close()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class AsnCsvSource:
    """An ip-location-db ASN CSV (`start,end,asn,organisation`), held in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.table: AsnTable = parse_asn_text(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AtalayaError(
                f"ASN table {path} not found: run scripts/setup.sh or set ATALAYA_GEO_ASN_DB"
            ) from None
        except (OSError, UnicodeDecodeError, AsnCsvError) as exc:
            raise AtalayaError(f"cannot read ASN table {path}: {exc}") from None
        self._description = {
            "kind": "asn-csv",
            "file": path.name,
            "sha256": file_sha256(path),
            "ranges": len(self.table),
            "package": npm_package(path),
        }

    def lookup(self, ip: IPAddress) -> GeoRecord | None:
        found = self.table.lookup(ip)
        if found is None:
            return None
        asn, org = found
        return GeoRecord(None, None, None, None, None, None, None, asn, org, org)

    def describe(self) -> dict[str, Any]:
        return dict(self._description)

    def close(self) -> None:
        pass


def open_source(path: Path) -> GeoSource:
    """A source for `path`: a CSV is an ASN table, anything else a MaxMind-format file."""
    if path.suffix.lower() == ".csv":
        return AsnCsvSource(path)
    return MmdbSource(path)


def first_location(sources: list[GeoSource], ip: IPAddress) -> GeoRecord | None:
    for source in sources:
        record = source.lookup(ip)
        if record is not None and record.has_location:
            return record
    return None


def first_network(sources: list[GeoSource], ip: IPAddress) -> GeoRecord | None:
    for source in sources:
        record = source.lookup(ip)
        if record is not None and record.has_network:
            return record
    return None


def merged(location: GeoRecord | None, network: GeoRecord | None) -> GeoRecord | None:
    """Location fields from `location`, network fields from `network` when it has them."""
    if location is None:
        return network
    if network is None or network is location:
        return location
    return GeoRecord(
        location.country,
        location.region,
        location.city,
        location.latitude,
        location.longitude,
        location.accuracy_km,
        location.time_zone,
        network.asn,
        network.isp,
        network.org,
    )
