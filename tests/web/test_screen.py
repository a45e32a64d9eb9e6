"""The screen in Chromium: accessible (axe-core, WCAG 2.1 AA), fit for a phone,
and a lead page with what a request needs.

Every page (sign-in, map, lead, charts, audit, cases, a case) is checked at
1440 x 900 in English and at 390 x 844 in Spanish: axe-core finds no serious
or critical violation, there is one h1, and the page does not scroll
sideways; on the phone the map comes before the filters and the list.

axe-core is an npm package of data/web (package.json); it is read from
$ATALAYA_AXE_JS or from the web assets' node_modules, and the accessibility
checks are skipped, saying so, where it is not installed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from atalaya.accounts import add_user
from tests.web.conftest import web_settings
from tests.web.seed import FAST, NOW, PASSWORD, PREFIX, lead_ids_by_ip
from tests.web.test_e2e import WAIT_MS, browser, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.web, pytest.mark.slow]

AXE_ENV = "ATALAYA_AXE_JS"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
W46 = "from=2026-11-09&to=2026-11-15"


def axe_source() -> str | None:
    configured = os.environ.get(AXE_ENV)
    candidates = [Path(configured)] if configured else []
    candidates.append(web_settings().assets_dir / "axe-core" / "axe.min.js")
    for path in candidates:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def _open(chromium: Any, viewport: dict[str, int], locale: str) -> Any:
    # bypass_csp: the pages allow only their own scripts; axe is the test's.
    context = chromium.new_context(viewport=viewport, locale=locale, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return context, page


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("#sign-in")


def _serious(page: Any, axe: str) -> list[str]:
    page.evaluate(axe)
    found = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                resultTypes: ['violations'],
            });
            return r.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ': '
                    + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '));
        }"""
    )
    return list(found)


def _fits(page: Any) -> bool:
    return bool(page.evaluate("() => document.scrollingElement.scrollWidth <= window.innerWidth"))


def _pages(base: str, lead_id: int) -> list[tuple[str, str, str]]:
    """(name, user, url) of every page; the case is opened by the test first."""
    return [
        ("map", "ana", f"{base}/?{W46}"),
        ("lead", "ana", f"{base}/leads/{lead_id}?back={W46.replace('&', '%26')}"),
        ("charts", "ana", f"{base}/charts?{W46}"),
        ("cases", "ana", f"{base}/cases"),
        ("case", "ana", f"{base}/cases/1"),
        ("audit", "carla", f"{base}/audit"),
    ]


def _open_case(chromium: Any, base: str, lead_id: int) -> None:
    context, page = _open(chromium, DESKTOP, "en-GB")
    try:
        _sign_in(page, base, "ana")
        page.goto(f"{base}/leads/{lead_id}")
        page.fill("#open-case-form input[name=reason]", "three known files in a week")
        with page.expect_navigation():
            page.click("#open-case")
        assert page.url == f"{base}/cases/1"
    finally:
        context.close()


@pytest.mark.parametrize(
    ("viewport", "locale"), [(DESKTOP, "en-GB"), (PHONE, "es-ES")], ids=["desktop", "phone"]
)
def test_every_page_is_accessible_and_fits_the_screen(
    browser: Any,  # noqa: F811
    site: str,  # noqa: F811
    world: Engine,
    viewport: dict[str, int],
    locale: str,
) -> None:
    axe = axe_source()
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    _open_case(browser, site, lead_id)
    problems: dict[str, list[str]] = {}
    wide: list[str] = []
    language = locale[:2]

    context, page = _open(browser, viewport, locale)
    try:
        page.goto(f"{site}/login")
        assert page.locator("html").get_attribute("lang") == language
        if axe:
            problems["login"] = _serious(page, axe)
        if not _fits(page):
            wide.append("login")
        signed_in = None
        for name, user, url in _pages(site, lead_id):
            if user != signed_in:
                context.clear_cookies()
                _sign_in(page, site, user)
                signed_in = user
            page.goto(url)
            if name == "map":
                page.wait_for_selector('#map-status[data-state="ready"]')
            if name in ("lead", "charts"):
                page.wait_for_selector(f"body[data-chart{'s' if name == 'charts' else ''}]")
            assert page.locator("h1").count() == 1, name
            assert page.locator("html").get_attribute("lang") == language
            assert page.locator("a.skip[href='#main']").count() == 1
            if axe:
                problems[name] = _serious(page, axe)
            if not _fits(page):
                wide.append(name)
            if name == "map" and viewport is PHONE:
                top = page.evaluate(
                    """() => ['#map', '#filters', '#leads'].map(
                        s => document.querySelector(s).getBoundingClientRect().top)"""
                )
                assert top[0] < top[1] and top[0] < top[2], top
            if name == "map":
                status = page.locator("#map-status")
                assert status.get_attribute("aria-live") == "polite"
    finally:
        context.close()
    assert wide == []
    if axe is None:
        pytest.skip(
            "axe-core is not installed: add it to data/web/package.json (npm) or set "
            f"{AXE_ENV} to its axe.min.js; the layout checks above passed"
        )
    assert {k: v for k, v in problems.items() if v} == {}


def test_the_lead_page_holds_what_a_request_needs_and_exports_it(
    browser: Any,  # noqa: F811
    site: str,  # noqa: F811
    world: Engine,
) -> None:
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    context, page = _open(browser, DESKTOP, "en-GB")
    try:
        _sign_in(page, site, "ana")
        back = W46.replace("&", "%26")
        page.goto(f"{site}/leads/{lead_id}?back={back}")
        page.wait_for_selector("body[data-chart]")
        rows = page.locator("#timeline tbody tr")
        assert rows.count() == 9
        first = rows.first
        item = first.locator("code.item").inner_text()
        _kind, value = item.split(" ")
        assert len(value) == 40  # the full infohash, not cut
        assert first.locator("td.utc").inner_text().endswith(".000000 UTC")
        assert "CET (+0100)" in first.locator("td.local").inner_text()
        assert first.locator("td.offset").inner_text()
        # The day chart covers every day from the first sighting to the last.
        days = json.loads(page.locator("#per-day-data").inner_text())
        assert days["counts"] and all(isinstance(c, int) for c in days["counts"])
        assert len(days["iso"]) == len(set(days["iso"]))

        # Exports: every sighting, every field, formula cells neutralised.
        with page.expect_download() as got:
            page.click("#export-lead-csv")
        text = Path(got.value.path()).read_text(encoding="utf-8")
        table = list(csv.DictReader(io.StringIO(text)))
        assert len(table) == 9
        assert {"seen_at", "local", "ip", "port", "item_value", "piece_indices"} <= set(table[0])
        assert {r["item_value"] for r in table} >= {value}
        assert all(r["seen_at"].endswith("+00:00") and "." in r["seen_at"] for r in table)
        answer = page.request.get(f"{site}/leads/{lead_id}/sightings.json")
        document = answer.json()
        assert document["lead"]["id"] == lead_id and len(document["sightings"]) == 9

        # An override: bounded, with a reason of substance; back keeps the filters.
        page.fill("#override-score", "101")
        page.fill("#override-reason", "seen by hand on the peer list")
        page.evaluate("() => document.getElementById('override-form').noValidate = true")
        with page.expect_navigation():
            page.click("#override-submit")
        assert "0 to 100" in page.locator("#lead-error").inner_text()
        page.fill("#override-score", "70")
        page.fill("#override-reason", "       .        ..   ")
        page.evaluate("() => document.getElementById('override-form').noValidate = true")
        with page.expect_navigation():
            page.click("#override-submit")
        assert "at least" in page.locator("#lead-error").inner_text()
        page.fill("#override-score", "45")
        page.fill("#override-reason", "seen by hand on the peer list")
        with page.expect_navigation():
            page.click("#override-submit")
        assert page.locator("#lead-error").count() == 0
        assert page.locator("#lead-score").inner_text() == "45.00"
        # Over the unit's threshold (60): pending until a supervisor approves.
        page.fill("#override-score", "70")
        page.fill("#override-reason", "shares the set every day, by hand")
        with page.expect_navigation():
            page.click("#override-submit")
        assert page.locator("#lead-score").inner_text() == "45.00"
        pending = page.locator('#overrides li[data-state="pending"]')
        assert pending.count() == 1 and page.locator("form.override-decision").count() == 0
        with page.expect_navigation():
            page.click("#back")
        assert "from=2026-11-09" in page.url and "to=2026-11-15" in page.url
    finally:
        context.close()
    with world.begin() as conn:
        add_user(conn, "marta", "Madrid", "supervisor", PASSWORD, NOW, FAST)
    context, page = _open(browser, PHONE, "es-ES")
    try:
        _sign_in(page, site, "marta")
        page.goto(f"{site}/leads/{lead_id}")
        decision = page.locator("form.override-decision")
        assert decision.count() == 1
        decision.locator('input[name="reason"]').fill("comprobado en los avistamientos")
        with page.expect_navigation():
            decision.locator('button[value="1"]').click()
        assert page.locator('#overrides li[data-state="approved"]').count() == 1
        assert page.locator("#lead-score").inner_text() == "70.00"
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        context.close()
