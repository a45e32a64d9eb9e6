"""End to end in Chromium: an analyst opens a case from a lead's page and moves it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

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
