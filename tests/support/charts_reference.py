"""The charts as they were computed before, the references for `chart_data`.

Until lead builds stored sightings per presence and UTC day
(`lead_presence_day`), `atalaya.leads.charts.chart_data` found every
sighting of the selected leads again, batch by batch of presences, at each
request: 11 s at a million sightings (`charts_from_sightings`). Then it
summed the stored counts per lead in chunks of ids and counted leads in
Python sets (`charts_by_lead_chunks`) until the sums moved into one SQL
statement. Both are kept for the tests and `bench/bench_charts.py` to
compare `chart_data` with; the application uses neither.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, Connection, and_, case, func, select
from sqlalchemy.sql.functions import sum as sum_

from atalaya.leads.addresses import with_exact_addresses
from atalaya.leads.charts import UNPLACED, ChartData, chart_window, iso_week_of
from atalaya.leads.presences import BATCH, in_presences, presence_of, utc_day
from atalaya.leads.selection import Selection, select_leads
from atalaya.store.tables import lead_presence, lead_presence_day, sighting

_CHUNK = 2_000


def charts_from_sightings(
    conn: Connection,
    flt: Selection,
    *,
    visible: ColumnElement[bool] | None,
    now: datetime,
    conflicts: ColumnElement[bool] | None = None,
) -> ChartData:
    """`chart_data` as it was computed at each request until lead builds
    stored sightings per presence and day: every sighting of the selected
    leads' presences found again by each presence's bounds (address, port
    where shared, first and last sighting) and counted per UTC day."""
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
        # The one change: an IPv6 presence is keyed by its prefix, which no
        # sighting's address equals; the old code counted none of its
        # sightings. The pages list a presence's sightings the same way.
        presences = with_exact_addresses(conn, presences)
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


def charts_by_lead_chunks(
    conn: Connection,
    flt: Selection,
    *,
    visible: ColumnElement[bool] | None,
    now: datetime,
    conflicts: ColumnElement[bool] | None = None,
) -> ChartData:
    """`chart_data` as it was until the sums moved into one statement: the
    selection read into Python, then the stored daily counts summed per
    lead, province and ISO week in one query per 2,000 leads, and the
    weeks' and provinces' leads counted in sets here. The in-run baseline
    of `bench/bench_charts.py`, and a second reference for the tests."""
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
