"""A Mainline DHT node (BEP 5, 32, 42, 43, 51) as a sans-I/O state machine, in aioquic's style.

The caller owns the socket and the clock::

    node = DhtNode(NodeConfig(bootstrap=(("127.0.0.2", 6881),)), rng=random.Random(), now=t)
    node.receive_datagram(data, addr, now)        # each datagram that arrives
    node.handle_timer(now)                        # when now >= node.get_timer()
    for data, addr in node.datagrams_to_send(now): sock.sendto(data, addr)
    while (event := node.next_event()) is not None: ...

After each call of `receive_datagram`, `handle_timer` or `start_*`, the caller
sends what `datagrams_to_send` returns and re-arms its timer from `get_timer`.

The node answers queries as a polite node should (ping, find_node, get_peers
with a token, announce_peer checked against that token, sample_infohashes),
keeps a routing table, bootstraps from the configured nodes, refreshes stale
buckets and pings questionable nodes. Lookups are iterative (alpha queries in
flight, closest first) and finish when the k closest nodes known have
answered; every timeout, retry, queue wait and lookup is bounded. Outgoing
messages go through per-IP and overall token buckets; incoming queries
beyond the per-IP and overall limits are dropped unanswered.

One node speaks one address family (`NodeConfig.family`, BEP 32): a node of
family 6 talks only to IPv6 addresses, reads `nodes6` from answers, asks with
`want` = n6 and answers with `nodes6`; family 4 likewise with `nodes`. A
dual-stack observer runs two nodes. Some addresses are never a node, whatever
`allowed_networks` says: unspecified, multicast, 255.255.255.255, IPv4-mapped
IPv6 addresses (a v4 node reaches those itself), and our own addresses
(`own_addresses`, `set_own_addresses`).

NAT (BEP 42, 43): answers carry the address they saw us at (`ip`); when at
least `MIN_VOTERS` distinct nodes, and more than half of the recent voters,
agree on an external IP other than the one in force, the node emits
`ExternalAddressChanged` and, unless told its id, takes a BEP 42 id for that
IP and rebuilds its routing table around it, keeping its contacts. A node
that cannot be reached from outside should be read-only (BEP 43,
`set_read_only`); `NodeStats.unsolicited_queries` counts queries from IPs we
never sent anything to, which only arrive if we can be reached.

Politeness on the public DHT, by default:

- Per remote IP, 2 queries a second with a burst of 8, so at most 28 in any
  10 seconds. libtorrent (`dht_block_ratelimit` = 5 messages a second per
  source IP, counted over 10 seconds) ignores an IP that sends it 50 in 10
  seconds, for `dht_block_timeout` = 300 s; we stay well under that, as every
  node deserves, whatever it runs.
- In total, 66 messages a second with a burst of one second's worth, like
  libtorrent's send quota. libtorrent's `dht_upload_rate_limit` is 8000
  bytes a second; our queries are about 120 bytes (get_peers, find_node or
  sample_infohashes with a 4-byte transaction id, version and `want`: 118 to
  124 bytes; a ping 67), so 8000 // 120 = 66. Answers to others are larger
  (about 300 bytes with 8 IPv4 nodes, 420 with 8 IPv6 ones), but a read-only
  observer sends none. `LAB_OUTGOING` is the higher total (200 a second)
  that a lab of our own may use.
- A node that times out or answers with a KRPC error `backoff_after` times in
  a row rests: it is not queried again for `backoff_base` seconds, doubling
  with each further failure up to `backoff_max` (30 s to 10 min); any answer
  ends its rest. At most `max_backoff_tracked` addresses are remembered.
  "Method unknown" to a sample_infohashes query is no failure: many nodes
  predate BEP 51.
- The node never sends announce_peer: an observer offers nothing. It still
  answers the announces of others, as a good node does.

`received_at` in every event is the `now` passed with the datagram that caused
it: the caller's arrival time, which is what a sighting records.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from atalaya.networks.bittorrent.dht.nodeid import (
    ID_BITS,
    generate_node_id,
    is_valid_node_id,
    random_id,
)
from atalaya.networks.bittorrent.dht.ratelimit import RateLimit, RateLimiter
from atalaya.networks.bittorrent.dht.routing import RoutingTable
from atalaya.networks.bittorrent.dht.storage import PeerStore
from atalaya.networks.bittorrent.dht.tokens import TokenManager
from atalaya.networks.bittorrent.krpc import (
    METHOD_UNKNOWN,
    PROTOCOL_ERROR,
    WANT_N4,
    WANT_N6,
    Address,
    AnnouncePeer,
    ErrorReply,
    FindNode,
    GetPeers,
    KrpcError,
    Message,
    NodeInfo,
    Ping,
    Query,
    Response,
    SampleInfohashes,
    decode_message,
    encode_message,
)

# libtorrent 2.x defaults, which most of the public DHT runs with (see the module doc).
LIBTORRENT_UPLOAD_RATE = 8000  # dht_upload_rate_limit, bytes a second
LIBTORRENT_BLOCK_RATE = 5  # dht_block_ratelimit, messages a second per source IP
TYPICAL_MESSAGE_BYTES = 120  # one of our get_peers, find_node or sample_infohashes queries
_TOTAL_RATE = LIBTORRENT_UPLOAD_RATE // TYPICAL_MESSAGE_BYTES
DEFAULT_OUTGOING = RateLimit(
    per_ip_rate=2.0, per_ip_burst=8, total_rate=_TOTAL_RATE, total_burst=_TOTAL_RATE
)
# A lab of our own nodes tolerates more in total; the per-IP rate stays polite.
LAB_OUTGOING = RateLimit(per_ip_rate=2.0, per_ip_burst=8, total_rate=200.0, total_burst=100)
DEFAULT_INCOMING = RateLimit(per_ip_rate=10.0, per_ip_burst=20, total_rate=500.0, total_burst=500)
# Distinct voters that must agree before an external address is believed (BEP 42 "ip").
MIN_VOTERS = 3
# Version string sent as "v": two client letters, two version bytes (BEP 20 style).
DEFAULT_VERSION = b"AT\x00\x01"
MAX_BEP51_INTERVAL = 21600
_FAR = 1 << ID_BITS  # farther than any id: where contacts of unknown id sort


@dataclass(frozen=True)
class NodeConfig:
    """Everything a node can be told; the defaults suit the public DHT (see the module doc)."""

    node_id: bytes | None = None
    # With no node_id, derive a BEP 42 id from this address, or a random one;
    # a new external address learnt from votes then brings a new id.
    external_ip: str | None = None
    family: int = 4  # 4 or 6: the addresses this node talks to (BEP 32)
    # Our own (ip, port)s, never a node; port 0 stands for every port of that IP.
    own_addresses: tuple[Address, ...] = ()
    bootstrap: tuple[Address, ...] = ()
    k: int = 8
    alpha: int = 3
    query_timeout: float = 3.0
    max_attempts: int = 2  # sends to one node within one lookup
    lookup_timeout: float = 60.0
    lookup_max_queries: int = 256
    max_candidates: int = 256
    max_lookups: int = 64
    max_pending: int = 1024  # queries queued or awaiting an answer
    max_queue_wait: float = 10.0  # a query the rate limit holds longer is given up
    outgoing: RateLimit = DEFAULT_OUTGOING
    incoming: RateLimit = DEFAULT_INCOMING
    maintenance_interval: float = 5.0
    refresh_interval: float = 15 * 60.0
    rebootstrap_interval: float = 60.0
    pings_per_tick: int = 4
    max_verifications: int = 16  # pings in flight to nodes that queried us
    token_rotation: float = 300.0
    version: bytes | None = DEFAULT_VERSION
    read_only: bool = False  # BEP 43: ask others not to add us; answer no queries
    enforce_node_id: bool = False  # BEP 42: keep nodes with invalid ids out
    max_per_ip: int = 1
    serve_peers: bool = True  # hand out announced peers in get_peers/sample answers
    max_stored_infohashes: int = 1000
    max_peers_per_infohash: int = 100
    max_values_reply: int = 50
    peer_ttl: float = 30 * 60.0
    sample_interval: int = MAX_BEP51_INTERVAL
    max_samples_reply: int = 20
    # CIDR ranges (IPv4 or IPv6) this node may talk to; None: any address that
    # can be a node of its family.
    allowed_networks: tuple[str, ...] | None = None
    max_events: int = 10_000
    max_replies_queued: int = 1024
    backoff_after: int = 2  # failures in a row before a node rests
    backoff_base: float = 30.0  # first rest, seconds; doubles with each failure
    backoff_max: float = 600.0
    max_backoff_tracked: int = 4096

    def __post_init__(self) -> None:
        if self.family not in (4, 6):
            raise ValueError(f"family must be 4 or 6, not {self.family!r}")
        for cidr in self.allowed_networks or ():
            ipaddress.ip_network(cidr, strict=False)  # ValueError for what is not a range
        if (
            self.external_ip is not None
            and ipaddress.ip_address(self.external_ip).version != self.family
        ):
            raise ValueError(f"external_ip {self.external_ip} is not IPv{self.family}")
        for addr in self.own_addresses:
            _address_key(addr)
        if self.backoff_after < 1 or not 0 < self.backoff_base <= self.backoff_max:
            raise ValueError("backoff_after >= 1 and 0 < backoff_base <= backoff_max")


class LookupKind(enum.Enum):
    FIND_NODE = "find_node"
    GET_PEERS = "get_peers"
    SAMPLE_INFOHASHES = "sample_infohashes"


@dataclass(frozen=True, slots=True)
class LookupStats:
    started_at: float
    finished_at: float
    reason: str  # converged | exhausted | query_budget | deadline | cancelled
    queries_sent: int
    responses: int
    timeouts: int
    errors: int
    retries: int
    nodes_seen: int
    peers: int  # distinct peers found (get_peers)
    closest: tuple[NodeInfo, ...]  # the k closest nodes that answered


@dataclass(frozen=True, slots=True)
class PeersFound:
    lookup_id: int
    infohash: bytes
    peers: tuple[Address, ...]
    source_node: NodeInfo
    received_at: float


@dataclass(frozen=True, slots=True)
class InfohashesSampled:
    lookup_id: int
    source: NodeInfo
    samples: tuple[bytes, ...]
    num: int | None
    interval: int | None
    received_at: float


@dataclass(frozen=True, slots=True)
class LookupFinished:
    lookup_id: int
    kind: LookupKind
    target: bytes
    stats: LookupStats

    @property
    def infohash(self) -> bytes:
        return self.target


@dataclass(frozen=True, slots=True)
class AnnounceReceived:
    """Another node announced (with a valid token) that `peer` has `infohash`."""

    infohash: bytes
    peer: Address
    source_node: NodeInfo
    received_at: float


@dataclass(frozen=True, slots=True)
class ExternalAddressChanged:
    """Enough nodes agree that they see us at `ip`, not at the address in force.

    `voters`: the distinct nodes (by IP) that said so; `previous`: the IP in
    force before (None at first); `node_id`: our id from now on (a new BEP 42
    id for `ip` unless the config fixed the id or the old one already fits).
    """

    ip: str
    voters: int
    previous: str | None
    node_id: bytes
    received_at: float


Event: TypeAlias = (
    PeersFound | InfohashesSampled | LookupFinished | AnnounceReceived | ExternalAddressChanged
)


@dataclass
class NodeStats:
    datagrams_received: int = 0
    malformed: int = 0
    unsolicited: int = 0
    dropped_addresses: int = 0
    queries_received: int = 0
    queries_rate_limited: int = 0
    replies_sent: int = 0
    replies_dropped: int = 0
    queries_sent: int = 0
    timeouts: int = 0
    gave_up_queued: int = 0
    events_dropped: int = 0
    unsolicited_queries: int = 0  # queries from IPs we never sent anything to
    rested: int = 0  # queries not sent because their node was resting (backoff)


class LookupLimitError(RuntimeError):
    """Too many lookups at once; wait for one to finish."""


class _State(enum.Enum):
    NEW = 0
    INFLIGHT = 1
    RESPONDED = 2
    FAILED = 3


@dataclass(slots=True)
class _Candidate:
    addr: Address
    node_id: bytes | None
    distance: int
    state: _State = _State.NEW
    attempts: int = 0


@dataclass(slots=True)
class _Lookup:
    lookup_id: int
    kind: LookupKind
    target: bytes
    started_at: float
    deadline: float
    max_queries: int
    converge: bool
    follow: bool
    respect_interval: bool = False
    candidates: dict[Address, _Candidate] = field(default_factory=dict)
    inflight: int = 0
    queries_sent: int = 0
    responses: int = 0
    timeouts: int = 0
    errors: int = 0
    retries: int = 0
    nodes_seen: int = 0
    peers: set[Address] = field(default_factory=set)


@dataclass(slots=True)
class _Txn:
    tid: bytes
    addr: Address
    data: bytes
    method: str
    lookup: _Lookup | None
    deadline: float  # until sent: give-up time in the queue; then the answer's timeout
    sent_at: float | None = None


@dataclass(slots=True)
class _Failures:
    count: int  # in a row
    until: float  # resting until then


_MAX_PEERS_COUNTED = 10_000
_MAX_SAMPLE_MEMORY = 10_000
_MAX_VOTES = 32
_MAX_VOTERS = 64  # recent voters whose word on our external IP counts
# IPs we sent to, remembered to tell unsolicited queries apart: at our rates
# this covers minutes, longer than a NAT keeps a UDP mapping open.
_MAX_SENT_MEMORY = 16_384
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class DhtNode:
    def __init__(self, config: NodeConfig, *, rng: random.Random, now: float) -> None:
        if min(config.k, config.alpha, config.max_attempts, config.max_candidates) < 1:
            raise ValueError("k, alpha, max_attempts and max_candidates must be at least 1")
        self.config = config
        self._rng = rng
        if config.node_id is not None:
            if len(config.node_id) != 20:
                raise ValueError("node_id must be 20 bytes")
            self.node_id = config.node_id
        elif config.external_ip is not None:
            self.node_id = generate_node_id(config.external_ip, rng)
        else:
            self.node_id = random_id(rng)
        self._networks = (
            None
            if config.allowed_networks is None
            else tuple(ipaddress.ip_network(n, strict=False) for n in config.allowed_networks)
        )
        self._want = WANT_N4 if config.family == 4 else WANT_N6
        self._read_only = config.read_only
        self._config_own = frozenset(_address_key(a) for a in config.own_addresses)
        self._extra_own: frozenset[Address] = frozenset()
        self._own = self._config_own
        self._external_ip = (
            None if config.external_ip is None else str(ipaddress.ip_address(config.external_ip))
        )
        self.routing = RoutingTable(self.node_id, now, k=config.k, max_per_ip=config.max_per_ip)
        self.stats = NodeStats()
        self._now = now
        self._tokens = TokenManager(rng, now, rotate_every=config.token_rotation)
        self._store = PeerStore(
            max_infohashes=config.max_stored_infohashes,
            max_peers=config.max_peers_per_infohash,
            ttl=config.peer_ttl,
        )
        self._out_limit = RateLimiter(config.outgoing, now)
        self._in_limit = RateLimiter(config.incoming, now)
        self._pending: dict[bytes, _Txn] = {}
        self._queue: list[_Txn] = []
        self._replies: deque[tuple[bytes, Address]] = deque()
        self._events: deque[Event] = deque()
        self._lookups: dict[int, _Lookup] = {}
        self._next_lookup_id = 1
        self._next_maintenance = now
        self._next_bootstrap = now
        self._bootstrap_lookup: int | None = None
        self._refresh_lookup: int | None = None
        self._pinging: set[Address] = set()
        self._sample_after: dict[Address, float] = {}
        self._votes: Counter[Address] = Counter()
        self._voters: OrderedDict[str, str] = OrderedDict()  # voter IP -> the IP it saw
        self._failures: OrderedDict[Address, _Failures] = OrderedDict()
        self._sent_to: OrderedDict[str, None] = OrderedDict()

    # --- the I/O boundary --------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Process one datagram that arrived from `addr` at `now`."""
        self._now = now
        self.stats.datagrams_received += 1
        if not self._usable(addr):
            self.stats.dropped_addresses += 1
            return
        addr = (addr[0], addr[1])
        try:
            message = decode_message(data)
        except KrpcError as exc:
            self.stats.malformed += 1
            if exc.transaction_id is not None:
                self._on_bad_query(exc, addr, now)
            return
        if isinstance(message, Response | ErrorReply):
            self._on_reply(message, addr, now)
        else:
            self._on_query(message, addr, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Datagrams the rate limits allow now; the rest wait for the timer."""
        self._now = now
        out: list[tuple[bytes, Address]] = []
        while self._replies:
            data, addr = self._replies.popleft()
            # Answers are paced by the incoming limit per IP; here only the total counts.
            if self._out_limit.allow_total(now):
                out.append((data, addr))
                self._note_sent(addr[0])
                self.stats.replies_sent += 1
            else:
                self.stats.replies_dropped += 1
        waiting = []
        for txn in self._queue:
            if self._out_limit.allow(txn.addr[0], now):
                txn.sent_at = now
                txn.deadline = now + self.config.query_timeout
                out.append((txn.data, txn.addr))
                self._note_sent(txn.addr[0])
                self.stats.queries_sent += 1
            else:
                waiting.append(txn)
        self._queue = waiting
        return out

    def get_timer(self) -> float | None:
        """When `handle_timer` should next run (same clock as `now`)."""
        times = [self._next_maintenance]
        times.extend(txn.deadline for txn in self._pending.values())
        times.extend(lookup.deadline for lookup in self._lookups.values())
        if self._replies:
            times.append(self._now)
        for txn in self._queue:
            times.append(self._now + self._out_limit.wait_time(txn.addr[0], self._now))
        return min(times)

    def handle_timer(self, now: float) -> None:
        self._now = now
        for txn in [t for t in self._pending.values() if t.deadline <= now]:
            self._expire(txn, now)
        for lookup in [lk for lk in self._lookups.values() if lk.deadline <= now]:
            self._finish(lookup, "deadline", now)
        if now >= self._next_maintenance:
            self._next_maintenance = now + self.config.maintenance_interval
            self._maintain(now)
        for lookup in list(self._lookups.values()):
            self._advance(lookup, now)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # --- what the caller can ask for ---------------------------------------

    def bootstrap(self, now: float) -> int:
        """Look up our own id from the bootstrap nodes (and the table); return the lookup id."""
        self._now = now
        if self._bootstrap_lookup in self._lookups:
            return self._bootstrap_lookup
        lookup_id = self.start_find_node(self.node_id, now)
        self._bootstrap_lookup = lookup_id
        self._next_bootstrap = now + self.config.rebootstrap_interval
        return lookup_id

    def start_find_node(self, target: bytes, now: float) -> int:
        return self._start(LookupKind.FIND_NODE, target, now, converge=True, follow=True)

    def start_get_peers(self, infohash: bytes, now: float) -> int:
        """Find peers for `infohash`: PeersFound as they come, then LookupFinished."""
        return self._start(LookupKind.GET_PEERS, infohash, now, converge=True, follow=True)

    def start_sample_infohashes(
        self,
        now: float,
        *,
        target: bytes | None = None,
        nodes: Sequence[Address] = (),
        max_nodes: int = 64,
        follow: bool = True,
        respect_interval: bool = True,
    ) -> int:
        """Crawl with sample_infohashes (BEP 51) from `nodes` and the table, toward `target`.

        Queries up to `max_nodes` nodes closest-first, following the nodes each
        answer names when `follow`; with `respect_interval`, skips nodes whose
        announced interval has not yet passed. InfohashesSampled per answer.
        """
        if target is None:
            target = random_id(self._rng)
        return self._start(
            LookupKind.SAMPLE_INFOHASHES,
            target,
            now,
            converge=False,
            follow=follow,
            extra=nodes,
            max_queries=max_nodes,
            respect_interval=respect_interval,
        )

    def cancel(self, lookup_id: int, now: float) -> None:
        lookup = self._lookups.get(lookup_id)
        if lookup is not None:
            self._finish(lookup, "cancelled", now)

    def add_node(self, addr: Address, now: float) -> None:
        """Ping a contact; it joins the routing table if it answers."""
        self._now = now
        if self._usable(addr):
            addr = (addr[0], addr[1])
            if addr not in self._pinging:
                self._ping(addr, now)

    def set_read_only(self, read_only: bool) -> None:
        """Switch BEP 43 read-only mode: `ro=1` in our queries, no answers to anyone."""
        self._read_only = bool(read_only)

    @property
    def read_only(self) -> bool:
        return self._read_only

    def set_own_addresses(self, addresses: Iterable[Address]) -> None:
        """Our own addresses besides the config's: sockets, the external address once learnt.

        Replaces what an earlier call set. None of them is ever queried, answered
        or kept as a node; the routing table forgets any it holds. Port 0 stands
        for every port of that IP: beware, behind a carrier-grade NAT other
        subscribers share our external IP. ValueError for what is not an address.
        """
        self._extra_own = frozenset(_address_key(a) for a in addresses)
        self._own = self._config_own | self._extra_own
        for entry in [e for e in self.routing if self._is_own(e.addr)]:
            self.routing.remove(entry.addr)
        for bucket in self.routing.buckets:
            bucket.replacements = [r for r in bucket.replacements if not self._is_own(r.addr)]

    def add_own_address(self, addr: Address) -> None:
        """Add one address to those `set_own_addresses` set."""
        self.set_own_addresses([*self._extra_own, addr])

    @property
    def own_addresses(self) -> tuple[Address, ...]:
        return tuple(sorted(self._own))

    def store_peer(self, infohash: bytes, peer: Address, now: float) -> None:
        """Hold `peer` for `infohash` as if it had been announced to us."""
        self._store.add(infohash, peer, now)

    @property
    def active_lookups(self) -> int:
        return len(self._lookups)

    @property
    def external_address(self) -> Address | None:
        """The address (IP and port) most answers said they saw us at (BEP 42 "ip")."""
        if not self._votes:
            return None
        return self._votes.most_common(1)[0][0]

    @property
    def external_ip(self) -> str | None:
        """The external IP in force: the config's, then what enough voters agreed on."""
        return self._external_ip

    def resting(self, addr: Address, now: float) -> bool:
        """Whether `addr` is in backoff after failing repeatedly (not queried until it ends)."""
        entry = self._failures.get((addr[0], addr[1]))
        return entry is not None and entry.until > now

    # --- answering ---------------------------------------------------------

    def _on_bad_query(self, exc: KrpcError, addr: Address, now: float) -> None:
        self._note_query_from(addr)
        if self._read_only or not self._in_limit.allow(addr[0], now):
            return
        assert exc.transaction_id is not None
        reply = ErrorReply(
            transaction_id=exc.transaction_id,
            code=exc.code,
            message=exc.reason.encode()[:200],
            requester=addr,
            version=self.config.version,
        )
        self._queue_reply(reply, addr)

    def _on_query(self, query: Query, addr: Address, now: float) -> None:
        self.stats.queries_received += 1
        self._note_query_from(addr)
        if self._read_only:
            return
        if not self._in_limit.allow(addr[0], now):
            self.stats.queries_rate_limited += 1
            return
        if not query.read_only:
            self.routing.node_queried(query.sender_id, addr, now)
            self._verify_newcomer(query.sender_id, addr, now)
        reply: Response | ErrorReply
        cfg = self.config
        if isinstance(query, Ping):
            reply = self._response(query, addr)
        elif isinstance(query, FindNode):
            reply = self._response(query, addr, contacts=self._contacts(query.target, query.want))
        elif isinstance(query, GetPeers):
            reply = self._get_peers_reply(query, query.infohash, addr, now, query.want)
        elif isinstance(query, AnnouncePeer):
            reply = self._announce_reply(query, addr, now)
        elif isinstance(query, SampleInfohashes):
            samples = self._store.sample(cfg.max_samples_reply, self._rng)
            reply = self._response(
                query,
                addr,
                contacts=self._contacts(query.target, query.want),
                samples=tuple(samples) if cfg.serve_peers else (),
                num=len(self._store) if cfg.serve_peers else 0,
                interval=cfg.sample_interval,
            )
        elif query.infohash is not None:
            # Unknown methods that carry a target are answered like their kin,
            # for forward compatibility, as libtorrent does.
            reply = self._get_peers_reply(query, query.infohash, addr, now, ())
        elif query.target is not None:
            reply = self._response(query, addr, contacts=self._contacts(query.target, ()))
        else:
            reply = self._error(query.transaction_id, METHOD_UNKNOWN, b"Method Unknown", addr)
        self._queue_reply(reply, addr)

    def _get_peers_reply(
        self, query: Query, infohash: bytes, addr: Address, now: float, want: tuple[bytes, ...]
    ) -> Response:
        token = self._tokens.token_for(addr[0], now)
        peers: list[Address] = []
        if self.config.serve_peers:
            peers = self._store.peers(infohash, now, self.config.max_values_reply, self._rng)
        if peers:
            return self._response(query, addr, token=token, values=tuple(peers))
        return self._response(query, addr, token=token, contacts=self._contacts(infohash, want))

    def _announce_reply(
        self, query: AnnouncePeer, addr: Address, now: float
    ) -> Response | ErrorReply:
        if not self._tokens.verify(query.token, addr[0], now):
            return self._error(query.transaction_id, PROTOCOL_ERROR, b"invalid token", addr)
        port = addr[1] if query.implied_port else query.port
        if port == 0:
            return self._error(query.transaction_id, PROTOCOL_ERROR, b"invalid port", addr)
        peer = (addr[0], port)
        if self.config.serve_peers:
            self._store.add(query.infohash, peer, now)
        source = NodeInfo(query.sender_id, addr[0], addr[1])
        self._emit(AnnounceReceived(query.infohash, peer, source, now))
        return self._response(query, addr)

    def _response(
        self,
        query: Query,
        addr: Address,
        *,
        contacts: tuple[NodeInfo, ...] = (),
        values: tuple[Address, ...] = (),
        token: bytes | None = None,
        samples: tuple[bytes, ...] | None = None,
        num: int | None = None,
        interval: int | None = None,
    ) -> Response:
        v4 = self.config.family == 4
        return Response(
            transaction_id=query.transaction_id,
            sender_id=self.node_id,
            nodes=contacts if v4 else (),
            nodes6=() if v4 else contacts,
            values=values,
            token=token,
            samples=samples,
            num=num,
            interval=interval,
            requester=addr,
            version=self.config.version,
        )

    def _error(self, tid: bytes, code: int, message: bytes, addr: Address) -> ErrorReply:
        return ErrorReply(
            transaction_id=tid,
            code=code,
            message=message,
            requester=addr,
            version=self.config.version,
        )

    def _contacts(self, target: bytes, want: tuple[bytes, ...]) -> tuple[NodeInfo, ...]:
        """The closest nodes we know, all of our own family: the asker's, since we
        only talk to that one. An asker whose `want` names only the other family
        gets none: our table holds none of those (BEP 32)."""
        if want and self._want not in want:
            return ()
        return tuple(
            NodeInfo(e.node_id, e.addr[0], e.addr[1])
            for e in self.routing.closest(target, self.config.k, self._now)
        )

    def _queue_reply(self, reply: Message, addr: Address) -> None:
        if len(self._replies) >= self.config.max_replies_queued:
            self.stats.replies_dropped += 1
            return
        self._replies.append((encode_message(reply), addr))

    # --- replies to our queries --------------------------------------------

    def _on_reply(self, message: Response | ErrorReply, addr: Address, now: float) -> None:
        txn = self._pending.get(message.transaction_id)
        if txn is None or txn.addr != addr or txn.sent_at is None:
            self.stats.unsolicited += 1
            return
        del self._pending[txn.tid]
        self._pinging.discard(addr)
        lookup = (
            txn.lookup if txn.lookup is not None and txn.lookup.lookup_id in self._lookups else None
        )
        if isinstance(message, ErrorReply):
            # "Method unknown" to a BEP 51 query only says the node predates BEP 51.
            if not (message.code == METHOD_UNKNOWN and txn.method == "sample_infohashes"):
                self._note_failure(addr, now)
            if lookup is not None:
                lookup.errors += 1
                self._settle(lookup, addr, _State.FAILED)
                self._advance(lookup, now)
            return
        if message.sender_id == self.node_id:
            # Our own id answering: a contact that pointed us at ourselves, or a
            # node copying our id. Nothing to learn from it.
            if lookup is not None:
                self._settle(lookup, addr, _State.FAILED)
                self._advance(lookup, now)
            return
        self._failures.pop(addr, None)
        if message.requester is not None:
            self._vote(message.requester, addr, now)
        id_ok = not self.config.enforce_node_id or is_valid_node_id(message.sender_id, addr[0])
        if id_ok:
            self.routing.node_responded(message.sender_id, addr, now)
        if lookup is None:
            return
        lookup.responses += 1
        candidate = lookup.candidates.get(addr)
        if candidate is not None:
            candidate.node_id = message.sender_id
            candidate.distance = _distance(message.sender_id, lookup.target)
        self._settle(lookup, addr, _State.RESPONDED)
        source = NodeInfo(message.sender_id, addr[0], addr[1])
        if lookup.kind is LookupKind.GET_PEERS and message.values:
            if len(lookup.peers) < _MAX_PEERS_COUNTED:
                lookup.peers.update(message.values)
            self._emit(PeersFound(lookup.lookup_id, lookup.target, message.values, source, now))
        if lookup.kind is LookupKind.SAMPLE_INFOHASHES and message.samples is not None:
            if message.interval is not None:
                self._remember_interval(addr, now + min(message.interval, MAX_BEP51_INTERVAL))
            self._emit(
                InfohashesSampled(
                    lookup.lookup_id,
                    source,
                    message.samples,
                    message.num,
                    message.interval,
                    now,
                )
            )
        if lookup.follow:
            for node in message.nodes if self.config.family == 4 else message.nodes6:
                self._add_candidate(lookup, node.addr, node.node_id, now)
        self._advance(lookup, now)

    def _expire(self, txn: _Txn, now: float) -> None:
        del self._pending[txn.tid]
        self._pinging.discard(txn.addr)
        if txn.sent_at is None:
            # Never left: the rate limit held it too long. Not the node's fault.
            self._queue = [t for t in self._queue if t is not txn]
            self.stats.gave_up_queued += 1
        else:
            self.stats.timeouts += 1
            self.routing.node_failed(txn.addr, now)
            self._note_failure(txn.addr, now)
        lookup = txn.lookup
        if lookup is None or lookup.lookup_id not in self._lookups:
            return
        lookup.timeouts += 1
        candidate = lookup.candidates.get(txn.addr)
        if candidate is not None and candidate.state is _State.INFLIGHT:
            lookup.inflight -= 1
            if candidate.attempts < self.config.max_attempts and txn.sent_at is not None:
                candidate.state = _State.NEW
                lookup.retries += 1
            else:
                candidate.state = _State.FAILED

    def _settle(self, lookup: _Lookup, addr: Address, state: _State) -> None:
        candidate = lookup.candidates.get(addr)
        if candidate is not None and candidate.state is _State.INFLIGHT:
            candidate.state = state
            lookup.inflight -= 1

    # --- lookups -----------------------------------------------------------

    def _start(
        self,
        kind: LookupKind,
        target: bytes,
        now: float,
        *,
        converge: bool,
        follow: bool,
        extra: Sequence[Address] = (),
        max_queries: int | None = None,
        respect_interval: bool = False,
    ) -> int:
        self._now = now
        if len(target) != 20:
            raise ValueError("a lookup target must be 20 bytes")
        if len(self._lookups) >= self.config.max_lookups:
            raise LookupLimitError(f"{len(self._lookups)} lookups already running")
        lookup = _Lookup(
            lookup_id=self._next_lookup_id,
            kind=kind,
            target=target,
            started_at=now,
            deadline=now + self.config.lookup_timeout,
            max_queries=max_queries if max_queries is not None else self.config.lookup_max_queries,
            converge=converge,
            follow=follow,
            respect_interval=respect_interval,
        )
        self._next_lookup_id += 1
        self._lookups[lookup.lookup_id] = lookup
        for addr in extra:
            self._add_candidate(lookup, (addr[0], addr[1]), None, now)
        if not extra or follow:
            known = self.routing.closest(target, self.config.k, now)
            for entry in known:
                self._add_candidate(lookup, entry.addr, entry.node_id, now)
            if len(known) < self.config.k:
                for addr in self.config.bootstrap:
                    self._add_candidate(lookup, addr, None, now)
        self._advance(lookup, now)
        return lookup.lookup_id

    def _add_candidate(
        self, lookup: _Lookup, addr: Address, node_id: bytes | None, now: float
    ) -> None:
        if node_id == self.node_id or not self._usable(addr) or addr[1] == 0:
            return
        if self.resting(addr, now):
            self.stats.rested += 1
            return
        if (
            node_id is not None
            and self.config.enforce_node_id
            and not is_valid_node_id(node_id, addr[0])
        ):
            return
        existing = lookup.candidates.get(addr)
        if existing is not None:
            if existing.node_id is None and node_id is not None and existing.state is _State.NEW:
                existing.node_id = node_id
                existing.distance = _distance(node_id, lookup.target)
            return
        distance = _FAR if node_id is None else _distance(node_id, lookup.target)
        if len(lookup.candidates) >= self.config.max_candidates:
            farthest = max(
                (c for c in lookup.candidates.values() if c.state in (_State.NEW, _State.FAILED)),
                key=lambda c: c.distance,
                default=None,
            )
            if farthest is None or farthest.distance <= distance:
                return
            del lookup.candidates[farthest.addr]
        lookup.candidates[addr] = _Candidate(addr, node_id, distance)
        lookup.nodes_seen += 1
        if lookup.respect_interval and self._sample_after.get(addr, now) > now:
            lookup.candidates[addr].state = _State.FAILED

    def _advance(self, lookup: _Lookup, now: float) -> None:
        if lookup.lookup_id not in self._lookups:
            return
        cfg = self.config
        if self._failures:
            for candidate in lookup.candidates.values():
                if candidate.state is _State.NEW and self.resting(candidate.addr, now):
                    candidate.state = _State.FAILED
                    self.stats.rested += 1
        live = sorted(
            (c for c in lookup.candidates.values() if c.state is not _State.FAILED),
            key=lambda c: c.distance,
        )
        if lookup.converge:
            top = live[: cfg.k]
            if top and all(c.state is _State.RESPONDED for c in top):
                self._finish(lookup, "converged", now)
                return
            ready = [c for c in top if c.state is _State.NEW]
        else:
            ready = [c for c in live if c.state is _State.NEW]
        for candidate in ready:
            if lookup.inflight >= cfg.alpha or lookup.queries_sent >= lookup.max_queries:
                break
            if len(self._pending) >= cfg.max_pending:
                break
            self._query_candidate(lookup, candidate, now)
        if lookup.inflight == 0:
            if lookup.queries_sent >= lookup.max_queries and ready:
                self._finish(lookup, "query_budget", now)
            elif not ready:
                self._finish(lookup, "exhausted", now)

    def _query_candidate(self, lookup: _Lookup, candidate: _Candidate, now: float) -> None:
        tid = self._new_tid()
        cfg = self.config
        query: Query
        if lookup.kind is LookupKind.GET_PEERS:
            query = GetPeers(
                transaction_id=tid,
                sender_id=self.node_id,
                infohash=lookup.target,
                want=(self._want,),
                version=cfg.version,
                read_only=self._read_only,
            )
        elif lookup.kind is LookupKind.SAMPLE_INFOHASHES:
            query = SampleInfohashes(
                transaction_id=tid,
                sender_id=self.node_id,
                target=lookup.target,
                want=(self._want,),
                version=cfg.version,
                read_only=self._read_only,
            )
        else:
            query = FindNode(
                transaction_id=tid,
                sender_id=self.node_id,
                target=lookup.target,
                want=(self._want,),
                version=cfg.version,
                read_only=self._read_only,
            )
        self._enqueue(
            _Txn(tid, candidate.addr, encode_message(query), lookup.kind.value, lookup, 0.0)
        )
        candidate.state = _State.INFLIGHT
        candidate.attempts += 1
        lookup.inflight += 1
        lookup.queries_sent += 1

    def _finish(self, lookup: _Lookup, reason: str, now: float) -> None:
        del self._lookups[lookup.lookup_id]
        self._queue = [t for t in self._queue if t.lookup is not lookup]
        for tid in [
            t.tid for t in self._pending.values() if t.lookup is lookup and t.sent_at is None
        ]:
            del self._pending[tid]
        answered = sorted(
            (c for c in lookup.candidates.values() if c.state is _State.RESPONDED and c.node_id),
            key=lambda c: c.distance,
        )[: self.config.k]
        stats = LookupStats(
            started_at=lookup.started_at,
            finished_at=now,
            reason=reason,
            queries_sent=lookup.queries_sent,
            responses=lookup.responses,
            timeouts=lookup.timeouts,
            errors=lookup.errors,
            retries=lookup.retries,
            nodes_seen=lookup.nodes_seen,
            peers=len(lookup.peers),
            closest=tuple(NodeInfo(c.node_id, c.addr[0], c.addr[1]) for c in answered if c.node_id),
        )
        self._emit(LookupFinished(lookup.lookup_id, lookup.kind, lookup.target, stats))

    # --- maintenance -------------------------------------------------------

    def _maintain(self, now: float) -> None:
        self._store.purge(now)
        cfg = self.config
        # A table this small means bootstrap found an empty network: try again, paced.
        if (
            len(self.routing) < cfg.k
            and cfg.bootstrap
            and self._bootstrap_lookup not in self._lookups
            and now >= self._next_bootstrap
            and len(self._lookups) < cfg.max_lookups
        ):
            self.bootstrap(now)
        if self._refresh_lookup not in self._lookups and len(self.routing) > 0:
            stale = self.routing.stale_buckets(now, cfg.refresh_interval)
            if stale and len(self._lookups) < cfg.max_lookups:
                bucket = stale[0]
                bucket.last_changed = now
                self._refresh_lookup = self.start_find_node(
                    self.routing.random_id_in(bucket, self._rng), now
                )
        for entry in self.routing.to_ping(now)[: cfg.pings_per_tick]:
            if entry.addr not in self._pinging:
                self._ping(entry.addr, now)

    def _verify_newcomer(self, node_id: bytes, addr: Address, now: float) -> None:
        """Ping a node that queried us and would fit the table; its answer adds it.

        A query's source could be forged, so only an answer to our ping counts.
        """
        if (
            addr in self._pinging
            or len(self._pinging) >= self.config.max_verifications
            or self.routing.by_addr(addr) is not None
            or not self.routing.wants(node_id, now)
        ):
            return
        if self.config.enforce_node_id and not is_valid_node_id(node_id, addr[0]):
            return
        self._ping(addr, now)

    def _ping(self, addr: Address, now: float) -> None:
        if len(self._pending) >= self.config.max_pending:
            return
        if self.resting(addr, now):
            self.stats.rested += 1
            return
        tid = self._new_tid()
        query = Ping(
            transaction_id=tid,
            sender_id=self.node_id,
            version=self.config.version,
            read_only=self._read_only,
        )
        self._pinging.add(addr)
        self._enqueue(_Txn(tid, addr, encode_message(query), "ping", None, 0.0))

    # --- helpers -----------------------------------------------------------

    def _enqueue(self, txn: _Txn) -> None:
        txn.deadline = self._now + self.config.max_queue_wait
        self._pending[txn.tid] = txn
        self._queue.append(txn)

    def _new_tid(self) -> bytes:
        for _ in range(64):
            tid = self._rng.getrandbits(32).to_bytes(4, "big")
            if tid not in self._pending:
                return tid
        raise RuntimeError("no free transaction id")  # needs >2**31 pending: unreachable

    def _usable(self, addr: object) -> bool:
        if not (isinstance(addr, tuple) and len(addr) >= 2):
            return False
        ip, port = addr[0], addr[1]
        if not isinstance(ip, str) or not isinstance(port, int) or not 0 < port <= 0xFFFF:
            return False
        try:
            parsed = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if parsed.version != self.config.family or not _can_be_node(parsed):
            return False
        if self._own and self._is_own((str(parsed), port)):
            return False
        return self._networks is None or any(parsed in net for net in self._networks)

    def _is_own(self, addr: Address) -> bool:
        key = _address_key(addr)
        return key in self._own or (key[0], 0) in self._own

    def _emit(self, event: Event) -> None:
        if len(self._events) >= self.config.max_events:
            self._events.popleft()
            self.stats.events_dropped += 1
        self._events.append(event)

    def _vote(self, seen: Address, voter: Address, now: float) -> None:
        """Count one answer's word (BEP 42 "ip") on where it saw us; act on a majority."""
        if seen in self._votes or len(self._votes) < _MAX_VOTES:
            self._votes[seen] += 1
        try:
            parsed = ipaddress.ip_address(seen[0])
        except ValueError:
            return
        if parsed.version != self.config.family or not _can_be_node(parsed):
            return
        # One vote per voter IP, its latest; many ports of one IP are one voter.
        self._voters[voter[0]] = str(parsed)
        self._voters.move_to_end(voter[0])
        while len(self._voters) > _MAX_VOTERS:
            self._voters.popitem(last=False)
        leader, count = Counter(self._voters.values()).most_common(1)[0]
        if leader == self._external_ip or count < MIN_VOTERS or 2 * count <= len(self._voters):
            return
        previous, self._external_ip = self._external_ip, leader
        node_id = self.node_id
        if self.config.node_id is None and not is_valid_node_id(node_id, leader):
            node_id = generate_node_id(leader, self._rng)
        self._emit(ExternalAddressChanged(leader, count, previous, node_id, now))
        if node_id != self.node_id:
            self._change_id(node_id, now)

    def _change_id(self, node_id: bytes, now: float) -> None:
        """Take a new id: the table is rebuilt around it, then we look for our new neighbours."""
        self.node_id = node_id
        self.routing.reset_own_id(node_id, now)
        if len(self._lookups) < self.config.max_lookups and (
            len(self.routing) > 0 or self.config.bootstrap
        ):
            self._bootstrap_lookup = self.start_find_node(node_id, now)

    def _note_failure(self, addr: Address, now: float) -> None:
        """A timeout or an error answer: after `backoff_after` in a row the node rests."""
        cfg = self.config
        entry = self._failures.pop(addr, None)
        count = 1 if entry is None else entry.count + 1
        until = now
        if count >= cfg.backoff_after:
            doublings = min(count - cfg.backoff_after, 32)
            until = now + min(cfg.backoff_base * 2**doublings, cfg.backoff_max)
        self._failures[addr] = _Failures(count, until)
        while len(self._failures) > cfg.max_backoff_tracked:
            self._failures.popitem(last=False)

    def _note_sent(self, ip: str) -> None:
        if ip in self._sent_to:
            self._sent_to.move_to_end(ip)
            return
        self._sent_to[ip] = None
        if len(self._sent_to) > _MAX_SENT_MEMORY:
            self._sent_to.popitem(last=False)

    def _note_query_from(self, addr: Address) -> None:
        if addr[0] not in self._sent_to:
            self.stats.unsolicited_queries += 1

    def _remember_interval(self, addr: Address, until: float) -> None:
        if len(self._sample_after) >= _MAX_SAMPLE_MEMORY:
            for key in [k for k, t in self._sample_after.items() if t <= self._now]:
                del self._sample_after[key]
            if len(self._sample_after) >= _MAX_SAMPLE_MEMORY:
                self._sample_after.pop(next(iter(self._sample_after)))
        self._sample_after[addr] = until


def _distance(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def _can_be_node(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for what is never a DHT node, whatever the fence: see the module doc."""
    if ip.is_unspecified or ip.is_multicast or ip == _BROADCAST:
        return False
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None)


def _address_key(addr: Address) -> Address:
    """(canonical IP text, port); ValueError for what is not an address."""
    ip, port = addr[0], addr[1]
    if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port!r} out of range")
    return (str(ipaddress.ip_address(ip)), port)
