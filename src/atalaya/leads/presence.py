"""Presences: the stretches of sightings one address gave, believed one device.

A presence is what "the same IP within a window" means. The sightings of one
address (of one address and port where the address is shared by many, as
behind carrier-grade NAT) are taken in time order; a new presence starts

- at the first sighting, or after a silence longer than the window
  ("window"), or
- after a silence of at least `device_change_gap_hours` when the sighting
  comes from another listen port or client and offers an item not seen in the
  presence so far ("device_change"): the address went to someone else.

The scan looks back only as far as the start of the current stretch, so a
range of sightings bounded by silences longer than the window gives the same
presences whether it is scanned alone or with everything else: this is what
lets incremental builds rescan only what new sightings touch.

"Address" means the presence address (`presence_address`). For IPv4 it is
the address itself. For IPv6 it is the address's prefix of
`ipv6_prefix_length` bits (default 64), written `2001:db8:1:2::/64`. An ISP
delegates a prefix to each subscriber, a /48 to /64 per end site (RFC 6177,
BCP 157; in practice a /56 or a /64 for a home line, a /64 for a mobile
one), and hosts form their own interface ids inside it, with temporary
("privacy") addresses, a new one at least daily by default (RFC 8981, which
obsoletes RFC 4941; on by default in Windows, macOS, iOS and Android). One
device rotating its addresses inside its /64 is therefore one presence, as
one NAT address is for IPv4; the presence shows the prefix, and each
sighting keeps the exact address it was seen at, which is what an ISP is
asked about. A /64 is one link: the other devices of a home share it as
they share the home's IPv4 address. Two /64s of one /56 are two presences,
joined into one lead only by links (`atalaya.leads.linking`), as two IPv4
addresses are. Enrichment gives the cgnat flag to IPv4 addresses only (no
IPv6 address is shared among subscribers the way carrier-grade NAT shares
one), so IPv6 prefixes are not split by port.

Times are integer microseconds since the epoch, UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

from atalaya.enrich.prefixes import prefix_of
from atalaya.leads.config import GroupingConfig

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR


class ItemKey(NamedTuple):
    """One watched item on one network: what presences offer and links compare.

    `kind` names the identifier ("btih", "btih2", "ed2k", …, the names of
    atalaya.hashsets.algorithms) and `value` is its lowercase hex, as sightings
    store it. Nothing here knows what a network's kinds mean.
    """

    network: str
    kind: str
    value: str


class SightingRow(NamedTuple):
    """The fields of a sighting that grouping and scoring use."""

    id: int
    ip: str  # the exact address as read; the presence address after `keyed`
    port: int
    at: int  # microseconds since the epoch, UTC
    network: str
    item_kind: str
    item_value: str
    file_key: str | None
    category: int | None
    proof: bool
    peer_id: str | None
    client: str | None


@dataclass(slots=True)
class ItemStat:
    """One watched item within a presence (the item is its key in `Presence.items`)."""

    file_key: str | None = None
    category: int | None = None
    proof: bool = False
    sightings: int = 0

    def merge(self, other: ItemStat) -> None:
        self.sightings += other.sightings
        if other.file_key is not None and (self.file_key is None or other.file_key < self.file_key):
            self.file_key = other.file_key
        if other.category is not None and (self.category is None or other.category > self.category):
            self.category = other.category
        self.proof = self.proof or other.proof


@dataclass(slots=True)
class Presence:
    """Sightings of one address (and port, where shared) believed one device."""

    id: int  # the smallest sighting id in it: stable across rebuilds
    ip: str  # the presence address: an IPv4 address or an IPv6 prefix
    port: int | None  # set only where the address is shared and port tells devices apart
    first_at: int
    last_at: int
    sightings: int
    # Why it starts where it does: "window" (no sighting of the key in the
    # window before) or "device_change".
    opened_by: str
    items: dict[ItemKey, ItemStat] = field(default_factory=dict)
    days: set[int] = field(default_factory=set)
    peer_ids: set[str] = field(default_factory=set)
    clients: dict[str, int] = field(default_factory=dict)
    ports: set[int] = field(default_factory=set)

    @property
    def client(self) -> str | None:
        """The client it reported most often (ties: the first by name)."""
        if not self.clients:
            return None
        return min(self.clients.items(), key=lambda kv: (-kv[1], kv[0]))[0]

    @property
    def family(self) -> int:
        return 6 if ":" in self.ip else 4


def presence_address(ip: str, config: GroupingConfig) -> str:
    """What presences of sightings at `ip` are keyed by (see the module docstring):
    an IPv4 address itself, an IPv6 address's /`ipv6_prefix_length` prefix."""
    return prefix_of(ip, config.ipv6_prefix_length)


def keyed(rows: Iterable[SightingRow], config: GroupingConfig) -> Iterator[SightingRow]:
    """`rows` with each exact address replaced by its presence address."""
    length = config.ipv6_prefix_length
    for row in rows:
        yield row._replace(ip=prefix_of(row.ip, length)) if ":" in row.ip else row


def by_address(
    rows: Iterable[SightingRow], config: GroupingConfig
) -> Iterator[tuple[str, list[SightingRow]]]:
    """(presence address, its keyed rows) from rows sorted by exact address.

    IPv4 groups are given as they come. The addresses of one IPv6 prefix are
    not next to each other in text order (the `::` of one may swallow part of
    the prefix), so IPv6 rows are held and their groups given at the end, in
    order of the prefix text.
    """
    held: dict[str, list[SightingRow]] = {}
    for ip, group in groupby(rows, key=itemgetter(1)):
        if ":" in ip:
            key = presence_address(ip, config)
            held.setdefault(key, []).extend(r._replace(ip=key) for r in group)
        else:
            yield ip, list(group)
    for key in sorted(held):
        yield key, held.pop(key)


def stable_peer_id(peer_id: str | None) -> bool:
    """Whether a peer id can identify one client session.

    Clients put their name and version in the first 8 bytes and draw the rest
    at random (BEP 20). Ids whose random part is mostly repeated bytes (all
    zeros, a fixed pattern, a client that does not randomise) identify no
    one and are ignored.
    """
    if peer_id is None or len(peer_id) != 40:
        return False
    try:
        raw = bytes.fromhex(peer_id)
    except ValueError:
        return False
    return len(set(raw[8:])) >= 8


def scan(rows: Iterable[SightingRow], config: GroupingConfig, *, by_port: bool) -> list[Presence]:
    """Presences of the sightings of one key (an address, or address and port).

    `rows` must be sorted by (at, id). This loop runs once per sighting in a
    full build, hence the inlined bookkeeping.
    """
    window = round(config.window_days * US_PER_DAY)
    change_gap = round(config.device_change_gap_hours * US_PER_HOUR)
    out: list[Presence] = []
    cur: Presence | None = None
    last_port = 0
    last_client: str | None = None
    keys: dict[tuple[str, str, str], ItemKey] = {}
    for row in rows:
        ident, _ip, port, at, network, kind, value, file_key, category, proof, peer, client = row
        item = keys.get((network, kind, value))
        if item is None:
            item = keys[(network, kind, value)] = ItemKey(network, kind, value)
        if cur is None:
            opened = "window"
        else:
            gap = at - cur.last_at
            if gap > window:
                opened = "window"
            elif (
                gap >= change_gap
                and (
                    port != last_port
                    or (client is not None and last_client is not None and client != last_client)
                )
                and item not in cur.items
            ):
                opened = "device_change"
            else:
                opened = ""
        if opened:
            cur = Presence(
                id=ident,
                ip=row.ip,
                port=port if by_port else None,
                first_at=at,
                last_at=at,
                sightings=0,
                opened_by=opened,
            )
            out.append(cur)
            # The client to compare with is the latest within this presence,
            # so nothing before a window break shapes what follows it.
            last_client = None
        assert cur is not None
        cur.sightings += 1
        cur.id = ident if ident < cur.id else cur.id
        cur.last_at = at
        stat = cur.items.get(item)
        if stat is None:
            stat = cur.items[item] = ItemStat()
        stat.sightings += 1
        # min/max keep the result independent of the order rows arrive in.
        if file_key is not None and (stat.file_key is None or file_key < stat.file_key):
            stat.file_key = file_key
        if category is not None and (stat.category is None or category > stat.category):
            stat.category = category
        if proof:
            stat.proof = True
        cur.days.add(at // US_PER_DAY)
        if peer is not None and _stable(peer):
            cur.peer_ids.add(peer.lower())
        if client is not None:
            cur.clients[client] = cur.clients.get(client, 0) + 1
            last_client = client
        cur.ports.add(port)
        last_port = port
    return out


@lru_cache(maxsize=65_536)
def _stable(peer_id: str) -> bool:
    return stable_peer_id(peer_id)


def scan_address(
    rows: list[SightingRow], config: GroupingConfig, *, shared: bool
) -> Iterator[Presence]:
    """Presences of all sightings of one address, sorted by (at, id) already.

    On a shared address each port is scanned on its own: subscribers behind
    one carrier-grade NAT address differ by the port mapped to them.
    """
    if not shared:
        yield from scan(rows, config, by_port=False)
        return
    by_port: dict[int, list[SightingRow]] = {}
    for row in rows:
        by_port.setdefault(row.port, []).append(row)
    for port in sorted(by_port):
        yield from scan(by_port[port], config, by_port=True)
