"""Lead building reads address facts from the enrichment table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from atalaya.enrich.record import Enrichment
from atalaya.enrich.store import save_enrichments
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.enrichment import EnrichmentFacts
from atalaya.store.tables import enrichment_data
from tests.leads.helpers import NOW, item, lead_rows, leads_of, write
from tests.leads.helpers import sighting as s

AT = datetime(2026, 11, 20, tzinfo=UTC)


def record(engine: Engine, version: str, items: list[Enrichment]) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(enrichment_data).values(
                data_version=version,
                sources={"made_up": True},
                attribution=f"Made-up test places ({version})",
                created_at=AT,
            )
        )
        save_enrichments(conn, items)


def place(ip: str, version: str = "v1", **kw: object) -> Enrichment:
    values: dict[str, object] = {
        "country": "ES",
        "province_code": "28",
        "province_name": "Madrid",
        "municipality_code": "28079",
        "municipality_name": "Madrid",
        "latitude": 40.42,
        "longitude": -3.70,
        "accuracy_km": 10.0,
        "asn": 64500,
        "isp": "Example Fibra",
        "time_zone": "Europe/Madrid",
        **kw,
    }
    return Enrichment(ip=ip, data_version=version, computed_at=AT, **values)  # type: ignore[arg-type]


def test_facts_come_from_the_enrichment_table(engine: Engine) -> None:
    source = EnrichmentFacts(engine)
    empty = source.fingerprint()
    assert source.lookup(["10.9.0.1"]) == {}
    record(engine, "v1", [place("10.9.0.1"), place("10.9.0.2", flags=("vpn", "province_border"))])
    assert source.fingerprint() != empty
    found = source.lookup(["10.9.0.1", "10.9.0.2", "10.9.0.3"])
    assert set(found) == {"10.9.0.1", "10.9.0.2"}
    one = found["10.9.0.1"]
    assert (one.province_code, one.municipality_name, one.asn, one.isp) == (
        "28",
        "Madrid",
        64500,
        "Example Fibra",
    )
    assert (one.lat, one.lon, one.accuracy_km, one.version) == (40.42, -3.70, 10.0, "v1")
    assert found["10.9.0.2"].flags == frozenset({"vpn", "province_border"})


def test_leads_are_placed_and_regrouped_when_enrichment_arrives(engine: Engine) -> None:
    write(engine, [s("10.9.0.1", item(i), i) for i in range(4)])
    write(engine, [s("10.9.0.2", item(i), 30 + i) for i in range(4)])
    source = EnrichmentFacts(engine)
    build_leads(engine, source, LeadsConfig(), now=NOW)
    assert leads_of(engine) == [(1,), (5,)]  # no place: no collection link
    record(engine, "v1", [place("10.9.0.1"), place("10.9.0.2")])
    report = build_leads(engine, source, LeadsConfig(), now=NOW + timedelta(hours=1))
    # Every address changed: regrouping them all is a rebuild.
    assert (report.mode, report.reason) == ("full", "facts changed for 2 of 2 addresses")
    assert leads_of(engine) == [(1, 5)]
    (row,) = lead_rows(engine)
    assert (row["province_name"], row["isp"], row["facts_version"]) == (
        "Madrid",
        "Example Fibra",
        "v1",
    )
