"""The base map in Chromium, at a desk (1440x900) and on a phone (390x844):
place names from the atlas (provinces at the opening view, capitals deeper),
the opening view on the peninsula with the Canary Islands in an inset that
follows the filters and opens the same leads, and lead icons that never
overlap while their counts add up to the selection.

Set ATALAYA_MAP_SHOTS to a folder to keep a screenshot of each view."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine

from atalaya.web.app import create_app
from atalaya.web.live import serving
from tests.web.conftest import web_settings
from tests.web.seed import NOW, PREFIX, lead_ids_by_ip
from tests.web.test_e2e import Tab, browser  # noqa: F401 (the fixture)
from tests.web.test_e2e_map import VIEWPORTS, MapTab

pytestmark = [pytest.mark.web, pytest.mark.slow]

WINDOW = "from=2026-11-02&to=2026-11-15"
CANARIES = (27.55, -18.25, 29.5, -13.35)  # south, west, north, east


def _shot(tab: Tab, name: str) -> None:
    folder = os.environ.get("ATALAYA_MAP_SHOTS")
    if folder:
        size = tab.page.viewport_size
        tab.page.screenshot(path=str(Path(folder) / f"{name}-{size['width']}x{size['height']}.png"))


def _settle(tab: Tab) -> None:
    """Wait until the map stopped moving and drew its leads for the view."""
    tab.page.wait_for_function(
        """() => { const m = window.atalayaMap.map;
                   return !m._animatingZoom && !m._panAnim?._inProgress; }"""
    )
    tab.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")


def _set_view(tab: Tab, lat: float, lon: float, zoom: float) -> None:
    tab.page.evaluate(
        "([lat, lon, z]) => window.atalayaMap.map.setView([lat, lon], z, {animate: false}) && null",
        [lat, lon, zoom],
    )
    _settle(tab)


def _labels(tab: Tab) -> list[dict[str, Any]]:
    """The place names drawn on the main map, with their screen boxes."""
    return list(
        tab.page.evaluate(
            """() => [...document.querySelectorAll('#map .leaflet-marker-icon.place-name')]
                .map(e => { const r = e.getBoundingClientRect();
                    return {kind: [...e.classList].find(c => ['province', 'capital', 'town']
                                .includes(c)),
                            name: e.textContent, box: [r.left, r.top, r.right, r.bottom]}; })"""
        )
    )


def _icons(tab: Tab) -> list[dict[str, Any]]:
    """Every lead icon (main map and inset): its box, badge included, and count."""
    return list(
        tab.page.evaluate(
            """() => ['#map', '#map-inset'].flatMap(root =>
                [...document.querySelectorAll(`${root} .leaflet-marker-icon.lead-cluster,
                                               ${root} .leaflet-marker-icon.lead-point`)]
                .map(e => { const r = e.getBoundingClientRect();
                    const box = [r.left, r.top, r.right, r.bottom];
                    const badge = e.querySelector('.urgent-badge');
                    if (badge) { const b = badge.getBoundingClientRect();
                        box[0] = Math.min(box[0], b.left); box[1] = Math.min(box[1], b.top);
                        box[2] = Math.max(box[2], b.right); box[3] = Math.max(box[3], b.bottom); }
                    const core = e.querySelector('[data-count]');
                    return {root, box, count: core ? Number(core.dataset.count) : 1,
                            urgent: core ? Number(core.dataset.urgent) : null}; }))"""
        )
    )


def _overlap(a: list[float], b: list[float], tolerance: float = 0.5) -> bool:
    return (
        a[0] < b[2] - tolerance
        and b[0] < a[2] - tolerance
        and a[1] < b[3] - tolerance
        and b[1] < a[3] - tolerance
    )


def _inset_box(tab: Tab) -> list[float] | None:
    box = tab.page.evaluate(
        """() => { const e = document.getElementById('inset-box');
                   if (e.hidden) return null;
                   const r = e.getBoundingClientRect();
                   return [r.left, r.top, r.right, r.bottom]; }"""
    )
    return None if box is None else list(box)


def _no_icon_hidden(tab: Tab) -> list[dict[str, Any]]:
    """No two icons of one map overlap, and none of the main map's is under the inset."""
    icons = _icons(tab)
    inset = _inset_box(tab)
    for i, a in enumerate(icons):
        for b in icons[i + 1 :]:
            if a["root"] == b["root"]:
                assert not _overlap(a["box"], b["box"]), (a, b)
        if inset and a["root"] == "#map":
            assert not _overlap(a["box"], inset), (a, inset)
    return icons


def _in_canaries(lat: float, lon: float) -> bool:
    south, west, north, east = CANARIES
    return south <= lat <= north and west <= lon <= east


def _peninsula_under_inset(tab: Tab) -> int:
    """Vertices of Spanish provinces (the Canaries aside) under the inset."""
    return int(
        tab.page.evaluate(
            """async () => {
                const atlas = await (await fetch('/geo/spain.json')).json();
                const m = window.atalayaMap.map;
                const frame = m.getContainer().getBoundingClientRect();
                const box = document.getElementById('inset-box').getBoundingClientRect();
                const provinces = topojson.feature(atlas, atlas.objects.provinces).features
                    .filter(f => !['35', '38'].includes(f.id));
                let under = 0;
                for (const f of provinces) {
                    for (const ring of f.geometry.coordinates.flat(
                            f.geometry.type === 'MultiPolygon' ? 1 : 0)) {
                        for (const [lon, lat] of ring) {
                            const p = m.latLngToContainerPoint([lat, lon]);
                            const x = p.x + frame.left, y = p.y + frame.top;
                            if (x >= box.left && x <= box.right && y >= box.top
                                && y <= box.bottom) under += 1;
                        }
                    }
                }
                return under;
            }"""
        )
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_names_and_the_canaries_inset(
    browser: Any,  # noqa: F811
    site: str,
    world: Engine,
    viewport: tuple[int, int],
) -> None:
    tab = MapTab(browser, site, viewport)
    page = tab.page
    tab.sign_in("dora")  # the islands' unit: Las Palmas and Palma
    page.goto(f"{site}/?{WINDOW}")
    tab.wait_for_map()
    page.wait_for_selector("#map .place-name.province")
    _settle(tab)
    _shot(tab, "opening")

    # The opening view: the peninsula and the Balearics, the Canaries beside.
    bounds = page.evaluate(
        """() => { const b = window.atalayaMap.map.getBounds();
                   return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()]; }"""
    )
    assert bounds[0] <= 36.0 and bounds[2] >= 43.8 and bounds[1] <= -9.3 and bounds[3] >= 4.3
    assert page.is_visible("#map-inset")
    assert _peninsula_under_inset(tab) == 0

    # Province names, readable: none overlaps another, none takes a click.
    labels = _labels(tab)
    provinces = {label["name"] for label in labels if label["kind"] == "province"}
    assert len(provinces) >= (12 if viewport[0] > 1000 else 5), provinces
    assert not [lb for lb in labels if lb["kind"] != "province"]  # towns come later
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert not _overlap(a["box"], b["box"]), (a, b)
    assert (
        page.evaluate(
            "() => getComputedStyle(window.atalayaMap.map.getPane('labels')).pointerEvents"
        )
        == "none"
    )

    # The inset holds the Canarian lead; the main map the others; all add up.
    answer = page.evaluate(f"async () => (await fetch('/api/map?{WINDOW}')).json()")
    canarian = [p for p in answer["points"] if _in_canaries(p[1], p[2])]
    assert len(canarian) == 1 and answer["placed"] == 2
    icons = _no_icon_hidden(tab)
    assert sum(i["count"] for i in icons if i["root"] == "#map-inset") == len(canarian)
    assert sum(i["count"] for i in icons) == answer["placed"]
    assert page.get_attribute("#map-inset", "data-shown") == "1"

    # The inset follows the filters: Palma alone empties it, then it is back.
    tab.changed(lambda: page.select_option("#province", ["07"]))
    assert page.get_attribute("#map-inset", "data-shown") == "0"
    tab.changed(lambda: page.select_option("#province", []))
    assert page.get_attribute("#map-inset", "data-shown") == "1"

    # It folds away and back.
    page.click("#inset-toggle")
    assert page.is_hidden("#map-inset")
    assert page.get_attribute("#inset-toggle", "aria-expanded") == "false"
    page.click("#inset-toggle")
    assert page.is_visible("#map-inset")

    # A click on its lead opens the same popup as on the main map, there.
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.18"]
    page.click("#map-inset .leaflet-marker-icon")
    link = page.locator(f'#map .leaflet-popup a[href^="/leads/{lead_id}?"]')
    link.wait_for()
    _settle(tab)
    centre = page.evaluate("() => window.atalayaMap.map.getCenter()")
    assert _in_canaries(centre["lat"], centre["lng"])
    assert page.is_hidden("#inset-box")  # the main map shows the islands now
    _shot(tab, "inset-click")

    # Deeper, the capitals are named: Palma, from the municipality's shape.
    page.evaluate("() => window.atalayaMap.map.closePopup() && null")
    _set_view(tab, 39.6, 2.9, 9)
    page.wait_for_selector("#map .place-name.capital")
    capitals = {lb["name"] for lb in _labels(tab) if lb["kind"] == "capital"}
    assert "Palma" in capitals
    _shot(tab, "palma")
    _set_view(tab, 37.6, -5.3, 8)
    capitals = {lb["name"] for lb in _labels(tab) if lb["kind"] == "capital"}
    assert {"Sevilla", "Córdoba"} <= capitals, capitals
    _shot(tab, "andalucia")

    # A shared link to a Canarian province or area fits the islands.
    for place, deep in (
        ("province=35", 7),
        ("area=" + quote("-15.9 27.7,-15.3 27.7,-15.3 28.2,-15.9 28.2"), 9),
    ):
        page.goto(f"{site}/?{WINDOW}&{place}")
        tab.wait_for_map()
        _settle(tab)
        view = page.evaluate(
            """() => { const m = window.atalayaMap.map; const b = m.getBounds();
                       return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast(),
                               m.getZoom()]; }"""
        )
        assert view[0] <= 27.8 and view[1] <= -15.4 and view[2] >= 28.1 and view[3] >= -15.3
        assert view[4] >= deep, view
        assert page.is_hidden("#inset-box")
        assert tab.drawn_total() == 1
        _shot(tab, f"shared-{place[:4]}")
    # A link to places on both sides keeps a national view and the inset.
    page.goto(f"{site}/?{WINDOW}&province=07&province=35")
    tab.wait_for_map()
    _settle(tab)
    assert page.evaluate("() => window.atalayaMap.map.getZoom()") <= 7
    assert page.get_attribute("#map-inset", "data-shown") == "1"
    assert sum(i["count"] for i in _no_icon_hidden(tab)) == 2
    _shot(tab, "shared-both")
    assert tab.problems == []
    tab.close()


def _selection(rng: random.Random, around: list[tuple[float, float, float, int]]) -> dict[str, Any]:
    """A made-up /api/map answer: `n` leads within `spread` degrees of each centre."""
    points = []
    for lat, lon, spread, n in around:
        for _ in range(n):
            score = rng.choice([rng.uniform(0, 59), rng.uniform(60, 100)])
            points.append(
                [
                    len(points) + 1,
                    round(lat + rng.uniform(-spread, spread), 5),
                    round(lon + rng.uniform(-spread, spread), 5),
                    round(score, 2),
                    rng.randint(1, 40),
                ]
            )
    return {
        "count": len(points),
        "placed": len(points),
        "fields": ["id", "lat", "lon", "score", "known_files"],
        "points": points,
        "bands": [20, 40, 60, 80],
        "urgent_score": 60,
        "urgent_by_province": {},
        "weeks": 2,
    }


# Towns with many leads close together, so that urgent clusters crowd.
NATIONAL = [
    (40.42, -3.70, 0.4, 160),
    (41.39, 2.17, 0.3, 120),
    (41.6, 1.8, 0.6, 60),
    (39.47, -0.38, 0.3, 80),
    (37.39, -5.98, 0.3, 70),
    (36.72, -4.42, 0.3, 50),
    (43.26, -2.93, 0.2, 40),
    (43.3, -2.0, 0.2, 30),
    (42.0, -4.5, 2.5, 120),
    (38.5, -2.0, 2.5, 120),
    (39.57, 2.65, 0.2, 20),
    (28.12, -15.43, 0.1, 30),
    (28.46, -16.25, 0.1, 25),
    (28.96, -13.55, 0.05, 6),
]
MADRID = [(40.42, -3.70, 0.25, 400), (40.3, -3.9, 0.05, 60)]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_no_icon_hides_another_and_counts_add_up(
    browser: Any,  # noqa: F811
    site: str,
    viewport: tuple[int, int],
) -> None:
    rng = random.Random(13)
    tab = MapTab(browser, site, viewport)
    page = tab.page
    tab.sign_in("ana")
    answers = iter([_selection(rng, NATIONAL), _selection(rng, MADRID)])
    current: dict[str, Any] = {}

    def fulfil(route: Any) -> None:
        route.fulfill(json=current["answer"])

    page.route("**/api/map?*", fulfil)
    for answer, views in (
        (next(answers), [None, (40.0, -3.5, 6), (40.0, -3.0, 7.5)]),
        (next(answers), [None, (40.35, -3.75, 9), (40.3, -3.9, 12.5)]),
    ):
        current["answer"] = answer
        page.goto(f"{site}/?{WINDOW}")
        tab.wait_for_map()
        for view in views:
            if view is not None:
                _set_view(tab, *view)
            else:
                _settle(tab)
            icons = _no_icon_hidden(tab)
            assert icons
            _shot(tab, f"crowd-{len(answer['points'])}-{view[2] if view else 'opening'}")
            in_view = page.evaluate(
                """(points) => { const m = window.atalayaMap.map; const b = m.getBounds();
                    return points.filter(p => b.contains([p[1], p[2]])).length; }""",
                answer["points"],
            )
            if view is None:  # the opening view: every lead, main map and inset
                assert sum(i["count"] for i in icons) == answer["placed"]
                # A click on a cluster flies in towards its leads.
                zoom = page.evaluate("() => window.atalayaMap.map.getZoom()")
                page.evaluate(
                    """() => { window.__moved = new Promise(
                        r => window.atalayaMap.map.once('moveend', () => r(null))); }"""
                )
                page.click("#map .leaflet-marker-icon.lead-cluster >> nth=0")
                page.evaluate("() => window.__moved")
                assert page.evaluate("() => window.atalayaMap.map.getZoom()") > zoom
                _settle(tab)
                _no_icon_hidden(tab)
            elif in_view == answer["placed"]:
                assert sum(i["count"] for i in icons if i["root"] == "#map") == in_view
    # Each view above held every lead once, on one map or the other.
    assert tab.problems == []
    tab.close()


def test_no_names_over_tiles(
    browser: Any,  # noqa: F811
    world: Engine,
) -> None:
    # Tiles carry their own names; this server answers none, which is fine here.
    settings = replace(web_settings(), tile_url="http://127.0.0.2:9/{z}/{x}/{y}.png")
    with serving(create_app(world, settings, clock=lambda: NOW)) as base:
        tab = MapTab(browser, base, (1440, 900))
        tab.sign_in("dora")
        tab.page.goto(f"{base}/?{WINDOW}")
        tab.wait_for_map()
        _settle(tab)
        assert tab.page.locator(".place-name").count() == 0
        assert tab.page.get_attribute("#map-inset", "data-shown") == "1"
        tab.close()


@pytest.fixture
def site(world: Engine) -> Any:
    app = create_app(world, web_settings(), clock=lambda: NOW)
    with serving(app) as base:
        yield base


def test_separate_merges_until_no_box_overlaps(
    browser: Any,  # noqa: F811
    site: str,
) -> None:
    """map_clusters.separate on random crowds (a property test in the browser,
    where the module runs): no two boxes overlap, each stays in its frame, the
    counts, urgent counts and bands are those of the input."""
    tab = Tab(browser, site, (800, 600))
    tab.page.goto(f"{site}/login")
    failures = tab.page.evaluate(
        """async () => {
            const m = await import('/static/map_clusters.js');
            let seed = 7;
            const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
            const failures = [];
            for (let round = 0; round < 200; round += 1) {
                const n = 1 + Math.floor(rand() * 120);
                const spread = 50 + rand() * 800;
                const frame = round % 2 ? [0, 0, spread, spread] : null;
                const items = [];
                for (let i = 0; i < n; i += 1) {
                    const count = rand() < 0.4 ? 1 : 2 + Math.floor(rand() * 500);
                    const urgent = Math.floor(rand() * (count + 1) * (rand() < 0.5 ? 0 : 1));
                    const bands = [0, 0, 0, 0, 0];
                    bands[Math.floor(rand() * 5)] = count;
                    const props = count > 1 ? {cluster: true} : {score: 50, files: 3};
                    items.push({x: rand() * spread, y: rand() * spread, count, urgent,
                                files: 3, bands, parts: [{properties: props}]});
                }
                const out = m.separate(items, frame);
                const sum = (list, f) => list.reduce((s, i) => s + f(i), 0);
                if (sum(out, i => i.count) !== sum(items, i => i.count)
                    || sum(out, i => i.urgent) !== sum(items, i => i.urgent)
                    || sum(out, i => i.bands[0] + 2 * i.bands[4])
                        !== sum(items, i => i.bands[0] + 2 * i.bands[4])) {
                    failures.push(`round ${round}: counts changed`);
                }
                const boxes = out.map(m.boxOf);
                for (let i = 0; i < boxes.length; i += 1) {
                    for (let j = i + 1; j < boxes.length; j += 1) {
                        const [a, b] = [boxes[i], boxes[j]];
                        if (a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]) {
                            failures.push(`round ${round}: ${a} overlaps ${b}`);
                        }
                    }
                    const a = boxes[i];
                    const wide = a[2] - a[0] > spread || a[3] - a[1] > spread;
                    if (frame && !wide && (a[0] < -1e-6 || a[1] < -1e-6
                            || a[2] > spread + 1e-6 || a[3] > spread + 1e-6)) {
                        failures.push(`round ${round}: ${a} outside the frame`);
                    }
                }
            }
            return failures;
        }"""
    )
    assert failures == []
    assert tab.problems == []
    tab.close()
