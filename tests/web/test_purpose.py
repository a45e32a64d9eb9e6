"""The purpose of a session's reads (LED art. 25): triage until a case is chosen."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from atalaya.audit.log import AuditQuery, read_records
from atalaya.audit.verify import verify
from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip


def _last(engine: Engine, action: str) -> Any:
    with engine.connect() as conn:
        return read_records(conn, AuditQuery(action=action, newest_first=True, limit=1))[0].fields


def _choose(client: Any, purpose: str, token: str | None = None) -> Any:
    page = client.get("/purpose?next=/cases").text
    return client.post(
        "/purpose",
        data={"csrf": token or form_csrf(page), "purpose": purpose, "next": "/cases"},
        follow_redirects=False,
    )


def test_reads_carry_triage_until_a_case_is_chosen_then_that_case(
    client_for: Any, world: Engine
) -> None:
    ana = client_for("ana")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    page = ana.get(f"/leads/{lead_id}").text
    assert 'id="who-purpose"' in page and "Purpose: triage" in page
    view = _last(world, "view")
    assert (view.object_id, view.details["purpose"]) == (str(lead_id), "triage")

    token = form_csrf(page)
    opened = ana.post(
        f"/leads/{lead_id}/cases", data={"csrf": token, "reason": "r"}, follow_redirects=False
    )
    assert opened.status_code == 303
    form = ana.get("/purpose").text
    assert 'value="case:1"' in form and 'value="triage" selected' in form

    chosen = _choose(ana, "case:1")
    assert (chosen.status_code, chosen.headers["location"]) == (303, "/cases")
    assert _last(world, "purpose_set").details["purpose"] == "case:1"
    assert "Purpose: case:1" in ana.get(f"/leads/{lead_id}").text
    assert _last(world, "view").details["purpose"] == "case:1"
    ana.get("/cases/1")
    assert _last(world, "case_view").details["purpose"] == "case:1"
    ana.get("/?week=2026-W46")
    assert _last(world, "search").details["purpose"] == "case:1"

    # Back to triage.
    assert _choose(ana, "triage").status_code == 303
    ana.get(f"/leads/{lead_id}")
    assert _last(world, "view").details["purpose"] == "triage"
    assert verify(world).ok


def test_only_triage_or_a_case_of_the_unit_may_be_chosen(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    for bad in ("case:999", "case:0", "fishing", ""):
        refused = _choose(ana, bad)
        assert refused.status_code == 400, bad
        assert 'id="purpose-error"' in refused.text
        denied = _last(world, "purpose_set")
        assert (denied.outcome, denied.details["asked"]) == ("denied", bad)
    assert _choose(ana, "case:1", token="0" * 64).status_code == 403
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    ana.get(f"/leads/{lead_id}")
    assert _last(world, "view").details["purpose"] == "triage"


def test_another_units_case_cannot_be_the_purpose(client_for: Any, world: Engine) -> None:
    ana, bea = client_for("ana"), client_for("bea")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    token = form_csrf(ana.get(f"/leads/{lead_id}").text)
    ana.post(f"/leads/{lead_id}/cases", data={"csrf": token, "reason": "r"})
    assert 'value="case:1"' not in bea.get("/purpose").text
    refused = _choose(bea, "case:1")
    assert refused.status_code == 400
    denied = _last(world, "purpose_set")
    assert (denied.username, denied.outcome) == ("bea", "denied")
    assert _choose(ana, "case:1").status_code == 303
