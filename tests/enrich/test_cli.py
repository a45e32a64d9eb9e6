"""`atalaya enrich …` driven as an operator would: a real process, the lab's database."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atalaya.lab.geo import write_lab_geo_db
from atalaya.observe.sightings import Sighting, SightingWriter, new_run_id
from atalaya.store import create_store_engine
from tests.support.cli import run_atalaya

T0 = datetime(2026, 11, 20, 22, 30, 0, tzinfo=UTC)


def atalaya(db_url: str, geo_data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env: dict[str, str | None] = {
        "ATALAYA_DATABASE_URL": db_url,
        "ATALAYA_GEO_DATA": str(geo_data),
        "COLUMNS": "200",
    }
    env.update(
        dict.fromkeys(
            ("ATALAYA_GEO_CITY_DB", "ATALAYA_GEO_ASN_DB", "ATALAYA_COUNTRY", "ATALAYA_PURPOSE")
        )
    )
    return run_atalaya(*args, env=env)


@pytest.fixture
def lab_db(tmp_path: Path, geo_data: Path) -> tuple[str, list[str]]:
    """A store with sightings of lab addresses, and the options naming the lab's database."""
    url = f"sqlite:///{tmp_path / 'atalaya.db'}"
    assert atalaya(url, geo_data, "init").returncode == 0
    geo = write_lab_geo_db(tmp_path / "geo.mmdb", "127.77.0")
    engine = create_store_engine(url)
    # .10 Madrid, .11 Barcelona, .50 Lisbon (lab/geo.py); 192.0.2.9 is in no
    # location data (the lab's places all of 100.64.0.0/10 and fd00::/8).
    ips = ["127.77.0.10", "127.77.0.11", "127.77.0.50", "127.77.0.50", "192.0.2.9"]
    SightingWriter(engine).write(
        Sighting(
            network="bittorrent",
            item_kind="btih",
            item_value="cd" * 20,
            ip=ip,
            port=7001,
            seen_at=T0 + timedelta(minutes=i),
            found_by="dht",
            run_id=new_run_id(),
        )
        for i, ip in enumerate(ips)
    )
    engine.dispose()
    return url, ["--city-db", str(geo), "--asn-db", str(geo)]


@pytest.mark.slow  # the real atlases and DB-IP's data, loaded per command
def test_enrich_incremental_refresh_referrals(
    lab_db: tuple[str, list[str]], geo_data: Path
) -> None:
    url, data = lab_db
    first = atalaya(url, geo_data, "enrich", *data)
    assert first.returncode == 0, first.stderr
    assert "4 sighting addresses: 4 enriched (0 recomputed), 0 already up to date" in first.stdout
    assert "2 in ES, 2 for referral abroad or unplaced, 1 not in the location data" in first.stdout
    assert "Lab locations and ISPs are made up" in first.stdout

    again = atalaya(url, geo_data, "enrich", "--json", *data)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["enriched"], report["up_to_date"]) == (0, 4)
    assert "Instituto Geográfico Nacional" in report["attribution"]

    refresh = json.loads(atalaya(url, geo_data, "enrich", "--refresh", "--json", *data).stdout)
    assert (refresh["enriched"], refresh["refreshed"]) == (4, 4)
    assert refresh["countries"] == {"--": 1, "ES": 2, "PT": 1}

    listed = atalaya(url, geo_data, "enrich", "referrals", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["country"], r["addresses"], r["sightings"]) for r in rows] == [
        ("PT", 1, 2),
        (None, 1, 1),
    ]
    assert rows[0]["attribution"].startswith("Lab locations")

    refused = atalaya(url, geo_data, "enrich", "referrals", "--country", "pt")
    assert refused.returncode == 2 and "needs a purpose" in refused.stderr
    assert "127.77.0.50" not in refused.stdout
    no_case = atalaya(
        url, geo_data, "enrich", "referrals", "--country", "pt", "--purpose", "case:41"
    )
    assert no_case.returncode == 2 and "case 41, which does not exist" in no_case.stderr
    lisbon = atalaya(
        url, geo_data, "enrich", "referrals", "--country", "pt", "--json", "--purpose", "triage"
    )
    (entry,) = [json.loads(line) for line in lisbon.stdout.splitlines()]
    assert (entry["ip"], entry["city"], entry["isp"]) == (
        "127.77.0.50",
        "Lisbon",
        "Móvil Inventado (made up)",
    )
    assert entry["first_seen"]["utc"] == "2026-11-20T22:32:00+00:00"
    assert entry["first_seen"]["local"] == "2026-11-20T22:32:00+00:00"  # Lisbon, winter
    unplaced = atalaya(
        url, geo_data, "enrich", "referrals", "--country", "XX", "--purpose", "triage"
    )
    assert "192.0.2.9" in unplaced.stdout and "reserved" not in unplaced.stdout  # no flags
    text = atalaya(url, geo_data, "enrich", "referrals")
    assert "PT: 1 addresses, 2 sightings" in text.stdout


@pytest.mark.slow
def test_lookup_without_the_store(lab_db: tuple[str, list[str]], geo_data: Path) -> None:
    _, data = lab_db
    done = atalaya(
        "sqlite:///unused.db", geo_data, "enrich", *data, "lookup", "127.77.0.10", "--json"
    )
    assert done.returncode == 0, done.stderr
    (item,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert (item["country"], item["province_code"], item["municipality_code"]) == (
        "ES",
        "28",
        "28079",
    )
    assert item["time_zone"] == "Europe/Madrid"
    assert item["attribution"].startswith("Lab locations")
    text = atalaya("sqlite:///unused.db", geo_data, "enrich", *data, "lookup", "127.77.0.11")
    assert text.stdout.startswith("127.77.0.11  Barcelona, Barcelona, ES  41.3851,2.1734 ±5 km")


def test_errors_are_one_line(tmp_path: Path, geo_data: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert atalaya(url, geo_data, "init").returncode == 0
    missing = atalaya(url, geo_data, "enrich", "--city-db", str(tmp_path / "none.mmdb"))
    assert missing.returncode == 2
    (error,) = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert "none.mmdb not found: run scripts/setup.sh" in error
    empty = atalaya(url, geo_data, "enrich", "referrals")
    assert empty.returncode == 2 and "nothing enriched yet" in empty.stderr
    bad = atalaya(url, geo_data, "enrich", "--ranges", "hosting", "lookup", "1.1.1.1")
    assert bad.returncode == 2 and "FLAG=FILE" in bad.stderr
