"""The case page drafts the case's judicial request and downloads its documents,
each download a disclosure audited with its recipient and purpose."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import case_document, case_file
from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip

SIGNING_UNSET = ("ATALAYA_SIGN_P12", "ATALAYA_SIGN_PKCS11_LIB", "ATALAYA_REQUESTS_TEMPLATES",
                 "ATALAYA_REQUESTS_CONFIG")  # fmt: skip


@pytest.fixture(autouse=True)
def _shipped_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SIGNING_UNSET:
        monkeypatch.delenv(name, raising=False)


def _documents(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(case_document)) or 0)


def _details(engine: Engine, action: str) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        return [
            (e.fields.outcome, e.fields.details)
            for e in read_records(conn, AuditQuery(action=action))
        ]


def _case(client: Any, world: Engine) -> str:
    """A case opened by ana on a Madrid lead; its page."""
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    token = form_csrf(client.get(f"/leads/{lead_id}").text)
    opened = client.post(f"/leads/{lead_id}/cases", data={"csrf": token, "reason": "r"})
    assert opened.status_code == 200 and opened.url.path == "/cases/1"
    return str(opened.text)


def test_draft_the_request_and_download_both_documents(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    page = _case(ana, world)
    assert 'id="draft-form"' in page and 'id="no-requests"' in page
    drafted = ana.post(
        "/cases/1/request", data={"csrf": form_csrf(page), "secrecy": "on"}, follow_redirects=False
    )
    assert (drafted.status_code, drafted.headers["location"]) == (303, "/cases/1#requests")
    page = ana.get("/cases/1").text
    assert 'data-state="request_drafted"' in page
    assert 'id="draft-form"' not in page  # one judicial request per case
    ids = re.findall(r'name="doc" value="(\d+)"', page)
    assert len(ids) == 2
    court = re.search(r'name="recipient" required maxlength="200" value="([^"]+)"', page)
    assert court is not None and "JUZGADO" in court.group(1).upper()

    pdf = ana.get("/cases/1/documents", params={"doc": ids[0], "recipient": "Juzgado de guardia"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert 'filename="caso-1-solicitud-judicial-' in pdf.headers["content-disposition"]
    docx = ana.get("/cases/1/documents", params={"doc": ids[1], "recipient": "Fiscalía"})
    assert docx.status_code == 200 and docx.content.startswith(b"PK")
    with world.connect() as conn:
        stored = conn.execute(select(case_document.c.body).order_by(case_document.c.id)).all()
    assert [bytes(r.body) for r in stored] == [pdf.content, docx.content]

    drafts = _details(world, "case_request_draft")
    assert [(o, d["secrecy"], d["documents"]) for o, d in drafts] == [
        ("ok", True, [int(i) for i in ids])
    ]
    downloads = _details(world, "case_documents")
    assert [(o, d["recipient"], d["purpose"], d["document"]) for o, d in downloads] == [
        ("ok", "Juzgado de guardia", "case:1", int(ids[0])),
        ("ok", "Fiscalía", "case:1", int(ids[1])),
    ]


def test_a_download_names_its_recipient_and_a_second_request_is_refused(
    client_for: Any, world: Engine
) -> None:
    ana, bea = client_for("ana"), client_for("bea")
    page = _case(ana, world)
    token = form_csrf(page)
    assert ana.post("/cases/1/request", data={"csrf": token}).status_code == 200
    doc_id = re.findall(r'name="doc" value="(\d+)"', ana.get("/cases/1").text)[0]
    nameless = ana.get("/cases/1/documents", params={"doc": doc_id, "recipient": "  "})
    assert nameless.status_code == 400
    assert 'id="download-error"' in nameless.text and "name its recipient" in nameless.text
    assert [o for o, _ in _details(world, "case_documents")] == ["denied"]
    # Another unit's user, and a document of no case of theirs: the same 404.
    foreign = bea.get("/cases/1/documents", params={"doc": doc_id, "recipient": "x"})
    missing = ana.get("/cases/1/documents", params={"doc": "999", "recipient": "x"})
    assert foreign.status_code == missing.status_code == 404
    # A second request for the case: one clear line, nothing written.
    again = ana.post("/cases/1/request", data={"csrf": token})
    assert again.status_code == 409
    assert re.search(r'id="request-error">[^<]*is request drafted', again.text)
    assert _documents(world) == 2


def test_settings_without_the_court_are_one_clear_error_on_the_page(
    client_for: Any, world: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "solicitudes.toml"
    settings.write_text('[officers]\nana = "TIP 1"\n', "utf-8")
    monkeypatch.setenv("ATALAYA_REQUESTS_CONFIG", str(settings))
    ana = client_for("ana")
    page = _case(ana, world)
    refused = ana.post("/cases/1/request", data={"csrf": form_csrf(page)})
    assert refused.status_code == 409
    error = re.search(r'id="request-error">([^<]*)<', refused.text)
    assert error is not None and "court" in error.group(1)
    assert _documents(world) == 0
    with world.connect() as conn:
        assert conn.scalar(select(case_file.c.state)) == "triage"
    assert [o for o, _ in _details(world, "case_request_draft")] == ["denied"]


def test_the_draft_form_needs_the_csrf_token_and_a_role_that_works_cases(
    client_for: Any, world: Engine
) -> None:
    ana, carla = client_for("ana"), client_for("carla")
    _case(ana, world)
    assert ana.post("/cases/1/request", data={}).status_code == 403
    assert ana.post("/cases/1/request", data={"csrf": "0" * 64}).status_code == 403
    token = form_csrf(carla.get("/").text)
    assert carla.post("/cases/1/request", data={"csrf": token}).status_code == 403
    assert _documents(world) == 0
