"""Counts for the charts: sightings and leads per ISO week and per province.

They cover the same selection as the map and list (`select_leads`), except
that the weekly series spans at least `MIN_WEEKS` weeks up to the end of the
window, so a one-week view still shows the trend. Sightings are those of the
selected leads' presences; a lead counts in a week when it has a sighting
that week, and in the province of the presence the sighting came from.

The counts are sums of `lead_presence_day`, the sightings per presence and
UTC day that every lead build writes (`atalaya.leads.days`): a request adds
up one row per presence and day instead of finding each sighting again.
The database does the adding and the counting of distinct leads, in one
statement that nests the selection (`selected_ids`), so that Python gets a
row per week and per province rather than one per lead and week; only a
drawn area, whose exact polygon test is made in Python, passes its leads'
ids (see `bench/bench_charts.py` for what each way costs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Date,
    String,
    and_,
    case,
    distinct,
    func,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.sql.functions import sum as sum_

from atalaya.leads.selection import Selection, select_leads, selected_ids
from atalaya.store.tables import lead_presence, lead_presence_day

MIN_WEEKS = 12
MAX_WEEKS = 104
UNPLACED = "(no province)"
_CHUNK = 2_000
_K = TypeVar("_K")


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
    chosen = selected_ids(wide, visible=visible, now=now, conflicts=conflicts)
    if chosen is not None:
        sums = _sums(conn, lead_presence.c.lead_id.in_(chosen), flt, first, last)
    else:
        # A drawn area: only `select_leads` makes the exact polygon test, so
        # its ids go in chunks. Each lead lies in one chunk, so the chunks'
        # counts of distinct leads add up like their sums.
        rows = select_leads(conn, wide, visible=visible, now=now, conflicts=conflicts)
        ids = sorted(r.id for r in rows)
        sums = _Sums()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            sums.add(_sums(conn, lead_presence.c.lead_id.in_(chunk), flt, first, last))

    mondays = [first + timedelta(weeks=i) for i in range(((last - first).days + 1) // 7)]
    weeks = [iso_week_of(m) for m in mondays]
    provinces = sorted(sums.province_sightings, key=lambda n: (-sums.province_leads[n], n))
    today = now.date()
    current = iso_week_of(today)
    # A week is partial until its Sunday has ended; `now` may lie after the
    # chart's last week (a past window), then every week is complete.
    partial = current if current in weeks else None
    return ChartData(
        weeks=weeks,
        sightings_per_week=[sums.week_sightings.get(m, 0) for m in mondays],
        leads_per_week=[sums.week_leads.get(m, 0) for m in mondays],
        provinces=provinces,
        province_codes=[sums.codes.get(n, "") for n in provinces],
        sightings_per_province=[sums.province_sightings[n] for n in provinces],
        leads_per_province=[sums.province_leads[n] for n in provinces],
        window=(flt.since.isoformat(), flt.until.isoformat()),
        leads=sums.leads,
        partial_week=partial,
    )


@dataclass
class _Sums:
    """The charts' figures as the database added them up, by Monday and by province name."""

    week_sightings: dict[date, int] = field(default_factory=dict)
    week_leads: dict[date, int] = field(default_factory=dict)
    province_sightings: dict[str, int] = field(default_factory=dict)
    province_leads: dict[str, int] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)
    leads: int = 0

    def add(self, other: _Sums) -> None:
        """Add the figures of leads disjoint from these (distinct counts add up)."""
        _add_to(self.week_sightings, other.week_sightings)
        _add_to(self.week_leads, other.week_leads)
        _add_to(self.province_sightings, other.province_sightings)
        _add_to(self.province_leads, other.province_leads)
        for name, code in other.codes.items():
            self.codes[name] = max(self.codes.get(name, ""), code)
        self.leads += other.leads


def _add_to(mine: dict[_K, int], theirs: Mapping[_K, int]) -> None:
    for key, value in theirs.items():
        mine[key] = mine.get(key, 0) + value


def _sums(
    conn: Connection, which: ColumnElement[bool], flt: Selection, first: date, last: date
) -> _Sums:
    """The figures of the leads `which` holds, in one statement.

    The stored counts are first summed per lead, ISO week and province (as
    the page named them: "" and no name are both unplaced), with the part of
    each sum that falls on the selected days; the weekly series, the
    provinces and the count of leads are then three small aggregates of
    that, so each lead is counted once per week and per province however
    many presences and days it has there. Counting distinct leads over
    those rows rather than over the daily rows keeps the sort or hash to
    one row per lead and week.
    """
    day, p = lead_presence_day, lead_presence
    selected = and_(day.c.day >= flt.since, day.c.day <= flt.until)
    # Grouped on the plain columns: the expressions below then run once per
    # lead, week and province rather than once per presence and day.
    per_lead = (
        select(
            p.c.lead_id.label("lead_id"),
            day.c.week.label("week"),
            p.c.province_name.label("province_name"),
            p.c.province_code.label("province_code"),
            sum_(day.c.sightings).label("in_week"),
            sum_(case((selected, day.c.sightings), else_=0)).label("in_days"),
        )
        .select_from(day.join(p, p.c.id == day.c.presence_id))
        .where(which, day.c.day >= first, day.c.day <= last)
        .group_by(p.c.lead_id, day.c.week, p.c.province_name, p.c.province_code)
        .cte("per_lead")
    )
    c = per_lead.c
    name = func.coalesce(func.nullif(c.province_name, ""), literal(UNPLACED))
    # A code counts only with a name, as the province's link needs both.
    code = case((func.coalesce(c.province_name, "") != "", func.nullif(c.province_code, "")))
    in_days = c.in_days > 0
    no_date = null().cast(Date)
    no_text = null().cast(String)
    query = union_all(
        select(
            literal("w").label("kind"),
            c.week,
            no_text.label("name"),
            no_text.label("code"),
            sum_(c.in_week).label("sightings"),
            func.count(distinct(c.lead_id)).label("leads"),
        ).group_by(c.week),
        select(
            literal("p"),
            no_date,
            name,
            func.max(code),
            sum_(c.in_days),
            func.count(distinct(c.lead_id)),
        )
        .where(in_days)
        .group_by(name),
        select(
            literal("t"), no_date, no_text, no_text, literal(0), func.count(distinct(c.lead_id))
        ).where(in_days),
    )
    out = _Sums()
    for kind, monday, province, province_code, sightings, leads in conn.execute(query):
        if kind == "w":
            out.week_sightings[monday] = int(sightings)
            out.week_leads[monday] = int(leads)
        elif kind == "p":
            out.province_sightings[province] = int(sightings)
            out.province_leads[province] = int(leads)
            if province_code:
                out.codes[province] = province_code
        else:
            out.leads = int(leads)
    return out
