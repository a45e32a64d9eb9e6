"""Kad2 source searches over asyncio UDP: who does Kad say holds a file?

A search, bounded in time, datagrams and contacts:

1. bootstrap: BOOTSTRAP_REQ to the given nodes; each answer names its
   sender (id, address) and some of its contacts;
2. lookup: REQ (FIND_VALUE) to the closest unasked nodes, `alpha` at a
   time, toward the file's Kad id, until the closest `k` known nodes have
   been asked or the lookup's time is up;
3. sources: SEARCH_SOURCE_REQ to the closest nodes that answered, and the
   sources in the SEARCH_RES they send back (aMule sends none when it
   holds none) collected until the results window closes.

Every datagram goes through the sans-I/O codec with its limits; one that
cannot be read is counted and dropped, so a hostile peer costs us a
datagram, never the search. Being a well-behaved node means keeping under
the flood limits aMule applies to each sender address
(kademlia/net/PacketTracking.cpp: per minute 2 BOOTSTRAP_REQ, 10 REQ, 3
SEARCH_SOURCE_REQ, 2 PING): `RateLimiter` allows half of each, per node
address, across searches, and a global pace on every datagram we send.
PINGs are answered with a PONG, nothing else is: we are a client of Kad,
not a storing node.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from atalaya.networks.ed2k import kad
from atalaya.networks.ed2k.wire import Ed2kError

Endpoint = tuple[str, int]

# Per node address, per request opcode: (burst, seconds per further request),
# half of what aMule tolerates from one address.
REQUEST_LIMITS: Final[dict[int, tuple[int, float]]] = {
    kad.BOOTSTRAP_REQ: (1, 60.0),
    kad.REQ: (5, 12.0),
    kad.SEARCH_SOURCE_REQ: (1, 30.0),
    kad.PING: (1, 60.0),
}
MAX_TRACKED_ADDRESSES: Final = 4096


class RateLimiter:
    """Token buckets per (address, opcode); `now` is passed in (monotonic seconds)."""

    def __init__(self, limits: dict[int, tuple[int, float]] | None = None) -> None:
        self.limits = dict(REQUEST_LIMITS if limits is None else limits)
        self._buckets: dict[tuple[str, int], tuple[float, float]] = {}

    def _level(self, ip: str, opcode: int, now: float) -> float:
        burst, every = self.limits[opcode]
        tokens, at = self._buckets.get((ip, opcode), (float(burst), now))
        return min(float(burst), tokens + max(0.0, now - at) / every)

    def wait_time(self, ip: str, opcode: int, now: float) -> float:
        """Seconds until a request may go (0 if now)."""
        if opcode not in self.limits:
            return 0.0
        level = self._level(ip, opcode, now)
        return 0.0 if level >= 1.0 else (1.0 - level) * self.limits[opcode][1]

    def take(self, ip: str, opcode: int, now: float) -> bool:
        """Spend a request's token if there is one."""
        if opcode not in self.limits:
            return True
        level = self._level(ip, opcode, now)
        if level < 1.0:
            return False
        if len(self._buckets) >= MAX_TRACKED_ADDRESSES:
            self._forget_full(now)
        self._buckets[(ip, opcode)] = (level - 1.0, now)
        return True

    def _forget_full(self, now: float) -> None:
        for (ip, opcode), _ in list(self._buckets.items()):
            if self._level(ip, opcode, now) >= self.limits[opcode][0]:
                del self._buckets[(ip, opcode)]
        while len(self._buckets) >= MAX_TRACKED_ADDRESSES:
            del self._buckets[next(iter(self._buckets))]


@dataclass(frozen=True)
class KadSearchConfig:
    alpha: int = 3  # lookups in flight
    k: int = 6  # closest nodes that must have been asked before sources are asked
    source_nodes: int = 6  # nodes asked for sources
    max_contacts: int = 200  # known contacts kept per search
    max_queries: int = 40  # REQs per search
    max_sources: int = 100
    lookup_timeout: float = 2.0  # per REQ / BOOTSTRAP_REQ
    results_window: float = 4.0  # after the last SEARCH_SOURCE_REQ
    total_timeout: float = 30.0
    send_interval: float = 0.02  # global pace: at most 50 datagrams a second
    max_wait_for_rate: float = 45.0  # longest we wait for a node's rate limit
    # Contacts on 127/8 are refused (a hostile node could point our requests
    # at this machine) unless the nodes themselves are there, as in tests.
    allow_loopback: bool = False


@dataclass(frozen=True)
class KadSource:
    """A source Kad gave, with the node that gave it and when its answer arrived."""

    source: kad.Source
    node: Endpoint
    seen_at: float  # monotonic

    @property
    def key(self) -> tuple[bytes, str | None, int | None]:
        return (self.source.user_hash, self.source.ip, self.source.tcp_port)


@dataclass
class KadSearchResult:
    target: bytes
    sources: list[KadSource] = field(default_factory=list)
    nodes_answered: int = 0
    queries: int = 0
    source_requests: int = 0
    malformed: int = 0
    unexpected: int = 0
    seconds: float = 0.0

    @property
    def reachable(self) -> list[KadSource]:
        return [s for s in self.sources if s.source.reachable]

    @property
    def firewalled(self) -> list[KadSource]:
        return [s for s in self.sources if not s.source.reachable]


@dataclass
class _Node:
    contact: kad.Contact
    asked: bool = False
    answered: bool = False


def _distance(a: int, b: int) -> int:
    return a ^ b


def _usable(ip: str, port: int, *, allow_loopback: bool) -> bool:
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    if address.is_loopback and not allow_loopback:
        return False
    return 0 < port < 65536 and not (
        address.is_unspecified or address.is_multicast or address.is_reserved
    )


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: KadClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(addr) >= 2 and isinstance(addr[0], str) and isinstance(addr[1], int):
            self.client.datagram_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable and the like: the lookup's timeouts deal with them.
        return


class KadClient:
    """One UDP socket that runs Kad source searches, one at a time; see the module doc."""

    def __init__(
        self,
        bind_ip: str = "0.0.0.0",  # noqa: S104 - the caller chooses; --bind narrows it
        bind_port: int = 0,
        config: KadSearchConfig | None = None,
        *,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bind = (bind_ip, bind_port)
        self.config = config or KadSearchConfig()
        self.limiter = limiter or RateLimiter()
        self.clock = clock
        self.malformed = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._queue: asyncio.Queue[tuple[kad.KadMessage, Endpoint, float]] | None = None
        self._last_send = 0.0
        self._lock = asyncio.Lock()
        # Nodes that answered us, kept between searches (bounded): a node
        # asked to bootstrap us again within a minute would drop the ask.
        self.known: dict[Endpoint, kad.Contact] = {}

    async def start(self) -> None:
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=1024)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=self.bind
        )
        self._transport = transport

    @property
    def local_address(self) -> Endpoint:
        if self._transport is None:
            raise RuntimeError("the Kad client is not started")
        sock = self._transport.get_extra_info("sockname")
        return (str(sock[0]), int(sock[1]))

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    async def __aenter__(self) -> KadClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- datagrams -------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Endpoint) -> None:
        """Parse one datagram (never raises): queue a message, answer a PING, drop the rest."""
        now = self.clock()
        try:
            message = kad.decode(data)
        except (Ed2kError, ValueError, OverflowError):
            self.malformed += 1
            return
        if message is None:
            return
        if isinstance(message, kad.Ping):
            if self.limiter.take(addr[0], kad.PING, now):
                self._send_now(kad.Pong(addr[1]), addr)
            return
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait((message, addr, now))

    def _send_now(self, message: kad.KadMessage, addr: Endpoint) -> None:
        if self._transport is not None:
            self._transport.sendto(kad.encode(message), addr)

    async def _send(self, message: kad.KadMessage, addr: Endpoint, deadline: float) -> bool:
        """Send a request when the node's rate limit and the global pace allow; False if
        that would be after `deadline` (or later than the longest wait allowed)."""
        opcode = kad.encode(message)[1]
        wait = self.limiter.wait_time(addr[0], opcode, self.clock())
        if wait > self.config.max_wait_for_rate or self.clock() + wait > deadline:
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        pace = self._last_send + self.config.send_interval - self.clock()
        if pace > 0:
            await asyncio.sleep(pace)
        if not self.limiter.take(addr[0], opcode, self.clock()):
            return False
        self._last_send = self.clock()
        self._send_now(message, addr)
        return True

    async def _receive(self, until: float) -> tuple[kad.KadMessage, Endpoint, float] | None:
        assert self._queue is not None
        left = until - self.clock()
        if left <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), left)
        except TimeoutError:
            return None

    def _drain(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            self._queue.get_nowait()

    # -- a search --------------------------------------------------------------

    async def find_sources(
        self, file_hash: bytes, file_size: int, bootstrap: Iterable[Endpoint]
    ) -> KadSearchResult:
        """The sources Kad knows for `file_hash`, asked of the nodes near its Kad id."""
        if self._transport is None:
            raise RuntimeError("the Kad client is not started")
        async with self._lock:
            malformed_before = self.malformed
            begin = self.clock()
            result = KadSearchResult(file_hash)
            try:
                await self._search(file_hash, file_size, list(bootstrap), begin, result)
            finally:
                result.malformed = self.malformed - malformed_before
                result.seconds = self.clock() - begin
            return result

    async def _search(
        self,
        file_hash: bytes,
        file_size: int,
        bootstrap: list[Endpoint],
        begin: float,
        result: KadSearchResult,
    ) -> None:
        cfg = self.config
        target = kad.kad_id_from_hash(file_hash)
        deadline = begin + cfg.total_timeout
        nodes: dict[Endpoint, _Node] = {}
        self._drain()

        def usable(endpoint: Endpoint) -> bool:
            return _usable(*endpoint, allow_loopback=cfg.allow_loopback)

        def learn(contact: kad.Contact) -> None:
            endpoint = (contact.ip, contact.udp_port)
            if endpoint in nodes or not usable(endpoint) or contact.version < 2:
                return
            if len(nodes) >= cfg.max_contacts:
                farthest = max(nodes, key=lambda e: _distance(nodes[e].contact.node_id, target))
                if _distance(contact.node_id, target) >= _distance(
                    nodes[farthest].contact.node_id, target
                ):
                    return
                del nodes[farthest]
            nodes[endpoint] = _Node(contact)

        def handle(message: kad.KadMessage, addr: Endpoint, at: float) -> None:
            if isinstance(message, kad.BootstrapRes):
                learn(kad.Contact(message.node_id, addr[0], addr[1], message.tcp_port, 8))
                if addr in nodes:
                    nodes[addr].answered = True
                    result.nodes_answered += 1
                for contact in message.contacts:
                    learn(contact)
            elif isinstance(message, kad.Res) and message.target == target:
                node = nodes.get(addr)
                if node is None or not node.asked:
                    result.unexpected += 1
                    return
                if not node.answered:
                    node.answered = True
                    result.nodes_answered += 1
                for contact in message.contacts:
                    learn(contact)
            elif isinstance(message, kad.SearchRes) and message.target == target:
                for item in message.results:
                    source = item.source()
                    if source is None:
                        result.unexpected += 1
                        continue
                    found = KadSource(source, addr, at)
                    if len(result.sources) < cfg.max_sources and found.key not in {
                        s.key for s in result.sources
                    }:
                        result.sources.append(found)
            else:
                result.unexpected += 1

        async def pump(until: float, done: Callable[[], bool]) -> None:
            while not done():
                got = await self._receive(min(until, deadline))
                if got is None:
                    return
                handle(*got)

        # 1. bootstrap, from what earlier searches learnt and from the given nodes
        for contact in list(self.known.values()):
            learn(contact)
        asked = 0
        for endpoint in bootstrap:
            if endpoint in nodes or not usable(endpoint):
                continue
            if self.limiter.wait_time(endpoint[0], kad.BOOTSTRAP_REQ, self.clock()) > 0:
                continue
            asked += int(await self._send(kad.BootstrapReq(), endpoint, deadline))
        if asked:
            await pump(
                min(deadline, self.clock() + cfg.lookup_timeout),
                lambda: sum(n.answered for n in nodes.values()) >= asked,
            )

        # 2. lookup
        def closest(count: int) -> list[_Node]:
            ranked = sorted(nodes.values(), key=lambda n: _distance(n.contact.node_id, target))
            return ranked[:count]

        while self.clock() < deadline and result.queries < cfg.max_queries:
            pending = [n for n in closest(cfg.k) if not n.asked]
            if not pending:
                break
            for node in pending[: cfg.alpha]:
                node.asked = True
                endpoint = (node.contact.ip, node.contact.udp_port)
                request = kad.Req(kad.FIND_VALUE, target, node.contact.node_id)
                if await self._send(request, endpoint, deadline):
                    result.queries += 1
            batch = pending[: cfg.alpha]
            await pump(
                min(deadline, self.clock() + cfg.lookup_timeout),
                lambda batch=batch: all(n.answered for n in batch),  # type: ignore[misc]
            )

        for endpoint, node in nodes.items():
            if node.answered and len(self.known) < cfg.max_contacts:
                self.known[endpoint] = node.contact
            elif node.asked and not node.answered:
                self.known.pop(endpoint, None)

        # 3. sources, from the closest nodes that answered
        ask = [n for n in closest(cfg.max_contacts) if n.answered][: cfg.source_nodes]
        request_source = kad.SearchSourceReq(target, 0, file_size)
        for node in ask:
            endpoint = (node.contact.ip, node.contact.udp_port)
            if await self._send(request_source, endpoint, deadline):
                result.source_requests += 1
        if result.source_requests:
            await pump(
                min(deadline, self.clock() + cfg.results_window),
                lambda: len(result.sources) >= cfg.max_sources,
            )
