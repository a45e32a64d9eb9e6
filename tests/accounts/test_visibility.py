"""A unit sees only its leads; a lead two units hold shows each only who to call."""

from __future__ import annotations

from dataclasses import fields

import pytest
from sqlalchemy import Engine, select

from atalaya.accounts import (
    Contact,
    add_unit,
    claim_lead,
    conflict_clause,
    conflicts_for,
    release_claim,
    unit_holds,
    units_holding,
    visible_lead_ids_clause,
)
from atalaya.errors import AtalayaError
from atalaya.store.tables import lead, lead_presence
from tests.accounts.helpers import T0, insert_lead

# Made-up units and leads: 1 in Madrid (28), 2 in Toledo (45), 3 in Barcelona (08),
# 4 outside the country (no province), 5 in Madrid again.
LEADS = {1: "28", 2: "45", 3: "08", 4: None, 5: "28"}


@pytest.fixture
def units(engine: Engine) -> dict[str, int]:
    with engine.begin() as conn:
        ids = {
            u.name: u.id
            for u in (
                add_unit(conn, "Madrid", ["28"], "Madrid desk +34 600 000 001", T0),
                add_unit(conn, "Castilla", ["45", "13"], "Castilla desk +34 600 000 002", T0),
                add_unit(conn, "Cataluña", ["08", "17"], "Cataluña desk +34 600 000 003", T0),
                add_unit(conn, "Central", [], "Central desk +34 600 000 004", T0),
            )
        }
        for lead_id, province in LEADS.items():
            insert_lead(conn, lead_id, province)
    return ids


def _visible(engine: Engine, unit_id: int) -> set[int]:
    with engine.connect() as conn:
        return set(
            conn.execute(select(lead.c.id).where(visible_lead_ids_clause(unit_id))).scalars()
        )


def test_a_unit_sees_the_leads_of_its_provinces(engine: Engine, units: dict[str, int]) -> None:
    assert _visible(engine, units["Madrid"]) == {1, 5}
    assert _visible(engine, units["Castilla"]) == {2}
    assert _visible(engine, units["Cataluña"]) == {3}
    assert _visible(engine, units["Central"]) == set()


def test_claims_add_leads_and_make_conflicts(engine: Engine, units: dict[str, int]) -> None:
    with engine.begin() as conn:
        assert claim_lead(conn, 3, units["Madrid"], "ana", T0)
        assert not claim_lead(conn, 3, units["Madrid"], "ana", T0)  # already claimed
        assert claim_lead(conn, 4, units["Central"], "carla", T0)
    assert _visible(engine, units["Madrid"]) == {1, 3, 5}
    assert _visible(engine, units["Central"]) == {4}
    with engine.connect() as conn:
        assert conflicts_for(conn, units["Madrid"], [1, 3, 5]) == {
            3: [Contact("Cataluña", "Cataluña desk +34 600 000 003")]
        }
        assert conflicts_for(conn, units["Cataluña"], [3]) == {
            3: [Contact("Madrid", "Madrid desk +34 600 000 001")]
        }
        # A unit that does not hold a lead learns nothing about it.
        assert conflicts_for(conn, units["Castilla"], [1, 3, 4, 5]) == {}
        # Leads held by one unit only are not conflicts.
        assert conflicts_for(conn, units["Central"], [4]) == {}
        holders = units_holding(conn, 3)
        assert [(h.name, h.how) for h in holders] == [
            ("Cataluña", "jurisdiction"),
            ("Madrid", "claim"),
        ]
        in_conflict = set(
            conn.execute(
                select(lead.c.id).where(
                    visible_lead_ids_clause(units["Madrid"]), conflict_clause(units["Madrid"])
                )
            ).scalars()
        )
        assert in_conflict == {3}
    # Only the name and the contact line ever reach the other side.
    assert [f.name for f in fields(Contact)] == ["unit", "contact"]
    with engine.begin() as conn:
        assert release_claim(conn, 3, units["Madrid"])
        assert not release_claim(conn, 3, units["Madrid"])
    assert _visible(engine, units["Madrid"]) == {1, 5}


def test_overlapping_jurisdictions_conflict(engine: Engine, units: dict[str, int]) -> None:
    with engine.begin() as conn:
        national = add_unit(conn, "Nacional", ["28", "45"], "Nacional +34 600 000 009", T0).id
        # Claiming a lead already in its jurisdiction lists the unit once.
        claim_lead(conn, 1, national, "nuria", T0)
    with engine.connect() as conn:
        assert conflicts_for(conn, national, LEADS) == {
            1: [Contact("Madrid", "Madrid desk +34 600 000 001")],
            2: [Contact("Castilla", "Castilla desk +34 600 000 002")],
            5: [Contact("Madrid", "Madrid desk +34 600 000 001")],
        }
        assert [h.how for h in units_holding(conn, 1) if h.unit_id == national] == ["jurisdiction"]


def test_clause_on_another_table_and_single_lead_check(
    engine: Engine, units: dict[str, int]
) -> None:
    with engine.connect() as conn:
        presences = set(
            conn.execute(
                select(lead_presence.c.id).where(
                    visible_lead_ids_clause(units["Castilla"], lead_presence.c.lead_id)
                )
            ).scalars()
        )
        assert presences == {2}
        assert unit_holds(conn, units["Madrid"], 1)
        assert not unit_holds(conn, units["Madrid"], 2)  # another unit's lead, by guessing its id
        assert not unit_holds(conn, units["Madrid"], 999)


def test_claiming_a_lead_that_does_not_exist(engine: Engine, units: dict[str, int]) -> None:
    with pytest.raises(AtalayaError, match="no lead 999"), engine.begin() as conn:
        claim_lead(conn, 999, units["Madrid"], "ana", T0)


@pytest.mark.slow
def test_conflicts_for_many_leads(engine: Engine, units: dict[str, int]) -> None:
    """More leads than one query chunk."""
    with engine.begin() as conn:
        for lead_id in range(100, 1300):
            insert_lead(conn, lead_id, "08")
            if lead_id % 2:
                claim_lead(conn, lead_id, units["Madrid"], "ana", T0)
    with engine.connect() as conn:
        found = conflicts_for(conn, units["Cataluña"], range(100, 1300))
    assert set(found) == {i for i in range(100, 1300) if i % 2}
    assert all(v == [Contact("Madrid", "Madrid desk +34 600 000 001")] for v in found.values())
