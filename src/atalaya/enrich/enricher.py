"""The enricher: location, network, jurisdiction, time zone and flags of addresses.

`Enricher.open(settings)` loads every configured source once; `enrich_many`
then answers batches of addresses. Places are cached by coordinates (city
databases give many addresses the same point), so a batch costs about one
database look-up per address plus one jurisdiction look-up per new point.
`data_version` digests what produced the results: each database's metadata,
each package version, each list's digest and the settings that matter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from atalaya.enrich.atlas import (
    AtlasError,
    Jurisdictions,
    Place,
    country_areas,
    municipality_areas,
    province_areas,
)
from atalaya.enrich.geoip import (
    GeoRecord,
    GeoSource,
    first_location,
    first_network,
    merged,
    npm_package,
    open_source,
)
from atalaya.enrich.ranges import (
    DEFAULT_RANGE_LISTS,
    FlagRules,
    RangeListError,
    default_range_list,
    parse_asn_list,
    parse_range_list,
)
from atalaya.enrich.record import (
    FLAG_COUNTRY_MISMATCH,
    FLAG_INVALID,
    FLAG_NO_COORDINATES,
    FLAG_NOT_FOUND,
    FLAG_RESERVED,
    Enrichment,
)
from atalaya.enrich.settings import EnrichSettings
from atalaya.enrich.timezones import PlaceTimeZones
from atalaya.enrich.topojson import TopoJSONError, decode
from atalaya.errors import AtalayaError

# Bump when a rule changes what the same data yields: results then carry a
# new data version and `atalaya enrich` recomputes them.
RULES_VERSION = 1
_PLACE_CACHE_LIMIT = 1_000_000

ATTRIBUTIONS = {
    "dbip": "IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0",
    "ip-location-db-asn": ("ASN data by RouteViews, NRO and DB-IP (CC BY 4.0), via ip-location-db"),
    "maxmind": (
        "This product includes GeoLite2 data created by MaxMind, "
        "available from https://www.maxmind.com"
    ),
    "lab": "Lab locations and ISPs are made up (Atalaya lab)",
    "es-atlas": "Boundaries of Spain: Instituto Geográfico Nacional (CNIG), via es-atlas",
    "world-atlas": "Country boundaries: Natural Earth, via world-atlas",
}


def attribution_for(sources: Mapping[str, Any]) -> str:
    """The attribution lines the data in `sources` asks for, joined by '; '."""
    keys: list[str] = []
    for source in [*sources.get("locations", []), *sources.get("networks", [])]:
        label = " ".join(
            str(source.get(k) or "") for k in ("package", "database_type", "file")
        ).lower()
        if "ip-location-db/asn" in label:
            keys.append("ip-location-db-asn")
        elif "dbip" in label or "db-ip" in label:
            keys.append("dbip")
        elif "geolite" in label or "geoip" in label:
            keys.append("maxmind")
        elif "atalaya-lab" in label:
            keys.append("lab")
    if sources.get("spain_atlas"):
        keys.append("es-atlas")
    if sources.get("world_atlas"):
        keys.append("world-atlas")
    return "; ".join(ATTRIBUTIONS[k] for k in dict.fromkeys(keys))


def data_version_of(sources: Mapping[str, Any]) -> str:
    canonical = json.dumps(sources, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise AtalayaError(
            f"{what} {path} not found: run scripts/setup.sh, or point {what} at a file"
        ) from None
    except OSError as exc:
        raise AtalayaError(f"cannot read {what} {path}: {exc}") from None


def _atlas_description(path: Path, data: bytes) -> dict[str, Any]:
    return {
        "kind": "topojson",
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "package": npm_package(path),
    }


# Decoding and indexing the atlases takes seconds: once per process and content.
_JURISDICTIONS: dict[tuple[str, str, float], Jurisdictions] = {}


def load_jurisdictions(
    spain_atlas: Path, world_atlas: Path, coast_km: float
) -> tuple[Jurisdictions, dict[str, Any], dict[str, Any]]:
    """Jurisdictions from the two atlas files, and their descriptions."""
    spain_bytes = _read(spain_atlas, "Spanish atlas")
    world_bytes = _read(world_atlas, "world atlas")
    spain_desc = _atlas_description(spain_atlas, spain_bytes)
    world_desc = _atlas_description(world_atlas, world_bytes)
    key = (spain_desc["sha256"], world_desc["sha256"], coast_km)
    cached = _JURISDICTIONS.get(key)
    if cached is not None:
        return cached, spain_desc, world_desc
    try:
        spain = decode(spain_bytes, only=("municipalities", "provinces"))
        world = decode(world_bytes, only=("countries",))
        jurisdictions = Jurisdictions(
            municipality_areas(spain),
            province_areas(spain),
            country_areas(world),
            coast_km=coast_km,
        )
    except (TopoJSONError, AtlasError) as exc:
        raise AtalayaError(f"cannot use the atlases {spain_atlas}, {world_atlas}: {exc}") from None
    _JURISDICTIONS.clear()  # one set of atlases at a time is what a process uses
    _JURISDICTIONS[key] = jurisdictions
    return jurisdictions, spain_desc, world_desc


def load_flag_rules(
    range_lists: Mapping[str, Path], asn_lists: Mapping[str, Path]
) -> tuple[FlagRules, dict[str, Any], dict[str, Any]]:
    """The shipped CGNAT list plus the configured lists, and their descriptions."""
    texts: dict[str, list[tuple[str, str]]] = {}
    for flag in DEFAULT_RANGE_LISTS:
        texts.setdefault(flag, []).append(("builtin", default_range_list(flag)))
    for flag, path in range_lists.items():
        texts.setdefault(flag, []).append((path.name, _read(path, "range list").decode()))
    ranges: dict[str, list[tuple[int, int, int]]] = {}
    range_desc: dict[str, Any] = {}
    asns: dict[str, set[int]] = {}
    asn_desc: dict[str, Any] = {}
    try:
        for flag, parts in texts.items():
            ranges[flag] = [r for _, text in parts for r in parse_range_list(text)]
            range_desc[flag] = [
                {"file": name, "sha256": hashlib.sha256(text.encode()).hexdigest()}
                for name, text in parts
            ]
        for flag, path in asn_lists.items():
            text = _read(path, "ASN list").decode()
            asns[flag] = parse_asn_list(text)
            asn_desc[flag] = {
                "file": path.name,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
        rules = FlagRules(ranges, asns)
    except (RangeListError, UnicodeDecodeError) as exc:
        raise AtalayaError(f"bad range or ASN list: {exc}") from None
    return rules, range_desc, asn_desc


class Enricher:
    """Enriches addresses; see the module docstring."""

    def __init__(
        self,
        *,
        locations: Sequence[GeoSource],
        networks: Sequence[GeoSource] = (),
        jurisdictions: Jurisdictions | None = None,
        flag_rules: FlagRules | None = None,
        time_zones: PlaceTimeZones | None = None,
        country: str = "ES",
        described: Mapping[str, Any] | None = None,
    ) -> None:
        """`described` adds to `sources` what the objects cannot say about
        themselves (atlas files, list digests, settings)."""
        self.locations = list(locations)
        self.networks = list(networks)
        self.jurisdictions = jurisdictions
        self.flag_rules = flag_rules or FlagRules({})
        self.time_zones = time_zones
        self.country = country
        self.sources: dict[str, Any] = {
            "rules_version": RULES_VERSION,
            "country": country,
            "locations": [s.describe() for s in self.locations],
            "networks": [s.describe() for s in self.networks],
            "time_zones": time_zones.describe() if time_zones is not None else None,
            **(described or {}),
        }
        self.data_version = data_version_of(self.sources)
        self.attribution = attribution_for(self.sources)
        self._places: dict[tuple[float, float], tuple[Place | None, str | None]] = {}

    @classmethod
    def open(cls, settings: EnrichSettings) -> Enricher:
        """Load everything `settings` names; AtalayaError if something is missing."""
        locations: list[GeoSource] = []
        networks: list[GeoSource] = []
        try:
            for path in settings.city_dbs:
                locations.append(open_source(path))
            for path in settings.asn_dbs:
                networks.append(open_source(path))
            jurisdictions, spain, world = load_jurisdictions(
                settings.spain_atlas, settings.world_atlas, settings.coast_km
            )
            rules, range_desc, asn_desc = load_flag_rules(settings.range_lists, settings.asn_lists)
        except BaseException:
            for source in [*locations, *networks]:
                source.close()
            raise
        return cls(
            locations=locations,
            networks=networks,
            jurisdictions=jurisdictions,
            flag_rules=rules,
            time_zones=PlaceTimeZones(),
            country=settings.country,
            described={
                "spain_atlas": spain,
                "world_atlas": world,
                "coast_km": settings.coast_km,
                "range_lists": range_desc,
                "asn_lists": asn_desc,
            },
        )

    def close(self) -> None:
        for source in [*self.locations, *self.networks]:
            source.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def located_points(self) -> int:
        """Distinct points located so far (each once, then cached)."""
        return len(self._places)

    # -- enrichment ----------------------------------------------------------

    def enrich(self, ip: str, *, now: datetime | None = None) -> Enrichment:
        return self.enrich_many([ip], now=now)[0]

    def enrich_many(self, ips: Iterable[str], *, now: datetime | None = None) -> list[Enrichment]:
        """One Enrichment per address, in order (an invalid address is flagged)."""
        computed_at = now or datetime.now(UTC)
        looked_up: list[tuple[str, IPv4Address | IPv6Address | None, GeoRecord | None]] = []
        for text in ips:
            ip = _parse_ip(text)
            record = None
            if ip is not None:
                record = merged(
                    first_location(self.locations, ip), first_network(self.networks, ip)
                )
            looked_up.append((text, ip, record))
        self._locate(
            {
                (r.longitude, r.latitude): r.time_zone
                for _, _, r in looked_up
                if r is not None and r.longitude is not None and r.latitude is not None
            }
        )
        return [self._build(text, ip, r, computed_at) for text, ip, r in looked_up]

    def _locate(self, points: dict[tuple[float, float], str | None]) -> None:
        new = [p for p in points if p not in self._places]
        if not new:
            return
        if len(self._places) + len(new) > _PLACE_CACHE_LIMIT:
            self._places.clear()
        places: list[Place | None] = [None] * len(new)
        if self.jurisdictions is not None:
            places = list(self.jurisdictions.locate_many(new))
        for point, place in zip(new, places, strict=True):
            zone = points[point]
            if zone is None and self.time_zones is not None:
                zone = self.time_zones.at(point[1], point[0])
            self._places[point] = (place, zone)

    def _build(
        self,
        text: str,
        ip: IPv4Address | IPv6Address | None,
        record: GeoRecord | None,
        computed_at: datetime,
    ) -> Enrichment:
        if ip is None:
            return Enrichment(text, self.data_version, computed_at, flags=(FLAG_INVALID,))
        flags = self.flag_rules.flags(ip, record.asn if record is not None else None)
        if record is None or not record.has_location:
            flags.add(FLAG_NOT_FOUND if ip.is_global else FLAG_RESERVED)
        if record is None:
            return Enrichment(text, self.data_version, computed_at, flags=tuple(sorted(flags)))
        place: Place | None = None
        zone = record.time_zone
        if record.longitude is not None and record.latitude is not None:
            place, zone = self._places[(record.longitude, record.latitude)]
        elif record.has_location:
            flags.add(FLAG_NO_COORDINATES)
        country = record.country
        if place is not None:
            flags.update(place.flags)
            if place.country is not None:
                country = place.country
                if record.country is not None and record.country != place.country:
                    flags.add(FLAG_COUNTRY_MISMATCH)
        return Enrichment(
            text,
            self.data_version,
            computed_at,
            country=country,
            db_country=record.country,
            region=record.region,
            city=record.city,
            province_code=place.province_code if place else None,
            province_name=place.province_name if place else None,
            municipality_code=place.municipality_code if place else None,
            municipality_name=place.municipality_name if place else None,
            latitude=record.latitude,
            longitude=record.longitude,
            accuracy_km=record.accuracy_km,
            asn=record.asn,
            isp=record.isp,
            org=record.org,
            time_zone=zone,
            flags=tuple(sorted(flags)),
        )


def _parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        ip = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
