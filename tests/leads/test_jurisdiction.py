"""Jurisdiction cannot be taken away by the suspect.

A peer id is seen by every peer of a swarm: sightings from another province
that carry a lead's peer id must not link to the lead without corroboration,
and a unit keeps every lead with a presence in its provinces.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from atalaya.accounts import Contact, conflict_clause, conflicts_for, unit_holds
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.leads.build import build_leads
from atalaya.leads.config import GroupingConfig
from atalaya.leads.linking import ADJACENT, PEER_ID, SAME_NETWORK, SHARED_ITEMS, Node, links_between
from atalaya.leads.presence import US_PER_HOUR, ItemKey
from atalaya.leads.query import lead_detail
from atalaya.store.tables import lead, lead_link, lead_presence
from tests.leads.helpers import ELSEWHERE, HOME, NOW, facts
from tests.leads.scenarios import (
    ATTACKER_IP,
    CONFIG,
    REAL_MOVE_IP,
    UNITS,
    VICTIM_IP,
    corroborated_move,
    peer_id_attack,
)

PID = frozenset({"2d4c54" + "ab" * 17})


def node(
    ident: int,
    items: set[str],
    *,
    first_h: float,
    last_h: float,
    province: str | None = "28",
    asn: int | None = 64500,
    isp: str | None = "Example Fibra",
) -> Node:
    return Node(
        id=ident,
        ip=f"10.0.0.{ident}",
        port=None,
        first_at=round(first_h * US_PER_HOUR),
        last_at=round(last_h * US_PER_HOUR),
        items=frozenset(ItemKey("bittorrent", "btih", i) for i in items),
        peer_ids=PID,
        block=None,
        client=None,
        province=province,
        asn=asn,
        isp=isp,
    )


def peer_links(a: Node, b: Node) -> list[dict[str, object]]:
    return [k.evidence for k in links_between(a, b, GroupingConfig()) if k.reason == PEER_ID]


HOME_NODE = node(1, {"a", "b", "c"}, first_h=0, last_h=2)


def test_a_peer_id_alone_links_within_one_province_and_network() -> None:
    (evidence,) = peer_links(HOME_NODE, node(2, {"x"}, first_h=30, last_h=31))
    assert evidence["crosses"] == [] and "corroborated_by" not in evidence


def test_a_peer_id_alone_does_not_cross_provinces_and_networks() -> None:
    away = node(2, {"a"}, first_h=30, last_h=31, province="41", asn=64501, isp="Example Cable")
    assert peer_links(HOME_NODE, away) == []
    # Nor a network alone (same province), nor a province alone on a network
    # told apart by its name where the ASN is unknown.
    assert peer_links(HOME_NODE, replace(away, province="28")) == []
    other_isp = replace(away, asn=None, isp="Example Cable")
    assert peer_links(replace(HOME_NODE, asn=None), replace(other_isp, province="28")) == []


@pytest.mark.parametrize(
    ("other", "crosses", "counted"),
    [
        # Another province on the same network: a coarse geolocation of one
        # ISP's pools.
        (node(2, {"x"}, first_h=30, last_h=31, province="41"), ["province"], [SAME_NETWORK]),
        # Same ISP by name where ASNs are unknown (case does not matter).
        (
            node(2, {"x"}, first_h=30, last_h=31, province="41", asn=None, isp="EXAMPLE FIBRA"),
            ["province"],
            [SAME_NETWORK],
        ),
        # Another province and network, three of the same items.
        (
            node(2, {"a", "b", "c", "d"}, first_h=30, last_h=31, province="41", asn=64501),
            ["province", "network"],
            [SHARED_ITEMS],
        ),
        # Another province and network, seen within the hour after.
        (
            node(2, {"x"}, first_h=2.5, last_h=4, province="41", asn=64501),
            ["province", "network"],
            [ADJACENT],
        ),
    ],
)
def test_a_crossing_peer_id_link_says_what_corroborates_it(
    other: Node, crosses: list[str], counted: list[str]
) -> None:
    (evidence,) = peer_links(HOME_NODE, other)
    assert evidence["crosses"] == crosses
    assert evidence["corroborated_by"] == counted
    assert evidence["provinces"] == ["28", other.province]
    assert "alone it does not join" in str(evidence["why"])


def test_unknown_places_are_not_a_crossing() -> None:
    unknown = node(2, {"x"}, first_h=30, last_h=31, province=None, asn=None, isp=None)
    (evidence,) = peer_links(HOME_NODE, unknown)
    assert evidence["crosses"] == []


def test_adjacency_ends_at_one_hour() -> None:
    near = node(2, {"x"}, first_h=3, last_h=4, province="41", asn=64501)
    far = replace(near, first_at=round(3.01 * US_PER_HOUR))
    assert [e["corroborated_by"] for e in peer_links(HOME_NODE, near)] == [[ADJACENT]]
    assert peer_links(HOME_NODE, far) == []


# --- the attack, through builds and units -----------------------------------------------


def _presences(engine: Engine, lead_id: int) -> list[str]:
    with engine.connect() as conn:
        return sorted(
            conn.scalars(select(lead_presence.c.ip).where(lead_presence.c.lead_id == lead_id))
        )


def _visible(engine: Engine, unit_id: int) -> list[int]:
    with engine.connect() as conn:
        return sorted(
            conn.scalars(select(lead.c.id).where(visible_lead_ids_clause(unit_id)).order_by("id"))
        )


@pytest.mark.parametrize("rebuild", [False, True])
def test_sightings_carrying_a_leads_peer_id_from_elsewhere_take_nothing(
    engine: Engine, rebuild: bool
) -> None:
    attack = peer_id_attack(engine)
    if rebuild:
        places = {VICTIM_IP: HOME, ATTACKER_IP: ELSEWHERE}
        build_leads(engine, facts(places), CONFIG, now=NOW, rebuild=True)
    madrid, sevilla = attack.units["Madrid"], attack.units["Sevilla"]
    # Madrid still holds its lead, unchanged: its address, its province.
    assert _presences(engine, attack.lead) == [VICTIM_IP]
    victim = lead_detail(engine, attack.lead)
    assert (victim["province_code"], victim["sightings"], victim["links"]) == ("28", 3, [])
    assert [o["reason"] for o in victim["overrides"]] == ["priority target"]
    assert [h for h in victim["history"] if h["kind"] == "jurisdiction"] == []
    # Sevilla sees the impostor's sightings as a lead of its own, and nothing
    # of Madrid's: not the lead, its address, nor its override.
    assert _visible(engine, madrid) == [attack.lead]
    assert _visible(engine, sevilla) == [attack.attacker]
    impostor = lead_detail(engine, attack.attacker)
    assert [p["ip"] for p in impostor["presences"]] == [ATTACKER_IP]
    assert impostor["overrides"] == [] and impostor["history"] == []
    assert VICTIM_IP not in str(impostor)
    with engine.connect() as conn:
        assert not unit_holds(conn, sevilla, attack.lead)
        assert conn.scalar(select(lead_link.c.reason)) is None
        assert conflicts_for(conn, madrid, [attack.lead, attack.attacker]) == {}
        assert conflicts_for(conn, sevilla, [attack.lead, attack.attacker]) == {}


def test_a_corroborated_move_is_held_by_both_units_as_a_conflict(engine: Engine) -> None:
    move = corroborated_move(engine)
    madrid, sevilla = move.units["Madrid"], move.units["Sevilla"]
    assert (move.report.merges, move.report.jurisdiction_changes) == (0, 1)
    detail = lead_detail(engine, move.lead)
    assert sorted(p["ip"] for p in detail["presences"]) == [VICTIM_IP, REAL_MOVE_IP]
    # The lead's main place is now Sevilla (most sightings): Madrid keeps it.
    assert detail["province_code"] == "41"
    (link,) = detail["links"]
    assert link["reason"] == PEER_ID
    assert link["evidence"]["crosses"] == ["province", "network"]
    assert link["evidence"]["corroborated_by"] == [ADJACENT]
    (change,) = detail["history"]
    assert change["kind"] == "jurisdiction"
    assert (change["before"], change["after"]) == (["28"], ["28", "41"])
    assert change["build"] == move.report.build_id
    assert change["text"] == f"lead {move.lead}: provinces 28 → 28, 41"
    with engine.connect() as conn:
        assert unit_holds(conn, madrid, move.lead) and unit_holds(conn, sevilla, move.lead)
        assert conflicts_for(conn, madrid, [move.lead]) == {
            move.lead: [Contact("Sevilla", UNITS["Sevilla"][1])]
        }
        assert conflicts_for(conn, sevilla, [move.lead]) == {
            move.lead: [Contact("Madrid", UNITS["Madrid"][1])]
        }
        for unit_id in (madrid, sevilla):
            in_conflict = conn.scalars(
                select(lead.c.id).where(visible_lead_ids_clause(unit_id), conflict_clause(unit_id))
            )
            assert list(in_conflict) == [move.lead]
    # The history is a record.
    with pytest.raises(DBAPIError, match="lineage and history are a record"), engine.begin() as c:
        c.execute(text("DELETE FROM lead_history"))


def test_an_impostor_on_the_same_isp_elsewhere_links_but_cannot_take_the_lead(
    engine: Engine,
) -> None:
    """The weakest corroboration: one ISP's address in another province. The
    peer id then links, and the lead becomes a conflict: never Sevilla's alone."""
    same_isp = replace(ELSEWHERE, asn=HOME.asn, isp=HOME.isp)
    attack = peer_id_attack(engine, attacker_facts=same_isp)
    madrid, sevilla = attack.units["Madrid"], attack.units["Sevilla"]
    detail = lead_detail(engine, attack.lead)
    assert sorted(p["ip"] for p in detail["presences"]) == [VICTIM_IP, ATTACKER_IP]
    assert detail["province_code"] == "41"  # the impostor was seen more often
    assert detail["links"][0]["evidence"]["corroborated_by"] == [SAME_NETWORK]
    assert [h["after"] for h in detail["history"]] == [["28", "41"]]
    with engine.connect() as conn:
        assert unit_holds(conn, madrid, attack.lead) and unit_holds(conn, sevilla, attack.lead)
        assert conflicts_for(conn, madrid, [attack.lead]) == {
            attack.lead: [Contact("Sevilla", UNITS["Sevilla"][1])]
        }
