"""Links between presences: why two stretches of sightings are one device.

A link is a property of a pair of presences alone (their sightings and the
facts about their addresses), never of what else is in the store. That is
what makes leads, the connected groups of linked presences, the same whether
built at once or a batch at a time.

Reasons:

- "peer_id": both reported the same peer id, one that looks randomly drawn
  (see `presence.stable_peer_id`), within `peer_id_max_gap_days`. A peer id
  lives as long as a client session (libtorrent draws one per torrent and
  listen socket), so it bridges an address change while the client runs,
  not a restart. DHT node ids are not used: sightings do not record them and
  under BEP 42 they follow the external address anyway.
- "collection": a high overlap of watched items (Jaccard over infohashes, at
  least `collection_min_shared` in common) from the same network (ASN, or
  ISP name where the ASN is unknown) and the same area, within
  `collection_max_gap_days`. Without a known network and area there is no
  collection link (a country is too coarse an area). Addresses flagged cgnat take no part unless
  configured: many subscribers behind one such address share popular items.

Two presences active at the same time on addresses of the same family for
longer than `concurrent_tolerance_hours` are two devices, and never linked.

Collection candidates come from the prefix filter of set-similarity joins
(Bayardo et al., "Scaling up all pairs similarity search", WWW 2007): with
items in one fixed global order, two sets with Jaccard >= t share an item
among the first |x| - max(ceil(t|x|), m) + 1 items of each. The order only
decides how many candidates are checked, never which links exist.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from atalaya.leads.config import GroupingConfig
from atalaya.leads.facts import IpFacts
from atalaya.leads.presence import US_PER_DAY, US_PER_HOUR

PEER_ID = "peer_id"
COLLECTION = "collection"


@dataclass(frozen=True, slots=True)
class Node:
    """What linking needs to know of one presence."""

    id: int
    ip: str
    port: int | None
    first_at: int
    last_at: int
    items: frozenset[str]
    peer_ids: frozenset[str]
    # (network, area) for collection links; None where either is unknown or
    # the address is shared and shared addresses are excluded.
    block: str | None
    client: str | None

    @property
    def family(self) -> int:
        return 6 if ":" in self.ip else 4


@dataclass(frozen=True)
class Link:
    a: int  # the smaller presence id
    b: int
    reason: str
    evidence: dict[str, Any]


def block_of(facts: IpFacts, config: GroupingConfig) -> str | None:
    """The network and area a collection link needs both presences to share."""
    if facts.shared and not config.collection_links_on_shared_addresses:
        return None
    network = f"AS{facts.asn}" if facts.asn is not None else facts.isp
    if config.collection_area == "municipality":
        area = facts.municipality_code
    else:
        area = facts.province_code
    if network is None or area is None:
        return None
    return f"{network}|{area}"


def _gap(a: Node, b: Node) -> int:
    """Time between the two stretches; negative when they overlap."""
    return max(a.first_at, b.first_at) - min(a.last_at, b.last_at)


def concurrent(a: Node, b: Node, config: GroupingConfig) -> bool:
    tolerance = round(config.concurrent_tolerance_hours * US_PER_HOUR)
    return a.family == b.family and -_gap(a, b) > tolerance


def required_overlap(size: int, config: GroupingConfig) -> int:
    t = config.jaccard
    return max(math.ceil(t * size), config.collection_min_shared)


def prefix_length(size: int, config: GroupingConfig) -> int:
    """How many of a set's first items (in the global order) to index."""
    need = required_overlap(size, config)
    return max(size - need + 1, 0) if size >= config.collection_min_shared else 0


def prefix(items: Iterable[str], ranks: Mapping[str, int], config: GroupingConfig) -> list[str]:
    ordered = sorted(items, key=ranks.__getitem__)
    return ordered[: prefix_length(len(ordered), config)]


def links_between(a: Node, b: Node, config: GroupingConfig) -> list[Link]:
    """Every reason that links `a` and `b` (none if they are two devices)."""
    if a.id == b.id or concurrent(a, b, config):
        return []
    if a.id > b.id:
        a, b = b, a
    gap = _gap(a, b)
    found: list[Link] = []
    shared_ids = a.peer_ids & b.peer_ids
    if shared_ids and gap <= round(config.peer_id_max_gap_days * US_PER_DAY):
        found.append(
            Link(
                a.id,
                b.id,
                PEER_ID,
                {
                    "peer_id": min(shared_ids),
                    "peer_ids_in_common": len(shared_ids),
                    "gap_hours": round(max(gap, 0) / US_PER_HOUR, 3),
                },
            )
        )
    if (
        a.block is not None
        and a.block == b.block
        and gap <= round(config.collection_max_gap_days * US_PER_DAY)
    ):
        common = len(a.items & b.items)
        union = len(a.items) + len(b.items) - common
        t = config.jaccard
        if common >= config.collection_min_shared and common * t.denominator >= t.numerator * union:
            found.append(
                Link(
                    a.id,
                    b.id,
                    COLLECTION,
                    {
                        "jaccard": round(common / union, 4),
                        "items_in_common": common,
                        "items_in_either": union,
                        "network_area": a.block,
                        "gap_days": round(max(gap, 0) / US_PER_DAY, 3),
                        "same_port": a.port is not None and a.port == b.port,
                        "same_client": a.client is not None and a.client == b.client,
                    },
                )
            )
    return found


def all_links(
    nodes: Mapping[int, Node], ranks: Mapping[str, int], config: GroupingConfig
) -> Iterator[Link]:
    """Every link among `nodes`, each pair once (a full build)."""
    seen: set[tuple[int, int]] = set()
    for a_id, b_id in _candidates(nodes, ranks, config):
        pair = (a_id, b_id) if a_id < b_id else (b_id, a_id)
        if pair in seen:
            continue
        seen.add(pair)
        yield from links_between(nodes[pair[0]], nodes[pair[1]], config)


def _candidates(
    nodes: Mapping[int, Node], ranks: Mapping[str, int], config: GroupingConfig
) -> Iterator[tuple[int, int]]:
    max_gap = round(config.peer_id_max_gap_days * US_PER_DAY)
    by_peer: dict[str, list[Node]] = defaultdict(list)
    for node in nodes.values():
        for pid in node.peer_ids:
            by_peer[pid].append(node)
    for group in by_peer.values():
        group.sort(key=lambda n: (n.first_at, n.id))
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                # Sorted by start: once b starts too long after a ends, so
                # do all later ones.
                if b.first_at > a.last_at + max_gap:
                    break
                yield a.id, b.id
    by_block: dict[str, list[Node]] = defaultdict(list)
    for node in nodes.values():
        if node.block is not None and len(node.items) >= config.collection_min_shared:
            by_block[node.block].append(node)
    for members in by_block.values():
        index: dict[str, list[int]] = defaultdict(list)
        for node in sorted(members, key=lambda n: n.id):
            found: set[int] = set()
            for item in prefix(node.items, ranks, config):
                found.update(index[item])
                index[item].append(node.id)
            for other in sorted(found):
                yield other, node.id
