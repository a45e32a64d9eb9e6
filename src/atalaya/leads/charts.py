"""Counts for the charts: sightings and leads per ISO week and per province.

They cover the same selection as the map and list (`select_leads`), except
that the weekly series spans at least `MIN_WEEKS` weeks up to the end of the
window, so a one-week view still shows the trend. Sightings are those of the
selected leads' presences; a lead counts in a week when it has a sighting
that week, and in the province of the presence the sighting came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from atalaya.leads.presences import BATCH, in_presences, presence_of, utc_day
from atalaya.leads.selection import Selection, select_leads
from atalaya.store.tables import lead_presence, sighting

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
    sightings_per_province: list[int] = field(default_factory=list)
    leads_per_province: list[int] = field(default_factory=list)
    window: tuple[str, str] = ("", "")
    leads: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "weeks": self.weeks,
            "sightings_per_week": self.sightings_per_week,
            "leads_per_week": self.leads_per_week,
            "provinces": self.provinces,
            "sightings_per_province": self.sightings_per_province,
            "leads_per_province": self.leads_per_province,
            "window": list(self.window),
            "leads": self.leads,
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
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)

    weeks = [iso_week_of(first + timedelta(weeks=i)) for i in range(((last - first).days + 1) // 7)]
    sightings_week = dict.fromkeys(weeks, 0)
    leads_week: dict[str, set[int]] = {w: set() for w in weeks}
    sightings_province: dict[str, int] = {}
    leads_province: dict[str, set[int]] = {}

    ids = [r.id for r in rows]
    day = utc_day(conn, sighting.c.seen_at)
    for chunk_start in range(0, len(ids), _CHUNK):
        chunk = ids[chunk_start : chunk_start + _CHUNK]
        presences = conn.execute(
            select(
                lead_presence.c.id,
                lead_presence.c.lead_id,
                lead_presence.c.ip,
                lead_presence.c.port,
                lead_presence.c.first_seen,
                lead_presence.c.last_seen,
                lead_presence.c.province_name,
            )
            .where(lead_presence.c.lead_id.in_(chunk))
            .where(lead_presence.c.last_seen >= start)
            .where(lead_presence.c.first_seen < end)
        ).all()
        by_id = {p.id: p for p in presences}
        for p_start in range(0, len(presences), BATCH):
            batch = presences[p_start : p_start + BATCH]
            owner = presence_of(batch).label("presence")
            query = (
                select(owner, day.label("day"), func.count())
                .where(in_presences(batch))
                .where(sighting.c.seen_at >= start)
                .where(sighting.c.seen_at < end)
                .group_by(owner, day)
            )
            for presence_id, day_text, count in conn.execute(query):
                p = by_id[presence_id]
                d = date.fromisoformat(day_text)
                week = iso_week_of(d)
                if week in sightings_week:
                    sightings_week[week] += int(count)
                    leads_week[week].add(p.lead_id)
                if flt.since <= d <= flt.until:
                    name = p.province_name or UNPLACED
                    sightings_province[name] = sightings_province.get(name, 0) + int(count)
                    leads_province.setdefault(name, set()).add(p.lead_id)

    provinces = sorted(sightings_province, key=lambda n: (-len(leads_province[n]), n))
    return ChartData(
        weeks=weeks,
        sightings_per_week=[sightings_week[w] for w in weeks],
        leads_per_week=[len(leads_week[w]) for w in weeks],
        provinces=provinces,
        sightings_per_province=[sightings_province[n] for n in provinces],
        leads_per_province=[len(leads_province[n]) for n in provinces],
        window=(flt.since.isoformat(), flt.until.isoformat()),
        leads=len({i for s in leads_province.values() for i in s}),
    )
