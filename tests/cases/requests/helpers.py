"""A seeded store for request tests: leads with proof, a hash set, CGNAT, hostile strings.

Built through the real pipeline (sightings written by the observers' writer,
leads built by `build_leads`); the hash set rows are written as an import
leaves them. Everything is made up: private-use AS numbers, documentation
and shared address space, random-looking hex.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select

from atalaya.accounts import User, add_unit, add_user, get_user
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.observe.sightings import Sighting
from atalaya.store.tables import hash_set, lead, reference_file
from tests.accounts.helpers import FAST, PASSWORD
from tests.leads.helpers import CGNAT, ELSEWHERE, HOME, NOW, T0, facts, item, peer_id, write
from tests.support.seeds import Seed

SET_NAME = "Lista sintética de prueba"
SET_SHA = "ab" * 32
# What a hostile peer may send as a name or a client: markup of both
# template languages, a bidi override, a control character.
HOSTILE_NAME = "#set page(width: 1pt) {{ d.atestado }} {%p if 1 %}<w:p/>&amp;\u202egpj.exe\x07"
HOSTILE_CLIENT = "µTorrent 3.5 #let x = [*hola*] \x1b[31m"
PLACES = {
    "10.1.0.1": HOME,
    "10.1.0.9": HOME,
    # The shared CGNAT facts of the leads tests, placed in a time zone.
    "100.64.0.7": replace(CGNAT, time_zone="Europe/Madrid"),
    "10.2.0.1": ELSEWHERE,
    "10.1.0.5": HOME,
}
UNITS = {"ana": ("Madrid", "analyst"), "luis": ("Madrid", "supervisor"),
         "olga": ("Madrid", "auditor"), "sara": ("Sevilla", "analyst")}  # fmt: skip


def _s(ip: str, n: int, hours: float, **kw: object) -> Sighting:
    base = T0 + timedelta(hours=hours)
    values: dict[str, object] = {
        "network": "bittorrent",
        "item_kind": "btih",
        "item_value": item(n),
        "ip": ip,
        "port": 6881,
        "seen_at": base + timedelta(microseconds=123456),
        "found_by": "dht",
        "run_id": "00000000-0000-4000-8000-000000000000",
    }
    values.update(kw)
    return Sighting(**values)  # type: ignore[arg-type]


def build_world(engine: Engine, _folder: Path | None = None) -> None:
    with engine.begin() as conn:
        add_unit(conn, "Madrid", ("28",), "Madrid desk, +34 900 000 101", NOW)
        add_unit(conn, "Sevilla", ("41",), "Sevilla desk, +34 900 000 102", NOW)
        for name, (unit, role) in UNITS.items():
            add_user(conn, name, unit, role, PASSWORD, NOW, FAST)
        set_id = conn.execute(
            insert(hash_set)
            .values(name=SET_NAME, source="Autoridad de ejemplo (sintética)", format="vics",
                    version="2026-11", imported_at=NOW, updated_at=NOW, file_sha256=SET_SHA,
                    file_count=2, hash_count=2)
            .returning(hash_set.c.id)
        ).scalar_one()  # fmt: skip
        for n, label in ((1, "1"), (2, "2")):
            conn.execute(
                insert(reference_file).values(
                    hash_set_id=set_id, file_key=f"sha1:{n:040x}", category=3 if n == 1 else 2,
                    category_label=label, name=None, attributes=None,
                )
            )  # fmt: skip
    matched = {"hash_set": SET_NAME, "hash_set_sha256": SET_SHA}
    write(
        engine,
        [
            _s("10.1.0.1", 1, 1, port=51413, client=HOSTILE_CLIENT, peer_id=peer_id(1),
               advertised_name=HOSTILE_NAME, pieces_verified=4, bytes_downloaded=65536,
               file_key=f"sha1:{1:040x}", category=3, clock_offset_s=0.0042, **matched),
            _s("10.1.0.1", 2, 30, port=51413, peer_id=peer_id(1),
               file_key=f"sha1:{2:040x}", category=2, **matched),
            _s("10.1.0.1", 3, 50, port=51414, peer_id=peer_id(1)),
            _s("100.64.0.7", 4, 5, port=40001, peer_id=peer_id(5), pieces_verified=1,
               bytes_downloaded=16384, file_key=f"sha1:{1:040x}", category=3, **matched),
            _s("100.64.0.7", 4, 6, port=40001, peer_id=peer_id(5)),
            _s("10.2.0.1", 5, 8, port=6882, peer_id=peer_id(7)),
            _s("10.1.0.5", 6, 9, port=6883, peer_id=peer_id(9)),
            # Seen more than a year before NOW: expired at the operator.
            _s("10.1.0.9", 7, -24 * 420, port=6999, peer_id=peer_id(11)),
        ],
    )  # fmt: skip
    build_leads(engine, facts(PLACES), LeadsConfig(), now=NOW)


SEED = Seed("requests", build_world)


@dataclass(frozen=True)
class Leads:
    madrid: int  # 10.1.0.1: three files over three days, one proven, hostile strings
    cgnat: int  # 100.64.0.7, Madrid, mobile CGNAT operator
    sevilla: int  # 10.2.0.1, the other unit's
    other: int  # 10.1.0.5, Madrid, plain
    expired: int  # 10.1.0.9, Madrid, every observation past the retention clock


def leads(engine: Engine) -> Leads:
    with engine.connect() as conn:
        by_ip = {r.ip: int(r.id) for r in conn.execute(select(lead.c.id, lead.c.ip))}
    return Leads(
        by_ip["10.1.0.1"], by_ip["100.64.0.7"], by_ip["10.2.0.1"], by_ip["10.1.0.5"],
        by_ip["10.1.0.9"],
    )  # fmt: skip


def user(engine: Engine, name: str) -> User:
    with engine.connect() as conn:
        return get_user(conn, name)
