from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.enrich.geoip import (
    AsnCsvSource,
    GeoRecord,
    MmdbSource,
    first_location,
    first_network,
    merged,
    npm_package,
    open_source,
    parse_record,
)
from atalaya.errors import AtalayaError
from tests.enrich.mmdb import city_record, write_mmdb


def test_geoip2_city_layout() -> None:
    record = {
        "city": {"names": {"de": "Sevilla (de)", "en": "Seville"}},
        "country": {"iso_code": "es", "names": {"en": "Spain"}},
        "registered_country": {"iso_code": "FR"},
        "location": {
            "latitude": 37.3891,
            "longitude": -5.9845,
            "accuracy_radius": 20,
            "time_zone": "Europe/Madrid",
        },
        "subdivisions": [{"iso_code": "AN", "names": {"en": "Andalusia"}}],
        "traits": {"autonomous_system_number": 64512, "isp": "Made Up ISP"},
    }
    assert parse_record(record) == GeoRecord(
        country="ES",
        region="Andalusia",
        city="Seville",
        latitude=37.3891,
        longitude=-5.9845,
        accuracy_km=20.0,
        time_zone="Europe/Madrid",
        asn=64512,
        isp="Made Up ISP",
        org=None,
    )


def test_ip_location_db_flat_layout() -> None:
    record = {
        "city": "Getafe",
        "country_code": "ES",
        "latitude": 40.3057,
        "longitude": -3.7329,
        "postcode": "",
        "state1": "Madrid",
        "state2": "",
        "timezone": "",
    }
    assert parse_record(record) == GeoRecord(
        country="ES", region="Madrid", city="Getafe", latitude=40.3057, longitude=-3.7329
    )


def test_asn_and_isp_layouts() -> None:
    assert parse_record(
        {"autonomous_system_number": 64513, "autonomous_system_organization": "AS Org"}
    ) == GeoRecord(asn=64513, isp="AS Org", org="AS Org")
    isp = parse_record(
        {
            "autonomous_system_number": 64513,
            "autonomous_system_organization": "AS Org",
            "isp": "Retail ISP",
            "organization": "Customer Ltd",
        }
    )
    assert (isp.asn, isp.isp, isp.org) == (64513, "Retail ISP", "Customer Ltd")
    assert isp.has_network and not isp.has_location


@pytest.mark.parametrize(
    "record",
    [
        None,
        [],
        "x",
        {"location": {"latitude": 91, "longitude": 0}},
        {"location": {"latitude": 10, "longitude": "0"}},
        {"location": {"latitude": float("nan"), "longitude": 1}},
        {"latitude": True, "longitude": 1},
        {"country": {"iso_code": "ESP"}},
        {"country_code": "1A"},
        {"autonomous_system_number": -1},
        {"autonomous_system_number": 2**32},
        {"autonomous_system_number": True},
        {"city": {"names": {"en": ""}}, "subdivisions": [5]},
    ],
)
def test_odd_fields_are_ignored(record: Any) -> None:
    parsed = parse_record(record)
    assert parsed.latitude is None and parsed.longitude is None
    assert parsed.country is None and parsed.asn is None and parsed.city is None


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["ES", "Europe/Madrid"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            [
                "city", "country", "country_code", "location", "latitude", "longitude",
                "accuracy_radius", "time_zone", "timezone", "names", "en", "iso_code",
                "subdivisions", "state1", "traits", "isp", "organization",
                "autonomous_system_number", "autonomous_system_organization",
                "registered_country",
            ]
        ),
        children,
        max_size=6,
    ),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(json_like)
def test_any_record_parses_without_raising(record: Any) -> None:
    parsed = parse_record(record)
    if parsed.latitude is not None:
        assert -90 <= parsed.latitude <= 90 and parsed.longitude is not None
    if parsed.country is not None:
        assert len(parsed.country) == 2 and parsed.country.isupper()


def test_mmdb_source_reads_a_generated_database(tmp_path: Path) -> None:
    path = write_mmdb(
        tmp_path / "t.mmdb",
        {
            "203.0.113.0/24": city_record(
                "ES", 40.4168, -3.7038, city="Madrid", asn=64512, isp="A"
            ),
            "2001:db8::/32": city_record("PT", 38.7223, -9.1393, city="Lisbon"),
        },
    )
    source = MmdbSource(path)
    record = source.lookup(IPv4Address("203.0.113.9"))
    assert record is not None
    assert (record.country, record.city, record.asn, record.isp) == ("ES", "Madrid", 64512, "A")
    six = source.lookup(IPv6Address("2001:db8::1"))
    assert six is not None and six.city == "Lisbon"
    assert source.lookup(IPv4Address("198.51.100.1")) is None
    described = source.describe()
    assert described["kind"] == "mmdb"
    assert described["database_type"] == "Test-City-ISP"
    assert described["ip_version"] == 6
    assert described["build_epoch"] > 0
    assert described["package"] is None
    source.close()


def test_an_ipv4_database_says_nothing_about_ipv6(tmp_path: Path) -> None:
    path = write_mmdb(
        tmp_path / "v4.mmdb", {"203.0.113.0/24": city_record("ES", 40.0, -3.0)}, ip_version=4
    )
    source = MmdbSource(path)
    assert source.lookup(IPv6Address("2001:db8::1")) is None
    assert source.lookup(IPv4Address("203.0.113.1")) is not None


def test_missing_or_broken_files_are_operator_errors(tmp_path: Path) -> None:
    with pytest.raises(AtalayaError, match="not found"):
        MmdbSource(tmp_path / "nope.mmdb")
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database" * 10)
    with pytest.raises(AtalayaError, match="not a MaxMind-format database"):
        MmdbSource(broken)
    with pytest.raises(AtalayaError, match="not found"):
        AsnCsvSource(tmp_path / "nope.csv")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("x,y,z\n")
    with pytest.raises(AtalayaError, match="cannot read ASN table"):
        open_source(bad_csv)


def test_asn_csv_source_and_npm_package(tmp_path: Path) -> None:
    package = tmp_path / "node_modules" / "@made-up" / "asn"
    package.mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "@made-up/asn", "version": "1.2.3"}))
    table = package / "asn-ipv4.csv"
    table.write_text('203.0.113.0,203.0.113.255,64512,"Made Up, S.L."\n')
    source = open_source(table)
    assert isinstance(source, AsnCsvSource)
    assert source.lookup(IPv4Address("203.0.113.7")) == GeoRecord(
        asn=64512, isp="Made Up, S.L.", org="Made Up, S.L."
    )
    assert source.lookup(IPv4Address("203.0.114.7")) is None
    assert source.describe()["package"] == "@made-up/asn@1.2.3"
    assert source.describe()["ranges"] == 1
    assert npm_package(tmp_path / "elsewhere.csv") is None


def test_first_sources_and_merge(tmp_path: Path) -> None:
    city = MmdbSource(
        write_mmdb(
            tmp_path / "c.mmdb",
            {"203.0.113.0/24": city_record("ES", 40.0, -3.0, asn=1, isp="city isp")},
        )
    )
    table = tmp_path / "asn.csv"
    table.write_text("203.0.113.0,203.0.113.127,64512,Network Org\n")
    asn = open_source(table)
    ip = IPv4Address("203.0.113.5")
    location = first_location([asn, city], ip)
    network = first_network([asn, city], ip)
    assert location is not None and location.country == "ES"
    assert network is not None and network.asn == 64512
    both = merged(location, network)
    assert both is not None
    assert (both.country, both.asn, both.isp) == ("ES", 64512, "Network Org")
    # Beyond the table's range the city database's own ASN remains.
    other = IPv4Address("203.0.113.200")
    assert merged(first_location([city], other), first_network([asn], other)) == first_location(
        [city], other
    )
    assert merged(None, None) is None
