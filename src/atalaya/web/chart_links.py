"""Where each bar of the charts page leads: the map, on that bar's week or province.

The links keep every other filter of the charts' selection, so a click goes
from "how many" to "which ones" without losing the analyst's place.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from atalaya.leads import ChartData
from atalaya.web.filters import Filters


def chart_links(flt: Filters, data: ChartData) -> dict[str, list[str | None]]:
    """The map's URL for each week and each province of `data`. Sightings
    placed in no province have no map filter, so their bar links nowhere (None)."""
    weeks: list[str | None] = []
    for week in data.weeks:
        monday = date.fromisoformat(f"{week}-1")
        one = replace(flt, since=monday, until=monday + timedelta(days=6), page=1)
        weeks.append("/?" + one.query(page=False))
    provinces: list[str | None] = []
    for code in data.province_codes:
        if not code:
            provinces.append(None)
            continue
        one = replace(flt, provinces=(code,), municipality=None, page=1)
        provinces.append("/?" + one.query(page=False))
    return {"weeks": weeks, "provinces": provinces}
