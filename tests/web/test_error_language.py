"""Errors raised below the web (filters, case transitions, saved searches)
read in the page's language, identifiers by their labels; the command line
keeps the English text (tests/cases/test_cli.py)."""

from __future__ import annotations

import html
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip

SPANISH = "es-ES,es;q=0.9"
ENGLISH = "en-GB,en;q=0.9"


def _client(client_for: Any, language: str) -> Any:
    client = client_for("ana")
    client.headers["Accept-Language"] = language
    return client


def _text(response: Any) -> str:
    return html.unescape(response.text)


@pytest.mark.parametrize(
    ("language", "title", "message"),
    [
        (SPANISH, "Filtro no válido", "«min_score» debe ser un número"),
        (ENGLISH, "Bad filter", "min_score must be a number"),
    ],
)
def test_a_bad_filter_is_refused_in_the_pages_language(
    client_for: Any, language: str, title: str, message: str
) -> None:
    client = _client(client_for, language)
    page = client.get("/", params={"min_score": "many"})
    assert page.status_code == 400
    assert title in _text(page) and message in _text(page)
    api = client.get("/api/map", params={"min_score": "many"})
    assert api.status_code == 400 and api.json() == {"error": message}


def test_a_filter_day_out_of_range_is_written_the_spanish_way(client_for: Any) -> None:
    page = _client(client_for, SPANISH).get("/", params={"to": "1960-01-01"})
    assert page.status_code == 400
    assert "to debe ser un día entre el 01/01/1970 y el 31/12/2999" in _text(page)


@pytest.mark.parametrize(
    ("language", "message"),
    [
        (
            SPANISH,
            "un caso no puede pasar de «en valoración» a «acusación formulada»; desde "
            "«en valoración» puede pasar a: solicitud redactada, archivado, remitido",
        ),
        (
            ENGLISH,
            "a case cannot go from in triage to charged; from in triage it can go to: "
            "request drafted, archived, referred",
        ),
    ],
)
def test_a_refused_case_transition_reads_in_the_pages_language(
    client_for: Any, world: Engine, language: str, message: str
) -> None:
    client = _client(client_for, language)
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    token = form_csrf(client.get(f"/leads/{lead_id}").text)
    opened = client.post(f"/leads/{lead_id}/cases", data={"csrf": token, "reason": "three files"})
    assert opened.status_code == 200, opened.text
    refused = client.post("/cases/1/move", data={"csrf": token, "state": "charged", "reason": "no"})
    assert refused.status_code == 400
    assert message in _text(refused)
    # A second case on the same lead: the state inside the message is a label too.
    again = client.post(f"/leads/{lead_id}/cases", data={"csrf": token, "reason": "again"})
    assert again.status_code == 409
    if language == SPANISH:
        assert f"la pista {lead_id} ya tiene abierto el caso 1 («en valoración»)" in _text(again)
    else:
        assert f"lead {lead_id} already has case 1 (in triage) for your unit" in _text(again)


@pytest.mark.parametrize(
    ("language", "title", "message"),
    [
        (SPANISH, "No guardada", "ponga un nombre a la búsqueda"),
        (ENGLISH, "Not saved", "give the search a name"),
    ],
)
def test_a_bad_saved_search_is_refused_in_the_pages_language(
    client_for: Any, language: str, title: str, message: str
) -> None:
    client = _client(client_for, language)
    token = form_csrf(client.get("/").text)
    refused = client.post("/searches", data={"csrf": token, "name": " ", "query": "status=active"})
    assert refused.status_code == 400
    assert title in _text(refused) and message in _text(refused)


def test_a_search_the_box_does_not_understand_reads_in_spanish(client_for: Any) -> None:
    client = _client(client_for, SPANISH)
    page = client.get("/search", params={"q": "sha1:abc"})
    assert page.status_code == 400
    assert "un hash sha1 tiene 40 dígitos hexadecimales" in _text(page)
    api = client.get("/api/search", params={"q": "sha1:abc"})
    assert api.json() == {"error": "un hash sha1 tiene 40 dígitos hexadecimales"}
