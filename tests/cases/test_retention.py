"""The retention clock at its edges: month ends, leap days, time zones, the bound."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.cases.retention import (
    DEFAULT_SETTINGS,
    RetentionRule,
    add_months,
    days_left,
    expired,
    expires_at,
    live_since,
)
from atalaya.errors import AtalayaError

ES = DEFAULT_SETTINGS.rule_for("ES")
MICRO = timedelta(microseconds=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2023, 3, 1), 12, date(2024, 3, 1)),
        (date(2026, 8, 31), 6, date(2027, 2, 28)),
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 12, 31), 12, date(2027, 12, 31)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
    ],
)
def test_add_months_keeps_the_day_or_takes_the_month_end(
    start: date, months: int, end: date
) -> None:
    assert add_months(start, months) == end


def test_spain_twelve_months_one_day_early_at_utc_midnight() -> None:
    assert expires_at(at("2026-05-10T10:00:00+00:00"), ES) == at("2027-05-09T00:00:00+00:00")
    # Leap day: the anniversary is 28 February, the deadline the day before.
    assert expires_at(at("2024-02-29T10:00:00+00:00"), ES) == at("2025-02-27T00:00:00+00:00")
    # Month end and year end.
    assert expires_at(at("2026-12-31T23:59:59.999999+00:00"), ES) == at("2027-12-30T00:00:00Z")


def test_the_local_date_in_madrid_never_moves_the_deadline_later() -> None:
    # 23:30 UTC on 31 Dec is 00:30 on 1 Jan in Madrid: the UTC date is the
    # earlier one (Spain's earliest offset is UTC+0), so it counts.
    seen = at("2026-12-31T23:30:00+00:00")
    assert seen.astimezone(ZoneInfo("Europe/Madrid")).date() == date(2027, 1, 1)
    assert expires_at(seen, ES) == at("2027-12-30T00:00:00Z")
    # The same instant written with another offset is the same deadline.
    assert expires_at(datetime(2027, 1, 1, 0, 30, tzinfo=ZoneInfo("Europe/Madrid")), ES) == (
        expires_at(seen, ES)
    )


def test_a_country_without_a_rule_gets_the_shortest_period_from_its_earliest_date() -> None:
    other = DEFAULT_SETTINGS.rule_for("PT")
    assert other == DEFAULT_SETTINGS.rule_for(None) == RetentionRule(12, -12)
    # 05:00 UTC on 1 March is still 28 February in UTC-12.
    assert expires_at(at("2023-03-01T05:00:00Z"), other) == at("2024-02-27T00:00:00Z")
    assert expires_at(at("2023-03-01T05:00:00Z"), ES) == at("2024-02-29T00:00:00Z")


def test_naive_times_are_refused_and_rules_must_be_plausible() -> None:
    with pytest.raises(ValueError, match="aware"):
        expires_at(datetime(2026, 1, 1), ES)
    with pytest.raises(AtalayaError):
        RetentionRule(0, 0)
    with pytest.raises(AtalayaError):
        RetentionRule(12, 15)


def test_days_left_rounds_down_and_goes_negative() -> None:
    deadline = at("2027-05-09T00:00:00Z")
    assert days_left(deadline, at("2027-05-08T00:00:00Z")) == 1
    assert days_left(deadline, at("2027-05-08T00:00:01Z")) == 0
    assert days_left(deadline, deadline) == 0
    assert days_left(deadline, deadline + MICRO) == -1
    assert expired(at("2026-05-10T10:00:00Z"), ES, deadline)
    assert not expired(at("2026-05-10T10:00:00Z"), ES, deadline - MICRO)


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)
rules = st.builds(RetentionRule, st.integers(1, 36), st.integers(-12, 14))
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _legal_readings(seen: datetime, months: int, zone: timezone) -> list[datetime]:
    """The earliest instants the law could be read to allow erasure at, in `zone`."""
    local = seen.astimezone(zone)
    anniversary = add_months(local.date(), months)
    end_of_day = datetime.combine(anniversary + timedelta(days=1), time(0), tzinfo=zone)
    same_clock = datetime.combine(anniversary, local.timetz())
    readings = [end_of_day, same_clock]
    if months % 12 == 0:
        readings.append(seen + timedelta(days=365 * months // 12))
    return readings


@given(instants, st.integers(1, 36), offsets)
def test_the_deadline_never_falls_after_any_reading_of_the_law(
    seen: datetime, months: int, zone: timezone
) -> None:
    """For a country whose zones are at or east of `zone`'s offset (the rule's
    earliest offset is the zone's, rounded down to the hour)."""
    hours = zone.utcoffset(None) // timedelta(hours=1)
    rule = RetentionRule(months, hours)
    deadline = expires_at(seen, rule)
    assert all(deadline <= legal for legal in _legal_readings(seen, months, zone))
    # …and not absurdly early: a local date a day later can move the
    # anniversary by two days at a month end, plus the day stepped back.
    assert max(_legal_readings(seen, months, zone)) - deadline < timedelta(days=5)


@given(instants, rules)
def test_live_since_splits_expired_from_live(now: datetime, rule: RetentionRule) -> None:
    bound = live_since(now, rule)
    assert not expired(bound, rule, now)
    assert expired(bound - MICRO, rule, now)


@given(instants, instants, rules)
def test_the_deadline_grows_with_the_observation(
    a: datetime, b: datetime, rule: RetentionRule
) -> None:
    early, late = sorted((a, b))
    assert expires_at(early, rule) <= expires_at(late, rule)


def test_a_leap_day_east_of_utc_keeps_the_365_day_reading() -> None:
    """Found by the property above: 3 years at UTC+4 across 29 February 2004."""
    seen = at("2001-03-01T20:00:00Z")
    assert expires_at(seen, RetentionRule(36, 4)) <= seen + timedelta(days=3 * 365)
    seen = at("2003-03-01T20:00:00Z")
    assert expires_at(seen, RetentionRule(12, 4)) == at("2004-02-29T00:00:00Z")
