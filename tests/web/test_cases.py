"""Case pages: open a case from a lead's page, move it, note it; other units see nothing."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import case_event, case_file, case_sighting, lead
from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip


def _records(engine: Engine, action: str) -> list[tuple[str | None, str | None, str]]:
    with engine.connect() as conn:
        return [
            (e.fields.username, e.fields.object_id, e.fields.outcome)
            for e in read_records(conn, AuditQuery(action=action))
        ]


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _open(client: Any, lead_id: int, reason: str = "three files") -> Any:
    token = form_csrf(client.get(f"/leads/{lead_id}").text)
    return client.post(
        f"/leads/{lead_id}/cases",
        data={"csrf": token, "reason": reason},
        follow_redirects=False,
    )


def test_an_analyst_opens_moves_and_notes_a_case(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    page = ana.get(f"/leads/{lead_id}").text
    assert 'id="open-case-form"' in page
    assert re.search(r'id="lead-retention"><strong>\d+ days left</strong>', page)

    opened = _open(ana, lead_id)
    assert (opened.status_code, opened.headers["location"]) == (303, "/cases/1")
    with world.connect() as conn:
        sightings = conn.scalar(select(lead.c.sightings).where(lead.c.id == lead_id))
    assert _count(world, case_sighting) == sightings

    case = ana.get("/cases/1").text
    assert 'data-state="triage"' in case
    assert case.count("data-sighting-id=") == sightings
    assert re.search(r"<strong>\d+ days left</strong>", case)
    # The lead's page now links its case and offers no second one.
    page = ana.get(f"/leads/{lead_id}").text
    assert 'href="/cases/1"' in page and 'id="open-case-form"' not in page
    assert 'data-case-id="1"' in ana.get("/cases").text

    token = form_csrf(case)
    moved = ana.post(
        "/cases/1/move",
        data={"csrf": token, "state": "request_drafted", "reason": "draft ready"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    events = _count(world, case_event)
    wrong = ana.post("/cases/1/move", data={"csrf": token, "state": "charged", "reason": "x"})
    assert wrong.status_code == 400
    # The states by the page's words for them (the command line prints their names).
    assert "a case cannot go from request drafted to charged" in wrong.text
    assert _count(world, case_event) == events
    noted = ana.post(
        "/cases/1/note", data={"csrf": token, "text": "<b>called</b>"}, follow_redirects=False
    )
    assert noted.status_code == 303
    case = ana.get("/cases/1").text
    assert 'data-state="request_drafted"' in case
    assert "&lt;b&gt;called&lt;/b&gt;" in case  # escaped like every other text
    assert [kind for kind in re.findall(r'<li data-kind="(\w+)"', case)] == [
        "open",
        "move",
        "note",
    ]
    assert _records(world, "case_open") == [("ana", str(lead_id), "ok")]
    assert _records(world, "case_move") == [("ana", "1", "ok"), ("ana", "1", "denied")]


def test_another_unit_and_a_missing_case_get_the_same_404(client_for: Any, world: Engine) -> None:
    ana, bea = client_for("ana"), client_for("bea")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    assert _open(ana, lead_id).status_code == 303
    foreign, missing = bea.get("/cases/1"), bea.get("/cases/99")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.text == missing.text
    assert bea.get("/cases/99999999999").status_code == 404
    token = form_csrf(bea.get("/cases").text)
    assert 'id="no-cases"' in bea.get("/cases").text
    refused = bea.post("/cases/1/move", data={"csrf": token, "state": "archived", "reason": "x"})
    assert refused.status_code == 404
    assert bea.post(f"/leads/{lead_id}/cases", data={"csrf": token}).status_code == 404
    with world.connect() as conn:
        assert conn.scalar(select(case_file.c.state)) == "triage"
    assert ("bea", "1", "denied") in _records(world, "case_view")
    assert ("bea", "1", "denied") in _records(world, "case_move")
    assert ("bea", str(lead_id), "denied") in _records(world, "case_open")


def test_forms_need_the_csrf_token_and_a_role_that_works_cases(
    client_for: Any, world: Engine
) -> None:
    ana, carla = client_for("ana"), client_for("carla")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    assert ana.post(f"/leads/{lead_id}/cases", data={"reason": "x"}).status_code == 403
    assert ana.post(f"/leads/{lead_id}/cases", data={"csrf": "0" * 64}).status_code == 403
    assert _count(world, case_file) == 0
    assert carla.get("/cases").status_code == 403
    assert ("ana", f"/leads/{lead_id}/cases", "denied") in _records(world, "case_open")
