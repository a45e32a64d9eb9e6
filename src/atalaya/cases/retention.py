"""The retention clock: when an ISP may erase the data that names a subscriber (pure).

In Spain an operator keeps traffic data for twelve months from the
communication (Ley 25/2007, art. 5), then may erase it; a request that
reaches the operator later finds nothing. The period is a setting per
country (`RetentionRule`); an observation of a country without a rule gets
the shortest period configured, measured from the earliest date it could
bear anywhere (conservative again).

The law counts in calendar months and the operator in its own local time,
and it can be read more than one way: date to date, ending at the end of
the anniversary day (Código Civil art. 5: the same-numbered day, or the
last day of a month without one); the same wall-clock instant N months
later; or 365 days a year. The deadline here comes no later than any of
these readings:

1. Take the observation's date in the country's earliest time zone (its
   smallest UTC offset in any season: for Spain the Canaries in winter,
   UTC+0): no local date the operator could use is earlier.
2. Add N calendar months to that date; where the day does not exist, take
   the last day of the month (2024-02-29 + 12 months = 2025-02-28,
   2026-08-31 + 6 months = 2027-02-28).
3. Step back one whole day and take 00:00 UTC of that day.
4. For a period of whole years, never later than 00:00 UTC of the day
   reached by counting 365 days a year from the observation itself.
   (Spread over other periods, 365/12 days a month would fall up to four
   days before the calendar's answer from a March, needlessly early.)

Step 3 covers every local midnight of the anniversary (UTC offsets up to
+14 h). Step 4 is the 365-days-a-year reading: step 3 alone misses it
where the country's earliest offset is east of UTC and the period holds a
29 February (2003-03-01 20:00 UTC at UTC+4: the local date is 2 March, the
anniversary 2 March 2004, one day back 1 March; 365 days later is
29 February 2004 20:00 UTC). So a deadline is one to two days early (up to
four where a later local date meets a month end), never late: 2024-02-29
10:00 UTC in Spain expires at 2025-02-27 00:00 UTC.

`days_left` counts whole days from now to the deadline, rounded down
(0 on the deadline's last day, negative once it has passed).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from atalaya.errors import AtalayaError

DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
# The smallest UTC offset of any time zone in use: the earliest date anywhere.
EARLIEST_OFFSET_H = -12


@dataclass(frozen=True)
class RetentionRule:
    """How long a country's operators keep data, and its earliest UTC offset in hours."""

    months: int
    min_utc_offset_h: int

    def __post_init__(self) -> None:
        if not 1 <= self.months <= 120:
            raise AtalayaError(f"a retention period of {self.months} months is not plausible")
        if not -12 <= self.min_utc_offset_h <= 14:
            raise AtalayaError(f"UTC offset {self.min_utc_offset_h} h does not exist")


# Spain: 12 months (Ley 25/2007 art. 5); Canarias are UTC+0 in winter.
DEFAULT_RULES: Mapping[str, RetentionRule] = {"ES": RetentionRule(12, 0)}


@dataclass(frozen=True)
class RetentionSettings:
    rules: Mapping[str, RetentionRule]

    def rule_for(self, country: str | None) -> RetentionRule:
        """The country's rule; for any other, the shortest period from the earliest date."""
        if country is not None and country.upper() in self.rules:
            return self.rules[country.upper()]
        months = min((r.months for r in self.rules.values()), default=12)
        return RetentionRule(months, EARLIEST_OFFSET_H)


DEFAULT_SETTINGS = RetentionSettings(DEFAULT_RULES)


def add_months(day: date, months: int) -> date:
    """`day` plus calendar months; the month's last day where that day does not exist."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("times must be aware (UTC)")
    return at.astimezone(UTC)


def expires_at(observed_at: datetime, rule: RetentionRule) -> datetime:
    """The instant (UTC) after which an operator may have erased this observation's data."""
    observed = _aware(observed_at)
    earliest_local = observed + timedelta(hours=rule.min_utc_offset_h)
    anniversary = add_months(earliest_local.date(), rule.months)
    by_calendar = datetime.combine(anniversary - DAY, time(0), tzinfo=UTC)
    if rule.months % 12:
        return by_calendar
    by_days = observed + (rule.months // 12 * 365) * DAY
    # Both only grow with the observation's time, so their minimum does too
    # (what `live_since` relies on).
    return min(by_calendar, datetime.combine(by_days.date(), time(0), tzinfo=UTC))


def expired(observed_at: datetime, rule: RetentionRule, now: datetime) -> bool:
    return expires_at(observed_at, rule) <= _aware(now)


def days_left(deadline: datetime, now: datetime) -> int:
    """Whole days from `now` to `deadline`, rounded down (negative once passed)."""
    return (_aware(deadline) - _aware(now)) // DAY


def live_since(now: datetime, rule: RetentionRule) -> datetime:
    """The earliest observation instant not yet expired at `now`.

    Observations at or after it are live, those before it expired:
    `expires_at` only grows with the observation's time, so one bound
    splits them (how the store finds them with one index range).
    """
    now = _aware(now)
    # A bisection to the microsecond over a window that surely holds the
    # bound: `expires_at` is a non-decreasing step function of the
    # observation's time, and an observation `months` months plus a few
    # days before `now` has expired while one at `now` has not.
    low = now - (rule.months * 31 + 5) * DAY  # expired
    high = now  # live
    for _ in range(64):  # 2^64 microseconds is far wider than the window
        if high - low <= MICROSECOND:
            return high
        middle = low + (high - low) // 2  # timedelta: whole microseconds
        if expires_at(middle, rule) > now:
            high = middle
        else:
            low = middle
    raise AssertionError("retention bound not found")  # pragma: no cover
