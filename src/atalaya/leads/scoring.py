"""A lead's priority: a sum of named factors, each shown before and after weighting.

Every factor has a raw value (a count, a category, days), a value between 0
and 1 scaled from it, a weight from the configuration and the contribution
value x weight. The score is the sum of the contributions. Flags that lower
actionability (hosting, VPN, carrier-grade NAT, mobile) are factors with
negative weights whose value is the share of the lead's sightings from
addresses with that flag.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from atalaya.errors import N_, AtalayaError
from atalaya.leads.config import Factor, ScoringConfig
from atalaya.leads.presence import US_PER_DAY, ItemKey, ItemStat

# The scores an analyst may put in force: the map's bands and the list's
# order assume this scale, and 1e308 or -5 are typing mistakes.
OVERRIDE_MIN = 0.0
OVERRIDE_MAX = 100.0


@dataclass(frozen=True)
class FactorScore:
    name: str
    raw: float
    value: float
    weight: float
    contribution: float


@dataclass
class LeadSummary:
    """What scoring needs of a lead, aggregated from its presences."""

    sightings: int = 0
    first_at: int = 0
    last_at: int = 0
    days: set[int] = field(default_factory=set)
    items: dict[ItemKey, ItemStat] = field(default_factory=dict)
    # Sightings from addresses carrying each flag.
    flagged: dict[str, int] = field(default_factory=dict)

    @property
    def known_files(self) -> int:
        return len({s.file_key for s in self.items.values() if s.file_key is not None})

    @property
    def highest_category(self) -> int | None:
        found = [s.category for s in self.items.values() if s.category is not None]
        return max(found) if found else None

    @property
    def verified_items(self) -> int:
        return sum(1 for s in self.items.values() if s.proof)

    @property
    def networks(self) -> list[str]:
        return sorted({item.network for item in self.items})


def scaled(factor: Factor, raw: float) -> float:
    if factor.scale == "log":
        return min(1.0, math.log1p(max(raw, 0.0)) / math.log1p(factor.cap))
    if factor.scale == "recency":
        return max(0.0, 1.0 - raw / factor.cap)
    if factor.scale == "fraction":
        return min(max(raw, 0.0), 1.0)
    # linear, category
    return min(1.0, max(raw, 0.0) / factor.cap)


def recency_days(last_at: int, now: int) -> int:
    """Whole UTC calendar days from the last sighting to `now` (0 the same day)."""
    return max(now // US_PER_DAY - last_at // US_PER_DAY, 0)


def score_factors(
    summary: LeadSummary, rare_items: int, now: int, config: ScoringConfig
) -> list[FactorScore]:
    """The factors of one lead: the configured factors, then the flags, each by name."""
    raws: dict[str, float] = {
        "known_files": summary.known_files,
        "highest_category": summary.highest_category or 0,
        "verified_downloads": summary.verified_items,
        "days_active": len(summary.days),
        "recency": min(recency_days(summary.last_at, now), config.factors["recency"].cap)
        if "recency" in config.factors
        else 0,
        "rare_items": rare_items,
        "networks_used": len(summary.networks),
    }
    out: list[FactorScore] = []
    for name, factor in sorted(config.factors.items()):
        raw = float(raws[name])
        value = scaled(factor, raw)
        out.append(FactorScore(name, raw, value, factor.weight, _product(value, factor.weight)))
    total = summary.sightings or 1
    for flag, weight in sorted(config.flags.items()):
        share = summary.flagged.get(flag, 0) / total
        out.append(FactorScore(f"flag_{flag}", share, share, weight, _product(share, weight)))
    return out


def _product(value: float, weight: float) -> float:
    # + 0.0 turns -0.0 (0 x a negative weight) into 0.0: SQLite stores both
    # as 0.0, PostgreSQL keeps the sign, and the engines should agree.
    return value * weight + 0.0


def total(factors: Iterable[FactorScore]) -> float:
    # Rounded so that the stored score reads the same on every engine and in
    # every export; the factors keep full precision.
    return round(math.fsum(f.contribution for f in factors), 6)


def check_override_score(score: float) -> float:
    """`score` when an analyst may put it in force (0 to 100), else AtalayaError."""
    if not (math.isfinite(score) and OVERRIDE_MIN <= score <= OVERRIDE_MAX):
        raise AtalayaError(
            N_("--score must be a number from %(low)g to %(high)g, not %(score)g"),
            low=OVERRIDE_MIN,
            high=OVERRIDE_MAX,
            score=score,
        )
    return score
