"""Counts for the charts: sightings and leads per ISO week and per province.

They cover the same selection as the map and list (`select_leads`), except
that the weekly series spans at least `MIN_WEEKS` weeks up to the end of the
window, so a one-week view still shows the trend. Sightings are those of the
selected leads' presences; a lead counts in a week when it has a sighting
that week, and in the province of the presence the sighting came from.

The counts are sums of `lead_presence_day`, the sightings per presence and
UTC day that every lead build writes (`atalaya.leads.days`): a request adds
up one row per presence and day instead of finding each sighting again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, select
from sqlalchemy.sql.functions import sum as sum_

from atalaya.leads.selection import Selection, select_leads
from atalaya.store.tables import lead_presence, lead_presence_day

MIN_WEEKS = 12
MAX_WEEKS = 104
UNPLACED = "(no province)"
_CHUNK = 2_000


@dataclass
class ChartData:
    weeks: list[str] = field(default_factory=list)  # ISO weeks, 2026-W47
    sightings_per_week: list[int] = field(default_factory=list)
    leads_per_week: list[int] = field(default_factory=list)
    provinces: list[str] = field(default_factory=list)
    # INE code of each province, "" for sightings placed in none: the charts
    # link a province's bar to the map filtered on that code.
    province_codes: list[str] = field(default_factory=list)
    sightings_per_province: list[int] = field(default_factory=list)
    leads_per_province: list[int] = field(default_factory=list)
    window: tuple[str, str] = ("", "")
    leads: int = 0
    # The week that holds `now` when it is one of the chart's weeks: its bars
    # count only the days so far, so the page marks them as partial.
    partial_week: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "weeks": self.weeks,
            "sightings_per_week": self.sightings_per_week,
            "leads_per_week": self.leads_per_week,
            "provinces": self.provinces,
            "province_codes": self.province_codes,
            "sightings_per_province": self.sightings_per_province,
            "leads_per_province": self.leads_per_province,
            "window": list(self.window),
            "leads": self.leads,
            "partial_week": self.partial_week,
        }


def iso_week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def chart_window(flt: Selection) -> tuple[date, date]:
    """Mondays-to-Sundays covering the window, at least MIN_WEEKS of them."""
    last_monday = flt.until - timedelta(days=flt.until.weekday())
    first_monday = flt.since - timedelta(days=flt.since.weekday())
    weeks = (last_monday - first_monday).days // 7 + 1
    weeks = min(max(weeks, MIN_WEEKS), MAX_WEEKS)
    return last_monday - timedelta(weeks=weeks - 1), last_monday + timedelta(days=6)


def chart_data(
    conn: Connection,
    flt: Selection,
    *,
    visible: ColumnElement[bool] | None,
    now: datetime,
    conflicts: ColumnElement[bool] | None = None,
) -> ChartData:
    first, last = chart_window(flt)
    wide = replace(flt, since=first, until=last)
    rows = select_leads(conn, wide, visible=visible, now=now, conflicts=conflicts)

    mondays = [first + timedelta(weeks=i) for i in range(((last - first).days + 1) // 7)]
    weeks = [iso_week_of(m) for m in mondays]
    week_of = dict(zip(mondays, weeks, strict=True))
    sightings_week = dict.fromkeys(weeks, 0)
    leads_week: dict[str, set[int]] = {w: set() for w in weeks}
    sightings_province: dict[str, int] = {}
    leads_province: dict[str, set[int]] = {}
    codes: dict[str, str] = {}

    # One pass over the stored counts: per lead, province and week, the
    # sightings of the chart's weeks and those of the selected days.
    day, p = lead_presence_day, lead_presence
    selected = and_(day.c.day >= flt.since, day.c.day <= flt.until)
    ids = sorted(r.id for r in rows)
    for chunk_start in range(0, len(ids), _CHUNK):
        chunk = ids[chunk_start : chunk_start + _CHUNK]
        query = (
            select(
                p.c.lead_id,
                p.c.province_name,
                p.c.province_code,
                day.c.week,
                sum_(day.c.sightings),
                sum_(case((selected, day.c.sightings), else_=0)),
            )
            .select_from(day.join(p, p.c.id == day.c.presence_id))
            .where(p.c.lead_id.in_(chunk), day.c.day >= first, day.c.day <= last)
            .group_by(p.c.lead_id, p.c.province_name, p.c.province_code, day.c.week)
        )
        for lead_id, province, code, monday, in_week, in_days in conn.execute(query):
            week = week_of[monday]
            sightings_week[week] += int(in_week)
            leads_week[week].add(lead_id)
            if in_days:
                name = province or UNPLACED
                if province and code:
                    codes[name] = code
                sightings_province[name] = sightings_province.get(name, 0) + int(in_days)
                leads_province.setdefault(name, set()).add(lead_id)

    provinces = sorted(sightings_province, key=lambda n: (-len(leads_province[n]), n))
    today = now.date()
    current = iso_week_of(today)
    # A week is partial until its Sunday has ended; `now` may lie after the
    # chart's last week (a past window), then every week is complete.
    partial = current if current in week_of.values() else None
    return ChartData(
        weeks=weeks,
        sightings_per_week=[sightings_week[w] for w in weeks],
        leads_per_week=[len(leads_week[w]) for w in weeks],
        provinces=provinces,
        province_codes=[codes.get(n, "") for n in provinces],
        sightings_per_province=[sightings_province[n] for n in provinces],
        leads_per_province=[len(leads_province[n]) for n in provinces],
        window=(flt.since.isoformat(), flt.until.isoformat()),
        leads=len({i for s in leads_province.values() for i in s}),
        partial_week=partial,
    )
