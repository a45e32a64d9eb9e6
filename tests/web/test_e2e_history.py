"""Back and Forward on the map page, in Chromium: each filter change is an
entry of the browser's history, and Back returns to the view before it
(form, map and list as its URL says), Forward to the view after it."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture
def site(world: Engine) -> Iterator[str]:
    app = create_app(world, web_settings(), clock=lambda: NOW)
    with serving(app) as base:
        yield base


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_back_and_forward_walk_the_filter_views(
    browser: Any,  # noqa: F811 (the fixture)
    site: str,
) -> None:
    tab = Tab(browser, site, (1440, 900))
    try:
        tab.sign_in("ana")
        page = tab.page
        page.goto(f"{site}/?week=2026-W46")
        tab.wait_for_map()
        first = page.url
        listed = tab.listed()

        tab.apply(lambda: page.select_option("#network", "bittorrent"))
        assert _query(page.url)["network"] == ["bittorrent"]
        tab.apply(lambda: (page.fill("#min_score", "50"), page.press("#min_score", "Tab")))
        assert _query(page.url)["min_score"] == ["50"]

        # Back: the view before the score, its form as its URL says.
        page.go_back()
        page.wait_for_load_state()
        tab.wait_for_map()
        assert "min_score" not in _query(page.url)
        assert page.locator("#network").input_value() == "bittorrent"
        assert page.locator("#min_score").input_value() == ""

        page.go_back()
        page.wait_for_load_state()
        tab.wait_for_map()
        assert page.url == first
        assert page.locator("#network").input_value() == ""
        assert tab.listed() == listed

        page.go_forward()
        page.wait_for_load_state()
        tab.wait_for_map()
        assert _query(page.url)["network"] == ["bittorrent"]
        assert page.locator("#network").input_value() == "bittorrent"
        assert tab.problems == []
    finally:
        tab.context.close()


def test_a_read_dropped_before_any_answer_is_asked_once_more(
    browser: Any,  # noqa: F811 (the fixture)
    site: str,
) -> None:
    """A network change drops the list's and the map's first request; the
    page asks again and shows the selection instead of an error."""
    tab = Tab(browser, site, (1440, 900))
    dropped: list[str] = []

    def drop_first(route: Any) -> None:
        path = urlsplit(route.request.url).path
        if path not in dropped:
            dropped.append(path)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    try:
        tab.sign_in("ana")
        page = tab.page
        page.goto(f"{site}/?week=2026-W46")
        tab.wait_for_map()
        listed = tab.listed()
        page.route("**/api/leads?*", drop_first)
        page.route("**/api/map?*", drop_first)
        tab.apply(lambda: page.select_option("#network", "bittorrent"))
        assert sorted(dropped) == ["/api/leads", "/api/map"]
        assert page.locator("#list-error").inner_text() == ""
        assert page.locator("#map-status").get_attribute("data-state") == "ready"
        assert set(tab.listed()) <= set(listed)
        # Only the two dropped requests, logged by Chromium; nothing else.
        assert [p for p in tab.problems if "ERR_INTERNET_DISCONNECTED" not in p] == []
        assert len(tab.problems) <= 2
    finally:
        tab.context.close()
