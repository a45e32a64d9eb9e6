"""The selection an analyst asks for, read from and written back to a URL.

Every page and API takes the same query parameters, so a URL is a view that
can be shared: `from`/`to` (UTC days, both included; the week up to today by
default) or `week` (ISO week, e.g. 2026-W47), `province` (INE code;
repeated, or codes joined by commas, for several), `municipality` (INE
code, with one province), `area` (a drawn polygon, `lon lat` pairs joined by
commas: `-3.8 40.3,-3.6 40.3,-3.6 40.5`), `network`, `category` (the lowest
internal category wanted), `min_score`, `status`, `sort` (a sort key of
atalaya.leads.selection, `-` first for highest first) and `page`.

Statuses, until cases bring their own states: `active` (seen in the last
seven days), `dormant` (not seen for seven days), `overridden` (an analyst's
score is in force) and `conflict` (another unit holds the lead too).

Query strings come from anyone holding a session: every value is bounded and
a bad one fails with FilterError, never anything else. Days lie between
1970-01-01 and 2999-12-31, so that no window, chart week or "day after"
computed from one can leave Python's dates; numbers are ASCII digits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from urllib.parse import urlencode

from atalaya.errors import N_, AtalayaError, Listed
from atalaya.hashsets.categories import Category
from atalaya.leads import DEFAULT_SORT, MAX_PROVINCES, SORT_KEYS, STATUSES, Selection
from atalaya.observe import registry

DEFAULT_DAYS = 7
MAX_DAYS = 3_660  # ten years: beyond that a window is a mistake
MAX_VERTICES = 200
MAX_PARAM = 8_000
MAX_PAGE = 100_000
# Days a window may touch: wide enough for any real record, narrow enough
# that every sum of days and weeks made from them stays a valid date.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)
# ASCII digits only: str.isdigit and \d accept "²" and other scripts' digits.
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_CODE = re.compile(r"[0-9]{1,5}")
_PAGE = re.compile(r"[0-9]{1,6}")


# The largest id a lead can have: a database BIGINT. A larger one in a URL is
# no lead (404), never a query.
MAX_LEAD_ID = 2**63 - 1


class FilterError(AtalayaError, ValueError):
    """A query parameter that does not describe a selection."""


@dataclass(frozen=True)
class Filters(Selection):
    """A selection as the web reads it from a URL, with the list's page."""

    page: int = 1

    def params(self, *, page: bool = True) -> dict[str, str]:
        """The query parameters that give these filters back (defaults included;
        several provinces joined by commas, as the audit log records them)."""
        out = {"from": self.since.isoformat(), "to": self.until.isoformat()}
        if self.provinces:
            out["province"] = ",".join(self.provinces)
        if self.municipality:
            out["municipality"] = self.municipality
        if self.area:
            out["area"] = format_area(self.area)
        if self.network:
            out["network"] = self.network
        if self.category is not None:
            out["category"] = self.category.label
        if self.min_score is not None:
            out["min_score"] = f"{self.min_score:g}"
        if self.status:
            out["status"] = self.status
        if self.sort != DEFAULT_SORT:
            out["sort"] = self.sort
        if page and self.page != 1:
            out["page"] = str(self.page)
        return out

    def pairs(self, *, page: bool = True) -> list[tuple[str, str]]:
        """The query parameters as a URL has them: one `province` per province."""
        out: list[tuple[str, str]] = []
        for name, value in self.params(page=page).items():
            if name == "province":
                out += [("province", code) for code in self.provinces]
            else:
                out.append((name, value))
        return out

    def query(self, *, page: bool = True) -> str:
        return urlencode(self.pairs(page=page))

    def with_page(self, number: int) -> Filters:
        return replace(self, page=number)


def format_area(area: tuple[tuple[float, float], ...]) -> str:
    return ",".join(f"{lon:.6f} {lat:.6f}" for lon, lat in area)


def _many(params: Mapping[str, str], name: str) -> list[str]:
    """Every value of a repeatable parameter (a MultiDict's `getlist`), each
    split at commas, without blanks."""
    getlist = getattr(params, "getlist", None)
    if getlist is not None:
        values = [str(v) for v in getlist(name)]
    else:
        one = params.get(name)
        values = [] if one is None else [one]
    if len(values) > MAX_PROVINCES:
        raise FilterError(
            N_("%(name)s is given more than %(most)s times"), name=name, most=MAX_PROVINCES
        )
    out = []
    for value in values:
        if len(value) > MAX_PARAM:
            raise FilterError(N_("%(name)s is too long"), name=name)
        out += [part.strip() for part in value.split(",") if part.strip()]
    return out


def _one(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if len(value) > MAX_PARAM:
        raise FilterError(N_("%(name)s is too long"), name=name)
    value = value.strip()
    return value or None


def _day(value: str, name: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise FilterError(
            N_("%(name)s %(value)r is not a date (YYYY-MM-DD)"), name=name, value=value[:40]
        ) from None
    _check_day(day, name)
    return day


def _check_day(day: date, name: str) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(
            N_("%(name)s must be a day from %(first)s to %(last)s"),
            name=name,
            first=FIRST_DAY,
            last=LAST_DAY,
        )


def iso_week(value: str) -> tuple[date, date]:
    """Monday and Sunday of an ISO week written 2026-W47."""
    match = _WEEK.fullmatch(value)
    if match is None:
        raise FilterError(
            N_("week %(value)r is not an ISO week such as 2026-W47"), value=value[:40]
        )
    year = int(match[1])
    if not FIRST_DAY.year <= year <= LAST_DAY.year:
        raise FilterError(
            N_("week must be of a year from %(first)s to %(last)s"),
            first=FIRST_DAY.year,
            last=LAST_DAY.year,
        )
    try:
        monday = date.fromisocalendar(year, int(match[2]), 1)
    except ValueError:
        raise FilterError(N_("week %(value)r does not exist"), value=value[:40]) from None
    _check_day(monday, "week")
    _check_day(monday + timedelta(days=6), "week")
    return monday, monday + timedelta(days=6)


def parse_area(value: str) -> tuple[tuple[float, float], ...]:
    points: list[tuple[float, float]] = []
    for pair in value.split(","):
        parts = pair.split()
        if len(parts) != 2:
            raise FilterError(N_("area must be 'lon lat' pairs separated by commas"))
        try:
            lon, lat = float(parts[0]), float(parts[1])
        except ValueError:
            raise FilterError(N_("area coordinates must be numbers")) from None
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise FilterError(N_("area coordinates must be finite"))
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise FilterError(N_("area coordinates must be longitude -180..180, latitude -90..90"))
        points.append((lon, lat))
        if len(points) > MAX_VERTICES:
            raise FilterError(N_("area has more than %(most)s vertices"), most=MAX_VERTICES)
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()  # a closed ring: the last vertex repeats the first
    if len(points) < 3:
        raise FilterError(N_("area needs at least three vertices"))
    return tuple(points)


def parse_filters(params: Mapping[str, str], *, today: date) -> Filters:
    """Filters from query parameters; the week up to `today` when no window is given."""
    week = _one(params, "week")
    since_text, until_text = _one(params, "from"), _one(params, "to")
    if week is not None:
        since, until = iso_week(week)
    else:
        until = _day(until_text, "to") if until_text else today
        _check_day(until, "to")
        since = (
            _day(since_text, "from")
            if since_text
            else max(FIRST_DAY, until - timedelta(days=DEFAULT_DAYS - 1))
        )
    if since > until:
        raise FilterError(N_("from must not be after to"))
    if (until - since).days + 1 > MAX_DAYS:
        raise FilterError(N_("the time window is longer than %(most)s days"), most=MAX_DAYS)

    codes: list[str] = []
    for province in _many(params, "province"):
        if not _CODE.fullmatch(province) or len(province) > 2:
            raise FilterError(N_("province must be a two-digit INE code such as 28"))
        if province.zfill(2) not in codes:
            codes.append(province.zfill(2))
    if len(codes) > MAX_PROVINCES:
        raise FilterError(N_("more than %(most)s provinces"), most=MAX_PROVINCES)
    provinces = tuple(sorted(codes))
    municipality = _one(params, "municipality")
    if municipality is not None:
        if not _CODE.fullmatch(municipality):
            raise FilterError(N_("municipality must be a five-digit INE code such as 28079"))
        municipality = municipality.zfill(5)
        if len(provinces) > 1 or (provinces and not municipality.startswith(provinces[0])):
            # A municipality of another province, or beside several: the
            # provinces were changed after it was picked, and they win.
            municipality = None

    area_text = _one(params, "area")
    area = parse_area(area_text) if area_text else None

    network = _one(params, "network")
    known = registry.names()
    if network is not None and network not in known:
        raise FilterError(N_("network must be one of %(names)s"), names=Listed(known))

    category_text = _one(params, "category")
    category = None
    if category_text is not None:
        try:
            category = Category[category_text.upper()]
        except KeyError:
            raise FilterError(
                N_("category must be one of %(names)s"), names=Listed(c.label for c in Category)
            ) from None

    score_text = _one(params, "min_score")
    min_score = None
    if score_text is not None:
        try:
            min_score = float(score_text)
        except ValueError:
            raise FilterError(N_("min_score must be a number")) from None
        if not math.isfinite(min_score) or abs(min_score) > 1e9:
            raise FilterError(N_("min_score must be a finite number"))

    status = _one(params, "status")
    if status is not None and status not in STATUSES:
        raise FilterError(N_("status must be one of %(names)s"), names=Listed(STATUSES))

    sort = _one(params, "sort") or DEFAULT_SORT
    if sort.removeprefix("-") not in SORT_KEYS:
        raise FilterError(
            N_("sort must be one of %(names)s ('-' first: highest first)"), names=Listed(SORT_KEYS)
        )

    page_text = _one(params, "page")
    page = 1
    if page_text is not None:
        if not _PAGE.fullmatch(page_text) or not 1 <= int(page_text) <= MAX_PAGE:
            raise FilterError(N_("page must be a number from 1 to %(most)s"), most=MAX_PAGE)
        page = int(page_text)

    return Filters(
        since=since,
        until=until,
        provinces=provinces,
        municipality=municipality,
        area=area,
        network=network,
        category=category,
        min_score=min_score,
        status=status,
        sort=sort,
        page=page,
    )
