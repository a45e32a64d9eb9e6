"""Bulk drafting on /cases: the judicial request of each selected case in triage,
through the batch service of `atalaya requests draft`; refusals write nothing."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import case_document, case_file
from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip
from tests.web.test_bulk_cases import W46

SIGNING_UNSET = ("ATALAYA_SIGN_P12", "ATALAYA_SIGN_PKCS11_LIB", "ATALAYA_REQUESTS_TEMPLATES",
                 "ATALAYA_REQUESTS_CONFIG")  # fmt: skip


@pytest.fixture(autouse=True)
def _shipped_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SIGNING_UNSET:
        monkeypatch.delenv(name, raising=False)


def _documents(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(case_document)) or 0)


def _states(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {
            int(r.id): str(r.state) for r in conn.execute(select(case_file.c.id, case_file.c.state))
        }


def _drafts(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        return [
            (str(e.fields.outcome), dict(e.fields.details or {}))
            for e in read_records(conn, AuditQuery(action="case_request_draft"))
        ]


def _two_cases(client: Any, world: Engine) -> None:
    by_ip = lead_ids_by_ip(world)
    token = form_csrf(client.get(f"/?{W46}").text)
    leads = [str(by_ip[f"{PREFIX}.10"]), str(by_ip[f"{PREFIX}.26"])]
    opened = client.post("/cases/open", data={"csrf": token, "lead": leads}, follow_redirects=False)
    assert opened.status_code == 303


def _draft(client: Any, cases: list[Any], *, csrf: bool = True, **more: str) -> Any:
    data: dict[str, Any] = {"case": [str(c) for c in cases], **more}
    if csrf:
        data["csrf"] = form_csrf(client.get("/cases").text)
    return client.post("/cases/requests", data=data, follow_redirects=False)


def test_two_selected_cases_get_their_requests_in_one_go(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    _two_cases(ana, world)
    page = ana.get("/cases").text
    assert sorted(re.findall(r'name="case" value="(\d+)" form="bulk-draft"', page)) == ["1", "2"]
    assert "Draft the judicial request of each selected case" in page
    drafted = _draft(ana, [1, 2], secrecy="on")
    assert drafted.status_code == 200
    rows = re.findall(r'<tr data-case-id="(\d+)" data-drafted="(\w+)">', drafted.text)
    assert sorted(rows) == [("1", "yes"), ("2", "yes")]
    assert 'href="/cases/1#requests"' in drafted.text
    assert "2 of 2 selected cases now have their judicial request" in drafted.text
    assert _states(world) == {1: "request_drafted", 2: "request_drafted"}
    assert _documents(world) == 4  # a PDF and a DOCX each
    records = _drafts(world)
    assert [outcome for outcome, _ in records] == ["ok", "ok"]
    assert all(d["batch"] and d["secrecy"] and d["via"] == "web" for _, d in records)
    # Drafted cases are out of triage: nothing left to select, no form.
    assert 'id="bulk-draft"' not in ana.get("/cases").text


@pytest.mark.parametrize(
    ("cases", "status", "message"),
    [
        (["1", "abc"], 400, "“abc” is not a lead or case number"),
        ([str(i) for i in range(1, 202)], 400, "201 selected; at most 200 at a time"),
        ([], 400, "nothing selected: select at least one"),
        (["1", "3"], 409, "case 3 is not one of your unit's cases in triage"),
    ],
)
def test_hostile_case_selections_draft_nothing(
    client_for: Any, world: Engine, cases: list[str], status: int, message: str
) -> None:
    ana = client_for("ana")
    _two_cases(ana, world)
    refused = _draft(ana, cases)
    assert refused.status_code == status
    assert message in html.unescape(refused.text)
    assert _documents(world) == 0 and set(_states(world).values()) == {"triage"}
    assert [outcome for outcome, _ in _drafts(world)] == ["denied"]


def test_another_units_case_and_a_missing_token_draft_nothing(
    client_for: Any, world: Engine
) -> None:
    ana, bea = client_for("ana"), client_for("bea")
    _two_cases(ana, world)
    refused = _draft(bea, [1])  # ana's case: for bea, no case of hers in triage
    assert refused.status_code == 409
    assert "case 1 is not one of your unit's cases in triage" in html.unescape(refused.text)
    assert _draft(ana, [1], csrf=False).status_code == 403
    assert _documents(world) == 0 and set(_states(world).values()) == {"triage"}
