from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import maxminddb
import pytest
from timezonefinder import TimezoneFinder

from atalaya.enrich.atlas import Jurisdictions
from atalaya.enrich.enricher import Enricher, load_jurisdictions
from atalaya.enrich.geoip import MmdbSource
from atalaya.enrich.settings import SPAIN_ATLAS_FILE, WORLD_ATLAS_FILE
from atalaya.errors import AtalayaError
from atalaya.lab.geo import DATABASE_TYPE, ISPS, PLACES, LabPlace, place_of, write_lab_geo_db
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
        assert reader.metadata().ip_version == 4
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
