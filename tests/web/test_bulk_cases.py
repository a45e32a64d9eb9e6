"""Bulk selection in the lead list: one case per selected lead, all or none, bounded,
CSRF-checked, for roles that change leads and leads the unit holds, audited."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import case_event, case_file, case_sighting, lead_claim
from atalaya.web.id_lists import IdListError, parse_ids
from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip

W46 = "from=2026-11-09&to=2026-11-15"
SPANISH = "es-ES,es;q=0.9"


def _written(engine: Engine) -> tuple[int, ...]:
    """Rows of every table a case open writes: all must stay as they were on a refusal."""
    with engine.connect() as conn:
        return tuple(
            int(conn.scalar(select(func.count()).select_from(t)) or 0)
            for t in (case_file, case_event, case_sighting, lead_claim)
        )


def _opens(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        return [
            (str(e.fields.outcome), dict(e.fields.details or {}))
            for e in read_records(conn, AuditQuery(action="case_open"))
        ]


def _post(client: Any, leads: list[Any], *, csrf: str | None = "page", **more: str) -> Any:
    token = form_csrf(client.get(f"/?{W46}").text) if csrf == "page" else csrf
    data: dict[str, Any] = {"lead": [str(x) for x in leads], "back": W46, **more}
    if token is not None:
        data["csrf"] = token
    return client.post("/cases/open", data=data, follow_redirects=False)


def _text(response: Any) -> str:
    return html.unescape(response.text)


@pytest.fixture
def ana(client_for: Any) -> Any:
    return client_for("ana")


def test_the_list_offers_a_labelled_checkbox_per_lead_and_the_bar(ana: Any, world: Engine) -> None:
    page = ana.get(f"/?{W46}").text
    ids = re.findall(r'<tr data-lead-id="(\d+)">', page)
    assert ids
    for lead_id in ids:
        assert (
            f'<input type="checkbox" name="lead" value="{lead_id}" form="bulk-form" '
            f'id="pick-{lead_id}" aria-label="Select lead {lead_id}">'
        ) in page
    assert 'id="pick-all" aria-label="Select every lead on this page"' in page
    assert 'action="/cases/open" id="bulk-form"' in page
    assert "Open a case for each selected lead" in page
    assert "another page, order or filter clears it" in page
    spanish = ana.get(f"/?{W46}", headers={"Accept-Language": SPANISH}).text
    assert "Abrir un caso por cada pista seleccionada" in spanish


def test_a_role_that_does_not_change_leads_gets_no_checkboxes(
    client_for: Any, world: Engine
) -> None:
    # Auditors do not see the list at all; the form is tied to CHANGE_LEADS.
    carla = client_for("carla")
    token = form_csrf(carla.get("/audit").text)
    before = _written(world)
    refused = carla.post("/cases/open", data={"csrf": token, "lead": ["1"]}, follow_redirects=False)
    assert refused.status_code == 403 and "Your role does not change leads." in refused.text
    assert _written(world) == before


def test_two_selected_leads_open_two_cases_listed_with_links(ana: Any, world: Engine) -> None:
    by_ip = lead_ids_by_ip(world)
    first, second = by_ip[f"{PREFIX}.10"], by_ip[f"{PREFIX}.26"]
    opened = _post(ana, [first, second, first], reason="two known files each")
    assert opened.status_code == 303
    assert opened.headers["location"] == "/cases?opened=1&case=1&case=2"
    with world.connect() as conn:
        rows = conn.execute(select(case_file.c.id, case_file.c.lead_id, case_file.c.state)).all()
    assert sorted(rows) == [(1, first, "triage"), (2, second, "triage")]
    # One audit record for the whole request, as `atalaya cases open A B` writes.
    assert _opens(world) == [
        (
            "ok",
            {
                "leads": [first, second],
                "reason": "two known files each",
                "bulk": True,
                "cases": [{"case": 1, "lead": first}, {"case": 2, "lead": second}],
                "purpose": "triage",  # the session's purpose, on every record it makes
            },
        )
    ]
    listed = ana.get(opened.headers["location"])
    assert listed.status_code == 200
    assert sorted(re.findall(r'data-case-id="(\d+)"', listed.text)) == ["1", "2"]
    assert 'href="/cases/1"' in listed.text and 'href="/cases/2"' in listed.text
    assert "2 cases opened, one per lead:" in listed.text
    assert 'href="/cases" id="all-cases"' in listed.text


def test_one_lead_that_cannot_be_taken_stops_them_all(ana: Any, world: Engine) -> None:
    by_ip = lead_ids_by_ip(world)
    mine, taken = by_ip[f"{PREFIX}.10"], by_ip[f"{PREFIX}.26"]
    single = ana.post(
        f"/leads/{taken}/cases",
        data={"csrf": form_csrf(ana.get(f"/leads/{taken}").text)},
        follow_redirects=False,
    )
    assert single.status_code == 303
    before = _written(world)
    refused = _post(ana, [mine, taken])
    assert refused.status_code == 409
    text = _text(refused)
    assert f"lead {taken} already has case 1" in text
    assert "No case was opened" in text and "Nothing was written" in text
    assert f'href="/?{W46}"' in refused.text.replace("&amp;", "&")  # back to the same list
    assert _written(world) == before
    assert [outcome for outcome, _ in _opens(world)] == ["ok", "denied"]


@pytest.mark.parametrize(
    ("leads", "status", "english", "spanish"),
    [
        (["12", "x'); --"], 400, "“x'); --” is not a lead or case number", "no es un número"),
        (["-3"], 400, "“-3” is not a lead or case number", "«-3» no es un número"),
        ([str(i) for i in range(1, 202)], 400, "201 selected; at most 200 at a time",
         "201 seleccionadas; como máximo 200 a la vez"),
        ([], 400, "nothing selected: select at least one", "marque al menos una casilla"),
        (["99999999999999999"], 409, "lead 99999999999999999 is not one of your unit's leads",
         "la pista 99999999999999999 no es de su unidad"),
    ],
)  # fmt: skip
def test_hostile_selections_get_one_clear_line_and_nothing_written(
    client_for: Any, world: Engine, leads: list[str], status: int, english: str, spanish: str
) -> None:
    ana = client_for("ana")
    before = _written(world)
    refused = _post(ana, leads)
    assert refused.status_code == status
    assert english in _text(refused)
    ana.headers["Accept-Language"] = SPANISH
    assert spanish in _text(_post(ana, leads))
    assert _written(world) == before
    assert [outcome for outcome, _ in _opens(world)] == ["denied", "denied"]


def test_another_units_lead_reads_like_no_lead_and_nothing_is_opened(
    ana: Any, world: Engine
) -> None:
    by_ip = lead_ids_by_ip(world)
    mine, barcelona = by_ip[f"{PREFIX}.10"], by_ip[f"{PREFIX}.11"]
    before = _written(world)
    refused = _post(ana, [mine, barcelona])
    assert refused.status_code == 409
    assert f"lead {barcelona} is not one of your unit's leads" in _text(refused)
    assert _written(world) == before
    ((outcome, details),) = _opens(world)
    assert outcome == "denied" and details["leads"] == [mine, barcelona]


def test_without_the_sessions_csrf_token_nothing_is_written(ana: Any, world: Engine) -> None:
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    before = _written(world)
    for token in (None, "0" * 64):
        refused = _post(ana, [lead_id], csrf=token)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
    assert _written(world) == before
    assert [outcome for outcome, _ in _opens(world)] == ["denied", "denied"]


@pytest.mark.parametrize("query", ["case=abc", "case=1&case=" + "9" * 30, "case=-1"])
def test_the_cases_list_refuses_a_junk_case_filter(ana: Any, query: str) -> None:
    page = ana.get(f"/cases?{query}")
    assert page.status_code == 400 and "Bad filter" in page.text


def test_the_cases_list_shows_only_the_cases_asked_for(ana: Any, world: Engine) -> None:
    by_ip = lead_ids_by_ip(world)
    assert _post(ana, [by_ip[f"{PREFIX}.10"], by_ip[f"{PREFIX}.26"]]).status_code == 303
    page = ana.get("/cases?case=2&case=77").text
    assert re.findall(r'data-case-id="(\d+)"', page) == ["2"]
    assert "Showing 1 of the cases asked for." in page
    everything = ana.get("/cases").text
    assert sorted(re.findall(r'data-case-id="(\d+)"', everything)) == ["1", "2"]
    assert 'id="cases-only"' not in everything


def test_id_lists_are_bounded_and_numbers_only() -> None:
    assert parse_ids([" 3", "1", "3"]) == [3, 1]
    assert parse_ids([str(i) for i in range(200)]) == list(range(200))
    for bad in ([], ["1"] * 201, ["1.0"], ["\u0661"], ["1" * 20], ["0x1"]):
        with pytest.raises(IdListError):
            parse_ids(bad)
