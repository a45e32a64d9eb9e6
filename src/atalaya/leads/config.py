"""How sightings are grouped into leads and how leads are scored.

Defaults live here; an operator changes them with a TOML file
(`atalaya leads build --config FILE`, or ATALAYA_LEADS_CONFIG):

    [grouping]
    window_days = 7
    collection_jaccard = 0.6
    ipv6_prefix_length = 64

    [scoring.factors.known_files]
    weight = 25
    cap = 40

    [scoring.flags]
    hosting = -20

Every lead records `weights_version`, a digest of the scoring section that
produced it; grouping settings have their own digest, and an incremental build
under different grouping settings refuses to run (a rebuild is due).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

from atalaya.enrich.prefixes import MAX_PREFIX, MIN_PREFIX
from atalaya.errors import AtalayaError

CONFIG_ENV = "ATALAYA_LEADS_CONFIG"

# How a factor's raw value becomes a value between 0 and 1 before weighting.
SCALES = ("log", "linear", "category", "recency", "fraction")


@dataclass(frozen=True)
class GroupingConfig:
    """Which sightings are believed to come from one device."""

    # Sightings of one address belong together while each follows the
    # previous one within this many days (dynamic addresses change hands).
    window_days: float = 7.0
    # IPv6 sightings count as one address per prefix of this length: a
    # subscriber holds a prefix (RFC 6177: a /48 to /64 per end site) and its
    # devices' temporary addresses rotate inside their /64 (RFC 8981). 32..128;
    # 128 groups by exact address. See `atalaya.leads.presence`.
    ipv6_prefix_length: int = 64
    # At one address, a silence of at least this long followed by another
    # listen port or client offering an item not seen before there is taken
    # as another device (an address reassigned within the window).
    device_change_gap_hours: float = 6.0
    # Two stretches that overlap in time by more than this on addresses of
    # the same family are two devices, whatever else they share.
    concurrent_tolerance_hours: float = 1.0
    # A peer id links two stretches at most this far apart: clients draw a new
    # one per session (libtorrent: per torrent and listen socket).
    peer_id_max_gap_days: float = 7.0
    # A collection link needs this Jaccard similarity of the watched items …
    collection_jaccard: float = 0.6
    # … at least this many of them in common …
    collection_min_shared: int = 3
    # … and stretches at most this far apart.
    collection_max_gap_days: float = 90.0
    # The area both must be in: "province" or "municipality".
    collection_area: str = "province"
    # Addresses flagged cgnat are shared by many subscribers at once: their
    # sightings are told apart by port, and take part in collection links only
    # if this is true.
    collection_links_on_shared_addresses: bool = False

    def __post_init__(self) -> None:
        if not MIN_PREFIX <= self.ipv6_prefix_length <= MAX_PREFIX:
            raise ValueError(
                f"ipv6_prefix_length must be {MIN_PREFIX} to {MAX_PREFIX}, "
                f"not {self.ipv6_prefix_length}"
            )

    @cached_property
    def jaccard(self) -> Fraction:
        # Exact arithmetic: a float threshold times a set size can round up
        # (0.7 * 10 is 7.000000000000001) and make the prefix filter miss pairs.
        return Fraction(str(self.collection_jaccard)).limit_denominator(10_000)

    def digest(self) -> str:
        return _digest({f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class Factor:
    """One named factor: its weight and how its raw value is scaled to 0..1."""

    weight: float
    scale: str = "log"
    # log/linear: the raw value at which the factor is full; recency: days
    # after which a lead counts as old.
    cap: float = 1.0


DEFAULT_FACTORS: dict[str, Factor] = {
    # Distinct reference files (hash set entries) offered.
    "known_files": Factor(weight=20.0, scale="log", cap=50),
    # The most severe category among them (internal scale, 0..4).
    "highest_category": Factor(weight=20.0, scale="category", cap=4),
    # Watched items whose pieces this peer alone sent and that verified.
    "verified_downloads": Factor(weight=20.0, scale="log", cap=10),
    # Distinct UTC days with sightings.
    "days_active": Factor(weight=10.0, scale="log", cap=30),
    # Whole days from the last sighting to the build; 0 at `cap` days.
    "recency": Factor(weight=15.0, scale="recency", cap=90),
    # Watched items that at most `rare_other_leads` other leads offer.
    "rare_items": Factor(weight=10.0, scale="log", cap=5),
    # Distinct P2P networks.
    "networks_used": Factor(weight=5.0, scale="linear", cap=3),
}

DEFAULT_FLAGS: dict[str, float] = {
    # Share of the lead's sightings from addresses with each flag; these
    # lower actionability: the subscriber behind them is hard to identify.
    "hosting": -15.0,
    "vpn": -15.0,
    "cgnat": -10.0,
    "mobile": -5.0,
}


@dataclass(frozen=True)
class ScoringConfig:
    factors: dict[str, Factor] = field(default_factory=lambda: dict(DEFAULT_FACTORS))
    flags: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FLAGS))
    rare_other_leads: int = 2

    @cached_property
    def _version(self) -> str:
        return _digest(asdict(self))

    def version(self) -> str:
        """The weights version every score records."""
        return self._version


@dataclass(frozen=True)
class LeadsConfig:
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_config(path: Path | None = None) -> LeadsConfig:
    """Defaults, overridden by `path` or by the file ATALAYA_LEADS_CONFIG names."""
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if not env:
            return LeadsConfig()
        path = Path(env)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AtalayaError(f"cannot read leads configuration {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AtalayaError(f"leads configuration {path} is not valid TOML: {exc}") from exc
    return parse_config(data, str(path))


def parse_config(data: dict[str, Any], where: str = "configuration") -> LeadsConfig:
    """A `LeadsConfig` from parsed TOML; unknown or mistyped keys are errors."""
    _only(data, {"grouping", "scoring"}, where)
    grouping = _grouping(data.get("grouping", {}), f"{where} [grouping]")
    scoring = _scoring(data.get("scoring", {}), f"{where} [scoring]")
    return LeadsConfig(grouping=grouping, scoring=scoring)


def _only(data: Any, allowed: set[str], where: str) -> None:
    if not isinstance(data, dict):
        raise AtalayaError(f"{where}: expected a table")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise AtalayaError(f"{where}: unknown keys {unknown}; known: {sorted(allowed)}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AtalayaError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _grouping(data: Any, where: str) -> GroupingConfig:
    base = GroupingConfig()
    _only(data, {f.name for f in fields(base)}, where)
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(base, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise AtalayaError(f"{where} {key}: expected true or false")
            values[key] = value
        elif isinstance(default, str):
            if value not in ("province", "municipality"):
                raise AtalayaError(f"{where} {key}: expected 'province' or 'municipality'")
            values[key] = value
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AtalayaError(f"{where} {key}: expected a whole number of at least 1")
            values[key] = value
        else:
            number = _number(value, f"{where} {key}")
            if number < 0:
                raise AtalayaError(f"{where} {key}: must not be negative")
            values[key] = number
    length = values.get("ipv6_prefix_length", base.ipv6_prefix_length)
    if not MIN_PREFIX <= length <= MAX_PREFIX:
        raise AtalayaError(
            f"{where} ipv6_prefix_length: expected {MIN_PREFIX} to {MAX_PREFIX} "
            "(64: one address per /64)"
        )
    config = replace(base, **values)
    if not 0 < config.collection_jaccard <= 1:
        raise AtalayaError(f"{where} collection_jaccard: must be above 0 and at most 1")
    if config.window_days <= 0:
        raise AtalayaError(f"{where} window_days: must be above 0")
    return config


def _scoring(data: Any, where: str) -> ScoringConfig:
    base = ScoringConfig()
    _only(data, {"factors", "flags", "rare_other_leads"}, where)
    factors = dict(base.factors)
    raw_factors = data.get("factors", {})
    _only(raw_factors, set(DEFAULT_FACTORS), f"{where} factors")
    for name, spec in raw_factors.items():
        _only(spec, {"weight", "scale", "cap"}, f"{where} factors.{name}")
        current = factors[name]
        scale = spec.get("scale", current.scale)
        if scale not in SCALES:
            raise AtalayaError(f"{where} factors.{name} scale: expected one of {list(SCALES)}")
        cap = _number(spec.get("cap", current.cap), f"{where} factors.{name} cap")
        if cap <= 0:
            raise AtalayaError(f"{where} factors.{name} cap: must be above 0")
        weight = _number(spec.get("weight", current.weight), f"{where} factors.{name} weight")
        factors[name] = Factor(weight=weight, scale=scale, cap=cap)
    flags = dict(base.flags)
    raw_flags = data.get("flags", {})
    if not isinstance(raw_flags, dict):
        raise AtalayaError(f"{where} flags: expected a table of flag = weight")
    for name, weight in raw_flags.items():
        flags[str(name)] = _number(weight, f"{where} flags.{name}")
    rare = data.get("rare_other_leads", base.rare_other_leads)
    if isinstance(rare, bool) or not isinstance(rare, int) or rare < 0:
        raise AtalayaError(f"{where} rare_other_leads: expected a whole number, 0 or more")
    return ScoringConfig(factors=factors, flags=flags, rare_other_leads=rare)
