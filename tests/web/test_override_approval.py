"""On the lead page: an override that would make a lead urgent waits for a supervisor."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, select

from atalaya.accounts import add_user
from atalaya.accounts.units import set_urgent_score
from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import lead_override, override_decision
from tests.web.conftest import form_csrf
from tests.web.seed import FAST, NOW, PASSWORD, PREFIX, lead_ids_by_ip

W46 = "week=2026-W46"


def _supervisors(world: Engine) -> None:
    with world.begin() as conn:
        add_user(conn, "marta", "Madrid", "supervisor", PASSWORD, NOW, FAST)
        add_user(conn, "berta", "Barcelona", "supervisor", PASSWORD, NOW, FAST)
        add_user(conn, "guille", "Guardia", "supervisor", PASSWORD, NOW, FAST)


def _in_force(client: Any) -> dict[int, float]:
    points = client.get(f"/api/map?{W46}").json()
    fields = points["fields"]
    return {p[fields.index("id")]: p[fields.index("score")] for p in points["points"]}


def test_the_unit_threshold_drives_the_map_and_an_override_waits_for_approval(
    client_for: Any, world: Engine
) -> None:
    _supervisors(world)
    with world.begin() as conn:
        set_urgent_score(conn, "Madrid", 65.0)
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    ana, marta = client_for("ana"), client_for("marta")
    answer = ana.get(f"/api/map?{W46}").json()
    assert answer["urgent_score"] == 65.0
    assert client_for("bea").get(f"/api/map?{W46}").json()["urgent_score"] == 60.0
    computed = _in_force(ana)[lead_id]
    assert computed < 65.0

    page = ana.get(f"/leads/{lead_id}")
    asked = ana.post(
        f"/leads/{lead_id}/override",
        data={
            "score": "88",
            "reason": "seen sharing every day by hand",
            "csrf": form_csrf(page.text),
        },
        follow_redirects=False,
    )
    assert asked.status_code == 303
    with world.connect() as conn:
        row = conn.execute(select(lead_override)).one()
    assert row.pending and _in_force(ana)[lead_id] == computed
    shown = ana.get(f"/leads/{lead_id}").text
    assert f'data-override-id="{row.id}" data-state="pending"' in shown
    assert f'id="decide-{row.id}"' not in shown  # ana is no supervisor

    # Guardia holds the lead too (province 28), but the override is Madrid's.
    guille = client_for("guille")
    other = guille.post(
        f"/leads/{lead_id}/override/decision",
        data={"override": str(row.id), "approve": "1", "reason": "fine",
              "csrf": form_csrf(guille.get(f"/leads/{lead_id}").text)},
    )  # fmt: skip
    assert other.status_code == 409 and "another unit" in other.text
    # Barcelona does not hold it: the same answer as for any other lead.
    berta = client_for("berta")
    hidden = berta.post(
        f"/leads/{lead_id}/override/decision",
        data={"override": str(row.id), "approve": "1", "reason": "fine",
              "csrf": form_csrf(berta.get("/").text)},
    )  # fmt: skip
    assert hidden.status_code == 404
    # An analyst may not decide.
    refused = ana.post(
        f"/leads/{lead_id}/override/decision",
        data={"override": str(row.id), "approve": "1", "reason": "mine", "csrf": form_csrf(shown)},
    )
    assert refused.status_code == 403
    # Without the session's token nothing is recorded.
    forged = marta.post(
        f"/leads/{lead_id}/override/decision",
        data={"override": str(row.id), "approve": "1", "reason": "ok", "csrf": "0" * 64},
    )
    assert forged.status_code == 403

    page = marta.get(f"/leads/{lead_id}").text
    assert f'id="decide-{row.id}"' in page
    done = marta.post(
        f"/leads/{lead_id}/override/decision",
        data={"override": str(row.id), "approve": "1", "reason": "checked the sightings",
              "csrf": form_csrf(page), "back": W46},
        follow_redirects=False,
    )  # fmt: skip
    assert done.status_code == 303 and done.headers["location"].endswith("back=week%3D2026-W46")
    assert _in_force(ana)[lead_id] == 88.0
    with world.connect() as conn:
        decision = conn.execute(select(override_decision)).one()
        records = list(read_records(conn, AuditQuery(action="change")))
    assert (decision.approved, decision.supervisor) == (True, "marta")
    outcomes = [(r.fields.username, r.fields.outcome) for r in records]
    assert ("marta", "ok") in outcomes and ("ana", "denied") in outcomes
    assert ("guille", "denied") in outcomes and ("berta", "denied") in outcomes
    again = ana.get(f"/leads/{lead_id}").text
    assert re.search(rf'data-override-id="{row.id}" data-state="approved"', again)
