"""Search from one box: an address or prefix, a hash, a peer id.

What an analyst pastes is read by its shape (`parse_query`), then looked up
where the lead tables keep it (`search_leads`):

- an IP address (`192.0.2.7`, `2001:db8::1`): presences of that address;
- a prefix in CIDR form (`192.0.2.0/24`, at least /8 for IPv4 and /32 for
  IPv6): presences of any address in it;
- 32, 40 or 64 hex digits: a watched item with that value (BitTorrent v1 or
  v2 info-hash, eD2K hash…), a reference file with that MD5, SHA-1 or
  SHA-256 in the imported lists (its `file_key`, then the items of that file
  the leads offered), and, for 40 digits, a peer id the leads keep (the
  random-looking ones, `lead_presence_peer`);
- a prefix written `algorithm:hex` (`sha1:…`, `btih:…`, `ed2k:…`) restricts
  the hash to that algorithm or kind, and a file hash so named is also
  taken as a `file_key` itself;
- a peer id: the printable client prefix (`-qB4650-`) or 8 to 38 hex
  digits (its start): sightings whose peer id starts so (a scan of the
  sightings, stopped after MAX_SIGHTINGS).

Peer ids come from the suspect and are never a lead's only link; here they
only find sightings, which the presences' bounds (address, port, first and
last sighting) tie to their leads. Every answer is restricted by `visible`
(the unit's leads) before anything else is read, and is bounded.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select

from atalaya.enrich.prefixes import holds, parse_prefix
from atalaya.errors import N_, AtalayaError
from atalaya.hashsets import lookup
from atalaya.hashsets.algorithms import DIGEST_SIZES
from atalaya.leads.query import score_in_force
from atalaya.store.tables import (
    lead,
    lead_presence,
    lead_presence_item,
    lead_presence_peer,
    sighting,
)
from atalaya.store.times import utc

MAX_QUERY = 200
MAX_LEADS = 500
# Sightings read for a peer id: enough for any real suspect's device.
MAX_SIGHTINGS = 5_000
# Addresses read for a prefix that is not on an octet boundary.
MAX_ADDRESSES = 200_000
MIN_PREFIX = {4: 8, 6: 32}
_HEX = re.compile(r"[0-9a-f]+")
# A client prefix as clients write it in their peer ids: Azureus style
# (-qB4650-, -TR3000-, -lt0D80-) or shorter tags; printable ASCII only.
_CLIENT = re.compile(r"-[\x21-\x7e]{1,19}")
_FILE_ALGORITHMS = ("md5", "sha1", "sha256")


class SearchError(AtalayaError, ValueError):
    """What was typed is none of the things the box finds."""


@dataclass(frozen=True)
class Query:
    """What the box understood: one of `kind` ip, prefix, hash or peer_id."""

    text: str
    kind: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    digest: str | None = None  # lower-case hex
    algorithm: str | None = None  # hash: only this algorithm or item kind
    peer_prefix: str | None = None  # lower-case hex of the peer id's start

    def describe(self) -> str:
        if self.kind == "ip":
            return f"address {self.network.network_address if self.network else ''}"
        if self.kind == "prefix":
            return f"prefix {self.network}"
        if self.kind == "hash":
            return f"{self.algorithm or 'hash'} {self.digest}"
        return f"peer id starting {self.peer_prefix}"


@dataclass
class SearchResult:
    query: Query
    lead_ids: list[int]  # highest score in force first
    reasons: dict[int, list[str]] = field(default_factory=dict)
    truncated: bool = False


def parse_query(text: str) -> Query:
    """The query `text` asks, or SearchError saying what the box accepts."""
    if len(text) > MAX_QUERY:
        raise SearchError(N_("a search is at most %(most)s characters"), most=MAX_QUERY)
    raw = text.strip()
    if not raw:
        raise SearchError(N_("type an IP address or prefix, a hash or a peer id"))
    if _CLIENT.fullmatch(raw) and not raw[1:].isdigit():
        return Query(raw, "peer_id", peer_prefix=raw.encode("ascii").hex())
    lowered = raw.lower()
    if ":" in lowered and not _looks_ipv6(lowered):
        algorithm, _, value = lowered.partition(":")
        size = DIGEST_SIZES.get(algorithm)
        if size is None:
            raise SearchError(N_("unknown hash kind %(kind)r"), kind=algorithm[:20])
        if len(value) != 2 * size or not _HEX.fullmatch(value):
            raise SearchError(
                N_("%(algorithm)s is %(digits)s hex digits"), algorithm=algorithm, digits=2 * size
            )
        return Query(raw, "hash", digest=value, algorithm=algorithm)
    if "/" in lowered:
        try:
            net = ipaddress.ip_network(lowered, strict=False)
        except ValueError:
            raise SearchError(
                N_("%(text)r is not a prefix such as 192.0.2.0/24"), text=raw[:60]
            ) from None
        if net.prefixlen < MIN_PREFIX[net.version]:
            raise SearchError(
                N_("a prefix must be at least /%(bits)s for IPv%(version)s"),
                bits=MIN_PREFIX[net.version],
                version=net.version,
            )
        if net.prefixlen == net.max_prefixlen:
            return Query(raw, "ip", network=net)
        return Query(raw, "prefix", network=net)
    try:
        address = ipaddress.ip_address(lowered)
    except ValueError:
        pass
    else:
        return Query(raw, "ip", network=ipaddress.ip_network(address))
    if _HEX.fullmatch(lowered):
        if len(lowered) in (32, 40, 64):
            return Query(raw, "hash", digest=lowered)
        if len(lowered) % 2 == 0 and 8 <= len(lowered) <= 38:
            return Query(raw, "peer_id", peer_prefix=lowered)
    raise SearchError(
        N_(
            "not an IP address, a prefix (192.0.2.0/24), a hash (32, 40 or 64 hex digits, "
            "or algorithm:hex) or a peer id (-qB4650- or its hex)"
        )
    )


def _looks_ipv6(text: str) -> bool:
    head = text.split("/", maxsplit=1)[0]
    try:
        return ipaddress.ip_address(head).version == 6
    except ValueError:
        return False


def search_leads(
    conn: Connection, query: Query, *, visible: ColumnElement[bool] | None
) -> SearchResult:
    """The leads `query` finds among those `visible` (None: all), with why."""
    found: dict[int, set[str]] = {}
    truncated = False

    def add(ids: Iterable[int], reason: str) -> None:
        for lead_id in ids:
            found.setdefault(int(lead_id), set()).add(reason)

    if query.kind in ("ip", "prefix"):
        assert query.network is not None
        ids, truncated = _by_address(conn, query.network)
        add(ids, "address" if query.kind == "ip" else f"address in {query.network}")
    elif query.kind == "hash":
        assert query.digest is not None
        for ids, reason in _by_hash(conn, query.digest, query.algorithm):
            add(ids, reason)
        if len(query.digest) == 40 and query.algorithm is None:
            ids, more = _by_peer_id(conn, query.digest, exact=True)
            add(ids, "peer id")
            truncated |= more
    else:
        assert query.peer_prefix is not None
        ids, truncated = _by_peer_id(conn, query.peer_prefix, exact=False)
        add(ids, f"peer id {query.text}")

    ordered = _visible_in_order(conn, list(found), visible)
    if len(ordered) > MAX_LEADS:
        ordered, truncated = ordered[:MAX_LEADS], True
    return SearchResult(
        query=query,
        lead_ids=ordered,
        reasons={i: sorted(found[i]) for i in ordered},
        truncated=truncated,
    )


def _visible_in_order(
    conn: Connection, ids: list[int], visible: ColumnElement[bool] | None
) -> list[int]:
    if not ids:
        return []
    in_force, override = score_in_force()
    out: list[tuple[float, int]] = []
    for start in range(0, len(ids), 1_000):
        where: list[ColumnElement[bool]] = [lead.c.id.in_(ids[start : start + 1_000])]
        if visible is not None:
            where.append(visible)
        query = (
            select(lead.c.id, in_force)
            .outerjoin(override, override.c.lead_id == lead.c.id)
            .where(and_(*where))
        )
        out += [(-float(score), int(i)) for i, score in conn.execute(query)]
    return [i for _, i in sorted(out)]


def _key_network(key: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The addresses a presence key stands for: an address, or an IPv6 prefix."""
    prefix = parse_prefix(key)
    if prefix is not None:
        return prefix
    try:
        return ipaddress.ip_network(key)
    except ValueError:
        return None


def _like(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """A LIKE pattern every presence key inside or around `net` matches:
    the whole octets of an IPv4 prefix, the first group of an IPv6 one (the
    `::` of a key may swallow any later group)."""
    if net.version == 4:
        octets = str(net.network_address).split(".")[: net.prefixlen // 8]
        return ".".join(octets) + ".%" if octets else "%.%"
    first = int(net.network_address) >> 112
    return f"{first:x}:%" if first else "%:%"


def _by_address(
    conn: Connection, net: ipaddress.IPv4Network | ipaddress.IPv6Network
) -> tuple[set[int], bool]:
    """Leads with a presence whose address is in `net` (an IPv6 presence is
    keyed by its prefix: it is found when the prefix and `net` overlap)."""
    if net.version == 4 and net.prefixlen == net.max_prefixlen:
        exact = conn.execute(
            select(lead_presence.c.lead_id).where(lead_presence.c.ip == str(net.network_address))
        )
        return {r[0] for r in exact}, False
    # Addresses are text: narrow with LIKE, then test each one exactly.
    query = (
        select(lead_presence.c.ip, lead_presence.c.lead_id)
        .where(lead_presence.c.ip.like(_like(net)))
        .limit(MAX_ADDRESSES + 1)
    )
    rows = conn.execute(query).all()
    ids = set()
    for key, lead_id in rows[:MAX_ADDRESSES]:
        found = _key_network(key)
        if found is not None and found.version == net.version and found.overlaps(net):
            ids.add(lead_id)
    return ids, len(rows) > MAX_ADDRESSES


def _by_hash(conn: Connection, digest: str, only: str | None) -> list[tuple[set[int], str]]:
    size = len(digest) // 2
    kinds = [k for k, n in DIGEST_SIZES.items() if n == size and (only is None or k == only)]
    out: list[tuple[set[int], str]] = []
    # Watched items: info-hashes, eD2K hashes, file hashes watched as such.
    items = conn.execute(
        select(lead_presence_item.c.kind, lead_presence.c.lead_id)
        .join(lead_presence, lead_presence.c.id == lead_presence_item.c.presence_id)
        .where(lead_presence_item.c.kind.in_(kinds), lead_presence_item.c.value == digest)
    ).all()
    for kind in sorted({k for k, _ in items}):
        out.append(({i for k, i in items if k == kind}, f"item {kind}"))
    # Reference files with that hash: their file_key, then the items of
    # that file the leads offered.
    algorithms = [a for a in _FILE_ALGORITHMS if DIGEST_SIZES[a] == size and only in (None, a)]
    if algorithms:
        # The key itself only when the algorithm was named (sha1:…); a bare
        # digest goes through the reference lists.
        keys = {f"{only}:{digest}"} if only in algorithms else set()
        keys |= lookup.file_keys_for_digest(conn, algorithms, bytes.fromhex(digest))
        files = (
            set()
            if not keys
            else set(
                conn.scalars(
                    select(lead_presence.c.lead_id)
                    .join(
                        lead_presence_item, lead_presence.c.id == lead_presence_item.c.presence_id
                    )
                    .where(lead_presence_item.c.file_key.in_(sorted(keys)))
                )
            )
        )
        if files:
            out.append((files, "reference file"))
    return out


def _by_peer_id(conn: Connection, hex_text: str, *, exact: bool) -> tuple[set[int], bool]:
    if exact:
        # A whole peer id: the random-looking ones the leads keep (indexed).
        # Reading every sighting for one would cost seconds on a large store.
        found = conn.scalars(
            select(lead_presence.c.lead_id)
            .join(lead_presence_peer, lead_presence.c.id == lead_presence_peer.c.presence_id)
            .where(lead_presence_peer.c.peer_id == hex_text)
        )
        return set(found), False
    condition = sighting.c.peer_id.like(f"{hex_text}%")
    seen = conn.execute(
        select(sighting.c.ip, sighting.c.port, sighting.c.seen_at)
        .where(condition)
        .limit(MAX_SIGHTINGS + 1)
    ).all()
    return _presences_of(conn, seen[:MAX_SIGHTINGS]), len(seen) > MAX_SIGHTINGS


def _presences_of(conn: Connection, seen: Sequence[Any]) -> set[int]:
    """The leads whose presences hold these sightings (ip, port, seen_at).

    Presences are read by address (`ix_lead_presence_ip_first_seen`), IPv6
    ones by the first group of their prefix key, and matched here.
    """
    wanted: dict[str, list[tuple[int, datetime]]] = {}
    for s in seen:
        wanted.setdefault(s.ip, []).append((s.port, utc(s.seen_at)))
    v4 = sorted(ip for ip in wanted if ":" not in ip)
    rows: list[Any] = []
    columns = (
        lead_presence.c.ip,
        lead_presence.c.port,
        lead_presence.c.first_seen,
        lead_presence.c.last_seen,
        lead_presence.c.lead_id,
    )
    for start in range(0, len(v4), 500):
        rows += conn.execute(
            select(*columns).where(lead_presence.c.ip.in_(v4[start : start + 500]))
        )
    patterns = set()
    for ip in wanted:
        if ":" in ip:
            try:
                patterns.add(_like(ipaddress.ip_network(ip)))
            except ValueError:
                continue
    for pattern in sorted(patterns):
        rows += conn.execute(select(*columns).where(lead_presence.c.ip.like(pattern)))
    ids: set[int] = set()
    for key, port, first_seen, last_seen, lead_id in rows:
        first, last = utc(first_seen), utc(last_seen)
        addresses = [key] if parse_prefix(key) is None else [ip for ip in wanted if holds(key, ip)]
        for ip in addresses:
            if any(
                first <= at <= last and (port is None or port == p) for p, at in wanted.get(ip, ())
            ):
                ids.add(lead_id)
                break
    return ids
