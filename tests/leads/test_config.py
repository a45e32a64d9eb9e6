"""Leads settings: defaults, TOML files and the digests scores record."""

from __future__ import annotations

from pathlib import Path

import pytest

from atalaya.errors import AtalayaError
from atalaya.leads.config import (
    CONFIG_ENV,
    GroupingConfig,
    LeadsConfig,
    load_config,
    parse_config,
)


def test_defaults_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert load_config() == LeadsConfig()


def test_file_overrides_some_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "leads.toml"
    path.write_text(
        "[grouping]\nwindow_days = 3\ncollection_area = 'municipality'\n"
        "[scoring]\nrare_other_leads = 5\n"
        "[scoring.factors.known_files]\nweight = 30\ncap = 20\n"
        "[scoring.flags]\nhosting = -40\nanonymiser = -20\n"
    )
    monkeypatch.setenv(CONFIG_ENV, str(path))
    config = load_config()
    assert config.grouping.window_days == 3.0
    assert config.grouping.collection_area == "municipality"
    assert config.grouping.device_change_gap_hours == 6.0  # untouched default
    assert config.scoring.factors["known_files"].weight == 30
    assert config.scoring.factors["known_files"].cap == 20
    assert config.scoring.factors["known_files"].scale == "log"
    assert config.scoring.flags["hosting"] == -40
    assert config.scoring.flags["anonymiser"] == -20
    assert config.scoring.rare_other_leads == 5
    assert config.scoring.version() != LeadsConfig().scoring.version()
    assert config.grouping.digest() != LeadsConfig().grouping.digest()


def test_digests_are_stable() -> None:
    assert LeadsConfig().scoring.version() == LeadsConfig().scoring.version()
    assert LeadsConfig().scoring.version().startswith("sha256:")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"grouping": {"window": 3}}, "unknown keys"),
        ({"grouping": {"window_days": "3"}}, "expected a number"),
        ({"grouping": {"window_days": 0}}, "must be above 0"),
        ({"grouping": {"collection_jaccard": 1.5}}, "at most 1"),
        ({"grouping": {"collection_min_shared": 0}}, "whole number"),
        ({"grouping": {"collection_area": "city"}}, "province"),
        ({"grouping": {"collection_links_on_shared_addresses": 1}}, "true or false"),
        ({"grouping": {"ipv6_prefix_length": 31}}, "32 to 128"),
        ({"grouping": {"ipv6_prefix_length": 129}}, "32 to 128"),
        ({"grouping": {"ipv6_prefix_length": 64.0}}, "whole number"),
        ({"grouping": {"ipv6_prefix_length": True}}, "whole number"),
        ({"scoring": {"factors": {"fame": {"weight": 1}}}}, "unknown keys"),
        ({"scoring": {"factors": {"recency": {"scale": "cubic"}}}}, "scale"),
        ({"scoring": {"factors": {"recency": {"cap": 0}}}}, "above 0"),
        ({"scoring": {"flags": {"vpn": "low"}}}, "expected a number"),
        ({"scoring": {"rare_other_leads": -1}}, "whole number"),
        ({"weights": {}}, "unknown keys"),
    ],
)
def test_bad_settings_say_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(AtalayaError, match=message):
        parse_config(data)


def test_the_ipv6_prefix_length(tmp_path: Path) -> None:
    assert LeadsConfig().grouping.ipv6_prefix_length == 64
    path = tmp_path / "leads.toml"
    path.write_text("[grouping]\nipv6_prefix_length = 56\n")
    grouping = load_config(path).grouping
    assert grouping.ipv6_prefix_length == 56
    assert grouping.digest() != LeadsConfig().grouping.digest()
    for length in (32, 128):
        assert parse_config({"grouping": {"ipv6_prefix_length": length}}).grouping
    with pytest.raises(ValueError, match="32 to 128"):
        GroupingConfig(ipv6_prefix_length=16)


def test_unreadable_or_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(AtalayaError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[grouping\n")
    with pytest.raises(AtalayaError, match="not valid TOML"):
        load_config(bad)
