"""Scores: each factor scaled, weighted and summed, as configured."""

from __future__ import annotations

import math

import pytest

from atalaya.leads.config import Factor, ScoringConfig
from atalaya.leads.presence import US_PER_DAY, ItemKey, ItemStat
from atalaya.leads.scoring import LeadSummary, recency_days, scaled, score_factors, total


def test_scales() -> None:
    assert scaled(Factor(1, "log", 10), 10) == 1.0
    assert scaled(Factor(1, "log", 10), 100) == 1.0
    assert scaled(Factor(1, "log", 10), 3) == pytest.approx(math.log(4) / math.log(11))
    assert scaled(Factor(1, "linear", 4), 1) == 0.25
    assert scaled(Factor(1, "category", 4), 3) == 0.75
    assert scaled(Factor(1, "recency", 90), 0) == 1.0
    assert scaled(Factor(1, "recency", 90), 45) == 0.5
    assert scaled(Factor(1, "recency", 90), 200) == 0.0
    assert scaled(Factor(1, "fraction", 1), 0.3) == 0.3


def test_recency_counts_calendar_days() -> None:
    day = US_PER_DAY
    assert recency_days(10 * day + 1, 10 * day + day - 1) == 0
    assert recency_days(10 * day + day - 1, 11 * day) == 1
    assert recency_days(12 * day, 11 * day) == 0  # a sighting after `now`


def test_factors_and_total() -> None:
    summary = LeadSummary(
        sightings=4,
        first_at=0,
        last_at=5 * US_PER_DAY,
        days={0, 5},
        items={
            ItemKey("bittorrent", "btih", "a"): ItemStat("sha1:1", 3, True, 2),
            ItemKey("ed2k", "ed2k", "b"): ItemStat(None, None, False, 2),
        },
        flagged={"vpn": 1},
    )
    config = ScoringConfig()
    factors = {f.name: f for f in score_factors(summary, 1, 15 * US_PER_DAY, config)}
    assert set(factors) == set(config.factors) | {f"flag_{n}" for n in config.flags}
    assert factors["known_files"].raw == 1
    assert factors["highest_category"].raw == 3
    assert factors["verified_downloads"].raw == 1
    assert factors["days_active"].raw == 2
    assert factors["recency"].raw == 10
    assert factors["rare_items"].raw == 1
    assert factors["networks_used"].raw == 2
    assert factors["flag_vpn"].raw == 0.25
    assert factors["flag_vpn"].contribution == -15 * 0.25
    assert total(factors.values()) == round(math.fsum(f.contribution for f in factors.values()), 6)


def test_recency_raw_stops_at_its_cap() -> None:
    summary = LeadSummary(sightings=1, items={ItemKey("bittorrent", "btih", "a"): ItemStat()})
    factors = {f.name: f for f in score_factors(summary, 0, 400 * US_PER_DAY, ScoringConfig())}
    assert factors["recency"].raw == 90 and factors["recency"].contribution == 0
