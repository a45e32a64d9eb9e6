"""The Kademlia routing table of BEP 5: k-buckets over the 160-bit id space.

The table starts as one bucket covering every id. A full bucket splits only if
it covers our own id, so the table knows many nodes near us and a few far
away. Only nodes that answered one of our queries enter it; a node that only
sent us queries can tell us nothing we could check.

A node is good if it answered within the last 15 minutes, or ever answered and
queried us within the last 15 minutes; bad after `max_failures` unanswered
queries in a row; questionable otherwise. A full bucket replaces a bad node at
once, and keeps newcomers in a bounded replacement cache until one goes bad.

When our own id changes (BEP 42, after we learn a new external address),
`reset_own_id` rebuilds the buckets around the new id and puts every contact
back with its history, as libtorrent does, so no one has to be found again.
"""

from __future__ import annotations

import bisect
import enum
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from atalaya.networks.bittorrent.dht.nodeid import ID_BITS, random_id_in_range
from atalaya.networks.bittorrent.krpc import Address

K = 8
GOOD_FOR = 15 * 60.0
MAX_FAILURES = 2


class NodeState(enum.Enum):
    GOOD = "good"
    QUESTIONABLE = "questionable"
    BAD = "bad"


class AddResult(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"
    CACHED = "cached"  # bucket full: kept as a replacement
    REJECTED = "rejected"


@dataclass(slots=True)
class NodeEntry:
    node_id: bytes
    addr: Address
    first_seen: float
    last_response: float | None = None
    last_query: float | None = None
    failures: int = 0

    @property
    def id_int(self) -> int:
        return int.from_bytes(self.node_id, "big")

    @property
    def last_seen(self) -> float:
        seen = [t for t in (self.last_response, self.last_query) if t is not None]
        return max(seen, default=self.first_seen)

    def state(
        self, now: float, *, good_for: float = GOOD_FOR, max_failures: int = MAX_FAILURES
    ) -> NodeState:
        if self.failures >= max_failures:
            return NodeState.BAD
        if self.last_response is not None:
            if now - self.last_response < good_for:
                return NodeState.GOOD
            if self.last_query is not None and now - self.last_query < good_for:
                return NodeState.GOOD
        return NodeState.QUESTIONABLE


@dataclass(slots=True)
class Bucket:
    low: int  # inclusive
    high: int  # exclusive
    last_changed: float
    nodes: list[NodeEntry] = field(default_factory=list)
    replacements: list[NodeEntry] = field(default_factory=list)

    def covers(self, id_int: int) -> bool:
        return self.low <= id_int < self.high


class RoutingTable:
    def __init__(
        self,
        own_id: bytes,
        now: float,
        *,
        k: int = K,
        max_replacements: int = K,
        max_per_ip: int = 1,
        good_for: float = GOOD_FOR,
        max_failures: int = MAX_FAILURES,
    ) -> None:
        if len(own_id) != 20:
            raise ValueError("own id must be 20 bytes")
        self.own_id = own_id
        self._own = int.from_bytes(own_id, "big")
        self.k = k
        self.max_replacements = max_replacements
        self.max_per_ip = max_per_ip
        self.good_for = good_for
        self.max_failures = max_failures
        self.buckets: list[Bucket] = [Bucket(0, 1 << ID_BITS, now)]
        self._lows: list[int] = [0]
        self._by_addr: dict[Address, NodeEntry] = {}
        self._per_ip: dict[str, int] = {}

    # --- queries -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_addr)

    def __iter__(self) -> Iterator[NodeEntry]:
        for bucket in self.buckets:
            yield from bucket.nodes

    def state(self, entry: NodeEntry, now: float) -> NodeState:
        return entry.state(now, good_for=self.good_for, max_failures=self.max_failures)

    def bucket_for(self, node_id: bytes) -> Bucket:
        i = bisect.bisect_right(self._lows, int.from_bytes(node_id, "big")) - 1
        return self.buckets[i]

    def find(self, node_id: bytes) -> NodeEntry | None:
        for entry in self.bucket_for(node_id).nodes:
            if entry.node_id == node_id:
                return entry
        return None

    def by_addr(self, addr: Address) -> NodeEntry | None:
        return self._by_addr.get(addr)

    def closest(self, target: bytes, count: int, now: float) -> list[NodeEntry]:
        """The `count` non-bad nodes closest to `target` by XOR distance."""
        t = int.from_bytes(target, "big")
        live = [e for e in self if self.state(e, now) is not NodeState.BAD]
        live.sort(key=lambda e: e.id_int ^ t)
        return live[:count]

    def wants(self, node_id: bytes, now: float) -> bool:
        """Whether a node new to us would enter the table (not merely the cache)."""
        id_int = int.from_bytes(node_id, "big")
        if len(node_id) != 20 or id_int == self._own or self.find(node_id) is not None:
            return False
        bucket = self.bucket_for(node_id)
        return (
            len(bucket.nodes) < self.k
            or (bucket.covers(self._own) and bucket.high - bucket.low > 1)
            or any(self.state(e, now) is NodeState.BAD for e in bucket.nodes)
        )

    def stale_buckets(self, now: float, interval: float) -> list[Bucket]:
        return [b for b in self.buckets if now - b.last_changed >= interval]

    def random_id_in(self, bucket: Bucket, rng: random.Random) -> bytes:
        return random_id_in_range(bucket.low, bucket.high, rng)

    def to_ping(self, now: float) -> list[NodeEntry]:
        """Questionable nodes in buckets that have replacements waiting, oldest first.

        Pinging them decides whether a replacement takes their place.
        """
        out: list[NodeEntry] = []
        for bucket in self.buckets:
            if bucket.replacements:
                out.extend(e for e in bucket.nodes if self.state(e, now) is NodeState.QUESTIONABLE)
        out.sort(key=lambda e: e.last_seen)
        return out

    # --- updates -----------------------------------------------------------

    def node_responded(self, node_id: bytes, addr: Address, now: float) -> AddResult:
        """A node answered one of our queries: add it or refresh it."""
        id_int = int.from_bytes(node_id, "big")
        if len(node_id) != 20 or id_int == self._own:
            return AddResult.REJECTED
        entry = self.find(node_id)
        if entry is not None:
            if entry.addr != addr:
                # Someone else claiming a live node's id is ignored until it goes quiet.
                if self.state(entry, now) is NodeState.GOOD:
                    return AddResult.REJECTED
                self._unindex(entry)
                entry.addr = addr
                self._index(entry)
            entry.last_response = now
            entry.failures = 0
            self.bucket_for(node_id).last_changed = now
            return AddResult.UPDATED
        if not self._make_room_for_ip(addr, now):
            return AddResult.REJECTED
        return self._place(NodeEntry(node_id, addr, first_seen=now, last_response=now), now)

    def node_queried(self, node_id: bytes, addr: Address, now: float) -> None:
        """A node sent us a query: refresh it if it is already in the table."""
        entry = self.find(node_id)
        if entry is not None and entry.addr == addr:
            entry.last_query = now

    def node_failed(self, addr: Address, now: float) -> None:
        """A query to `addr` went unanswered."""
        entry = self._by_addr.get(addr)
        if entry is None:
            return
        entry.failures += 1
        if self.state(entry, now) is NodeState.BAD:
            bucket = self.bucket_for(entry.node_id)
            if bucket.replacements:
                self._remove(bucket, entry)
                self._insert(bucket, bucket.replacements.pop(), now)

    def remove(self, addr: Address) -> bool:
        """Forget the contact at `addr` (in the table or a replacement cache)."""
        found = False
        entry = self._by_addr.get(addr)
        if entry is not None:
            self._remove(self.bucket_for(entry.node_id), entry)
            found = True
        for bucket in self.buckets:
            kept = [r for r in bucket.replacements if r.addr != addr]
            found = found or len(kept) != len(bucket.replacements)
            bucket.replacements = kept
        return found

    def reset_own_id(self, own_id: bytes, now: float) -> None:
        """Take a new own id and put every contact back around it, history kept.

        Nodes that are not bad go in first, most recently seen first, then those
        of the replacement caches (they answered too, and the new buckets near
        us may have room for them); what no longer fits a bucket waits in its
        cache or is dropped, as any newcomer would be.
        """
        if len(own_id) != 20:
            raise ValueError("own id must be 20 bytes")
        nodes = sorted(
            (e for e in self if self.state(e, now) is not NodeState.BAD),
            key=lambda e: e.last_seen,
            reverse=True,
        )
        spares = [r for b in self.buckets for r in b.replacements]
        self.own_id = own_id
        self._own = int.from_bytes(own_id, "big")
        self.buckets = [Bucket(0, 1 << ID_BITS, now)]
        self._lows = [0]
        self._by_addr = {}
        self._per_ip = {}
        for entry in nodes:
            if entry.id_int != self._own:
                self._place(entry, now)
        for entry in spares:
            if (
                entry.id_int != self._own
                and entry.addr not in self._by_addr
                and self.find(entry.node_id) is None
                and self._per_ip.get(entry.addr[0], 0) < self.max_per_ip
            ):
                self._place(entry, now)

    # --- internals ---------------------------------------------------------

    def _place(self, newcomer: NodeEntry, now: float) -> AddResult:
        """Put a contact the table does not hold yet into its bucket, or the cache."""
        for _ in range(ID_BITS + 1):
            bucket = self.bucket_for(newcomer.node_id)
            if len(bucket.nodes) < self.k:
                self._insert(bucket, newcomer, now)
                return AddResult.ADDED
            bad = [e for e in bucket.nodes if self.state(e, now) is NodeState.BAD]
            if bad:
                worst = max(bad, key=lambda e: (e.failures, -e.last_seen))
                self._remove(bucket, worst)
                self._insert(bucket, newcomer, now)
                return AddResult.ADDED
            if bucket.covers(self._own) and bucket.high - bucket.low > 1:
                self._split(bucket)
                continue
            break
        self._cache(self.bucket_for(newcomer.node_id), newcomer)
        return AddResult.CACHED

    def _index(self, entry: NodeEntry) -> None:
        self._by_addr[entry.addr] = entry
        ip = entry.addr[0]
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def _unindex(self, entry: NodeEntry) -> None:
        self._by_addr.pop(entry.addr, None)
        ip = entry.addr[0]
        left = self._per_ip.get(ip, 0) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)

    def _make_room_for_ip(self, addr: Address, now: float) -> bool:
        """Keep at most `max_per_ip` nodes per IP; a non-good one may make way."""
        if self._per_ip.get(addr[0], 0) < self.max_per_ip:
            return True
        same_ip = [e for e in self if e.addr[0] == addr[0]]
        for entry in same_ip:
            if self.state(entry, now) is not NodeState.GOOD:
                self._remove(self.bucket_for(entry.node_id), entry)
                return True
        return False

    def _insert(self, bucket: Bucket, entry: NodeEntry, now: float) -> None:
        if entry.addr in self._by_addr:
            other = self._by_addr[entry.addr]
            self._remove(self.bucket_for(other.node_id), other)
        bucket.nodes.append(entry)
        bucket.replacements = [
            r for r in bucket.replacements if r.node_id != entry.node_id and r.addr != entry.addr
        ]
        self._index(entry)
        bucket.last_changed = now

    def _remove(self, bucket: Bucket, entry: NodeEntry) -> None:
        bucket.nodes.remove(entry)
        self._unindex(entry)

    def _cache(self, bucket: Bucket, entry: NodeEntry) -> None:
        bucket.replacements = [
            r for r in bucket.replacements if r.node_id != entry.node_id and r.addr != entry.addr
        ]
        bucket.replacements.append(entry)
        excess = len(bucket.replacements) - self.max_replacements
        if excess > 0:
            del bucket.replacements[:excess]

    def _split(self, bucket: Bucket) -> None:
        mid = (bucket.low + bucket.high) // 2
        lower = Bucket(bucket.low, mid, bucket.last_changed)
        upper = Bucket(mid, bucket.high, bucket.last_changed)
        for entry in bucket.nodes:
            (lower if entry.id_int < mid else upper).nodes.append(entry)
        for entry in bucket.replacements:
            (lower if entry.id_int < mid else upper).replacements.append(entry)
        i = self.buckets.index(bucket)
        self.buckets[i : i + 1] = [lower, upper]
        self._lows = [b.low for b in self.buckets]
