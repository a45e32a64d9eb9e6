"""A small world for case tests, built through the real pipeline: units, users, leads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from atalaya.accounts import User, add_unit, add_user, get_user
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from tests.accounts.helpers import FAST, PASSWORD
from tests.leads.helpers import ELSEWHERE, HOME, NOW, facts, item, peer_id, write
from tests.leads.helpers import sighting as s

PLACES = {"10.1.0.1": HOME, "10.1.0.2": HOME, "10.1.0.3": HOME, "10.2.0.1": ELSEWHERE}
USERS = {
    "ana": ("Madrid", "analyst"),
    "luis": ("Madrid", "supervisor"),
    "olga": ("Madrid", "auditor"),
    "sara": ("Sevilla", "analyst"),
}


@dataclass(frozen=True)
class World:
    madrid: int  # lead 1, Madrid (10.1.0.1)
    other_madrid: int  # lead 4, Madrid (10.1.0.2), merged into lead 1 by `merge`
    sevilla: int  # lead 7, Sevilla (10.2.0.1)


def build(engine: Engine, days: int = 0) -> None:
    build_leads(engine, facts(PLACES), LeadsConfig(), now=NOW + timedelta(days=days))


def world(engine: Engine) -> World:
    """Three leads in two provinces, two units with their users."""
    with engine.begin() as conn:
        add_unit(conn, "Madrid", ("28",), "Madrid desk, +34 900 000 101", NOW)
        add_unit(conn, "Sevilla", ("41",), "Sevilla desk, +34 900 000 102", NOW)
        for name, (unit, role) in USERS.items():
            add_user(conn, name, unit, role, PASSWORD, NOW, FAST)
    write(engine, [s("10.1.0.1", item(i), i, peer=peer_id(1)) for i in (1, 2, 3)])
    write(engine, [s("10.1.0.2", item(i), 26 + i, peer=peer_id(2)) for i in (4, 5, 6)])
    write(engine, [s("10.2.0.1", item(i), 60 + i, peer=peer_id(3)) for i in (7, 8)])
    build(engine)
    return World(1, 4, 7)


def merge(engine: Engine) -> None:
    """An address reporting both peer ids: lead 4 merges into lead 1."""
    write(
        engine,
        [
            s("10.1.0.3", item(9), 15, peer=peer_id(1)),
            s("10.1.0.3", item(10), 16, peer=peer_id(2)),
        ],
    )
    build(engine, days=1)


def user(engine: Engine, name: str) -> User:
    with engine.connect() as conn:
        return get_user(conn, name)
