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

  A peer id travels in the clear to every peer of a swarm, so anyone in
  the swarm (the suspect included) can announce it from elsewhere. Alone it
  therefore never joins presences whose provinces differ or whose networks
  (ASN, or ISP name where the ASN is unknown) differ: such a "crossing" link
  needs corroboration, and its evidence names the crossing and what
  corroborated it (see `corroboration`). Where a side's province or network
  is unknown nothing is shown to differ: an address without a place cannot
  move a lead into another unit's jurisdiction (units hold leads by the
  provinces of their presences).
- "collection": a high overlap of watched items (Jaccard over (network, kind, value) items, at
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
from atalaya.leads.presence import US_PER_DAY, US_PER_HOUR, ItemKey

PEER_ID = "peer_id"
COLLECTION = "collection"

# Two stretches at most this far apart (or overlapping less than the
# concurrency tolerance) are "adjacent": what an address change under a
# running client looks like, one stretch ending as the other begins. A fixed
# rule rather than a setting: it is part of what a link means.
ADJACENT_HOURS = 1.0

# What can corroborate a crossing peer-id link (see `corroboration`).
SAME_NETWORK = "same_network"
SHARED_ITEMS = "shared_items"
ADJACENT = "adjacent"


@dataclass(frozen=True, slots=True)
class Node:
    """What linking needs to know of one presence."""

    id: int
    ip: str
    port: int | None
    first_at: int
    last_at: int
    items: frozenset[ItemKey]
    peer_ids: frozenset[str]
    # (network, area) for collection links; None where either is unknown or
    # the address is shared and shared addresses are excluded.
    block: str | None
    client: str | None
    # Where and on which network the address is: what a peer-id link must
    # not cross alone. None where unknown.
    province: str | None = None
    asn: int | None = None
    isp: str | None = None

    @property
    def family(self) -> int:
        return 6 if ":" in self.ip else 4

    @property
    def network(self) -> str | None:
        return f"AS{self.asn}" if self.asn is not None else self.isp


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


def same_network(a: Node, b: Node) -> bool | None:
    """Whether both addresses are on one network; None where it cannot be told."""
    if a.asn is not None and b.asn is not None:
        return a.asn == b.asn
    if a.isp and b.isp:
        return a.isp.casefold() == b.isp.casefold()
    return None


def crossing(a: Node, b: Node) -> list[str]:
    """What differs between the two addresses that a peer id alone may not bridge."""
    crosses: list[str] = []
    if a.province is not None and b.province is not None and a.province != b.province:
        crosses.append("province")
    if same_network(a, b) is False:
        crosses.append("network")
    return crosses


def corroboration(a: Node, b: Node, crosses: list[str], config: GroupingConfig) -> list[str]:
    """What, besides the peer id, says two crossing stretches are one device.

    - SAME_NETWORK: both on one network, for a province crossing only. An
      ISP's dynamic address pools are geolocated coarsely and a subscriber's
      new address can land in the next province; the network is not the
      peer's to choose short of subscribing elsewhere.
    - SHARED_ITEMS: at least `collection_min_shared` watched items in common.
      Clients draw a peer id per torrent (libtorrent), so the id was learnt
      from one swarm; offering several of the same items means knowing the
      device's collection, which no swarm shows.
    - ADJACENT: one stretch starts within ADJACENT_HOURS of the other's end,
      as when a running client moves to a new address (a laptop changing
      networks, a router reconnecting). An impostor would have to be seen
      exactly when the device falls silent.

    Each makes a copy harder, none impossible: that is why holding a lead
    does not depend on its links (a unit holds every lead with a presence
    in its provinces).
    """
    found: list[str] = []
    if crosses == ["province"] and same_network(a, b):
        found.append(SAME_NETWORK)
    if len(a.items & b.items) >= config.collection_min_shared:
        found.append(SHARED_ITEMS)
    if _gap(a, b) <= round(ADJACENT_HOURS * US_PER_HOUR):
        found.append(ADJACENT)
    return found


def _peer_id_evidence(
    a: Node, b: Node, shared_ids: frozenset[str], gap: int, config: GroupingConfig
) -> dict[str, Any] | None:
    """The evidence of a peer-id link, or None where it lacks corroboration."""
    evidence: dict[str, Any] = {
        "peer_id": min(shared_ids),
        "peer_ids_in_common": len(shared_ids),
        "gap_hours": round(max(gap, 0) / US_PER_HOUR, 3),
        "crosses": crossing(a, b),
    }
    crosses = evidence["crosses"]
    if not crosses:
        return evidence
    found = corroboration(a, b, crosses, config)
    if not found:
        return None
    evidence["corroborated_by"] = found
    evidence["provinces"] = [a.province, b.province]
    evidence["networks"] = [a.network, b.network]
    evidence["items_in_common"] = len(a.items & b.items)
    evidence["why"] = (
        f"a peer id is seen by every peer of a swarm, so alone it does not join "
        f"presences across {' and '.join(crosses)}; corroborated by {', '.join(found)}"
    )
    return evidence


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


def prefix(
    items: Iterable[ItemKey], ranks: Mapping[ItemKey, int], config: GroupingConfig
) -> list[ItemKey]:
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
        evidence = _peer_id_evidence(a, b, shared_ids, gap, config)
        if evidence is not None:
            found.append(Link(a.id, b.id, PEER_ID, evidence))
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
    nodes: Mapping[int, Node], ranks: Mapping[ItemKey, int], config: GroupingConfig
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
    nodes: Mapping[int, Node], ranks: Mapping[ItemKey, int], config: GroupingConfig
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
        index: dict[ItemKey, list[int]] = defaultdict(list)
        for node in sorted(members, key=lambda n: n.id):
            found: set[int] = set()
            for item in prefix(node.items, ranks, config):
                found.update(index[item])
                index[item].append(node.id)
            for other in sorted(found):
                yield other, node.id
