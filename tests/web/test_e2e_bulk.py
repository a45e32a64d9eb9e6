"""End to end in Chromium, on a desktop (English) and a phone (Spanish): an analyst
ticks two leads in the list, by mouse and by keyboard, opens one case for each and
sees them listed, then drafts both judicial requests from the cases list; a new
order of the list clears the selection. axe-core finds no serious violation on the
list with a selection, the cases it lands on, nor the drafting result."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from atalaya.store.tables import case_file
from tests.web.test_bulk_requests import SIGNING_UNSET
from tests.web.test_e2e import browser, site  # noqa: F401 (fixtures)
from tests.web.test_screen import DESKTOP, PHONE, W46, _fits, _open, _serious, _sign_in, axe_source

pytestmark = [pytest.mark.web, pytest.mark.slow]


def _count(page: Any) -> int:
    return int(page.locator("#bulk-count").get_attribute("data-count"))


@pytest.mark.parametrize(
    ("viewport", "locale", "button"),
    [
        (DESKTOP, "en-GB", "Open a case for each selected lead"),
        (PHONE, "es-ES", "Abrir un caso por cada pista seleccionada"),
    ],
    ids=["desktop", "phone"],
)
def test_an_analyst_opens_a_case_for_each_of_two_selected_leads(
    browser: Any,  # noqa: F811
    site: str,  # noqa: F811
    world: Engine,
    viewport: dict[str, int],
    locale: str,
    button: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SIGNING_UNSET:  # the shipped drafting settings, unsigned
        monkeypatch.delenv(name, raising=False)
    axe = axe_source()
    problems: dict[str, list[str]] = {}
    errors: list[str] = []
    context, page = _open(browser, viewport, locale)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _sign_in(page, site, "ana")
        page.goto(f"{site}/?{W46}")
        page.wait_for_selector('#map-status[data-state="ready"]')
        rows = page.locator("#leads tbody tr[data-lead-id]")
        assert rows.count() >= 3
        ids = [int(rows.nth(i).get_attribute("data-lead-id")) for i in range(rows.count())]
        assert page.locator("#bulk-open").is_disabled() and _count(page) == 0

        # Select all, then none: the page's box ticks and clears every row.
        page.check("#pick-all")
        assert _count(page) == len(ids)
        page.uncheck("#pick-all")
        assert _count(page) == 0

        # A new order draws new rows: the selection goes with the old ones.
        page.check(f"#pick-{ids[0]}")
        assert _count(page) == 1
        loads = int(page.locator("#leads").get_attribute("data-loads") or 0)
        page.click("#sort-id")
        page.wait_for_function(
            "(n) => Number(document.getElementById('leads').dataset.loads || 0) > n", arg=loads
        )
        assert _count(page) == 0 and page.locator("#bulk-open").is_disabled()
        rows = page.locator("#leads tbody tr[data-lead-id]")
        first, second = (int(rows.nth(i).get_attribute("data-lead-id")) for i in (0, 1))

        # One by the mouse, one by the keyboard (the box is in the tab order).
        page.check(f"#pick-{first}")
        page.focus(f"#pick-{second}")
        page.keyboard.press("Space")
        assert page.is_checked(f"#pick-{second}")
        assert _count(page) == 2
        assert page.locator("#bulk-count").inner_text().endswith("2")
        if axe:
            problems["list"] = _serious(page, axe)
        assert _fits(page)
        assert page.locator("#bulk-open").inner_text() == button

        with page.expect_navigation():
            page.click("#bulk-open")
        assert "/cases?opened=1" in page.url
        listed = page.locator("#cases tbody tr")
        assert listed.count() == 2
        links = page.locator("#cases tbody a[href^='/cases/']")
        assert sorted(links.evaluate_all("as => as.map(a => a.getAttribute('href'))")) == [
            "/cases/1",
            "/cases/2",
        ]
        assert page.locator("#cases-only").count() == 1
        if axe:
            problems["cases"] = _serious(page, axe)
        assert _fits(page)

        # Both are in triage: draft their judicial requests in one go.
        page.check("#pick-case-1")
        page.check("#pick-case-2")
        with page.expect_navigation():
            page.click("#bulk-draft-go")
        drafted = page.locator("#drafted tbody tr")
        assert drafted.count() == 2
        assert drafted.evaluate_all("rs => rs.map(r => r.dataset.drafted)") == ["yes", "yes"]
        if axe:
            problems["drafted"] = _serious(page, axe)
        assert _fits(page)
        with page.expect_navigation():
            page.locator("#drafted tbody tr td:first-child a").first.click()
        assert page.locator("#case-state").get_attribute("data-state") == "request_drafted"
    finally:
        context.close()
    assert errors == []
    with world.connect() as conn:
        opened = conn.execute(select(case_file.c.lead_id, case_file.c.state)).all()
    assert sorted(opened) == sorted([(first, "request_drafted"), (second, "request_drafted")])
    if axe is None:
        pytest.skip("axe-core is not installed; the selection and layout checks above passed")
    assert {k: v for k, v in problems.items() if v} == {}
