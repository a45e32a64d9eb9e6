"""The one query behind the map, the list, the charts and exports.

`select_leads` returns every lead of a selection as a compact row, highest
score in force first; the map takes their places, the list takes a page of
them. Both come from this function with the same filters, so they cannot
disagree. Area filters are a bounding box in SQL and then the exact polygon
test here (shapely), so that both engines answer the same.

The score in force is `atalaya.leads.query.score_in_force`, the one
definition every reader of leads shares.

A lead is urgent for a unit when its score in force is at least the unit's
threshold (`unit.urgent_score`, `URGENT_SCORE` until it sets one): the map
counts urgent leads per cluster, per province and per municipality instead
of colouring by the highest member. The list's figures for the window (`period_figures`) are
read for the leads of one page only, so the map's query stays as cheap as
before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from typing import Any, NamedTuple

import numpy as np
import shapely
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    and_,
    cast,
    func,
    literal,
    select,
)

from atalaya.hashsets.categories import Category
from atalaya.leads.addresses import with_exact_addresses
from atalaya.leads.presences import BATCH, in_presences, presence_of
from atalaya.leads.query import score_in_force
from atalaya.store.tables import lead, lead_presence, sighting
from atalaya.store.times import utc

PAGE_SIZE = 100
_IN_CHUNK = 1_000
# A lead seen within this many days is active, else dormant.
ACTIVE_DAYS = 7
STATUSES = ("active", "dormant", "overridden", "conflict")
# Score bands of the map and the list (lower edges of bands 1..4), and the
# score from which a lead is urgent (the two highest bands).
SCORE_BANDS = (20.0, 40.0, 60.0, 80.0)
URGENT_SCORE = 60.0
MAX_PROVINCES = 60  # more than Spain has: a longer list is a mistake
# The list's sort keys: the name in a URL and what it orders by. A leading
# "-" in the URL asks for the highest first.
SORT_KEYS = ("score", "last_seen", "first_seen", "sightings", "known_files", "place", "id")
DEFAULT_SORT = "-score"


def score_band(score: float) -> int:
    """0..4: which colour a score gets on the map and in the list."""
    return sum(1 for edge in SCORE_BANDS if score >= edge)


@dataclass(frozen=True)
class Selection:
    """Which leads: plain values (the web parses and bounds them from a URL)."""

    since: date  # first UTC day included
    until: date  # last UTC day included
    provinces: tuple[str, ...] = ()  # INE codes; empty: any
    municipality: str | None = None
    area: tuple[tuple[float, float], ...] | None = None  # (lon, lat) ring, not closed
    network: str | None = None
    category: Category | None = None
    min_score: float | None = None
    status: str | None = None  # one of STATUSES
    sort: str = DEFAULT_SORT  # a SORT_KEYS name, "-" first for descending

    @property
    def province(self) -> str | None:
        """The province when exactly one is chosen (its name, its municipalities)."""
        return self.provinces[0] if len(self.provinces) == 1 else None

    @property
    def start(self) -> datetime:
        """The window's first instant (UTC)."""
        return datetime.combine(self.since, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The instant just after the window (UTC)."""
        return datetime.combine(self.until + timedelta(days=1), time(), tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def bbox(self) -> tuple[float, float, float, float] | None:
        """(west, south, east, north) of the drawn area."""
        if not self.area:
            return None
        lons = [p[0] for p in self.area]
        lats = [p[1] for p in self.area]
        return min(lons), min(lats), max(lons), max(lats)


@dataclass(frozen=True)
class LeadRow:
    id: int
    score: float  # in force
    computed_score: float
    overridden: bool
    first_seen: datetime
    last_seen: datetime
    sightings: int
    known_files: int
    verified_items: int
    highest_category: int | None
    networks: tuple[str, ...]
    ip: str
    country: str | None
    province_code: str | None
    province_name: str | None
    municipality_code: str | None
    municipality_name: str | None
    lat: float | None
    lon: float | None
    isp: str | None
    asn: int | None
    flags: tuple[str, ...]
    time_zone: str | None
    facts_version: str | None

    @property
    def category_label(self) -> str | None:
        return Category(self.highest_category).label if self.highest_category is not None else None

    @property
    def place(self) -> str:
        parts = [p for p in (self.municipality_name, self.province_name) if p]
        return ", ".join(parts) or (self.country or "unplaced")


class Selected(NamedTuple):
    """What the selection holds of each lead: enough for the map, the order
    and the count; `lead_rows` gives the rest for the leads a page shows."""

    id: int
    score: float  # in force
    lat: float | None
    lon: float | None
    known_files: int
    facts_version: str | None
    province_code: str | None
    municipality_code: str | None


@dataclass(frozen=True)
class Page:
    rows: list[Selected]
    number: int
    pages: int
    total: int


def _conditions(
    flt: Selection,
    *,
    visible: ColumnElement[bool] | None,
    in_force: ColumnElement[Any],
    override: Any,
    now: datetime,
    conflicts: ColumnElement[bool] | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        lead.c.last_seen >= flt.start,
        lead.c.first_seen < flt.end,
    ]
    if visible is not None:
        where.append(visible)
    if flt.provinces:
        where.append(lead.c.province_code.in_(flt.provinces))
    if flt.municipality is not None:
        where.append(lead.c.municipality_code == flt.municipality)
    box = flt.bbox()
    if box is not None:
        west, south, east, north = box
        where += [
            lead.c.lon >= west,
            lead.c.lon <= east,
            lead.c.lat >= south,
            lead.c.lat <= north,
        ]
    if flt.network is not None:
        # `networks` is a JSON list of names; its text holds each name quoted
        # on both engines, and names are a fixed set without quotes.
        where.append(cast(lead.c.networks, String).like(f'%"{flt.network}"%'))
    if flt.category is not None:
        where.append(lead.c.highest_category >= int(flt.category))
    if flt.min_score is not None:
        where.append(in_force >= flt.min_score)
    recent = now - timedelta(days=ACTIVE_DAYS)
    if flt.status == "active":
        where.append(lead.c.last_seen >= recent)
    elif flt.status == "dormant":
        where.append(lead.c.last_seen < recent)
    elif flt.status == "overridden":
        where.append(override.c.score.is_not(None))
    elif flt.status == "conflict":
        where.append(conflicts if conflicts is not None else lead.c.id.is_(None))
    return where


def check_sort(sort: str) -> str:
    """`sort` if it names a sort key (with or without "-"), else ValueError."""
    if sort.removeprefix("-") not in SORT_KEYS:
        raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, '-' first for descending")
    return sort


def _order(sort: str, in_force: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    key = check_sort(sort).removeprefix("-")
    descending = sort.startswith("-")
    columns: list[ColumnElement[Any]]
    if key == "score":
        columns = [in_force]
    elif key == "place":
        columns = [
            func.coalesce(lead.c.province_name, literal("")),
            func.coalesce(lead.c.municipality_name, literal("")),
        ]
    else:
        columns = [lead.c[key]]
    ordered: list[ColumnElement[Any]] = [c.desc() if descending else c.asc() for c in columns]
    if key != "id":
        ordered.append(lead.c.id.asc())  # ties in a stable order
    return ordered


def select_leads(
    conn: Connection,
    flt: Selection,
    *,
    visible: ColumnElement[bool] | None,
    now: datetime,
    conflicts: ColumnElement[bool] | None = None,
) -> list[Selected]:
    """Every lead of the selection, in the order `flt.sort` asks (highest
    score in force first by default).

    `visible` restricts to the leads the user's unit holds (None: all);
    `conflicts` is true for leads another unit also holds (status=conflict).
    Only the few columns every lead needs are read: tens of thousands of
    leads cost tens of milliseconds, not seconds.
    """
    in_force, override = score_in_force()
    query = (
        select(
            lead.c.id,
            in_force.label("score"),
            lead.c.lat,
            lead.c.lon,
            lead.c.known_files,
            lead.c.facts_version,
            lead.c.province_code,
            lead.c.municipality_code,
        )
        .outerjoin(override, override.c.lead_id == lead.c.id)
        .where(
            and_(
                *_conditions(
                    flt,
                    visible=visible,
                    in_force=in_force,
                    override=override,
                    now=now,
                    conflicts=conflicts,
                )
            )
        )
        .order_by(*_order(flt.sort, in_force))
    )
    make = Selected._make
    rows = [make(r) for r in conn.execute(query)]
    if flt.area:
        rows = in_area(rows, flt.area)
    return rows


def selected_ids(
    flt: Selection,
    *,
    visible: ColumnElement[bool] | None,
    now: datetime,
    conflicts: ColumnElement[bool] | None = None,
) -> Select[tuple[int]] | None:
    """The ids of `select_leads`' leads as a statement to nest in another
    (`lead_id.in_(...)`), unordered; None when the selection has a drawn area,
    whose exact polygon test only `select_leads` makes (the caller then passes
    that function's ids).

    The same conditions as `select_leads`; the latest override is joined only
    when a condition reads it (at most one row per lead, so it adds none).
    """
    if flt.area:
        return None
    in_force, override = score_in_force()
    query = select(lead.c.id)
    if flt.min_score is not None or flt.status == "overridden":
        query = query.outerjoin(override, override.c.lead_id == lead.c.id)
    conditions = _conditions(
        flt, visible=visible, in_force=in_force, override=override, now=now, conflicts=conflicts
    )
    return query.where(and_(*conditions))


def lead_rows(conn: Connection, ids: Sequence[int]) -> list[LeadRow]:
    """The leads `ids` in full, in that order (ids no longer there are left out)."""
    in_force, override = score_in_force()
    found: dict[int, LeadRow] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[start : start + _IN_CHUNK])
        query = (
            select(
                lead.c.id,
                in_force.label("score_in_force"),
                lead.c.score,
                override.c.score.is_not(None).label("overridden"),
                lead.c.first_seen,
                lead.c.last_seen,
                lead.c.sightings,
                lead.c.known_files,
                lead.c.verified_items,
                lead.c.highest_category,
                lead.c.networks,
                lead.c.ip,
                lead.c.country,
                lead.c.province_code,
                lead.c.province_name,
                lead.c.municipality_code,
                lead.c.municipality_name,
                lead.c.lat,
                lead.c.lon,
                lead.c.isp,
                lead.c.asn,
                lead.c.flags,
                lead.c.time_zone,
                lead.c.facts_version,
            )
            .outerjoin(override, override.c.lead_id == lead.c.id)
            .where(lead.c.id.in_(chunk))
        )
        for r in conn.execute(query):
            found[r[0]] = LeadRow(
                id=r[0],
                score=float(r[1]),
                computed_score=float(r[2]),
                overridden=bool(r[3]),
                first_seen=utc(r[4]),
                last_seen=utc(r[5]),
                sightings=r[6],
                known_files=r[7],
                verified_items=r[8],
                highest_category=r[9],
                networks=tuple(r[10] or ()),
                ip=r[11],
                country=r[12],
                province_code=r[13],
                province_name=r[14],
                municipality_code=r[15],
                municipality_name=r[16],
                lat=r[17],
                lon=r[18],
                isp=r[19],
                asn=r[20],
                flags=tuple(r[21] or ()),
                time_zone=r[22],
                facts_version=r[23],
            )
    return [found[i] for i in ids if i in found]


@dataclass(frozen=True)
class PeriodFigures:
    """What a lead did inside the selection's window (the list's figures)."""

    sightings: int
    known_files: int
    items: int
    last_seen: datetime | None


def period_figures(
    conn: Connection, ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, PeriodFigures]:
    """Sightings, known files and items of the leads `ids` seen in [start, end).

    A lead's sightings are those of its presences (an address, and a port
    where the address is shared, between first and last sighting: see
    atalaya.leads.presences), found through `ix_sighting_ip_seen_at`. Meant
    for a page of the list, not for a whole selection. A lead without a
    sighting in the window (seen before and after it) gets zeros.
    """
    found = {i: PeriodFigures(0, 0, 0, None) for i in ids}
    presences: list[Any] = []
    for first in range(0, len(ids), _IN_CHUNK):
        presences += conn.execute(
            select(
                lead_presence.c.lead_id.label("id"),
                lead_presence.c.ip,
                lead_presence.c.port,
                lead_presence.c.first_seen,
                lead_presence.c.last_seen,
            )
            .where(
                lead_presence.c.lead_id.in_(list(ids[first : first + _IN_CHUNK])),
                lead_presence.c.last_seen >= start,
                lead_presence.c.first_seen < end,
            )
            .order_by(lead_presence.c.lead_id)
        ).all()
    # A presence keyed by an address joins its sightings on it: one small
    # statement. IPv6 presences keyed by a prefix do not; their leads go
    # through their exact addresses instead (few, and a longer statement).
    prefixed = {p.id for p in presences if "/" in p.ip}
    plain = sorted({p.id for p in presences} - prefixed)
    figures = (
        func.count(),
        func.count(func.distinct(sighting.c.file_key)),
        func.count(func.distinct(sighting.c.network + ":" + sighting.c.item_value)),
        func.max(sighting.c.seen_at),
    )
    join = and_(
        sighting.c.ip == lead_presence.c.ip,
        sighting.c.seen_at >= lead_presence.c.first_seen,
        sighting.c.seen_at <= lead_presence.c.last_seen,
        sighting.c.seen_at >= start,
        sighting.c.seen_at < end,
        lead_presence.c.port.is_(None) | (sighting.c.port == lead_presence.c.port),
    )
    answers: list[Any] = []
    for first in range(0, len(plain), _IN_CHUNK):
        answers += conn.execute(
            select(lead_presence.c.lead_id, *figures)
            .select_from(lead_presence.join(sighting, join))
            .where(
                lead_presence.c.lead_id.in_(plain[first : first + _IN_CHUNK]),
                lead_presence.c.last_seen >= start,
                lead_presence.c.first_seen < end,
            )
            .group_by(lead_presence.c.lead_id)
        ).all()
    # One row per exact address seen in a prefix; each row's `id` is its
    # lead's, so `presence_of` names the lead. Batches hold whole leads, so
    # that a lead's distinct counts come from one statement.
    rows = with_exact_addresses(conn, [p for p in presences if p.id in prefixed])
    batches: list[list[Any]] = [[]]
    for _lead, group in groupby(rows, key=lambda r: r.id):
        members = list(group)
        if batches[-1] and len(batches[-1]) + len(members) > BATCH:
            batches.append([])
        batches[-1] += members
    for batch in batches:
        if not batch:
            continue
        which = presence_of(batch)
        answers += conn.execute(
            select(which, *figures)
            .where(in_presences(batch), sighting.c.seen_at >= start, sighting.c.seen_at < end)
            .group_by(which)
        ).all()
    for lead_id, count, files, items, last in answers:
        if lead_id is None:
            continue
        found[int(lead_id)] = PeriodFigures(
            sightings=int(count),
            known_files=int(files),
            items=int(items),
            last_seen=utc(last) if last is not None else None,
        )
    return found


def urgent_counts(rows: Sequence[Selected], urgent_score: float = URGENT_SCORE) -> dict[str, int]:
    """Urgent leads (score in force at least the unit's `urgent_score`) per province code."""
    out: dict[str, int] = {}
    for r in rows:
        if r.score >= urgent_score and r.province_code:
            out[r.province_code] = out.get(r.province_code, 0) + 1
    return out


def urgent_municipality_counts(
    rows: Sequence[Selected], urgent_score: float = URGENT_SCORE
) -> dict[str, int]:
    """Urgent leads per municipality code (INE, five digits), as `urgent_counts`."""
    out: dict[str, int] = {}
    for r in rows:
        if r.score >= urgent_score and r.municipality_code:
            out[r.municipality_code] = out.get(r.municipality_code, 0) + 1
    return out


def in_area(rows: Sequence[Selected], area: Sequence[tuple[float, float]]) -> list[Selected]:
    """The rows whose point lies in the polygon (boundary included), in order."""
    if not rows:
        return []
    polygon: Any = shapely.Polygon(area)
    if not polygon.is_valid:
        # A self-crossing drawing: take the area it encloses.
        polygon = shapely.make_valid(polygon)
    lons = np.array([r.lon if r.lon is not None else np.nan for r in rows], dtype=float)
    lats = np.array([r.lat if r.lat is not None else np.nan for r in rows], dtype=float)
    inside = shapely.intersects_xy(polygon, lons, lats)
    return [r for r, keep in zip(rows, inside, strict=True) if keep]


def page_of(rows: Sequence[Selected], number: int, size: int | None = None) -> Page:
    # PAGE_SIZE read at each call: tests make pages short.
    size = PAGE_SIZE if size is None else size
    pages = max(1, -(-len(rows) // size))
    number = min(max(1, number), pages)
    start = (number - 1) * size
    return Page(rows=list(rows[start : start + size]), number=number, pages=pages, total=len(rows))


def row_record(r: LeadRow, period: PeriodFigures | None = None) -> dict[str, Any]:
    """A lead of the list as the list page's JSON has it (exports use
    `atalaya.leads.query.lead_records`, with every column); `period`, its
    figures in the selection's window, adds `period_*` fields."""
    figures: dict[str, Any] = {}
    if period is not None:
        figures = {
            "period_sightings": period.sightings,
            "period_known_files": period.known_files,
            "period_items": period.items,
            "period_last_seen": period.last_seen.isoformat() if period.last_seen else None,
        }
    return {
        **figures,
        "id": r.id,
        "score": r.score,
        "computed_score": r.computed_score,
        "overridden": r.overridden,
        "first_seen": r.first_seen.isoformat(),
        "last_seen": r.last_seen.isoformat(),
        "sightings": r.sightings,
        "known_files": r.known_files,
        "verified_items": r.verified_items,
        "highest_category": r.category_label,
        "networks": list(r.networks),
        "ip": r.ip,
        "country": r.country,
        "province_code": r.province_code,
        "province_name": r.province_name,
        "municipality_code": r.municipality_code,
        "municipality_name": r.municipality_name,
        "lat": r.lat,
        "lon": r.lon,
        "isp": r.isp,
        "asn": r.asn,
        "flags": list(r.flags),
        "time_zone": r.time_zone,
    }


MAP_FIELDS = ("id", "lat", "lon", "score", "known_files")


def map_points(rows: Sequence[Selected]) -> list[list[Any]]:
    """[id, lat, lon, score, known_files] of each placed lead: compact for tens of
    thousands (4 decimals of a degree is ~10 m, far below the accuracy radius)."""
    return [
        [r.id, round(r.lat, 4), round(r.lon, 4), round(r.score, 1), r.known_files]
        for r in rows
        if r.lat is not None and r.lon is not None
    ]
