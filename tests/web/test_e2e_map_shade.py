"""The map's shading by municipality and the Canaries' inset's names, in
Chromium at a desk (1440x900) and on a phone (390x844): its own toggle
shades the municipalities with urgent leads (those of /api/map's answer,
coloured on the canvas where they are and nowhere else), the provinces'
toggle turns into municipalities from zoom 8 and back, and the inset names
Las Palmas and Santa Cruz de Tenerife whole inside its frame, their
capitals too where the main map names capitals.

Set ATALAYA_MAP_SHOTS to a folder to keep a screenshot of each view."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from atalaya.accounts.units import set_urgent_score
from atalaya.web.app import create_app
from atalaya.web.live import serving
from tests.web.conftest import web_settings
from tests.web.seed import NOW
from tests.web.test_e2e import browser  # noqa: F401 (the fixture)
from tests.web.test_e2e_map import VIEWPORTS, MapTab
from tests.web.test_e2e_map_base import _overlap, _set_view, _settle, _shot

pytestmark = [pytest.mark.web, pytest.mark.slow]

WINDOW = "from=2026-11-02&to=2026-11-15"


@pytest.fixture
def site(world: Engine) -> Iterator[str]:
    # Every seeded lead urgent, so that there is something to shade.
    with world.begin() as conn:
        for name in ("Madrid", "Barcelona", "Islas"):
            set_urgent_score(conn, name, 1.0)
    app = create_app(world, web_settings(), clock=lambda: NOW)
    with serving(app) as base:
        yield base


def _shading(tab: MapTab) -> dict[str, Any]:
    return dict(tab.page.evaluate("() => window.atalayaMap.shading()"))


def _shade_at(tab: MapTab, lat: float, lon: float) -> list[int]:
    """The shade canvas's pixel (RGBA) under a place of the main map."""
    return list(
        tab.page.evaluate(
            """([lat, lon]) => {
                const m = window.atalayaMap.map;
                const c = m.getPane('shade').querySelector('canvas');
                const r = c.getBoundingClientRect();
                const box = m.getContainer().getBoundingClientRect();
                const p = m.latLngToContainerPoint([lat, lon]);
                const x = Math.round((p.x + box.left - r.left) * c.width / r.width);
                const y = Math.round((p.y + box.top - r.top) * c.height / r.height);
                // Copied out first: reading the map's own canvas back makes
                // Chromium warn about readbacks.
                const one = document.createElement('canvas');
                one.width = one.height = 1;
                const ctx = one.getContext('2d', {willReadFrequently: true});
                ctx.drawImage(c, x, y, 1, 1, 0, 0, 1, 1);
                return [...ctx.getImageData(0, 0, 1, 1).data]; }""",
            [lat, lon],
        )
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_municipalities_shaded_by_urgent_leads(
    browser: Any,  # noqa: F811
    site: str,
    viewport: tuple[int, int],
) -> None:
    tab = MapTab(browser, site, viewport)
    page = tab.page
    tab.sign_in("ana")
    page.goto(f"{site}/?{WINDOW}")
    tab.wait_for_map()
    _settle(tab)
    answer = page.evaluate(f"async () => (await fetch('/api/map?{WINDOW}')).json()")
    towns = answer["urgent_by_municipality"]
    assert towns and sum(towns.values()) == sum(answer["urgent_by_province"].values())
    assert page.is_hidden("#shade-legend")
    assert _shading(tab)["level"] == ""

    # Its own toggle: the municipalities with urgent leads, same legend.
    page.check("#shade-municipalities")
    assert page.is_visible("#shade-legend")
    shading = _shading(tab)
    assert shading["level"] == "municipality"
    assert sorted(shading["codes"]) == sorted(towns)
    # Seen where they are: the Madrid lead's place is red on the canvas,
    # Toledo (no lead) is not.
    madrid = next(p for p in answer["points"] if abs(p[1] - 40.4) < 0.3 and abs(p[2] + 3.7) < 0.3)
    _set_view(tab, madrid[1], madrid[2], 10)
    red, green, _, alpha = _shade_at(tab, madrid[1], madrid[2])
    assert alpha > 0 and red > green, (red, green, alpha)
    assert _shade_at(tab, 39.86, -4.02)[3] == 0
    _shot(tab, "shade-municipalities")

    # The provinces' toggle: provinces at a national view, municipalities
    # from zoom 8, provinces again on the way out.
    page.uncheck("#shade-municipalities")
    assert page.is_hidden("#shade-legend") and _shading(tab)["level"] == ""
    page.check("#shade-provinces")
    assert _shading(tab)["level"] == "municipality"  # still at zoom 10
    _set_view(tab, 40.0, -3.7, 6)
    shading = _shading(tab)
    assert shading["level"] == "province"
    assert sorted(shading["codes"]) == sorted(answer["urgent_by_province"])
    _set_view(tab, madrid[1], madrid[2], 8)
    assert _shading(tab)["level"] == "municipality"
    assert _shade_at(tab, madrid[1], madrid[2])[3] > 0
    _shot(tab, "shade-zoom-8")
    assert tab.problems == []
    tab.close()


def _inset_names(tab: MapTab) -> list[dict[str, Any]]:
    return list(
        tab.page.evaluate(
            """() => [...document.querySelectorAll('#map-inset .leaflet-marker-icon.place-name')]
                .map(e => { const r = e.getBoundingClientRect();
                    return {kind: [...e.classList].find(c => ['province', 'capital', 'town']
                                .includes(c)),
                            name: e.textContent, box: [r.left, r.top, r.right, r.bottom]}; })"""
        )
    )


def _check_inset_names(tab: MapTab) -> list[dict[str, Any]]:
    """The inset's names: whole inside it, none over another."""
    frame = tab.page.evaluate(
        """() => { const r = document.getElementById('map-inset').getBoundingClientRect();
                   return [r.left, r.top, r.right, r.bottom]; }"""
    )
    names = _inset_names(tab)
    for n in names:
        b = n["box"]
        assert b[0] >= frame[0] - 0.5 and b[1] >= frame[1] - 0.5, (n, frame)
        assert b[2] <= frame[2] + 0.5 and b[3] <= frame[3] + 0.5, (n, frame)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not _overlap(a["box"], b["box"]), (a, b)
    return names


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_inset_names_the_islands(
    browser: Any,  # noqa: F811
    site: str,
    viewport: tuple[int, int],
) -> None:
    tab = MapTab(browser, site, viewport)
    page = tab.page
    tab.sign_in("dora")
    page.goto(f"{site}/?{WINDOW}")
    tab.wait_for_map()
    page.wait_for_selector("#map-inset .place-name.province")
    _settle(tab)
    # The opening view names provinces only, as the main map does.
    names = _check_inset_names(tab)
    assert {n["name"] for n in names} == {"Las Palmas", "Santa Cruz de Tenerife"}
    assert {n["kind"] for n in names} == {"province"}
    # Names take no click: a lead under one still answers.
    pane = "window.atalayaMap.inset.getPane('labels')"
    assert page.evaluate(f"() => getComputedStyle({pane}).pointerEvents") == "none"
    _shot(tab, "inset-names")

    # Where the main map names capitals (zoom 7, the inset still shown),
    # the inset names them too.
    _set_view(tab, 40.0, -3.0, 7)
    assert page.is_visible("#map-inset")
    page.wait_for_selector("#map-inset .place-name.capital")
    names = _check_inset_names(tab)
    assert "Las Palmas de Gran Canaria" in {n["name"] for n in names if n["kind"] == "capital"}
    assert "Las Palmas" in {n["name"] for n in names if n["kind"] == "province"}
    _shot(tab, "inset-capitals")
    assert tab.problems == []
    tab.close()
