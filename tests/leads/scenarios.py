"""Stories of leads that merge, split and cross provinces, built through the real pipeline.

Both are used by the leads, accounts and web tests: the store they leave
is checked from each side (read API, CLI, pages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from atalaya.accounts import add_unit, claim_lead
from atalaya.leads.build import BuildReport, build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.facts import IpFacts
from atalaya.leads.query import override_score
from tests.leads.helpers import ELSEWHERE, HOME, NOW, facts, item, peer_id, write
from tests.leads.helpers import sighting as s

CONFIG = LeadsConfig()
UNITS = {
    "Madrid": (("28",), "Madrid desk, +34 900 000 101"),
    "Sevilla": (("41",), "Sevilla desk, +34 900 000 102"),
    "Norte": (("08",), "Norte desk, +34 900 000 103"),
}


def add_units(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        return {
            name: add_unit(conn, name, provinces, contact, NOW).id
            for name, (provinces, contact) in UNITS.items()
        }


def build(engine: Engine, mapping: Mapping[str, IpFacts], *, days: int = 0) -> BuildReport:
    return build_leads(
        engine, facts(dict(mapping)), CONFIG, now=NOW + timedelta(days=days), rebuild=False
    )


@dataclass(frozen=True)
class MergeSplit:
    """Ids of the story below, as the builds gave them."""

    kept: int  # the lead that keeps its id throughout
    merged: int  # the lead merged into it
    split: int  # the lead split off it later
    units: dict[str, int]
    reports: tuple[BuildReport, ...]


def merge_then_split(engine: Engine) -> MergeSplit:
    """Two leads with claims and overrides; a bridge merges them; a part splits off.

    1. Lead 1 (10.1.0.1, peer id P1) and lead 4 (10.1.0.2, P2), Madrid.
       Norte claims lead 4, Madrid claims lead 1; both get an override.
    2. An address reporting P1 and P2 between them merges 4 into 1.
    3. Another address with P2 joins lead 1 (no lineage: new sightings).
    4. That address turns out to be in Sevilla on another network: its
       peer-id link now crosses province and network with nothing to
       corroborate it, and it splits off as lead 9.
    """
    p1, p2 = peer_id(1), peer_id(2)
    places = {"10.1.0.1": HOME, "10.1.0.2": HOME, "10.1.0.3": HOME, "10.1.0.4": HOME}
    units = add_units(engine)
    write(engine, [s("10.1.0.1", item(i), i, peer=p1) for i in (1, 2, 3)])
    write(engine, [s("10.1.0.2", item(i), 26 + i, peer=p2) for i in (4, 5, 6)])
    first = build(engine, places)
    with engine.begin() as conn:
        claim_lead(conn, 4, units["Norte"], "nora", NOW)
        claim_lead(conn, 1, units["Madrid"], "ana", NOW)
    override_score(engine, 4, 80.0, "named in a complaint", "nora", now=NOW)
    override_score(engine, 1, 60.0, "seen in two swarms", "ana", now=NOW + timedelta(minutes=1))

    write(engine, [s("10.1.0.3", item(7), 15, peer=p1), s("10.1.0.3", item(8), 16, peer=p2)])
    merge = build(engine, places, days=1)

    write(engine, [s("10.1.0.4", item(9), h, peer=p2) for h in (40, 41)])
    join = build(engine, places, days=2)

    split = build(engine, {**places, "10.1.0.4": ELSEWHERE}, days=3)
    return MergeSplit(1, 4, 9, units, (first, merge, join, split))


@dataclass(frozen=True)
class Attack:
    lead: int  # Madrid's lead
    attacker: int  # the lead the attacker's own sightings make
    units: dict[str, int]
    report: BuildReport


ATTACKER_IP = "10.2.0.66"
VICTIM_IP = "10.1.0.1"


def peer_id_attack(engine: Engine, attacker_facts: IpFacts = ELSEWHERE) -> Attack:
    """Madrid's lead, then sightings from Sevilla on another network carrying its peer id.

    The impostor learnt the peer id in the swarm of item 1 and offers that
    item, a day after the device was last seen, more often than the device
    was seen: were it linked, the lead's main place would move to Sevilla.
    """
    pid = peer_id(21)
    units = add_units(engine)
    write(engine, [s(VICTIM_IP, item(i), i, peer=pid) for i in (1, 2, 3)])
    build(engine, {VICTIM_IP: HOME})
    override_score(engine, 1, 70.0, "priority target", "ana", now=NOW)
    write(engine, [s(ATTACKER_IP, item(1), 26 + h, peer=pid) for h in range(8)])
    report = build(engine, {VICTIM_IP: HOME, ATTACKER_IP: attacker_facts}, days=1)
    return Attack(1, 4, units, report)


REAL_MOVE_IP = "10.3.0.7"


def corroborated_move(engine: Engine) -> Attack:
    """Madrid's lead, then the same client seen in Sevilla on another network
    within the hour after it went silent in Madrid (a laptop moving), more
    often than in Madrid: one device, now in both provinces."""
    pid = peer_id(22)
    units = add_units(engine)
    write(engine, [s(VICTIM_IP, item(i), i, peer=pid) for i in (1, 2, 3)])
    build(engine, {VICTIM_IP: HOME})
    write(engine, [s(REAL_MOVE_IP, item(1), 2.5 + h, peer=pid) for h in range(6)])
    report = build(engine, {VICTIM_IP: HOME, REAL_MOVE_IP: ELSEWHERE}, days=1)
    return Attack(1, 4, units, report)
