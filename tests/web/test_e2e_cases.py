"""End to end in Chromium: an analyst opens a case from a lead's page, moves it, drafts
its request and downloads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import case_event, case_file
from tests.web.seed import PREFIX, lead_ids_by_ip
from tests.web.test_e2e import Tab, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.web, pytest.mark.slow]


def test_an_analyst_opens_a_case_from_the_lead_page_and_moves_it(
    browser: Any,  # noqa: F811
    site: str,  # noqa: F811
    world: Engine,
) -> None:
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    tab = Tab(browser, site)
    try:
        tab.sign_in("ana")
        page = tab.page
        page.goto(f"{site}/leads/{lead_id}")
        assert "days left" in page.locator("#lead-retention").inner_text()
        page.fill("#open-case-form input[name=reason]", "three known files in a week")
        with page.expect_navigation():
            page.click("#open-case")
        assert page.url == f"{site}/cases/1"
        assert page.locator("#case-state").get_attribute("data-state") == "triage"
        page.select_option("#move-form select[name=state]", "request_drafted")
        page.fill("#move-form input[name=reason]", "draft for the duty court")
        with page.expect_navigation():
            page.click("#move-form button")
        assert page.locator("#case-state").get_attribute("data-state") == "request_drafted"
        assert page.locator("#events li").count() == 2
        page.click("#nav-cases")
        page.wait_for_selector('#cases tr[data-case-id="1"]')
        assert tab.problems == []
    finally:
        tab.close()
    with world.connect() as conn:
        assert conn.execute(select(case_file.c.lead_id, case_file.c.state)).all() == [
            (lead_id, "request_drafted")
        ]
        assert [e.kind for e in conn.execute(select(case_event.c.kind))] == ["open", "move"]


def test_an_analyst_drafts_the_request_and_downloads_its_pdf(
    browser: Any,  # noqa: F811
    site: str,  # noqa: F811
    world: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ATALAYA_SIGN_P12", "ATALAYA_SIGN_PKCS11_LIB", "ATALAYA_REQUESTS_CONFIG",
                 "ATALAYA_REQUESTS_TEMPLATES"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    tab = Tab(browser, site)
    try:
        tab.sign_in("ana")
        page = tab.page
        page.goto(f"{site}/leads/{lead_id}")
        page.fill("#open-case-form input[name=reason]", "three known files in a week")
        with page.expect_navigation():
            page.click("#open-case")
        assert page.locator("#no-requests").count() == 1
        page.check("#draft-form input[name=secrecy]")
        with page.expect_navigation():
            page.click("#draft-request")
        assert page.locator("#case-state").get_attribute("data-state") == "request_drafted"
        assert page.locator("#draft-form").count() == 0
        row = page.locator('#request-list tr[data-kind="judicial"]')
        row.locator("input[name=recipient]").fill("Juzgado de guardia (ejemplo)")
        with page.expect_download() as download:
            row.locator(".download-pdf").click()
        assert download.value.suggested_filename.startswith("caso-1-solicitud-judicial-")
        assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
        assert tab.problems == []
    finally:
        tab.close()
    with world.connect() as conn:
        recorded = [
            e.fields.details for e in read_records(conn, AuditQuery(action="case_documents"))
        ]
    assert [(d["recipient"], d["purpose"]) for d in recorded] == [
        ("Juzgado de guardia (ejemplo)", "case:1")
    ]
