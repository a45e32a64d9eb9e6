"""Counts for the charts: sightings and leads per ISO week and per province.

They cover the same selection as the map and list (`select_leads`), except
that the weekly series spans at least `MIN_WEEKS` weeks up to the end of the
window, so a one-week view still shows the trend. Sightings are those of the
selected leads' presences; a lead counts in a week when it has a sighting
that week, and in the province of the presence the sighting came from.

The counts are sums of `lead_presence_week` and `lead_presence_day`, the
sightings per presence and ISO week and UTC day that every lead build
writes (`atalaya.leads.days`): a request adds up one row per presence and
week (and per day in the weeks a selection cuts) instead of finding each
sighting again. The database does the adding and the counting of distinct
leads, in one statement that nests the selection (`selected_ids`), so that
Python gets a row per week and per province rather than one per lead and
week; only a drawn area, whose exact polygon test is made in Python,
passes its leads' ids (see `bench/bench_charts.py` for what each way
costs).
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

from atalaya.leads.days import monday
from atalaya.leads.selection import Selection, select_leads, selected_ids
from atalaya.store.tables import lead_presence, lead_presence_day, lead_presence_week

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
        # Named once: each of the statement's parts reads the same leads, and
        # the database finds them once (a named subquery used more than once
        # is computed once, on both engines).
        leads = chosen.cte("chosen")
        sums = _sums(conn, lead_presence.c.lead_id.in_(select(leads.c.id)), flt, first, last)
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

    Its rows are the stored counts of those leads' presences: per ISO week
    over the chart's weeks (with, for the weeks the selection holds whole,
    the same count as sightings of the selected days), and per day for the
    selected days of the weeks the selection cuts (at most two). The weekly
    series, the provinces (as the page names them: "" and no name are both
    unplaced) and the count of leads are three aggregates of those rows,
    which count each lead once per week and per province however many
    presences and days it has there.
    """
    day, week = lead_presence_day, lead_presence_week
    # The leads' presences, found once for the weekly and the daily parts.
    p = (
        select(
            lead_presence.c.id,
            lead_presence.c.lead_id,
            lead_presence.c.province_name,
            lead_presence.c.province_code,
        )
        .where(which)
        .cte("presences")
    )
    # Weeks the selection holds whole take their selected sightings from the
    # weekly counts; the days of the (at most two) weeks it cuts come from
    # the daily counts.
    whole_from = monday(flt.since + timedelta(days=6))
    whole_to = monday(flt.until + timedelta(days=1)) - timedelta(weeks=1)
    whole = and_(week.c.week >= whole_from, week.c.week <= whole_to)
    weekly = (
        select(
            p.c.lead_id.label("lead_id"),
            week.c.week.label("week"),
            p.c.province_name.label("province_name"),
            p.c.province_code.label("province_code"),
            week.c.sightings.label("in_week"),
            case((whole, week.c.sightings), else_=0).label("in_days"),
        )
        .select_from(p.join(week, week.c.presence_id == p.c.id))
        .where(week.c.week >= first, week.c.week <= last)
    )
    days_from, days_to = max(first, flt.since), min(last, flt.until)
    if whole_from > whole_to:
        cut = [(days_from, days_to)]
    else:
        cut = [
            (days_from, whole_from - timedelta(days=1)),
            (whole_to + timedelta(weeks=1), days_to),
        ]
    # One part per stretch of days, each a plain range of days, so that only
    # those days are read.
    daily = [
        select(
            p.c.lead_id,
            day.c.week,
            p.c.province_name,
            p.c.province_code,
            literal(0),
            day.c.sightings,
        )
        .select_from(p.join(day, day.c.presence_id == p.c.id))
        .where(day.c.day >= start, day.c.day <= end)
        for start, end in cut
        if start <= end
    ]
    # No grouping per lead first: a presence has one lead and one province,
    # so the three aggregates below count distinct leads over these rows
    # directly; a grouping would add a sort that costs more than it saves.
    c = union_all(weekly, *daily).cte("counts").c
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
        )
        # The days of a cut week count for the provinces only.
        .where(c.in_week > 0)
        .group_by(c.week),
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
    for kind, starts, province, province_code, sightings, leads in conn.execute(query):
        if kind == "w":
            out.week_sightings[starts] = int(sightings)
            out.week_leads[starts] = int(leads)
        elif kind == "p":
            out.province_sightings[province] = int(sightings)
            out.province_leads[province] = int(leads)
            if province_code:
                out.codes[province] = province_code
        else:
            out.leads = int(leads)
    return out
