from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import maxminddb
import pytest
from timezonefinder import TimezoneFinder

from atalaya.enrich.atlas import Jurisdictions
from atalaya.enrich.enricher import Enricher, load_flag_rules, load_jurisdictions
from atalaya.enrich.geoip import MmdbSource
from atalaya.enrich.settings import SPAIN_ATLAS_FILE, WORLD_ATLAS_FILE
from atalaya.errors import AtalayaError
from atalaya.lab.geo import (
    DATABASE_TYPE,
    ISPS,
    PLACES,
    LabPlace,
    block_record,
    isp_of,
    place_of,
    write_lab_geo_db,
)
from tests.enrich.geo_data import require_geo_data


@pytest.fixture(scope="module")
def jurisdictions() -> Jurisdictions:
    data = require_geo_data()
    found, _, _ = load_jurisdictions(data / SPAIN_ATLAS_FILE, data / WORLD_ATLAS_FILE, 5.0)
    return found


def test_every_host_of_the_prefix_has_its_place(tmp_path: Path) -> None:
    path = write_lab_geo_db(tmp_path / "geo.mmdb", "127.81.3")
    with maxminddb.open_database(str(path)) as reader:
        assert reader.metadata().database_type == DATABASE_TYPE
        assert reader.metadata().ip_version == 6  # IPv4 inside at ::/96
        for host in range(1, 255):
            record = reader.get(f"127.81.3.{host}")
            assert isinstance(record, dict)
            place = place_of(host)
            assert record["country"]["iso_code"] == place.country
            assert record["location"]["latitude"] == place.latitude
            assert record["autonomous_system_number"] in {i.asn for i in ISPS}
        assert reader.get("127.81.3.0") is None
        assert reader.get("127.81.3.255") is None
        assert reader.get("127.77.0.10") is None


def test_namespace_addresses_are_placed_too(tmp_path: Path) -> None:
    path = write_lab_geo_db(
        tmp_path / "geo.mmdb", "127.81.3", subnets=["100.64.77.0/24", "fd00:77:1:2::/64"]
    )
    with maxminddb.open_database(str(path)) as reader:
        for host in (1, 10, 11, 50, 254):
            for address in (f"100.64.77.{host}", f"fd00:77:1:2::{host:x}"):
                record = reader.get(address)
                assert isinstance(record, dict), address
                assert record["location"]["latitude"] == place_of(host).latitude
                assert record["autonomous_system_number"] == isp_of(host).asn
        # Elsewhere in the two ranges: the place of the address's /16.
        for address, block in (
            ("100.64.0.1", 0),
            ("100.127.255.254", 63),
            ("fd00::1", 0),
            ("fd42:abcd::10", 0x42),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 255),
        ):
            assert reader.get(address) == block_record(block), address
        assert reader.get("127.81.3.10") == reader.get("100.64.77.10")
        # Nothing outside the lab's ranges.
        for address in ("100.63.255.255", "100.128.0.0", "fc00::1", "fe80::1", "2001:db8::1"):
            assert reader.get(address) is None, address


def test_namespace_places_differ_by_host_and_block() -> None:
    assert place_of(10) != place_of(11)
    assert block_record(0) != block_record(1)


def test_subnets_outside_the_lab_ranges_are_refused(tmp_path: Path) -> None:
    for subnet in ("203.0.113.0/24", "2001:db8::/64", "fc00::/64", "100.64.77.0/25", "x"):
        with pytest.raises(AtalayaError, match="subnet"):
            write_lab_geo_db(tmp_path / "geo.mmdb", "127.77.0", subnets=[subnet])
    assert not (tmp_path / "geo.mmdb").exists()


def test_the_enricher_places_namespace_peers(tmp_path: Path, jurisdictions: Jurisdictions) -> None:
    path = write_lab_geo_db(
        tmp_path / "geo.mmdb", "127.81.3", subnets=["100.64.77.0/24", "fd77:1:2:3::/64"]
    )
    rules, _, _ = load_flag_rules({}, {})  # the shipped CGNAT list
    with Enricher(
        locations=[MmdbSource(path)],
        networks=[MmdbSource(path)],
        jurisdictions=jurisdictions,
        flag_rules=rules,
    ) as enricher:
        for address, host in (("fd77:1:2:3::a", 10), ("100.64.77.11", 11)):
            item = enricher.enrich(address)
            place = place_of(host)
            assert (item.country, item.municipality_code) == ("ES", place.municipality_code)
            assert item.province_code == (place.municipality_code or "")[:2]
            assert item.time_zone == place.time_zone
            assert item.asn == isp_of(host).asn
            # Shared space is carrier-grade NAT's, a ULA is no one's.
            assert ("cgnat" in item.flags) == address.startswith("100.64.")


def test_seeders_start_in_spain_and_leechers_abroad() -> None:
    assert (place_of(10).city, place_of(11).city) == ("Madrid", "Barcelona")
    assert place_of(50).country == "PT"
    assert all(64512 <= isp.asn <= 65534 for isp in ISPS)  # RFC 6996 private use


@pytest.mark.parametrize("place", PLACES, ids=lambda p: p.city)
def test_places_are_where_they_say(jurisdictions: Jurisdictions, place: LabPlace) -> None:
    found = jurisdictions.locate(place.longitude, place.latitude)
    assert found.country == place.country
    assert found.municipality_code == place.municipality_code
    assert found.flags == frozenset()
    zone = TimezoneFinder().timezone_at(lat=place.latitude, lng=place.longitude)
    assert zone == place.time_zone


def test_a_bad_prefix_is_refused(tmp_path: Path) -> None:
    for prefix in ("127.77", "127.77.0.1", "127.77.x", "127.300.0"):
        with pytest.raises(AtalayaError, match="prefix"):
            write_lab_geo_db(tmp_path / "geo.mmdb", prefix)
    assert not (tmp_path / "geo.mmdb").exists()


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from atalaya.lab.manifest import write_outputs
    from atalaya.lab.network import LabNetwork, LabSpec

    spec = LabSpec(seeders=2, leechers=1, ip_prefix="127.84.0", file_size=50_000)
    with LabNetwork(spec, tmp_path_factory.mktemp("lab")) as network:
        write_outputs(network)
        yield network


@pytest.mark.lab
def test_lab_up_writes_the_database_and_names_it(
    running_lab: object, jurisdictions: Jurisdictions
) -> None:
    from atalaya.lab.layout import GEO_DB_NAME, load_manifest
    from atalaya.lab.network import LabNetwork

    assert isinstance(running_lab, LabNetwork)
    manifest = load_manifest(running_lab.lab_dir)
    geo = Path(manifest["geo_db"])
    assert geo == running_lab.lab_dir / GEO_DB_NAME
    with Enricher(
        locations=[MmdbSource(geo)], networks=[MmdbSource(geo)], jurisdictions=jurisdictions
    ) as enricher:
        assert enricher.attribution.startswith("Lab locations")
        for peer in manifest["peers"]:
            host = int(peer["ip"].rsplit(".", 1)[1])
            item = enricher.enrich(peer["ip"])
            assert item.country == place_of(host).country
            assert item.municipality_code == place_of(host).municipality_code
            assert item.asn is not None and item.isp is not None and item.time_zone
