"""The ISP's answer on the case page, the identity page (an audited combination), the steps."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import case_file, subscriber_identity
from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip

ANSWER = {
    "outcome": "identified",
    "name": "Abonada <Ficticia>",
    "id_number": "00000000T",
    "address": "Calle Inventada 1",
    "line": "",
    "addressing": "static",
    "reference": "R-7",
    "notes": "",
}


def _records(engine: Engine, action: str) -> list[tuple[str | None, str | None, str]]:
    with engine.connect() as conn:
        return [
            (e.fields.username, e.fields.object_id, e.fields.outcome)
            for e in read_records(conn, AuditQuery(action=action))
        ]


def _answers(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(subscriber_identity)) or 0)


def _case_at_the_isp(ana: Any, world: Engine) -> str:
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    token = form_csrf(ana.get(f"/leads/{lead_id}").text)
    opened = ana.post(f"/leads/{lead_id}/cases", data={"csrf": token}, follow_redirects=False)
    assert opened.status_code == 303
    for state in ("request_drafted", "sent_to_court", "authorised", "sent_to_isp"):
        moved = ana.post("/cases/1/move", data={"csrf": token, "state": state, "reason": "r"},
                         follow_redirects=False)  # fmt: skip
        assert moved.status_code == 303, moved.text
    return token


def test_an_answer_recorded_on_the_case_page_then_shown_with_a_purpose(
    client_for: Any, world: Engine
) -> None:
    ana = client_for("ana")
    token = _case_at_the_isp(ana, world)
    page = ana.get("/cases/1").text
    assert 'id="answer-form"' in page and 'id="identity-form"' not in page

    missing = ana.post("/cases/1/answer", data={"csrf": token, **ANSWER, "id_number": ""})
    assert missing.status_code == 400 and "needs the id number" in missing.text
    assert _answers(world) == 0
    done = ana.post("/cases/1/answer", data={"csrf": token, **ANSWER}, follow_redirects=False)
    assert (done.status_code, done.headers["location"]) == (303, "/cases/1")
    page = ana.get("/cases/1").text
    assert 'data-state="isp_answered"' in page and 'id="identity-form"' in page
    assert "Ficticia" not in page and "00000000T" not in page  # the case page names nobody

    no_purpose = ana.get("/cases/1/identity")
    assert no_purpose.status_code == 400 and "the purpose is required" in no_purpose.text
    shown = ana.get("/cases/1/identity", params={"purpose": "draft the search request"})
    assert shown.status_code == 200
    assert shown.headers["cache-control"] == "no-store"
    assert "Abonada &lt;Ficticia&gt;" in shown.text  # escaped like every other text
    assert 'class="subject">abonado' in shown.text
    with world.connect() as conn:
        pinned = conn.scalar(select(func.count()).select_from(case_file))
    assert pinned == 1
    assert len(re.findall(r'<tr data-sighting-id="\d+">', shown.text)) >= 1
    assert f"<code>{PREFIX}.10</code>" in shown.text
    with world.connect() as conn:
        combo = read_records(conn, AuditQuery(action="identity_combination"))
    assert [(r.fields.username, r.fields.outcome) for r in combo] == [
        ("ana", "denied"),
        ("ana", "ok"),
    ]
    assert combo[1].fields.details["purpose"] == "draft the search request"
    assert "Ficticia" not in repr([r.fields.details for r in combo])

    # The steps after the answer.
    step = {"csrf": token, "step": "charges", "text": "CP 189.1.b"}
    charged = ana.post("/cases/1/step", data=step, follow_redirects=False)
    assert charged.status_code == 303
    assert 'data-state="charged"' in ana.get("/cases/1").text
    wrong = ana.post("/cases/1/step", data={"csrf": token, "step": "search", "text": "x"})
    assert (
        wrong.status_code == 400
        and "a house search is recorded on a case in search authorised" in wrong.text
    )


def test_identity_is_for_the_cases_unit_in_a_case_role_only(client_for: Any, world: Engine) -> None:
    ana, bea, carla = client_for("ana"), client_for("bea"), client_for("carla")
    token = _case_at_the_isp(ana, world)
    assert ana.post("/cases/1/answer", data={"csrf": token, **ANSWER}).status_code == 200
    # Another unit: the same 404 as for no case; an auditor: no case pages at all.
    foreign = bea.get("/cases/1/identity", params={"purpose": "curious"})
    missing = bea.get("/cases/99/identity", params={"purpose": "curious"})
    assert foreign.status_code == missing.status_code == 404
    assert foreign.text == missing.text
    refused = carla.get("/cases/1/identity", params={"purpose": "audit"})
    assert refused.status_code == 403 and "Ficticia" not in refused.text
    bea_token = form_csrf(bea.get("/cases").text)
    posted = bea.post("/cases/1/answer", data={"csrf": bea_token, **ANSWER})
    assert posted.status_code == 404
    assert _answers(world) == 1
    assert ("bea", "1", "denied") in _records(world, "identity_combination")
    assert ("bea", "1", "denied") in _records(world, "case_answer")
