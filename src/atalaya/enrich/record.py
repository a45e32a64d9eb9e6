"""The enrichment of one IP address under one data version, and its flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

# Where the atlases put a point (atalaya.enrich.atlas sets these).
FLAG_PROVINCE_BORDER = "province_border"
FLAG_MUNICIPALITY_BORDER = "municipality_border"
FLAG_COUNTRY_BORDER = "country_border"
FLAG_OFFSHORE = "offshore"
FLAG_UNPLACED = "unplaced"
FLAG_NOT_FOUND = "not_found"  # no location database knows the address
FLAG_RESERVED = "reserved"  # not a global address, and no database places it
FLAG_NO_COORDINATES = "no_coordinates"  # a country but no point: no jurisdiction below it
FLAG_COUNTRY_MISMATCH = "country_mismatch"  # the point lies outside the database's country
FLAG_INVALID = "invalid_address"

# Flags about how sure the place is. Every other flag comes from a configured
# range or ASN list (hosting, vpn, anonymiser, mobile, cgnat…) and lowers the
# actionability of a lead.
QUALITY_FLAGS = frozenset(
    {
        FLAG_NOT_FOUND,
        FLAG_RESERVED,
        FLAG_NO_COORDINATES,
        FLAG_COUNTRY_MISMATCH,
        FLAG_INVALID,
        FLAG_PROVINCE_BORDER,
        FLAG_MUNICIPALITY_BORDER,
        FLAG_COUNTRY_BORDER,
        FLAG_OFFSHORE,
        FLAG_UNPLACED,
    }
)


@dataclass(frozen=True)
class Enrichment:
    """What the data of `data_version` says about `ip`; None where it says nothing.

    `country` is the jurisdiction (ISO 3166-1 alpha-2): the country whose
    boundaries hold the database's point, else the database's country.
    """

    ip: str
    data_version: str
    computed_at: datetime
    country: str | None = None
    db_country: str | None = None
    region: str | None = None
    city: str | None = None
    province_code: str | None = None
    province_name: str | None = None
    municipality_code: str | None = None
    municipality_name: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    accuracy_km: float | None = None
    asn: int | None = None
    isp: str | None = None
    org: str | None = None
    time_zone: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def lowering_flags(self) -> tuple[str, ...]:
        """The flags that lower actionability (from range and ASN lists)."""
        return tuple(f for f in self.flags if f not in QUALITY_FLAGS)

    def is_abroad(self, home_country: str) -> bool:
        """True when the address belongs to another country's jurisdiction (or none)."""
        return self.country != home_country

    def as_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["flags"] = list(self.flags)
        record["computed_at"] = self.computed_at.isoformat()
        return record
