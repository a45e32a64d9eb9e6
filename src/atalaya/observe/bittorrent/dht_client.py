"""A DHT client on asyncio: UDP sockets and a clock around the sans-I/O `DhtNode`.

    async with DhtClient(bind="127.0.0.50", bootstrap=[("127.0.0.2", 6881)]) as dht:
        async for arrival in dht.get_peers(infohash, timeout=30):
            if isinstance(arrival.event, PeersFound): ...

Each event comes wrapped in a `DhtArrival` carrying the UTC time (with
microseconds) taken in `datagram_received` for the datagram that caused it,
and the local address that datagram reached: what a sighting records. The
engine gets the event loop's monotonic clock as `now`.

libtorrent ignores a source IP that sends it ~50 messages within 10 seconds.
`pool` adds source addresses (e.g. more 127.x addresses): queries to one
remote IP rotate over them, and the engine's per-IP budget grows with the pool,
so each (source, remote) pair stays at the per-IP rate. Answers to a node's
queries leave from the socket its query reached.

Every wait is bounded: lookups by their `timeout`, the engine by its own
deadlines. By default the client talks to any address; a lab or a test
fences it in with `allowed_networks` (e.g. `LOOPBACK_ONLY`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeVar, cast

from atalaya.networks.bittorrent.dht import (
    DhtNode,
    Event,
    InfohashesSampled,
    LookupFinished,
    LookupStats,
    NodeConfig,
    PeersFound,
)
from atalaya.networks.bittorrent.dht.ratelimit import RateLimit
from atalaya.networks.bittorrent.dht.routing import NodeState
from atalaya.networks.bittorrent.krpc import Address

__all__ = [
    "LOOPBACK_ONLY",
    "DhtArrival",
    "DhtClient",
    "InfohashesSampled",
    "LookupFinished",
    "PeersFound",
]

log = logging.getLogger(__name__)

LOOPBACK_ONLY = ("127.0.0.0/8",)
_MAX_ROUTES = 4096  # remote addresses remembered for answering and rotation
_MAX_UNROUTED = 10_000
_MIN_TIMER_STEP = 0.001
_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class DhtArrival:
    """An engine event with when and where the datagram behind it arrived.

    For events a timer caused (a lookup that ran out of time), `received_utc`
    is when the timer fired and `local_addr` is None.
    """

    event: Event
    received_utc: datetime
    local_addr: Address | None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: DhtClient, index: int) -> None:
        self.client = client
        self.index = index
        self.transport: asyncio.DatagramTransport | None = None
        self.local_addr: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local_addr = (str(sockname[0]), int(sockname[1]))

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        # The arrival instant, taken before anything else touches the datagram.
        received_utc = datetime.now(UTC)
        self.client._on_datagram(data, (str(addr[0]), int(addr[1])), received_utc, self)

    def error_received(self, exc: Exception) -> None:
        # ICMP unreachable and the like: the engine's timeouts deal with it.
        log.debug("DHT socket error on %s: %s", self.local_addr, exc)


class DhtClient:
    def __init__(
        self,
        bind: str | Address = "127.0.0.1",
        bootstrap: Sequence[Address] = (),
        *,
        pool: Sequence[str] = (),
        config: NodeConfig | None = None,
        rng: random.Random | None = None,
        allowed_networks: tuple[str, ...] | None = None,
    ) -> None:
        self._bind: Address = (bind, 0) if isinstance(bind, str) else (bind[0], bind[1])
        self.family = 6 if ":" in self._bind[0] else 4
        self._pool = tuple(pool)
        base = config or NodeConfig()
        sources = 1 + len(self._pool)
        out = base.outgoing
        self.config = replace(
            base,
            bootstrap=tuple((h, p) for h, p in bootstrap) or base.bootstrap,
            allowed_networks=allowed_networks,
            outgoing=RateLimit(
                per_ip_rate=out.per_ip_rate * sources,
                per_ip_burst=out.per_ip_burst * sources,
                total_rate=out.total_rate,
                total_burst=out.total_burst,
            ),
        )
        self._rng = rng or random.Random(int.from_bytes(os.urandom(16), "big"))
        self._protocols: list[_Protocol] = []
        self._engine: DhtNode | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._routes: dict[int, asyncio.Queue[DhtArrival]] = {}
        self._unrouted: asyncio.Queue[DhtArrival] = asyncio.Queue(maxsize=_MAX_UNROUTED)
        self._answer_from: OrderedDict[Address, int] = OrderedDict()
        self._rotation: OrderedDict[str, int] = OrderedDict()
        self._closed = False
        self.internal_errors = 0

    # --- life cycle --------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def start(self) -> None:
        """Open the sockets and start the engine, which bootstraps on its first timer."""
        if self._engine is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        binds = [self._bind] + [(ip, 0) for ip in self._pool]
        try:
            for index, addr in enumerate(binds):
                _, protocol = await loop.create_datagram_endpoint(
                    functools.partial(_Protocol, self, index), sock=_udp_socket(addr)
                )
                self._protocols.append(protocol)
        except OSError:
            self.close()
            raise
        self._engine = DhtNode(self.config, rng=self._rng, now=loop.time())
        self._pump(datetime.now(UTC))

    def close(self) -> None:
        """Finish every lookup (as cancelled), close the sockets; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._engine is not None and self._loop is not None:
            now = self._loop.time()
            for lookup_id in list(self._routes):
                self._engine.cancel(lookup_id, now)
            self._drain(datetime.now(UTC), None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for protocol in self._protocols:
            if protocol.transport is not None:
                protocol.transport.close()

    # --- what callers use --------------------------------------------------

    @property
    def engine(self) -> DhtNode:
        if self._engine is None:
            raise RuntimeError("DhtClient is not started")
        return self._engine

    @property
    def node_id(self) -> bytes:
        return self.engine.node_id

    @property
    def local_addresses(self) -> list[Address]:
        return [p.local_addr for p in self._protocols if p.local_addr is not None]

    def good_contacts(self, limit: int) -> list[Address]:
        """Addresses of nodes that answered recently, most recent first: what to save."""
        if self._engine is None or self._loop is None:
            return []
        now = self._loop.time()
        good = [e for e in self._engine.routing if e.state(now) is NodeState.GOOD]
        good.sort(key=lambda e: e.last_response or 0.0, reverse=True)
        return [e.addr for e in good[:limit]]

    async def bootstrap(self, *, timeout: float = 10.0) -> LookupStats | None:
        """Run a bootstrap lookup and wait for it (at most `timeout` seconds)."""
        lookup_id = self.engine.bootstrap(self._time())
        async for arrival in self._follow(lookup_id, self._open_route(lookup_id), timeout):
            if isinstance(arrival.event, LookupFinished):
                return arrival.event.stats
        return None

    def get_peers(self, infohash: bytes, *, timeout: float = 30.0) -> AsyncIterator[DhtArrival]:
        """PeersFound as answers come in, then one LookupFinished; within `timeout` seconds."""
        lookup_id = self.engine.start_get_peers(infohash, self._time())
        return self._follow(lookup_id, self._open_route(lookup_id), timeout)

    def sample_infohashes(
        self,
        *,
        target: bytes | None = None,
        nodes: Sequence[Address] = (),
        max_nodes: int = 64,
        follow: bool = True,
        respect_interval: bool = True,
        timeout: float = 30.0,
    ) -> AsyncIterator[DhtArrival]:
        """InfohashesSampled per answering node, then one LookupFinished (BEP 51 crawl)."""
        lookup_id = self.engine.start_sample_infohashes(
            self._time(),
            target=target,
            nodes=nodes,
            max_nodes=max_nodes,
            follow=follow,
            respect_interval=respect_interval,
        )
        return self._follow(lookup_id, self._open_route(lookup_id), timeout)

    def other_events(self) -> list[DhtArrival]:
        """Events no lookup asked for (announces others sent us), oldest first."""
        out = []
        while not self._unrouted.empty():
            out.append(self._unrouted.get_nowait())
        return out

    # --- internals ---------------------------------------------------------

    def _time(self) -> float:
        if self._loop is None:
            raise RuntimeError("DhtClient is not started")
        return self._loop.time()

    def _open_route(self, lookup_id: int) -> asyncio.Queue[DhtArrival]:
        """Route the lookup's events to a queue before anything can drain them."""
        queue: asyncio.Queue[DhtArrival] = asyncio.Queue()
        self._routes[lookup_id] = queue
        self._pump(datetime.now(UTC))
        return queue

    async def _follow(
        self, lookup_id: int, queue: asyncio.Queue[DhtArrival], timeout: float
    ) -> AsyncIterator[DhtArrival]:
        deadline = self._time() + timeout
        try:
            while True:
                if not queue.empty():
                    arrival = queue.get_nowait()
                else:
                    remaining = deadline - self._time()
                    if remaining <= 0:
                        # Out of time: the engine ends the lookup as cancelled,
                        # and that LookupFinished is the last thing yielded.
                        self._cancel(lookup_id)
                        if queue.empty():
                            return
                        continue
                    try:
                        arrival = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        continue
                yield arrival
                if isinstance(arrival.event, LookupFinished):
                    return
        finally:
            self._routes.pop(lookup_id, None)
            self._cancel(lookup_id)

    def _cancel(self, lookup_id: int) -> None:
        if self._engine is not None and self._loop is not None and not self._closed:
            self._engine.cancel(lookup_id, self._loop.time())
            self._pump(datetime.now(UTC))

    def _on_datagram(
        self, data: bytes, addr: Address, received_utc: datetime, protocol: _Protocol
    ) -> None:
        if self._engine is None or self._closed or self._loop is None:
            return
        _remember(self._answer_from, addr, protocol.index)
        try:
            self._engine.receive_datagram(data, addr, self._loop.time())
        except Exception:
            # A bug in the engine must not take the observer down with one datagram.
            self.internal_errors += 1
            log.exception("DHT engine failed on a datagram from %s", addr)
        self._drain(received_utc, protocol.local_addr)
        self._pump(received_utc)

    def _on_timer(self) -> None:
        self._timer = None
        if self._engine is None or self._closed or self._loop is None:
            return
        try:
            self._engine.handle_timer(self._loop.time())
        except Exception:
            self.internal_errors += 1
            log.exception("DHT engine failed in its timer")
        self._pump(datetime.now(UTC))

    def _pump(self, at: datetime) -> None:
        """Send what the engine has, hand out its events, re-arm the timer."""
        engine, loop = self._engine, self._loop
        if engine is None or loop is None or self._closed:
            return
        self._drain(at, None)
        now = loop.time()
        for data, addr in engine.datagrams_to_send(now):
            protocol = self._socket_for(data, addr)
            if protocol.transport is not None and not protocol.transport.is_closing():
                protocol.transport.sendto(data, addr)
        self._drain(at, None)
        when = engine.get_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = loop.call_at(max(when, now + _MIN_TIMER_STEP), self._on_timer)

    def _drain(self, at: datetime, local_addr: Address | None) -> None:
        if self._engine is None:
            return
        while (event := self._engine.next_event()) is not None:
            arrival = DhtArrival(event, at, local_addr)
            lookup_id = getattr(event, "lookup_id", None)
            queue = self._routes.get(lookup_id) if lookup_id is not None else None
            if queue is not None:
                queue.put_nowait(arrival)
            elif lookup_id is None:
                if self._unrouted.full():
                    self._unrouted.get_nowait()
                self._unrouted.put_nowait(arrival)

    def _socket_for(self, data: bytes, addr: Address) -> _Protocol:
        if len(self._protocols) == 1:
            return self._protocols[0]
        # Our encoder puts "y" last, so a query ends with 1:y1:qe.
        if not data.endswith(b"1:y1:qe"):
            index = self._answer_from.get(addr, 0)
        else:
            index = (self._rotation.get(addr[0], -1) + 1) % len(self._protocols)
            _remember(self._rotation, addr[0], index)
        return self._protocols[index]


def _udp_socket(addr: Address) -> socket.socket:
    """A bound UDP socket; an IPv6 one answers IPv6 only, so an IPv4 twin can share its port."""
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


def _remember(table: OrderedDict[_K, int], key: _K, value: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > _MAX_ROUTES:
        table.popitem(last=False)
