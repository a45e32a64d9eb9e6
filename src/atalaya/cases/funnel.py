"""The funnel: from addresses detected to accusations, per period and place.

Where cases die, in figures a unit can show: for one period [since, until)
and optionally one province and one unit,

- addresses: distinct IP addresses seen in sightings in the period;
- leads: leads whose first sighting falls in the period;
- cases_opened: cases opened in the period;
- requests_sent, authorised, isp_answered, searches, charged, archived:
  cases whose event reached sent_to_court, authorised, isp_answered,
  search_done, charged, archived in the period (each case once per step).

Every figure counts what *happened* in the period (not a cohort followed
over time), so each one is a plain count that SQL can check. Conversion
is a step's count over its base step's (`BASE`): charges come after an ISP
answer with or without a search, so their base is isp_answered; archived
cases leave from anywhere, so their base is cases_opened.

Median days: for each case counted at a step, the time from the latest
step it reached before it (cases_opened: from its first pinned sighting,
the detection the case rests on), in days; the median over those cases.

Lost to the retention clock: leads whose last observation expired at the
ISP during the period (`retention.expires_at` of `lead.last_seen`, so
every observation had) without any case on them sent to court.

Scope: with a province, leads with a presence there (`lead_province`),
addresses of presences there, and cases on such leads; with a unit, the
leads it holds (`visible_lead_ids_clause`), addresses of their presences,
and the cases it opened. Without either, every sighting counts, built into
a lead or not.

The weekly trend counts distinct addresses per ISO week (Monday 00:00
UTC) overlapping the period, clipped to it (`partial` weeks), with the
change from the week before: a sudden rise shows at once.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, or_, select

from atalaya.accounts.units import get_unit, parse_province
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.cases.retention import DEFAULT_SETTINGS, RetentionSettings, live_since
from atalaya.cases.states import State
from atalaya.errors import N_, AtalayaError
from atalaya.leads.history import resolved_lead_id
from atalaya.store.tables import (
    case_event,
    case_file,
    case_sighting,
    lead,
    lead_presence,
    lead_province,
    sighting,
)
from atalaya.store.times import utc

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MAX_WEEKS = 160  # about three years of weekly trend
DEFAULT_DAYS = 91  # thirteen weeks: a quarter of weekly trend
ALL_UNITS = "all"

# The steps in order, and the state whose reaching counts a case at a step.
STEPS: tuple[str, ...] = (
    "addresses",
    "leads",
    "cases_opened",
    "requests_sent",
    "authorised",
    "isp_answered",
    "searches",
    "charged",
    "archived",
)
STEP_STATES: Mapping[str, State] = {
    "cases_opened": State.TRIAGE,
    "requests_sent": State.SENT_TO_COURT,
    "authorised": State.AUTHORISED,
    "isp_answered": State.ISP_ANSWERED,
    "searches": State.SEARCH_DONE,
    "charged": State.CHARGED,
    "archived": State.ARCHIVED,
}
BASE: Mapping[str, str] = {
    "leads": "addresses",
    "cases_opened": "leads",
    "requests_sent": "cases_opened",
    "authorised": "requests_sent",
    "isp_answered": "authorised",
    "searches": "isp_answered",
    "charged": "isp_answered",
    "archived": "cases_opened",
}
LABELS: Mapping[str, str] = {
    "addresses": "Addresses detected",
    "leads": "Leads",
    "cases_opened": "Cases opened",
    "requests_sent": "Requests sent to court",
    "authorised": "Authorised",
    "isp_answered": "ISP answered",
    "searches": "Searches",
    "charged": "Charged",
    "archived": "Archived",
}
# The case steps in the order a case goes through them (archived: any time).
_CHAIN = ("cases_opened", "requests_sent", "authorised", "isp_answered", "searches", "charged")


@dataclass(frozen=True)
class Scope:
    since: datetime
    until: datetime
    province: str | None = None
    unit_id: int | None = None

    def __post_init__(self) -> None:
        if utc(self.since) >= utc(self.until):
            raise AtalayaError(N_("the period is empty: --since must come before --until"))
        if utc(self.until) - utc(self.since) > MAX_WEEKS * WEEK:
            raise AtalayaError(
                N_("the period is longer than %(weeks)s weeks: split it"), weeks=MAX_WEEKS
            )


@dataclass(frozen=True)
class StepFigure:
    name: str
    count: int
    base: str | None
    conversion: float | None  # count / base's count; None when the base is 0
    median_days: float | None  # from the step before, over the cases counted
    measured: int  # how many cases the median is over

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": LABELS[self.name],
            "count": self.count,
            "base": self.base,
            "conversion": self.conversion,
            "median_days": self.median_days,
            "measured": self.measured,
        }


@dataclass(frozen=True)
class Week:
    start: datetime
    addresses: int
    change: float | None  # relative to the week before; None when it had none
    partial: bool  # the week is clipped by the period's ends

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.date().isoformat(),
            "addresses": self.addresses,
            "change": self.change,
            "partial": self.partial,
        }


@dataclass(frozen=True)
class Funnel:
    scope: Scope
    unit: str | None
    steps: list[StepFigure]
    lost_to_retention: int
    weeks: list[Week]

    def count(self, name: str) -> int:
        return next(s.count for s in self.steps if s.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": utc(self.scope.since).isoformat(),
            "until": utc(self.scope.until).isoformat(),
            "province": self.scope.province,
            "unit": self.unit,
            "steps": [s.as_dict() for s in self.steps],
            "lost_to_retention": self.lost_to_retention,
            "weeks": [w.as_dict() for w in self.weeks],
        }

    def csv_rows(self) -> list[list[str]]:
        """One table: a row per step, one for the retention loss, one per week."""

        def num(value: float | None) -> str:
            return "" if value is None else f"{value:.4f}".rstrip("0").rstrip(".")

        rows = [["row", "name", "count", "base", "conversion", "median_days", "change", "partial"]]
        for s in self.steps:
            rows.append(
                [
                    "step",
                    s.name,
                    str(s.count),
                    s.base or "",
                    num(s.conversion),
                    num(s.median_days),
                    "",
                    "",
                ]
            )
        rows.append(["retention", "lost_to_retention", str(self.lost_to_retention)] + [""] * 5)
        for w in self.weeks:
            rows.append(
                [
                    "week",
                    w.start.date().isoformat(),
                    str(w.addresses),
                    "",
                    "",
                    "",
                    num(w.change),
                    "yes" if w.partial else "no",
                ]
            )
        return rows


def _leads_in_scope(scope: Scope, lead_id: ColumnElement[int]) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if scope.province is not None:
        conditions.append(
            lead_id.in_(
                select(lead_province.c.lead_id).where(
                    lead_province.c.province_code == scope.province
                )
            )
        )
    if scope.unit_id is not None:
        conditions.append(visible_lead_ids_clause(scope.unit_id, lead_id))
    return and_(True, *conditions)


def _cases_in_scope(scope: Scope) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if scope.unit_id is not None:
        conditions.append(case_file.c.unit_id == scope.unit_id)
    if scope.province is not None:
        conditions.append(
            _leads_in_scope(
                Scope(scope.since, scope.until, scope.province),
                resolved_lead_id(case_file.c.lead_id),
            )
        )
    return and_(True, *conditions)


def _sightings_in_scope(scope: Scope) -> ColumnElement[bool]:
    if scope.province is None and scope.unit_id is None:
        return and_(True)
    p = lead_presence.c
    inside = [
        sighting.c.ip == p.ip,
        sighting.c.seen_at >= p.first_seen,
        sighting.c.seen_at <= p.last_seen,
        or_(p.port.is_(None), sighting.c.port == p.port),
    ]
    if scope.province is not None:
        inside.append(p.province_code == scope.province)
    if scope.unit_id is not None:
        inside.append(visible_lead_ids_clause(scope.unit_id, p.lead_id))
    return exists().where(*inside)


def _addresses(conn: Connection, scope: Scope, since: datetime, until: datetime) -> int:
    query = select(func.count(func.distinct(sighting.c.ip))).where(
        sighting.c.seen_at >= since, sighting.c.seen_at < until, _sightings_in_scope(scope)
    )
    return int(conn.scalar(query) or 0)


def _leads(conn: Connection, scope: Scope) -> int:
    query = select(func.count()).where(
        lead.c.first_seen >= scope.since,
        lead.c.first_seen < scope.until,
        _leads_in_scope(scope, lead.c.id),
    )
    return int(conn.scalar(query) or 0)


def _case_times(conn: Connection, scope: Scope) -> dict[int, dict[str, datetime]]:
    """Per case in scope, when it reached each step (the first time), and when its
    first pinned sighting was seen ("detected")."""
    first_seen = (
        select(func.min(sighting.c.seen_at))
        .join(case_sighting, case_sighting.c.sighting_id == sighting.c.id)
        .where(case_sighting.c.case_id == case_file.c.id)
        .scalar_subquery()
    )
    times: dict[int, dict[str, datetime]] = {}
    for case_id, opened_at, detected in conn.execute(
        select(case_file.c.id, case_file.c.opened_at, first_seen).where(_cases_in_scope(scope))
    ):
        times[int(case_id)] = {"cases_opened": utc(opened_at)}
        if detected is not None:
            times[int(case_id)]["detected"] = utc(detected)
    by_state = {state.value: name for name, state in STEP_STATES.items() if name != "cases_opened"}
    events = (
        select(case_event.c.case_id, case_event.c.to_state, case_event.c.at)
        .join(case_file, case_file.c.id == case_event.c.case_id)
        .where(case_event.c.to_state.in_(list(by_state)), _cases_in_scope(scope))
        .order_by(case_event.c.id)
    )
    for case_id, to_state, at in conn.execute(events):
        times.setdefault(int(case_id), {}).setdefault(by_state[to_state], utc(at))
    return times


def _delay(reached: Mapping[str, datetime], name: str) -> float | None:
    """Days from the latest step the case reached before `name`."""
    at = reached[name]
    if name == "cases_opened":
        before = [reached["detected"]] if "detected" in reached else []
    else:
        chain = _CHAIN if name == "archived" else _CHAIN[: _CHAIN.index(name)]
        before = [reached[s] for s in chain if s in reached and reached[s] <= at]
    if not before:
        return None
    return (at - max(before)) / DAY


def _lost(conn: Connection, scope: Scope, now: datetime, settings: RetentionSettings) -> int:
    end = min(utc(scope.until), utc(now))
    if end <= utc(scope.since):
        return 0
    sent = (
        select(resolved_lead_id(case_file.c.lead_id))
        .join(case_event, case_event.c.case_id == case_file.c.id)
        .where(case_event.c.to_state == State.SENT_TO_COURT.value)
    )
    configured = sorted(settings.rules)
    groups: list[tuple[Any, ColumnElement[bool]]] = [
        (settings.rules[c], lead.c.country == c) for c in configured
    ]
    groups.append(
        (
            settings.rule_for(None),
            or_(lead.c.country.is_(None), lead.c.country.not_in(configured)),
        )
    )
    total = 0
    for rule, countries in groups:
        query = select(func.count()).where(
            countries,
            lead.c.last_seen >= live_since(scope.since, rule),
            lead.c.last_seen < live_since(end, rule),
            lead.c.id.not_in(sent),
            _leads_in_scope(scope, lead.c.id),
        )
        total += int(conn.scalar(query) or 0)
    return total


def _weeks(conn: Connection, scope: Scope) -> list[Week]:
    since, until = utc(scope.since), utc(scope.until)
    start = datetime.combine(since.date() - timedelta(days=since.weekday()), datetime.min.time())
    start = start.replace(tzinfo=since.tzinfo)
    weeks: list[Week] = []
    previous: int | None = None
    while start < until and len(weeks) < MAX_WEEKS + 1:
        lo, hi = max(start, since), min(start + WEEK, until)
        count = _addresses(conn, scope, lo, hi)
        change = None if not previous else (count - previous) / previous
        weeks.append(Week(start, count, change, (lo, hi) != (start, start + WEEK)))
        previous = count
        start += WEEK
    return weeks


def funnel(
    conn: Connection,
    scope: Scope,
    now: datetime,
    *,
    unit_name: str | None = None,
    settings: RetentionSettings = DEFAULT_SETTINGS,
) -> Funnel:
    """The funnel of `scope` (figures only: no lead, case or person is named)."""
    since, until = utc(scope.since), utc(scope.until)
    counts: dict[str, int] = {
        "addresses": _addresses(conn, scope, since, until),
        "leads": _leads(conn, scope),
    }
    delays: dict[str, list[float]] = {}
    times = _case_times(conn, scope)
    for name in STEP_STATES:
        inside = [t for t in times.values() if name in t and since <= t[name] < until]
        counts[name] = len(inside)
        delays[name] = [d for t in inside if (d := _delay(t, name)) is not None]
    steps = []
    for name in STEPS:
        base = BASE.get(name)
        base_count = counts[base] if base else 0
        measured = delays.get(name, [])
        steps.append(
            StepFigure(
                name=name,
                count=counts[name],
                base=base,
                conversion=counts[name] / base_count if base and base_count else None,
                median_days=round(statistics.median(measured), 2) if measured else None,
                measured=len(measured),
            )
        )
    return Funnel(scope, unit_name, steps, _lost(conn, scope, now, settings), _weeks(conn, scope))


def resolve_scope(
    conn: Connection,
    own_unit: tuple[int, str],
    *,
    since: datetime | None,
    until: datetime | None,
    province: str | None,
    unit: str | None,
    now: datetime,
) -> tuple[Scope, str | None]:
    """The scope asked for and the unit's name: your own unit unless `unit` names
    another or "all" (figures only, so any unit's may be read); the last 13 weeks
    unless dates are given."""
    end = until or now
    start = since or end - timedelta(days=DEFAULT_DAYS)
    code = None if province is None or not province.strip() else parse_province(province)
    if unit is None or not unit.strip():
        unit_id, name = own_unit
    elif unit.strip().lower() == ALL_UNITS:
        return Scope(start, end, code, None), None
    else:
        found = get_unit(conn, unit)
        unit_id, name = found.id, found.name
    return Scope(start, end, code, unit_id), name
