"""Lineage: what became of each lead when a build regroups sightings.

A lead's id is the id of its first sighting (the smallest in it), and that
is what makes lineage decidable from two groupings alone: a lead is where
its first sighting is.

- Merge: a lead L of the old grouping is not a lead any more, and the
  new lead holding sighting L is N (N < L, since N is the smallest sighting
  id in a lead that now holds L). Records made on L (claims, overrides,
  later cases) belong to N from then on.
- Split: a new lead N was not a lead before, and sighting N was in the old
  lead L. Lead L keeps its id and its records (the part holding sighting L
  is L); the lineage names N as split from L.

Both can happen to one lead in one build: old lead L = {L, N} whose
sighting L goes into lead M < L while sighting N is left on its own is
merged into M and split into N; the split names L, whose records are the
ones N carries, though L is no lead any more. A lead whose first sighting
was in no lead before (new sightings) has no lineage. The functions here are
pure: the build passes the two groupings in whatever form it has them
(`Stretch`es for where sightings lie), and `atalaya.leads.history` stores
what they return.

A lead's jurisdiction is the set of provinces its presences lie in (a unit
holds a lead when any of them is its own); `place_changes` lists the leads
that kept their id while that set changed.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

MERGE = "merge"
SPLIT = "split"
JURISDICTION = "jurisdiction"


@dataclass(frozen=True, slots=True)
class Stretch:
    """Where a presence's sightings lie, and the lead it belongs to."""

    ip: str
    port: int | None  # None: every port of the address
    first_at: int
    last_at: int
    lead_id: int


@dataclass(frozen=True, slots=True)
class Spot:
    """Where one sighting lies: its id, address, port and time (µs)."""

    id: int
    ip: str
    port: int
    at: int


@dataclass(frozen=True, slots=True)
class Change:
    """Lead `old_id` merged into `new_id`, or `new_id` split from `old_id`."""

    old_id: int
    new_id: int
    kind: str  # MERGE or SPLIT


@dataclass(frozen=True, slots=True)
class PlaceChange:
    """A lead that kept its id while the provinces of its presences changed."""

    lead_id: int
    before: tuple[str, ...]
    after: tuple[str, ...]


def locate(spots: Iterable[Spot], stretches: Iterable[Stretch]) -> dict[int, int]:
    """The lead holding each sighting, for those that some stretch holds.

    Stretches of one address (and port) never overlap in time: presences of
    one key are cut one after another.
    """
    by_ip: dict[str, list[Stretch]] = defaultdict(list)
    for s in stretches:
        by_ip[s.ip].append(s)
    for group in by_ip.values():
        group.sort(key=lambda s: (s.first_at, s.last_at, s.port or 0))
    found: dict[int, int] = {}
    for spot in spots:
        group = by_ip.get(spot.ip, [])
        # Candidates start at or before the sighting.
        end = bisect.bisect_right(group, spot.at, key=lambda s: s.first_at)
        for s in reversed(group[:end]):
            if s.last_at >= spot.at and (s.port is None or s.port == spot.port):
                found[spot.id] = s.lead_id
                break
    return found


def changes(
    old_ids: Set[int],
    new_ids: Set[int],
    old_holder: Mapping[int, int],
    new_holder: Mapping[int, int],
) -> list[Change]:
    """Merges and splits between two groupings of the same sightings.

    `old_holder` maps each new lead id that was not an old one to the old
    lead that held that sighting (absent: it was in none); `new_holder` maps
    each old lead id that is not a new one to the new lead holding it.
    """
    found: list[Change] = []
    for old in sorted(old_ids - new_ids):
        into = new_holder.get(old)
        if into is not None and into != old:
            found.append(Change(old, into, MERGE))
    for new in sorted(new_ids - old_ids):
        parent = old_holder.get(new)
        if parent is not None and parent != new:
            found.append(Change(parent, new, SPLIT))
    return found


def place_changes(
    old_places: Mapping[int, Set[str]], new_places: Mapping[int, Set[str]]
) -> list[PlaceChange]:
    """Leads in both groupings whose provinces differ."""
    return [
        PlaceChange(lead_id, tuple(sorted(old_places[lead_id])), tuple(sorted(new_places[lead_id])))
        for lead_id in sorted(set(old_places) & set(new_places))
        if set(old_places[lead_id]) != set(new_places[lead_id])
    ]
