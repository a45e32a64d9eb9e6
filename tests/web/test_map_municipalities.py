"""Urgent leads per municipality in /api/map, for the map's finer shading, on
both engines: the same figures as a count written directly in SQL on the
seeded store (the unit's visibility and the window), the map's filters
applied, another unit's leads never counted, and hostile parameters
refused or without effect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from atalaya.accounts.units import set_urgent_score
from atalaya.store.tables import lead, lead_province, unit, unit_province
from tests.web.seed import PREFIX, lead_ids_by_ip, municipality_of

BOTH = "from=2026-11-02&to=2026-11-15"
START = datetime.fromisoformat("2026-11-02T00:00:00+00:00")
END = datetime.fromisoformat("2026-11-16T00:00:00+00:00")
# Low enough that the seed's leads are urgent, so that there is something to count.
URGENT = 1.0


def _sql_counts(world: Engine, unit_name: str, urgent: float) -> dict[str, int]:
    """Urgent leads per municipality code of `unit_name`'s provinces in the window."""
    held = (
        select(lead_province.c.lead_id)
        .join(unit_province, unit_province.c.province_code == lead_province.c.province_code)
        .join(unit, unit.c.id == unit_province.c.unit_id)
        .where(unit.c.name == unit_name)
    )
    query = (
        select(lead.c.municipality_code, func.count())
        .where(
            lead.c.id.in_(held),
            lead.c.score >= urgent,
            lead.c.last_seen >= START,
            lead.c.first_seen < END,
            lead.c.municipality_code.is_not(None),
        )
        .group_by(lead.c.municipality_code)
    )
    with world.connect() as conn:
        return {code: int(n) for code, n in conn.execute(query)}


def _urgent_from(world: Engine, score: float) -> None:
    with world.begin() as conn:
        for name in ("Madrid", "Barcelona", "Islas"):
            set_urgent_score(conn, name, score)


def test_counts_per_municipality_are_the_sql_count(client_for: Any, world: Engine) -> None:
    _urgent_from(world, URGENT)
    ana, bea = client_for("ana"), client_for("bea")
    answer = ana.get(f"/api/map?{BOTH}").json()
    assert answer["urgent_score"] == URGENT
    madrid, sevilla = municipality_of(10), municipality_of(13)
    assert madrid and sevilla
    want = _sql_counts(world, "Madrid", URGENT)
    assert answer["urgent_by_municipality"] == want
    # Madrid's four hosts in the city, Sevilla's one: the SQL is not empty.
    assert want[madrid] == 4 and want[sevilla] == 1
    # Per province, the municipalities add up to the province's figure.
    for province, n in answer["urgent_by_province"].items():
        assert n == sum(v for k, v in want.items() if k.startswith(province)), province
    # Another unit: its own leads only, never Madrid's.
    other = bea.get(f"/api/map?{BOTH}").json()["urgent_by_municipality"]
    assert other == _sql_counts(world, "Barcelona", URGENT)
    assert other and madrid not in other and sevilla not in other


def test_counts_follow_the_maps_filters(client_for: Any, world: Engine) -> None:
    _urgent_from(world, URGENT)
    ana = client_for("ana")
    madrid, sevilla = municipality_of(10), municipality_of(13)
    only_sevilla = ana.get(f"/api/map?{BOTH}&province=41").json()
    assert only_sevilla["urgent_by_municipality"] == {sevilla: 1}
    assert ana.get(f"/api/map?{BOTH}&municipality={madrid}").json()["urgent_by_municipality"] == {
        madrid: 4
    }
    # Week 45 holds one Madrid lead (host 42), week 46 the other three.
    assert ana.get("/api/map?week=2026-W45").json()["urgent_by_municipality"] == {madrid: 1}
    # A drawn area around Sevilla alone.
    area = "-6.2 37.2,-5.8 37.2,-5.8 37.6,-6.2 37.6"
    assert ana.get(f"/api/map?{BOTH}&area={area}").json()["urgent_by_municipality"] == {sevilla: 1}
    # The unit's threshold decides, counted in force: above every score, none.
    _urgent_from(world, 100.0)
    answer = ana.get(f"/api/map?{BOTH}").json()
    assert answer["urgent_by_municipality"] == {} and answer["urgent_by_province"] == {}


def test_hostile_parameters(client_for: Any, world: Engine) -> None:
    _urgent_from(world, URGENT)
    ana = client_for("ana")
    plain = ana.get(f"/api/map?{BOTH}").json()["urgent_by_municipality"]
    for bad in (
        "municipality=28079' OR '1'='1",
        "municipality=../../etc/passwd",
        "municipality=280790",
        "municipality=" + "2" * 20_000,
        "province=28&province=" + "&province=".join(["41"] * 200),
        "province=" + ",".join(["28"] * 5_000),
        "from=0001-01-01&to=9999-12-31",
        "area=" + ",".join(["1 1"] * 500),
    ):
        response = ana.get(f"/api/map?{bad}")
        assert response.status_code == 400, bad[:80]
        assert set(response.json()) == {"error"}
    # Parameters the map does not take change nothing: the threshold is the
    # unit's, not the caller's.
    for ignored in ("urgent_score=0", "urgent_score=-1e308", "level=municipality", "unit=2"):
        answer = ana.get(f"/api/map?{BOTH}&{ignored}").json()
        assert answer["urgent_by_municipality"] == plain and answer["urgent_score"] == URGENT
    # Not signed in: nothing.
    ana.cookies.clear()
    assert ana.get(f"/api/map?{BOTH}").status_code == 401


def test_codes_outside_the_atlas_are_left_out(client_for: Any, world: Engine) -> None:
    # A code the atlas does not outline (stored by an older atlas, say) has
    # no shape to shade: the answer keeps to codes the map can draw.
    _urgent_from(world, URGENT)
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.26"]
    with world.begin() as conn:
        conn.execute(lead.update().where(lead.c.id == lead_id).values(municipality_code="99999"))
    answer = client_for("ana").get(f"/api/map?{BOTH}").json()
    assert "99999" not in answer["urgent_by_municipality"]
    assert answer["urgent_by_municipality"][municipality_of(10) or ""] == 3
