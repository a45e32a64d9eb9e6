"""A network plugs in with one registry line: the test-only `toy` network, end to end.

Registered for the length of each test (`registered(TOY)`), and nowhere else:
its hash set rows become its watch list, `atalaya watch toy` exists and asks
toy peers on 127.89.0.N, its sightings become leads through `atalaya leads
build`, and the web application lists it and filters its map by it. No
module of leads, web or the store names it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from atalaya.accounts import add_unit, add_user
from atalaya.enrich.enricher import Enricher, load_jurisdictions
from atalaya.enrich.geoip import MmdbSource
from atalaya.enrich.settings import SPAIN_ATLAS_FILE, WORLD_ATLAS_FILE
from atalaya.enrich.store import enrich_pending
from atalaya.enrich.timezones import PlaceTimeZones
from atalaya.hashsets.importer import import_hash_set
from atalaya.lab.geo import write_lab_geo_db
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.registry import names, registered
from atalaya.observe.watchlist import load_targets
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import hash_set, lead, sighting
from atalaya.web.app import create_app
from tests.enrich.geo_data import require_geo_data
from tests.support.cli import run_atalaya
from tests.support.toynet.network import TOY
from tests.support.toynet.peer import ToyPeer
from tests.web.conftest import BASE, TestClient, sign_in, web_settings
from tests.web.seed import FAST, PASSWORD

PREFIX = "127.89.0"
# place_of: .10 Madrid, .11 Barcelona, .12 another town of the lab.
HOLDER, LIAR, PARTIAL = f"{PREFIX}.10", f"{PREFIX}.11", f"{PREFIX}.12"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    url = f"sqlite:///{tmp_path / 'toy.db'}"
    engine = create_store_engine(url)
    upgrade(engine)
    yield engine, url
    engine.dispose()


def import_toy_set(engine: Engine, tmp_path: Path, files: list[bytes]) -> str:
    """A made-up hash set with a sha256 and an md5 row per file; the set file's digest."""
    rows = "".join(
        f"{hashlib.sha256(f).hexdigest()},{hashlib.md5(f).hexdigest()},B\n" for f in files
    )
    sets = tmp_path / "toy-set.csv"
    sets.write_text("sha256,md5,category\n" + rows, encoding="utf-8")
    import_hash_set(engine, sets, name="toy set")
    with engine.connect() as conn:
        return str(conn.execute(select(hash_set.c.file_sha256)).scalar_one())


def add_analyst(engine: Engine, now: datetime) -> None:
    with engine.begin() as conn:
        add_unit(conn, "Madrid", ("28",), "Madrid unit, desk +34 900 000 001", now)
        add_user(conn, "ana", "Madrid", "analyst", PASSWORD, now, FAST)


@contextmanager
def analyst(engine: Engine, now: datetime) -> Iterator[TestClient]:
    app = create_app(engine, web_settings(), clock=lambda: now)
    with TestClient(app, base_url=BASE) as client:
        assert sign_in(client, "ana").status_code == 303
        yield client


def test_registered_toy_gets_a_watch_list_a_command_and_a_web_filter(
    store: tuple[Engine, str], tmp_path: Path
) -> None:
    engine, url = store
    rng = random.Random(88)
    files = [rng.randbytes(rng.randint(1, 1024)) for _ in range(3)]
    set_digest = import_toy_set(engine, tmp_path, files)
    now = datetime.now(UTC)
    add_analyst(engine, now)
    assert "toy" not in names()
    assert "toy" not in run_atalaya("watch", "--help").stdout
    with analyst(engine, now) as client:
        refused = client.get("/api/map?network=toy")
        assert refused.status_code == 400 and "one of bittorrent" in refused.json()["error"]
    with registered(TOY):
        # One target per sha256 row, none from the md5 rows; BitTorrent's list stays empty.
        targets = load_targets(engine, TOY)
        assert sorted(t.value for t in targets) == sorted(hashlib.sha256(f).digest() for f in files)
        assert {(t.network, t.kind, t.hash_set, t.hash_set_sha256) for t in targets} == {
            ("toy", "sha256", "toy set", set_digest)
        }
        assert all(t.file_key == f"sha256:{t.hex}" for t in targets)
        assert load_targets(engine, BITTORRENT) == []
        listed = run_atalaya("watch", "--help")
        assert "toy" in listed.stdout and "bittorrent" in listed.stdout
        helped = run_atalaya("watch", "toy", "--help")
        assert helped.returncode == 0 and "--peer" in helped.stdout
        bad = run_atalaya("--db", url, "watch", "toy", "--peer", "nowhere")
        assert bad.returncode == 2 and "expected HOST:PORT" in bad.stderr
        # A run against a peer that holds none of them: each asked once, nothing sighted.
        with ToyPeer(PARTIAL, [b"a file on no list"]) as partial:
            ip, port = partial.address
            ran = run_atalaya("--db", url, "watch", "toy", "--peer", f"{ip}:{port}")
            assert ran.returncode == 0, ran.stderr
            assert "3 targets, 3 asked, 0 holding, 0 verified, 0 sightings" in ran.stdout
            assert partial.asked == 3
        with analyst(engine, now) as client:
            assert client.get("/api/map?network=toy").json()["count"] == 0
            page = client.get("/?network=toy").text
            assert '<option value="toy" selected>Toy net</option>' in page
            assert '<option value="bittorrent">BitTorrent</option>' in page
    assert "toy" not in run_atalaya("watch", "--help").stdout


def test_the_toy_network_from_hash_set_to_map(store: tuple[Engine, str], tmp_path: Path) -> None:
    """Toy sightings, written with the network-neutral fields, become a toy lead on the map."""
    engine, url = store
    rng = random.Random(89)
    files = [rng.randbytes(rng.randint(1, 1024)) for _ in range(4)]
    digests = [hashlib.sha256(f).digest() for f in files]
    set_digest = import_toy_set(engine, tmp_path, files)
    with (
        registered(TOY),
        ToyPeer(HOLDER, files[:2]) as holder,
        ToyPeer(LIAR, [], liar=True) as liar,
        ToyPeer(PARTIAL, files[3:]) as partial,
    ):
        peers = [f"{ip}:{port}" for ip, port in (holder.address, liar.address, partial.address)]
        ran = run_atalaya("--db", url, "watch", "toy", *(a for p in peers for a in ("--peer", p)))
        # Every peer is asked for every file: two held, four lies, one held of four.
        assert ran.returncode == 0, ran.stderr
        assert "4 targets, 12 asked, 7 holding, 3 verified, 7 sightings" in ran.stdout
        assert holder.asked == liar.asked == partial.asked == 4

    with engine.connect() as conn:
        seen = conn.execute(
            select(
                sighting.c.network,
                sighting.c.item_kind,
                sighting.c.item_value,
                sighting.c.ip,
                sighting.c.proof,
                sighting.c.file_key,
                sighting.c.hash_set_sha256,
            )
        ).all()
    expected = {("toy", "sha256", d.hex(), HOLDER, True) for d in digests[:2]}
    expected |= {("toy", "sha256", digests[3].hex(), PARTIAL, True)}
    expected |= {("toy", "sha256", d.hex(), LIAR, False) for d in digests}
    assert {tuple(r[:5]) for r in seen} == expected and len(seen) == len(expected)
    assert {(r.file_key, r.hash_set_sha256) for r in seen if r.ip == HOLDER} == {
        (f"sha256:{d.hex()}", set_digest) for d in digests[:2]
    }

    # Enrichment and leads know nothing of toy: they run as for any network.
    now = datetime.now(UTC)
    data = require_geo_data()
    geo = write_lab_geo_db(tmp_path / "geo.mmdb", PREFIX)
    jurisdictions, spain, world = load_jurisdictions(
        data / SPAIN_ATLAS_FILE, data / WORLD_ATLAS_FILE, 5.0
    )
    with Enricher(
        locations=[MmdbSource(geo)],
        networks=[MmdbSource(geo)],
        jurisdictions=jurisdictions,
        time_zones=PlaceTimeZones(),
        described={"spain_atlas": spain, "world_atlas": world},
    ) as enricher:
        enrich_pending(engine, enricher, now=now)
    built = run_atalaya("--db", url, "leads", "build")
    assert built.returncode == 0, built.stderr
    with engine.connect() as conn:
        leads = {r.ip: (r.id, list(r.networks)) for r in conn.execute(select(lead))}
    assert leads[HOLDER][1] == ["toy"]
    add_analyst(engine, now)

    days = f"from={(now - timedelta(days=1)).date()}&to={(now + timedelta(days=1)).date()}"
    with registered(TOY), analyst(engine, now) as client:
        mapped = client.get(f"/api/map?{days}&network=toy")
        assert mapped.status_code == 200, mapped.text
        assert leads[HOLDER][0] in [p[0] for p in mapped.json()["points"]]
        assert client.get(f"/api/map?{days}&network=bittorrent").json()["count"] == 0
        lead_page = client.get(f"/leads/{leads[HOLDER][0]}").text
        assert "<dt>Networks</dt><dd>Toy net</dd>" in lead_page
    # Unregistered again: the name is refused, and the lead stays in the store.
    with analyst(engine, now) as client:
        assert client.get(f"/api/map?{days}&network=toy").status_code == 400
        lead_page = client.get(f"/leads/{leads[HOLDER][0]}").text
        assert "<dt>Networks</dt><dd>toy</dd>" in lead_page
