"""Enrichment in the store, on SQLite and PostgreSQL: incremental runs and look-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from atalaya.enrich.enricher import Enricher
from atalaya.enrich.geoip import MmdbSource
from atalaya.enrich.store import (
    enrich_pending,
    enrichment_for_ips,
    latest_data_version,
    pending_ips,
    record_data_version,
    referral_addresses,
    referrals,
    save_enrichments,
)
from atalaya.observe.sightings import Sighting, SightingWriter, new_run_id
from atalaya.store.tables import enrichment, enrichment_data
from tests.enrich.made_up import made_up_jurisdictions
from tests.enrich.mmdb import city_record, write_mmdb

T0 = datetime(2026, 11, 20, 22, 30, 0, 250_000, tzinfo=UTC)

# Made-up addresses placed on the made-up atlas of tests/enrich/made_up.py.
RECORDS = {
    "203.0.113.1/32": city_record("ES", 0.5, 0.5, asn=64512, isp="Uno Net"),  # 01001
    "203.0.113.2/32": city_record("ES", 0.5, 1.5, asn=64512, isp="Uno Net"),  # 01002
    "203.0.113.3/32": city_record("ES", 0.5, 1.0, asn=64513, isp="Dos Net"),  # 01001/01002 edge
    "203.0.113.4/32": city_record("PT", 1.0, -2.0, time_zone="Europe/Lisbon"),
    "203.0.113.5/32": city_record("FR", 3.5, 1.0, time_zone="Europe/Paris"),
    # At sea, and the database names no country: no jurisdiction.
    "203.0.113.6/32": {"location": {"latitude": 20.5, "longitude": 20.5}},
}


@pytest.fixture(scope="module")
def geo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mmdb(tmp_path_factory.mktemp("geo") / "made-up.mmdb", RECORDS)


def make_enricher(geo_db: Path, *, coast_km: float = 5.0) -> Enricher:
    return Enricher(
        locations=[MmdbSource(geo_db)],
        networks=[MmdbSource(geo_db)],
        jurisdictions=made_up_jurisdictions(coast_km),
        country="ES",
        described={"coast_km": coast_km, "atlas": "made up"},
    )


def sight(engine: Engine, *ips: str, at: datetime = T0) -> None:
    SightingWriter(engine).write(
        Sighting(
            network="bittorrent",
            item_kind="btih",
            item_value="ab" * 20,
            ip=ip,
            port=6881 + i,
            seen_at=at + timedelta(seconds=i),
            found_by="tracker",
            run_id=new_run_id(),
        )
        for i, ip in enumerate(ips)
    )


def test_incremental_then_refresh(engine: Engine, geo_db: Path) -> None:
    sight(engine, "203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.4", "8.8.8.8")
    enricher = make_enricher(geo_db)
    starts: list[int] = []
    batches: list[int] = []
    first = enrich_pending(
        engine, enricher, batch_size=2, on_start=starts.append, on_batch=batches.append
    )
    assert (first.addresses, first.enriched, first.up_to_date, first.refreshed) == (4, 4, 0, 0)
    assert first.countries == {"ES": 2, "PT": 1, "--": 1}
    assert first.not_found == 1
    assert starts == [4] and batches == [2, 2]
    assert first.as_json()["attribution"] == enricher.attribution

    # Nothing new: nothing done.
    again = enrich_pending(engine, enricher)
    assert (again.addresses, again.enriched, again.up_to_date) == (4, 0, 4)

    # New sightings: only their new addresses.
    sight(engine, "203.0.113.2", "203.0.113.3", "203.0.113.5")
    with engine.connect() as conn:
        assert pending_ips(conn, enricher.data_version) == ["203.0.113.3", "203.0.113.5"]
    more = enrich_pending(engine, enricher)
    assert (more.addresses, more.enriched, more.up_to_date) == (6, 2, 4)

    # --refresh recomputes all, replacing rows of the same version.
    refreshed = enrich_pending(engine, enricher, refresh=True)
    assert (refreshed.enriched, refreshed.refreshed, refreshed.up_to_date) == (6, 6, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(enrichment)).scalar() == 6
        assert conn.execute(select(func.count()).select_from(enrichment_data)).scalar() == 1


def test_a_new_data_version_recomputes_and_keeps_the_old(engine: Engine, geo_db: Path) -> None:
    sight(engine, "203.0.113.1", "203.0.113.3")
    old = make_enricher(geo_db)
    enrich_pending(engine, old, now=T0)
    new = make_enricher(geo_db, coast_km=1.0)
    assert new.data_version != old.data_version
    report = enrich_pending(engine, new, now=T0 + timedelta(hours=1))
    assert (report.enriched, report.up_to_date) == (2, 0)
    with engine.connect() as conn:
        assert latest_data_version(conn) == new.data_version
        assert conn.execute(select(func.count()).select_from(enrichment)).scalar() == 4
        latest = enrichment_for_ips(conn, ["203.0.113.1", "203.0.113.3", "198.51.100.1"])
        assert set(latest) == {"203.0.113.1", "203.0.113.3"}
        assert {e.data_version for e in latest.values()} == {new.data_version}
        pinned = enrichment_for_ips(conn, ["203.0.113.1"], data_version=old.data_version)
        assert pinned["203.0.113.1"].computed_at == T0
        sources = conn.execute(select(enrichment_data.c.sources)).scalars().all()
        assert sorted(s["coast_km"] for s in sources) == [1.0, 5.0]


def test_stored_enrichment_reads_back_whole(engine: Engine, geo_db: Path) -> None:
    sight(engine, "203.0.113.3", "203.0.113.4")
    enricher = make_enricher(geo_db)
    enrich_pending(engine, enricher, now=T0)
    with engine.connect() as conn:
        stored = enrichment_for_ips(conn, ["203.0.113.3", "203.0.113.4"])
    assert stored["203.0.113.3"] == enricher.enrich("203.0.113.3", now=T0)
    border = stored["203.0.113.3"]
    assert (border.municipality_code, border.province_code) == ("01001", "01")
    assert border.flags == ("municipality_border",)
    assert (border.asn, border.isp) == (64513, "Dos Net")
    assert stored["203.0.113.4"].time_zone == "Europe/Lisbon"


def test_referrals_per_country(engine: Engine, geo_db: Path) -> None:
    sight(engine, "203.0.113.1", "203.0.113.4", "203.0.113.4", "203.0.113.5", "203.0.113.6")
    sight(engine, "203.0.113.4", at=T0 + timedelta(days=2))
    enricher = make_enricher(geo_db)
    enrich_pending(engine, enricher)
    with engine.connect() as conn:
        rows = referrals(conn, home_country="ES", data_version=enricher.data_version)
        assert [(r.country, r.addresses, r.sightings) for r in rows] == [
            ("PT", 1, 3),
            ("FR", 1, 1),
            (None, 1, 1),
        ]
        assert rows[0].first_seen == T0 + timedelta(seconds=1)
        assert rows[0].last_seen == T0 + timedelta(days=2)
        portugal = referral_addresses(conn, country="PT", data_version=enricher.data_version)
        assert [(a.enrichment.ip, a.sightings) for a in portugal] == [("203.0.113.4", 3)]
        unknown = referral_addresses(conn, country=None, data_version=enricher.data_version)
        assert [a.enrichment.ip for a in unknown] == ["203.0.113.6"]
        assert unknown[0].enrichment.flags == ("unplaced",)
        assert referral_addresses(conn, country="ES", data_version="nope") == []


def test_save_enrichments_replaces_rows_of_the_same_version(engine: Engine, geo_db: Path) -> None:
    enricher = make_enricher(geo_db)
    first = enricher.enrich_many(["203.0.113.1", "203.0.113.2"], now=T0)
    later = enricher.enrich_many(["203.0.113.2"], now=T0 + timedelta(hours=1))
    with engine.begin() as conn:
        record_data_version(conn, enricher)
        record_data_version(conn, enricher)  # once only
        assert save_enrichments(conn, first) == 0
        assert save_enrichments(conn, later) == 1
    with engine.connect() as conn:
        stored = enrichment_for_ips(conn, ["203.0.113.1", "203.0.113.2"])
        assert stored["203.0.113.2"].computed_at == T0 + timedelta(hours=1)
        assert stored["203.0.113.1"].computed_at == T0
        assert conn.execute(select(func.count()).select_from(enrichment_data)).scalar() == 1
