"""A lead assembled from its presences: totals, place, flags and scored factors.

Full and incremental builds both come here with the same presences (from
memory or read back from the store), which is why they agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from atalaya.leads.config import ScoringConfig
from atalaya.leads.facts import IpFacts
from atalaya.leads.presence import ItemKey, ItemStat, Presence
from atalaya.leads.scoring import FactorScore, LeadSummary, score_factors, total


@dataclass(frozen=True)
class LeadRecord:
    id: int
    presence_ids: tuple[int, ...]
    summary: LeadSummary
    ip: str  # the address with the most sightings
    client: str | None
    facts: IpFacts  # of that address
    flags: tuple[str, ...]
    # Every province its presences lie in: the units that hold it.
    provinces: tuple[str, ...]
    addresses: int
    factors: tuple[FactorScore, ...]
    score: float
    weights_version: str


def summarize(presences: Sequence[Presence], facts: Mapping[int, IpFacts]) -> LeadSummary:
    if len(presences) == 1:
        # Most leads are one presence: share its item stats, which nothing
        # changes once scanned.
        (p,) = presences
        return LeadSummary(
            sightings=p.sightings,
            first_at=p.first_at,
            last_at=p.last_at,
            days=set(p.days),
            items=dict(p.items),
            flagged=dict.fromkeys(facts[p.id].flags, p.sightings),
        )
    summary = LeadSummary(
        first_at=min(p.first_at for p in presences), last_at=max(p.last_at for p in presences)
    )
    for p in sorted(presences, key=lambda p: p.id):
        summary.sightings += p.sightings
        summary.days |= p.days
        for item, stat in p.items.items():
            merged = summary.items.get(item)
            if merged is None:
                merged = summary.items[item] = ItemStat()
            merged.merge(stat)
        for flag in facts[p.id].flags:
            summary.flagged[flag] = summary.flagged.get(flag, 0) + p.sightings
    return summary


def rare_count(
    items: Mapping[ItemKey, object], item_leads: Mapping[ItemKey, int], rare_other: int
) -> int:
    """Items that at most `rare_other` other leads offer."""
    return sum(1 for item in items if item_leads.get(item, 1) - 1 <= rare_other)


def assemble(
    presences: Sequence[Presence],
    facts: Mapping[int, IpFacts],
    item_leads: Mapping[ItemKey, int],
    now: int,
    config: ScoringConfig,
) -> LeadRecord:
    """The lead made of `presences`; `item_leads` counts leads per item, this one included."""
    summary = summarize(presences, facts)
    per_ip: dict[str, int] = {}
    for p in presences:
        per_ip[p.ip] = per_ip.get(p.ip, 0) + p.sightings
    ip = min(per_ip, key=lambda a: (-per_ip[a], a))
    primary = min((p for p in presences if p.ip == ip), key=lambda p: (-p.sightings, p.id))
    rare = rare_count(summary.items, item_leads, config.rare_other_leads)
    factors = tuple(score_factors(summary, rare, now, config))
    flags = sorted({flag for p in presences for flag in facts[p.id].flags})
    provinces = sorted({c for p in presences if (c := facts[p.id].province_code) is not None})
    return LeadRecord(
        id=min(p.id for p in presences),
        presence_ids=tuple(sorted(p.id for p in presences)),
        summary=summary,
        ip=ip,
        client=primary.client,
        facts=facts[primary.id],
        flags=tuple(flags),
        provinces=tuple(provinces),
        addresses=len(per_ip),
        factors=factors,
        score=total(factors),
        weights_version=config.version(),
    )
