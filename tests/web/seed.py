"""A small world for the web tests, built through the real pipeline.

Sightings of made-up items by lab addresses (127.91.0.N) are written with
the observer's SightingWriter, enriched with the lab's own MaxMind-format
database (atalaya.lab.geo: real Spanish towns, made-up ISPs) and the real
atlases, and grouped into leads by `build_leads`. Four units: Madrid (28
and Sevilla's 41), Barcelona (08), a Guardia unit that also covers 28, so
Madrid's leads are in conflict, and Islas (the Canaries and the Balearics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from atalaya.accounts import AccountPolicy, add_unit, add_user
from atalaya.enrich.enricher import Enricher, load_jurisdictions
from atalaya.enrich.geoip import MmdbSource
from atalaya.enrich.settings import SPAIN_ATLAS_FILE, WORLD_ATLAS_FILE
from atalaya.enrich.store import enrich_pending
from atalaya.enrich.timezones import PlaceTimeZones
from atalaya.lab.geo import place_of, write_lab_geo_db
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.enrichment import EnrichmentFacts
from atalaya.observe.sightings import Sighting, SightingWriter
from atalaya.store.tables import lead
from tests.enrich.geo_data import require_geo_data

PREFIX = "127.91.0"
FAST = AccountPolicy(argon2_time_cost=1, argon2_memory_cost_kib=1024, argon2_parallelism=1)
PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
WEEK_45 = datetime(2026, 11, 2, tzinfo=UTC)  # Monday of 2026-W45
WEEK_46 = datetime(2026, 11, 9, tzinfo=UTC)  # Monday of 2026-W46
RUN = "00000000-0000-4000-8000-0000000000aa"


@dataclass(frozen=True)
class Host:
    host: int
    week: datetime
    items: int  # how many made-up items it offers, each a known file
    proof: bool = False
    category: int = 3

    @property
    def ip(self) -> str:
        return f"{PREFIX}.{self.host}"


# place_of: 10/26/42/56 Madrid, 11/27 Barcelona, 13 Sevilla, 20 Lisbon,
# 18 Las Palmas de Gran Canaria, 19 Palma.
HOSTS = (
    Host(10, WEEK_46, 3, proof=True, category=4),
    Host(26, WEEK_46, 1),
    Host(42, WEEK_45, 2),
    Host(56, WEEK_46, 5),
    Host(11, WEEK_46, 2),
    Host(27, WEEK_45, 1),
    Host(13, WEEK_46, 4, proof=True),
    Host(20, WEEK_46, 1),
    Host(18, WEEK_46, 3, proof=True),
    Host(19, WEEK_46, 1),
)

UNITS = {
    "Madrid": (("28", "41"), "Madrid cyber unit, desk +34 900 000 001"),
    "Barcelona": (("08",), "Barcelona unit, desk +34 900 000 002"),
    "Guardia": (("28",), "Guardia central, desk +34 900 000 003"),
    # The islands: a lead in the Canaries' inset and one on the main map.
    "Islas": (("35", "38", "07"), "Islands unit, desk +34 900 000 004"),
}
USERS = {
    "ana": ("Madrid", "analyst"),
    "bea": ("Barcelona", "analyst"),
    "carla": ("Madrid", "auditor"),
    "dora": ("Islas", "analyst"),
}


def item(host: int, n: int) -> str:
    """A made-up infohash (not a real one): host and item number in hex."""
    return f"{host:04x}{n:036x}"


def sightings() -> list[Sighting]:
    out = []
    for h in HOSTS:
        for n in range(h.items):
            for k in range(3):  # three sightings a day apart, the first at 08:00 UTC
                verified = h.proof and n == 0 and k == 0
                out.append(
                    Sighting(
                        network="bittorrent",
                        item_kind="btih",
                        item_value=item(h.host, n),
                        ip=h.ip,
                        port=6881,
                        seen_at=h.week + timedelta(days=1 + k, hours=8, minutes=n),
                        found_by="dht",
                        run_id=RUN,
                        client="libtorrent/2.0.11",
                        pieces_verified=2 if verified else 0,
                        bytes_downloaded=32_768 if verified else 0,
                        file_key=f"sha1:{h.host:08x}{n:032x}",
                        category=h.category,
                        hash_set="made-up set",
                    )
                )
    return out


def build_world(engine: Engine, tmp: Path, extra: Sequence[Sighting] = ()) -> None:
    """Sightings (the hosts' and `extra`), enrichment, leads, units and users."""
    data = require_geo_data()
    geo = write_lab_geo_db(tmp / "geo.mmdb", PREFIX)
    jurisdictions, spain, world = load_jurisdictions(
        data / SPAIN_ATLAS_FILE, data / WORLD_ATLAS_FILE, 5.0
    )
    SightingWriter(engine).write([*sightings(), *extra])
    with Enricher(
        locations=[MmdbSource(geo)],
        networks=[MmdbSource(geo)],
        jurisdictions=jurisdictions,
        time_zones=PlaceTimeZones(),
        described={"spain_atlas": spain, "world_atlas": world},
    ) as enricher:
        enrich_pending(engine, enricher, now=NOW)
    build_leads(engine, EnrichmentFacts(engine), LeadsConfig(), now=NOW)
    with engine.begin() as conn:
        for name, (provinces, contact) in UNITS.items():
            add_unit(conn, name, provinces, contact, NOW)
        for username, (unit_name, role) in USERS.items():
            add_user(conn, username, unit_name, role, PASSWORD, NOW, FAST)


def lead_ids_by_ip(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {r.ip: r.id for r in conn.execute(select(lead.c.ip, lead.c.id))}


def expected_ids(engine: Engine, hosts: list[int]) -> set[int]:
    by_ip = lead_ids_by_ip(engine)
    return {by_ip[f"{PREFIX}.{h}"] for h in hosts}


def municipality_of(host: int) -> str | None:
    return place_of(host).municipality_code
