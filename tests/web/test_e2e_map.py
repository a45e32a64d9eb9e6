"""The map page in Chromium, at a desk (1440x900) and on a phone (390x844):
every filter applies at once to the map and the list without loading the
page again, the map keeps its view, paging and sorting fetch the list alone,
a click on the map changes no filter by itself, several provinces at once,
and search from one box. Expected leads come from `select_leads` itself with
the analyst's unit's visibility (tested on its own in tests/leads)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import Engine, select
from starlette.datastructures import MultiDict

from atalaya.accounts.visibility import conflict_clause, visible_lead_ids_clause
from atalaya.audit.log import AuditQuery, read_records
from atalaya.leads import selection
from atalaya.store.tables import unit
from atalaya.web.app import create_app
from atalaya.web.filters import parse_filters
from atalaya.web.live import serving
from tests.web.conftest import web_settings
from tests.web.seed import NOW, PREFIX, expected_ids, item, lead_ids_by_ip
from tests.web.test_e2e import Tab, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.web, pytest.mark.slow]

VIEWPORTS = [pytest.param((1440, 900), id="desk"), pytest.param((390, 844), id="phone")]
PAGE = 2  # leads a page, so that the seeded world has pages


@pytest.fixture
def site(world: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(selection, "PAGE_SIZE", PAGE)
    app = create_app(world, web_settings(), clock=lambda: NOW)
    with serving(app) as base:
        yield base


class MapTab(Tab):
    def loads(self) -> tuple[int, int]:
        return tuple(
            self.page.evaluate(
                """() => [window.atalayaMap.loads(),
                          Number(document.getElementById('leads').dataset.loads || 0)]"""
            )
        )

    def changed(self, action: Any, *, map_too: bool = True) -> None:
        """Do `action` and wait until the list (and the map) answered it."""
        before_map, before_list = self.loads()
        action()
        self.page.wait_for_function(
            """([m, l]) => Number(document.getElementById('leads').dataset.loads || 0) > l
                && document.getElementById('leads').getAttribute('aria-busy') === null
                && document.getElementById('map-status').dataset.state === 'ready'
                && window.atalayaMap.loads() >= m""",
            arg=[before_map + (1 if map_too else 0), before_list],
        )
        after_map, _ = self.loads()
        assert after_map == before_map + (1 if map_too else 0)

    def kept(self) -> None:
        """Still the page first loaded: no navigation since."""
        assert self.page.evaluate("() => window.__kept") == "yes"
        assert self.page.evaluate("() => performance.getEntriesByType('navigation').length") == 1

    def view(self) -> tuple[float, float, float]:
        c = self.page.evaluate(
            """() => { const m = window.atalayaMap.map; const c = m.getCenter();
                       return [c.lat, c.lng, m.getZoom()]; }"""
        )
        return round(c[0], 4), round(c[1], 4), c[2]


def _expected(world: Engine, url: str) -> list[int]:
    """Lead ids the selection of `url` holds for ana's unit, in the list's order."""
    flt = parse_filters(MultiDict(parse_qsl(urlsplit(url).query)), today=NOW.date())
    with world.connect() as conn:
        madrid = conn.scalar(select(unit.c.id).where(unit.c.name == "Madrid"))
        assert madrid is not None
        return [
            r.id
            for r in selection.select_leads(
                conn,
                flt,
                visible=visible_lead_ids_clause(madrid),
                now=NOW,
                conflicts=conflict_clause(madrid),
            )
        ]


def _check(tab: MapTab, world: Engine) -> list[int]:
    want = _expected(world, tab.page.url)
    assert tab.listed() == want[:PAGE]
    assert tab.mapped() == set(want)
    assert tab.page.locator("#lead-total").inner_text() == str(len(want))
    return want


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_filters_apply_at_once_and_keep_the_map(
    browser: Any,  # noqa: F811
    site: str,
    world: Engine,
    viewport: tuple[int, int],
) -> None:
    tab = MapTab(browser, site, viewport)
    page = tab.page
    tab.sign_in("ana")
    page.goto(f"{site}/?from=2026-11-02&to=2026-11-15")
    tab.wait_for_map()
    page.evaluate("() => { window.__kept = 'yes'; }")
    page.evaluate("() => window.atalayaMap.map.setView([39.5, -4.5], 6, {animate: false}) && null")
    view = tab.view()
    every = _check(tab, world)
    assert set(every) == expected_ids(world, [10, 26, 42, 56, 13])
    assert page.is_hidden("#apply")  # one behaviour: no Apply to forget

    # Several provinces, then one.
    tab.changed(lambda: page.select_option("#province", ["28", "41"]))
    assert page.url.count("province=") == 2
    assert set(_check(tab, world)) == set(every)
    tab.changed(lambda: page.select_option("#province", ["41"]))
    assert set(_check(tab, world)) == expected_ids(world, [13])
    assert not page.is_disabled("#municipality")  # one province: its municipalities
    tab.changed(lambda: page.select_option("#province", ["28"]))
    assert set(_check(tab, world)) == expected_ids(world, [10, 26, 42, 56])
    assert tab.view() == view

    # The week picker fills from/to and applies.
    def week() -> None:
        page.fill("#week", "2026-W46")
        page.dispatch_event("#week", "change")

    tab.changed(week)
    assert "from=2026-11-09" in page.url and "to=2026-11-15" in page.url
    assert set(_check(tab, world)) == expected_ids(world, [10, 26, 56])
    # Every other filter, each on its own.
    tab.changed(lambda: page.select_option("#category", index=1))
    _check(tab, world)
    tab.changed(lambda: page.select_option("#category", ""))
    tab.changed(lambda: page.select_option("#network", "bittorrent"))
    _check(tab, world)
    tab.changed(lambda: page.select_option("#status", "dormant"))
    _check(tab, world)
    tab.changed(lambda: page.select_option("#status", ""))
    scores = sorted(page.evaluate("() => window.atalayaMap.scores()"))
    threshold = (scores[0] + scores[-1]) / 2

    def min_score() -> None:
        page.fill("#min_score", f"{threshold:.2f}")
        page.press("#min_score", "Enter")

    tab.changed(min_score)
    assert "min_score=" in page.url
    fewer = _check(tab, world)
    assert 0 < len(fewer) < 3
    tab.changed(lambda: (page.fill("#min_score", ""), page.press("#min_score", "Enter")))
    tab.kept()
    assert tab.view() == view

    # Paging and sorting fetch the list alone.
    tab.changed(lambda: page.select_option("#province", ["28", "41"]))
    want = _check(tab, world)
    assert len(want) == 4  # two pages of two
    tab.changed(lambda: page.click("#next-page"), map_too=False)
    assert "page=2" in page.url
    assert tab.listed() == want[PAGE : 2 * PAGE]
    assert page.locator("#page-of").inner_text() == "page 2 of 2"
    tab.changed(lambda: page.click("#sort-last_seen"), map_too=False)
    assert "sort=-last_seen" in page.url and "page=" not in page.url
    assert tab.listed() == _expected(world, page.url)[:PAGE]
    assert page.get_attribute('#leads th[data-sort="last_seen"]', "aria-sort") == "descending"
    tab.changed(lambda: page.click("#sort-last_seen"), map_too=False)
    assert "sort=last_seen" in page.url
    assert tab.listed() == _expected(world, page.url)[:PAGE]
    assert page.get_attribute('#leads th[data-sort="last_seen"]', "aria-sort") == "ascending"
    # Figures are the window's: a week of three sightings a file.
    first = page.locator("#leads tbody tr").first
    assert re.fullmatch(r"\d+ / \d+", first.locator("td.sightings").inner_text())

    # A click on a province opens a popup; only its button changes the filter.
    page.locator("#map").scroll_into_view_if_needed()
    page.evaluate("() => window.atalayaMap.map.setView([37.5, -5.5], 8, {animate: false}) && null")
    spot = page.evaluate(
        """() => { const m = window.atalayaMap.map;
                   const p = m.latLngToContainerPoint([37.3, -5.6]);
                   const box = m.getContainer().getBoundingClientRect();
                   return [p.x + box.left, p.y + box.top]; }"""
    )
    before = page.url
    loads = tab.loads()
    page.mouse.click(spot[0], spot[1])
    page.wait_for_selector("#province-remove")  # Sevilla is chosen: it offers removal
    assert page.url == before and tab.loads() == loads
    tab.changed(lambda: page.click("#province-remove"))
    assert page.url.count("province=") == 1
    assert set(_check(tab, world)) == expected_ids(world, [10, 26, 56])  # week 46

    # The shading layer by urgent leads a week.
    page.check("#shade-provinces")
    assert page.is_visible("#shade-legend")

    # The URL is the view: opened afresh it gives the same list.
    shared = page.url
    listed = tab.listed()
    page.goto(shared)
    tab.wait_for_map()
    assert tab.listed() == listed
    assert tab.problems == []
    tab.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_clusters_count_urgent_leads(
    browser: Any,  # noqa: F811
    site: str,
    world: Engine,
    viewport: tuple[int, int],
) -> None:
    tab = MapTab(browser, site, viewport)
    page = tab.page
    tab.sign_in("ana")
    page.goto(f"{site}/?from=2026-11-02&to=2026-11-15")
    tab.wait_for_map()
    page.evaluate("() => window.atalayaMap.map.setView([40.0, -4.0], 5, {animate: false}) && null")
    page.wait_for_function("() => document.querySelector('#map [data-count]') !== null")
    clusters = page.evaluate(
        """() => [...document.querySelectorAll('#map [data-count]')]
            .map(e => [Number(e.dataset.count), Number(e.dataset.urgent)])"""
    )
    answer = page.evaluate(
        "async () => (await fetch('/api/map?from=2026-11-02&to=2026-11-15')).json()"
    )
    urgent = sum(1 for p in answer["points"] if p[3] >= answer["urgent_score"])
    singles = page.evaluate(
        """() => [...document.querySelectorAll('#map [data-lead]')]
            .map(e => Number(e.dataset.lead))"""
    )
    scores = {p[0]: p[3] for p in answer["points"]}
    assert sum(c for c, _ in clusters) + len(singles) == len(answer["points"])
    # A cluster's urgent count is its members' count, not its top score.
    assert (
        sum(u for _, u in clusters) + sum(1 for i in singles if scores[i] >= answer["urgent_score"])
        == urgent
    )
    assert page.locator("#map-status").get_attribute("data-urgent") == str(urgent)
    assert page.locator("#legend").inner_text().count("urgent") >= 1
    assert tab.problems == []
    tab.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_search_from_one_box(
    browser: Any,  # noqa: F811
    site: str,
    world: Engine,
    viewport: tuple[int, int],
) -> None:
    tab = MapTab(browser, site, viewport)
    page = tab.page
    tab.sign_in("ana")
    tab.wait_for_map()
    sevilla = lead_ids_by_ip(world)[f"{PREFIX}.13"]

    def found() -> set[int]:
        return {
            int(x)
            for x in page.locator("#search-results tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.leadId).filter(Boolean)"
            )
        }

    # A view saved from the form holds the filters applied without reloading.
    tab.changed(lambda: page.select_option("#province", ["41"]))
    page.fill("#save-name", "Sevilla")
    with page.expect_navigation():
        page.click("#save-go")
    assert "province=41" in page.url
    tab.wait_for_map()
    saved = page.locator("#saved-list a", has_text="Sevilla")
    assert "province=41" in (saved.get_attribute("href") or "")

    page.fill("#q", f"{PREFIX}.13")
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert found() == {sevilla}
    # Ana's unit holds Madrid and Sevilla: Barcelona's and Lisbon's stay hidden.
    for query, hosts in (
        (f"{PREFIX}.0/24", [10, 26, 42, 56, 13]),
        (f"{PREFIX}.8/29", [10, 13]),  # 127.91.0.8 - .15
        (item(13, 0), [13]),  # an info-hash
        (item(11, 0), []),  # Barcelona's: not this unit's
        (f"sha1:{13:08x}{0:032x}", [13]),  # a file hash, as its key
        (f"{13:08x}{0:032x}", []),  # bare: only through imported lists (none here)
    ):
        page.goto(f"{site}/search?q={query}")
        assert found() == expected_ids(world, hosts), query
        link = page.locator("#search-results tbody a").first
        if hosts:
            assert link.get_attribute("href", timeout=1000).startswith("/leads/")
    answer = page.goto(f"{site}/search?q=not-a-thing!")
    assert answer is not None and answer.status == 400
    assert "not an IP address" in page.locator("#search-error").inner_text()
    # The 400 asked for above, as the browser reports it.
    tab.problems = [p for p in tab.problems if "400" not in p]
    assert tab.problems == []
    tab.close()
    with world.connect() as conn:
        records = [e.fields for e in read_records(conn, AuditQuery(limit=1000))]
    searches = [r for r in records if r.action == "search" and r.object_type == "search"]
    assert [r.details["query"] for r in searches][:2] == [f"{PREFIX}.13", f"{PREFIX}.0/24"]
    assert all(r.username == "ana" for r in searches)
    assert searches[-1].outcome == "denied"
