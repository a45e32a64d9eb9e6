"""Sightings per presence and UTC day, and per ISO week: what the charts add up.

A build knows which sightings make each presence, so it counts them per UTC
day once and stores the counts beside the presence (`lead_presence_day`),
with their sums per ISO week (`lead_presence_week`, a third of the rows);
the charts then sum counts instead of finding every sighting again by the
presence's bounds at each request.

`presence.scan` gives a presence every sighting of its key from the one that
opened it until the next presence opens, in (time, id) order: each presence
is a run of `Presence.sightings` consecutive rows. `day_counts` cuts the
rows into those runs rather than repeating scan's decisions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta

from atalaya.leads.presence import US_PER_DAY, Presence, SightingRow

_EPOCH_DAY = date(1970, 1, 1)

# Per presence id: {UTC day as days since the epoch: sightings that day}.
DayCounts = dict[int, dict[int, int]]


def day_counts(rows: Sequence[SightingRow], presences: Sequence[Presence]) -> DayCounts:
    """Sightings per UTC day of each presence, by presence id.

    `rows` are the sightings of one key sorted by (at, id), and `presences`
    what `scan` or `scan_address` made of exactly those rows, in the order
    given (on a shared address, each port's rows are their own runs).
    """
    by_port: dict[int | None, list[SightingRow]] = {}
    if any(p.port is not None for p in presences):
        for row in rows:
            by_port.setdefault(row.port, []).append(row)
    else:
        by_port[None] = list(rows)
    taken: dict[int | None, int] = {}
    out: DayCounts = {}
    for p in presences:
        queue = by_port.get(p.port, [])
        start = taken.get(p.port, 0)
        run = queue[start : start + p.sightings]
        taken[p.port] = start + p.sightings
        if len(run) != p.sightings or run[0].at != p.first_at or run[-1].at != p.last_at:
            raise ValueError(f"presence {p.id} is not a run of the rows given")
        counts: dict[int, int] = {}
        for row in run:
            day = row.at // US_PER_DAY
            counts[day] = counts.get(day, 0) + 1
        out[p.id] = counts
    if any(taken.get(port, 0) != len(queue) for port, queue in by_port.items()):
        raise ValueError("rows left over that no presence holds")
    return out


def as_date(day: int) -> date:
    """A day counted since the epoch as a date."""
    return _EPOCH_DAY + timedelta(days=day)


def monday(day: date) -> date:
    """The Monday of `day`'s ISO week."""
    return day - timedelta(days=day.weekday())


def day_rows(presence_id: int, counts: Mapping[int, int]) -> Iterator[tuple[int, date, date, int]]:
    """(presence id, day, its week's Monday, sightings) rows of `lead_presence_day`."""
    for day in sorted(counts):
        when = as_date(day)
        yield presence_id, when, monday(when), counts[day]


def week_rows(presence_id: int, counts: Mapping[int, int]) -> Iterator[tuple[int, date, int]]:
    """(presence id, Monday, sightings) rows of `lead_presence_week`: the daily counts per week."""
    weeks: dict[date, int] = {}
    for day in sorted(counts):
        start = monday(as_date(day))
        weeks[start] = weeks.get(start, 0) + counts[day]
    for start, sightings in weeks.items():
        yield presence_id, start, sightings
