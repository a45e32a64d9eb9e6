"""The retention clock against the store: what expires soon and has no request yet.

An observation (a sighting) counts as requested once a case that pins it
has been sent to court (its `case_event` names that transition), whatever
happened after. A lead's clock is the deadline of its oldest observation
that is still live and not requested: the next one the unit can lose. A
lead whose every observation has expired is marked so: nothing in it can
still be asked of an operator.

Live observations lie at or after one instant (`retention.live_since`), so
each query reads one range of the sighting index per country rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.cases.retention import (
    DEFAULT_SETTINGS,
    RetentionRule,
    RetentionSettings,
    days_left,
    expires_at,
    live_since,
)
from atalaya.cases.states import FINAL, REQUEST_SENT, State
from atalaya.leads.history import resolved_lead_id
from atalaya.leads.storage import chunks
from atalaya.store.tables import (
    case_document,
    case_event,
    case_file,
    case_sighting,
    lead,
    lead_presence,
    sighting,
)
from atalaya.store.times import utc


@dataclass(frozen=True)
class Clock:
    """A lead's or a case's retention clock at `now`."""

    next_expiry: datetime | None  # the oldest live, unrequested observation's deadline
    days_left: int | None
    all_expired: bool  # every observation expired: nothing left to ask for
    last_expiry: datetime | None  # when the newest observation expires

    def as_dict(self) -> dict[str, Any]:
        return {
            "next_expiry": None if self.next_expiry is None else self.next_expiry.isoformat(),
            "days_left": self.days_left,
            "all_expired": self.all_expired,
            "last_expiry": None if self.last_expiry is None else self.last_expiry.isoformat(),
        }

    def text(self) -> str:
        if self.all_expired:
            return "every observation has expired at the ISP"
        if self.next_expiry is None:
            return "every live observation is already requested"
        return (
            f"{self.days_left} days left: the oldest unrequested observation expires at the ISP "
            f"on {self.next_expiry:%Y-%m-%d %H:%M} UTC"
        )


@dataclass(frozen=True)
class Upcoming:
    """A lead with observations expiring soon and no request for them."""

    lead_id: int
    country: str | None
    oldest: datetime  # the oldest live, unrequested observation
    expires_at: datetime
    days_left: int
    observations: int  # live unrequested observations expiring within the window
    case_id: int | None  # the unit's open case on the lead, if any
    case_state: State | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "country": self.country,
            "oldest": self.oldest.isoformat(timespec="microseconds"),
            "expires_at": self.expires_at.isoformat(),
            "days_left": self.days_left,
            "observations": self.observations,
            "case_id": self.case_id,
            "case_state": None if self.case_state is None else self.case_state.value,
        }


def requested_sightings() -> Any:
    """Ids of sightings pinned by a case that has been sent to court."""
    sent = select(case_event.c.case_id).where(case_event.c.to_state == REQUEST_SENT.value)
    return select(case_sighting.c.sighting_id).where(case_sighting.c.case_id.in_(sent))


def _in_presence() -> ColumnElement[bool]:
    p = lead_presence.c
    return and_(
        sighting.c.ip == p.ip,
        sighting.c.seen_at >= p.first_seen,
        sighting.c.seen_at <= p.last_seen,
        or_(p.port.is_(None), sighting.c.port == p.port),
    )


def _groups(settings: RetentionSettings) -> Iterator[tuple[RetentionRule, ColumnElement[bool]]]:
    """Each rule with a clause on `lead.country` choosing the leads it applies to."""
    configured = sorted(settings.rules)
    for country in configured:
        yield settings.rules[country], lead.c.country == country
    yield (
        settings.rule_for(None),
        or_(lead.c.country.is_(None), lead.c.country.not_in(configured)),
    )


def upcoming(
    conn: Connection,
    unit_id: int,
    now: datetime,
    within_days: int,
    settings: RetentionSettings = DEFAULT_SETTINGS,
) -> list[Upcoming]:
    """The unit's leads with unrequested observations expiring within `within_days`,
    most urgent first (expired ones are lost already and not listed)."""
    found: list[tuple[int, datetime, int, RetentionRule]] = []
    p = lead_presence.c
    for rule, countries in _groups(settings):
        since = live_since(now, rule)
        until = live_since(now + timedelta(days=within_days), rule)
        query = (
            select(
                p.lead_id,
                func.min(sighting.c.seen_at),
                func.count(func.distinct(sighting.c.id)),
            )
            .select_from(sighting.join(lead_presence, _in_presence()))
            .where(
                sighting.c.seen_at >= since,
                sighting.c.seen_at < until,
                sighting.c.id.not_in(requested_sightings()),
                p.lead_id.in_(select(lead.c.id).where(countries)),
                visible_lead_ids_clause(unit_id, p.lead_id),
            )
            .group_by(p.lead_id)
        )
        found.extend((int(r[0]), utc(r[1]), int(r[2]), rule) for r in conn.execute(query))
    if not found:
        return []
    ids = [f[0] for f in found]
    countries_of: dict[int, str | None] = {
        int(r.id): r.country
        for part in chunks(ids)
        for r in conn.execute(select(lead.c.id, lead.c.country).where(lead.c.id.in_(part)))
    }
    cases: dict[int, tuple[int, State]] = {}
    open_cases = (
        select(resolved_lead_id(case_file.c.lead_id), case_file.c.id, case_file.c.state)
        .where(
            case_file.c.unit_id == unit_id,
            case_file.c.state.not_in([s.value for s in FINAL]),
        )
        .order_by(case_file.c.id)
    )
    for lead_id, case_id, state in conn.execute(open_cases):
        cases.setdefault(int(lead_id), (int(case_id), State(state)))
    result = []
    for lead_id, oldest, count, rule in found:
        deadline = expires_at(oldest, rule)
        case = cases.get(lead_id)
        result.append(
            Upcoming(
                lead_id=lead_id,
                country=countries_of.get(lead_id),
                oldest=oldest,
                expires_at=deadline,
                days_left=days_left(deadline, now),
                observations=count,
                case_id=None if case is None else case[0],
                case_state=None if case is None else case[1],
            )
        )
    result.sort(key=lambda u: (u.expires_at, u.lead_id))
    return result


def lead_clock(
    conn: Connection, lead_id: int, now: datetime, settings: RetentionSettings = DEFAULT_SETTINGS
) -> Clock | None:
    """A lead's clock; None when there is no such lead."""
    row = conn.execute(select(lead.c.country, lead.c.last_seen).where(lead.c.id == lead_id)).first()
    if row is None:
        return None
    rule = settings.rule_for(row.country)
    since = live_since(now, rule)
    oldest = conn.scalar(
        select(func.min(sighting.c.seen_at))
        .select_from(sighting.join(lead_presence, _in_presence()))
        .where(
            lead_presence.c.lead_id == lead_id,
            sighting.c.seen_at >= since,
            sighting.c.id.not_in(requested_sightings()),
        )
    )
    return _clock(None if oldest is None else utc(oldest), utc(row.last_seen), rule, now)


def case_clock(
    conn: Connection,
    case_id: int,
    country: str | None,
    now: datetime,
    settings: RetentionSettings = DEFAULT_SETTINGS,
) -> Clock:
    """The clock of the observations a case pins (requested or not: a case's own
    request is what must reach the operator in time)."""
    rule = settings.rule_for(country)
    since = live_since(now, rule)
    pinned = (
        select(sighting.c.seen_at)
        .join(case_sighting, case_sighting.c.sighting_id == sighting.c.id)
        .where(case_sighting.c.case_id == case_id)
        .subquery()
    )
    oldest = conn.scalar(select(func.min(pinned.c.seen_at)).where(pinned.c.seen_at >= since))
    newest = conn.scalar(select(func.max(pinned.c.seen_at)))
    return _clock(
        None if oldest is None else utc(oldest),
        None if newest is None else utc(newest),
        rule,
        now,
    )


def _clock(
    oldest: datetime | None, newest: datetime | None, rule: RetentionRule, now: datetime
) -> Clock:
    last = None if newest is None else expires_at(newest, rule)
    all_expired = last is None or last <= utc(now)
    if oldest is None or all_expired:
        return Clock(None, None, all_expired, last)
    deadline = expires_at(oldest, rule)
    return Clock(deadline, days_left(deadline, now), False, last)


@dataclass(frozen=True)
class PreservationDue:
    """A preservation order (LECrim 588 octies) of an open case that ends soon."""

    case_id: int
    lead_id: int
    until: datetime
    days_left: int
    extended: bool  # the one extension was used: it cannot be extended again

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "preservation",
            "case_id": self.case_id,
            "lead_id": self.lead_id,
            "until": self.until.isoformat(),
            "days_left": self.days_left,
            "extended": self.extended,
        }


def preservations_due(
    conn: Connection, unit_id: int, now: datetime, within_days: int
) -> list[PreservationDue]:
    """The unit's open cases whose preservation order ends within `within_days`
    (and has not ended), soonest first: extend it once, or get the court's order."""
    d = case_document.c
    rows = conn.execute(
        select(d.case_id, d.details, resolved_lead_id(case_file.c.lead_id))
        .join(case_file, case_file.c.id == d.case_id)
        .where(
            d.kind == "preservation",
            d.format == "pdf",
            case_file.c.unit_id == unit_id,
            case_file.c.state.not_in([s.value for s in FINAL]),
        )
        .order_by(d.id)
    ).all()
    orders: dict[int, list[Any]] = {}
    for r in rows:
        orders.setdefault(int(r[0]), []).append(r)
    due = []
    horizon = utc(now) + timedelta(days=within_days)
    for case_id, found in orders.items():
        last = found[-1]
        until = utc(datetime.fromisoformat(str(dict(last[1])["until"])))
        if utc(now) < until <= horizon:
            due.append(
                PreservationDue(case_id, int(last[2]), until, days_left(until, now), len(found) > 1)
            )
    due.sort(key=lambda p: (p.until, p.case_id))
    return due
