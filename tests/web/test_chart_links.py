"""The charts page links each bar to the map: a week's bar to that week, a
province's to that province, the other filters kept; the week in progress
is marked as partial."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from atalaya.leads.charts import iso_week_of
from tests.web.seed import NOW


def _data(html: str) -> dict[str, Any]:
    found = re.search(r'id="chart-data">(.*?)</script>', html, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found[1])
    return data


def _query(link: str) -> dict[str, list[str]]:
    parts = urlsplit(link)
    assert parts.path == "/" and not parts.netloc
    return parse_qs(parts.query)


def test_each_week_links_to_the_map_on_that_week_keeping_the_filters(client_for: Any) -> None:
    ana = client_for("ana")
    html = ana.get("/charts?week=2026-W46&network=bittorrent&min_score=10").text
    data = _data(html)
    links = data["links"]["weeks"]
    assert len(links) == len(data["weeks"]) == 12
    w45 = _query(links[data["weeks"].index("2026-W45")])
    assert w45["from"] == ["2026-11-02"] and w45["to"] == ["2026-11-08"]
    assert w45["network"] == ["bittorrent"] and w45["min_score"] == ["10"]
    # The same links in the tables, for the keyboard.
    assert f'href="{links[-1].replace("&", "&amp;")}"' in html

    # The link opens the map, and the map's list holds that week's leads.
    query = urlsplit(links[data["weeks"].index("2026-W45")]).query
    listed = ana.get(f"/api/leads?{query}").json()
    assert listed["total"] == data["leads_per_week"][data["weeks"].index("2026-W45")]


def test_each_province_links_to_the_map_on_that_province(client_for: Any) -> None:
    ana = client_for("ana")
    data = _data(ana.get("/charts?week=2026-W46").text)
    codes = dict(zip(data["provinces"], data["province_codes"], strict=True))
    assert codes == {"Madrid": "28", "Sevilla": "41"}
    links = dict(zip(data["provinces"], data["links"]["provinces"], strict=True))
    madrid = _query(links["Madrid"])
    assert madrid["province"] == ["28"] and madrid["from"] == ["2026-11-09"]
    listed = ana.get(f"/api/leads?{urlsplit(links['Sevilla']).query}").json()
    assert (
        listed["total"]
        == dict(zip(data["provinces"], data["leads_per_province"], strict=True))["Sevilla"]
    )


def test_the_week_in_progress_is_marked_partial(client_for: Any) -> None:
    ana = client_for("ana")
    current = iso_week_of(NOW.date())
    html = ana.get(f"/charts?week={current}").text
    data = _data(html)
    assert data["partial_week"] == current == data["weeks"][-1]
    assert 'id="partial-note"' in html
    assert '<tr class="partial">' in html

    # A past window: every week has ended, none is partial.
    past = _data(ana.get("/charts?week=2026-W30").text)
    assert past["partial_week"] is None
    html = ana.get("/charts?week=2026-W30").text
    assert 'id="partial-note"' not in html
    # Nothing placed in those days: a sentence instead of two empty charts.
    assert past["provinces"] == [] and 'id="no-provinces"' in html
    assert 'id="leads-province"' not in html
