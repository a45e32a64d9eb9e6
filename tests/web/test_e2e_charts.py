"""The charts page in Chromium, at a desk (1440x900) and on a phone (390x844):
a click on a week's bar opens the map on that week, a click on a province's
bar opens it on that province (other filters kept), the week in progress is
drawn lighter and named, every province label is shown, and a selection
with no sighting in its days says so instead of drawing empty axes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine

from atalaya.web.app import create_app
from atalaya.web.live import serving
from tests.web.conftest import web_settings
from tests.web.seed import NOW
from tests.web.test_e2e import Tab, browser  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.web, pytest.mark.slow]

VIEWPORTS = [pytest.param((1440, 900), id="desk"), pytest.param((390, 844), id="phone")]


@pytest.fixture
def site(world: Engine) -> Iterator[str]:
    app = create_app(world, web_settings(), clock=lambda: NOW)
    with serving(app) as base:
        yield base


def _click_bar(tab: Tab, canvas: str, index: int) -> None:
    """Click the middle of bar `index` of the chart drawn on `canvas`."""
    point = tab.page.evaluate(
        """([id, i]) => {
            const chart = Chart.getChart(document.getElementById(id));
            const bar = chart.getDatasetMeta(0).data[i];
            const box = chart.canvas.getBoundingClientRect();
            const horizontal = chart.options.indexAxis === 'y';
            // Aim inside the bar, away from its thin end, whatever its length.
            const x = horizontal ? (bar.base + bar.x) / 2 : bar.x;
            const y = horizontal ? bar.y : (bar.base + bar.y) / 2;
            return [box.left + x, box.top + y];
        }""",
        [canvas, index],
    )
    with tab.page.expect_navigation():
        tab.page.mouse.click(point[0], point[1])


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_bars_open_the_map_on_their_week_or_province(
    browser: Any,  # noqa: F811 (the fixture)
    site: str,
    viewport: tuple[int, int],
    tmp_path: Path,
) -> None:
    tab = Tab(browser, site, viewport)
    try:
        tab.sign_in("ana")
        page = tab.page
        page.goto(f"{site}/charts?week=2026-W47&network=bittorrent")
        page.wait_for_selector("body[data-charts]")
        page.screenshot(path=str(tmp_path / f"charts-{viewport[0]}.png"), full_page=True)

        # The week in progress (NOW is inside 2026-W47): named and lighter.
        assert page.locator("#partial-note").is_visible()
        colours = page.evaluate(
            """() => Chart.getChart(document.getElementById('sightings-week'))
                .data.datasets[0].backgroundColor"""
        )
        assert colours[-1] != colours[0] and len(set(colours[:-1])) == 1
        # No sighting yet in the selected week: a sentence, not empty axes.
        assert page.locator("#no-provinces").is_visible()

        weeks = page.evaluate(
            "() => JSON.parse(document.getElementById('chart-data').textContent).weeks"
        )
        index = weeks.index("2026-W46")
        page.locator("#sightings-week").scroll_into_view_if_needed()
        _click_bar(tab, "sightings-week", index)
        query = parse_qs(urlsplit(page.url).query)
        assert urlsplit(page.url).path == "/"
        assert query["from"] == ["2026-11-09"] and query["to"] == ["2026-11-15"]
        assert query["network"] == ["bittorrent"]
        tab.wait_for_map()
        assert page.locator("#network").input_value() == "bittorrent"

        # W46 has leads in Madrid and in Sevilla.
        page.goto(f"{site}/charts?week=2026-W46&network=bittorrent")
        page.wait_for_selector("body[data-charts]")
        provinces = page.evaluate(
            "() => JSON.parse(document.getElementById('chart-data').textContent).provinces"
        )
        # Every province named on its axis, none skipped.
        ticks = page.evaluate(
            """() => Chart.getChart(document.getElementById('leads-province'))
                .scales.y.ticks.map((t) => t.label)"""
        )
        assert ticks == provinces and not page.locator("#no-provinces").count()
        page.locator("#leads-province").scroll_into_view_if_needed()
        _click_bar(tab, "leads-province", provinces.index("Sevilla"))
        query = parse_qs(urlsplit(page.url).query)
        assert query["province"] == ["41"] and query["network"] == ["bittorrent"]
        tab.wait_for_map()

        # The keyboard way: the tables' links go to the same places.
        page.go_back()
        page.wait_for_selector("body[data-charts]")
        page.locator("#chart-tables summary").focus()
        page.keyboard.press("Enter")
        link = page.locator("#provinces-table a", has_text="Madrid")
        link.focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert parse_qs(urlsplit(page.url).query)["province"] == ["28"]
        assert tab.problems == []
    finally:
        tab.context.close()
