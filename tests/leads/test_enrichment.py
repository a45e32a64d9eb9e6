"""Lead building reads address facts from the enrichment table."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert

from atalaya.enrich.record import Enrichment
from atalaya.enrich.store import save_enrichments
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.enrichment import EnrichmentFacts
from atalaya.leads.facts import MappingFacts
from atalaya.store.tables import enrichment_data
from tests.leads.helpers import ELSEWHERE, HOME, NOW, item, lead_rows, leads_of, write
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


def test_an_ipv6_prefix_takes_the_facts_of_its_lowest_enriched_address(engine: Engine) -> None:
    source = EnrichmentFacts(engine)
    key = "2001:db8::/64"
    assert source.lookup([key]) == {}
    record(
        engine,
        "v1",
        [
            # Both inside 2001:db8::/64; the second one is the lowest.
            place("2001:db8::ffff:0:0:1", province_code="41", province_name="Sevilla"),
            place("2001:db8::1:0:0:0"),
            # Outside it, though its text starts alike.
            place("2001:db8::1:0:0:0:1", province_code="08"),
            place("2001:db8:0:1::1", province_code="08"),
            place("10.9.0.1", province_code="46"),
        ],
    )
    found = source.lookup([key, "2001:db8:0:2::/64", "10.9.0.1", "2001:db8:0:1::/64"])
    assert set(found) == {key, "10.9.0.1", "2001:db8:0:1::/64"}
    assert (found[key].province_code, found[key].version) == ("28", "v1")
    assert found["2001:db8:0:1::/64"].province_code == "08"
    # A newer data version speaks for the address it knows.
    record(engine, "v2", [place("2001:db8::1:0:0:0", "v2", province_code="41")])
    later = source.lookup([key])[key]
    assert (later.province_code, later.version) == ("41", "v2")
    assert EnrichmentFacts(engine, "v1").lookup([key])[key].province_code == "28"


def test_many_prefixes_at_once(engine: Engine) -> None:
    ips = [f"2001:db8:{n:x}::{n + 1:x}" for n in range(300)]
    record(engine, "v1", [place(ip, municipality_code=f"{n:05d}") for n, ip in enumerate(ips)])
    keys = [f"2001:db8:{n:x}::/64".replace(":0::", "::") for n in range(301)]
    found = EnrichmentFacts(engine).lookup(keys)
    assert set(found) == set(keys[:300])
    assert found["2001:db8::/64"].municipality_code == "00000"
    assert found["2001:db8:12b::/64"].municipality_code == "00299"


def test_mapping_facts_of_a_prefix() -> None:
    source = MappingFacts({"2001:db8::9": HOME, "2001:db8::2": ELSEWHERE, "10.0.0.1": HOME})
    found = source.lookup(["2001:db8::/64", "2001:db8::/56", "2001:db8:1::/64", "10.0.0.1"])
    assert found == {"2001:db8::/64": ELSEWHERE, "2001:db8::/56": ELSEWHERE, "10.0.0.1": HOME}
    assert MappingFacts({"2001:db8::/64": HOME}).lookup(["2001:db8::/64"]) == {
        "2001:db8::/64": HOME
    }


def test_ipv6_leads_are_placed_from_the_enrichment_table(engine: Engine) -> None:
    write(engine, [s(f"2001:db8:9:9:{n}::{n}", item(n), n) for n in range(1, 4)])
    record(engine, "v1", [place("2001:db8:9:9:3::3", province_code="41", province_name="Sevilla")])
    build_leads(engine, EnrichmentFacts(engine), LeadsConfig(), now=NOW)
    (row,) = lead_rows(engine)
    assert (row["ip"], row["province_name"], row["time_zone"]) == (
        "2001:db8:9:9::/64",
        "Sevilla",
        "Europe/Madrid",
    )


def test_changed_since_names_only_what_was_enriched_after(engine: Engine) -> None:
    source = EnrichmentFacts(engine)
    empty = source.fingerprint()
    record(engine, "v1", [place("10.9.0.1"), place("10.9.0.2")])
    assert source.changed_since(empty) == {"10.9.0.1", "10.9.0.2"}
    first = source.fingerprint()
    assert source.changed_since(first) == set()
    later = [
        replace(place(ip), computed_at=AT + timedelta(minutes=5))
        for ip in ("10.9.0.3", "2001:db8::7")
    ]
    with engine.begin() as conn:
        save_enrichments(conn, later)
    assert source.changed_since(first) == {"10.9.0.3", "2001:db8::7"}
    # A row replaced (its old self gone), another data version, a foreign or
    # damaged fingerprint: the source cannot tell, so everything is compared.
    second = source.fingerprint()
    with engine.begin() as conn:
        save_enrichments(conn, [replace(place("10.9.0.1"), computed_at=AT + timedelta(hours=1))])
    assert source.changed_since(second) is None
    assert EnrichmentFacts(engine, "v1").changed_since(second) is None
    for bad in ("mapping:abc", "enrichment:*:x:y", "enrichment:*:2:not a time", ""):
        assert source.changed_since(bad) is None


def test_an_incremental_build_compares_only_newly_enriched_addresses(engine: Engine) -> None:
    record(engine, "v1", [place(f"10.9.0.{n}") for n in range(1, 5)])
    for n in range(1, 6):
        write(engine, [s(f"10.9.0.{n}", item(10 * n + i), 100 * n + i) for i in range(3)])
    source = EnrichmentFacts(engine)
    build_leads(engine, source, LeadsConfig(), now=NOW)
    # 10.9.0.5 is enriched later, in Sevilla: its lead moves, nothing else is read again.
    with engine.begin() as conn:
        save_enrichments(
            conn,
            [
                replace(
                    place("10.9.0.5", province_code="41", province_name="Sevilla"),
                    computed_at=AT + timedelta(days=1),
                )
            ],
        )
    write(engine, [s("10.9.0.6", item(99), 900)])
    report = build_leads(engine, source, LeadsConfig(), now=NOW + timedelta(hours=1))
    assert report.mode == "incremental"
    incremental = {r["ip"]: r["province_name"] for r in lead_rows(engine)}
    assert incremental["10.9.0.5"] == "Sevilla"
    build_leads(engine, source, LeadsConfig(), now=NOW + timedelta(hours=1), rebuild=True)
    assert {r["ip"]: r["province_name"] for r in lead_rows(engine)} == incremental


def test_mapping_facts_fingerprint_is_the_same_in_every_process() -> None:
    program = (
        "from atalaya.leads.facts import MappingFacts, IpFacts;"
        "f = IpFacts(country='ES', flags=frozenset({'vpn', 'hosting', 'cgnat', 'tor'}));"
        "print(MappingFacts({'10.0.0.1': f, '10.0.0.2': f}).fingerprint())"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert len(seen) == 1
