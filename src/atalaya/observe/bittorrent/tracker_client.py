"""Announce to and scrape BitTorrent trackers over HTTP(S) and UDP, as a passive observer.

Thin asyncio I/O over the sans-I/O codecs in `atalaya.networks.bittorrent`.
Every call has one deadline (`timeout`), answers are bounded in size, and
every failure is a `TrackerError`: `TrackerRefusedError` when the tracker
said no, `TrackerUnavailableError` when no usable answer came in time.

What an observer announces, and why:

- `left` > 0, the torrent's full size when known (any positive number when
  not): the observer holds nothing, and a tracker must never count or list it
  as a seeder, so it never claims to offer the file. `uploaded` and
  `downloaded` are 0.
- `event="started"` on the first announce for an info-hash, no event on the
  re-announces the tracker's interval asks for, and `event="stopped"` when the
  watch ends, so that the tracker drops the observer from the swarm instead
  of handing its address out until it times out. An announce without event
  is just as much a join for most trackers (opentracker adds the peer either
  way); sending "stopped" is the part that matters.
- `numwant` high (200, a usual tracker cap; a tracker sends at most its own
  cap whatever is asked): the peers are what the observer is there for.
- `port`: the observer's own peer-wire listener. Peers that connect there see a
  peer holding nothing (a leecher), which is what the observer is.
- `key`: one random value per observer run (`new_key()`), so the tracker can
  tell the observer's announces apart from another client behind the same NAT.

A v2 info-hash (32 bytes) is announced truncated to 20 bytes (BEP 52).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import httpx

from atalaya.networks.bittorrent import tracker_http
from atalaya.networks.bittorrent.tracker import (
    MAX_PEERS,
    AnnounceRequest,
    AnnounceResponse,
    Event,
    Peer,
    ScrapeStats,
    TrackerError,
    TrackerRefusedError,
)
from atalaya.networks.bittorrent.tracker_udp import (
    BASE_TIMEOUT,
    DEFAULT_MAX_TRIES,
    AnnounceDone,
    ClientEvent,
    RequestFailed,
    RequestRefused,
    RequestTimedOut,
    ScrapeDone,
    UdpTrackerClient,
    UdpTrackerError,
)

__all__ = [
    "DEFAULT_NUMWANT",
    "DEFAULT_TIMEOUT",
    "AnnounceResult",
    "ScrapeResult",
    "TrackerError",
    "TrackerRefusedError",
    "TrackerUnavailableError",
    "UdpTracker",
    "announce",
    "new_key",
    "scrape",
]

DEFAULT_TIMEOUT = 30.0
DEFAULT_NUMWANT = 200
MAX_BODY = tracker_http.MAX_RESPONSE_BYTES
_USER_AGENT = "atalaya"


class TrackerUnavailableError(TrackerError):
    """No usable answer: unreachable, timed out, an HTTP error status, or too large."""


@dataclass(frozen=True)
class AnnounceResult:
    """A tracker's answer to one announce, with when and how it came.

    `received_at` is UTC with microseconds, taken when the answer arrived;
    `local_ip`/`local_port` are the observer's end of the exchange.
    """

    tracker_url: str
    infohash: bytes
    received_at: datetime
    response: AnnounceResponse
    local_ip: str | None = None
    local_port: int | None = None

    @property
    def peers(self) -> tuple[Peer, ...]:
        return self.response.peers


@dataclass(frozen=True)
class ScrapeResult:
    """Counts by 20-byte info-hash from one scrape, with its arrival time (UTC)."""

    tracker_url: str
    received_at: datetime
    files: dict[bytes, ScrapeStats]


def new_key() -> int:
    """A random announce key, drawn once per observer run."""
    return secrets.randbits(32)


def _tracker_hash(infohash: bytes) -> bytes:
    if len(infohash) not in {20, 32}:
        raise ValueError("an info-hash is 20 (v1) or 32 (v2) bytes")
    return infohash[:20]


async def announce(
    url: str,
    infohash: bytes,
    *,
    peer_id: bytes,
    port: int,
    left: int,
    bind_ip: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    event: Event = "started",
    numwant: int = DEFAULT_NUMWANT,
    key: int | None = None,
    max_peers: int = MAX_PEERS,
    udp_max_tries: int = DEFAULT_MAX_TRIES,
    udp_base_timeout: float = BASE_TIMEOUT,
) -> AnnounceResult:
    """Announce `info_hash` to the tracker at `url` (http, https or udp) and return its answer.

    `bind_ip` is the local address to send from (a 127.x address in the lab).
    UDP retransmits after 15·2^n seconds (BEP 15) until `timeout` or `udp_max_tries`.
    """
    if left <= 0:
        raise ValueError("an observer announces left > 0: it must never pose as a seeder")
    request = AnnounceRequest(
        infohash=_tracker_hash(infohash),
        peer_id=peer_id,
        port=port,
        left=left,
        event=event,
        numwant=numwant,
        key=key,
    )
    if _scheme(url) == "udp":
        tracker = UdpTracker(
            url,
            bind_ip=bind_ip,
            max_tries=udp_max_tries,
            base_timeout=udp_base_timeout,
            max_peers=max_peers,
        )
        async with _deadline(timeout):
            try:
                await tracker.open(timeout)
                return await tracker.announce(request, timeout=timeout)
            finally:
                tracker.close()
    body, received_at, local = await _http_get(
        tracker_http.announce_url(url, request), bind_ip=bind_ip, timeout=timeout
    )
    response = tracker_http.parse_announce_response(body, max_peers=max_peers)
    return AnnounceResult(url, request.infohash, received_at, response, *local)


async def scrape(
    url: str,
    infohashes: Sequence[bytes],
    *,
    bind_ip: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    udp_max_tries: int = DEFAULT_MAX_TRIES,
    udp_base_timeout: float = BASE_TIMEOUT,
) -> ScrapeResult:
    """Scrape the tracker at `url` for `info_hashes` (UDP: at most 74 of them)."""
    # Once each: a tracker echoing a repeated hash would send a duplicate key.
    hashes = list(dict.fromkeys(_tracker_hash(h) for h in infohashes))
    if _scheme(url) == "udp":
        tracker = UdpTracker(
            url, bind_ip=bind_ip, max_tries=udp_max_tries, base_timeout=udp_base_timeout
        )
        async with _deadline(timeout):
            try:
                await tracker.open(timeout)
                return await tracker.scrape(hashes, timeout=timeout)
            finally:
                tracker.close()
    body, received_at, _ = await _http_get(
        tracker_http.scrape_url(url, hashes), bind_ip=bind_ip, timeout=timeout
    )
    return ScrapeResult(url, received_at, tracker_http.parse_scrape_response(body))


@asynccontextmanager
async def _deadline(timeout: float) -> AsyncIterator[None]:
    """One deadline over several awaits, reported as `TrackerUnavailableError`."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError as exc:
        raise TrackerUnavailableError(f"no answer from the tracker within {timeout}s") from exc


def _scheme(url: str) -> str:
    scheme = url.partition(":")[0].lower()
    if scheme not in {"http", "https", "udp"}:
        raise TrackerError(f"unsupported tracker URL {url!r}: expected http, https or udp")
    return scheme


# -- HTTP ----------------------------------------------------------------------


@cache
def _ssl_context() -> ssl.SSLContext:
    # Built once: loading the CA bundle for every announce would cost more than the announce.
    return httpx.create_ssl_context()


async def _http_get(
    url: str, *, bind_ip: str | None, timeout: float
) -> tuple[bytes, datetime, tuple[str | None, int | None]]:
    """The body of a 200 answer to GET `url`, when it arrived, and the local address."""
    # Plain http needs no certificates; https verifies them, as any client would.
    verify: ssl.SSLContext | bool = _ssl_context() if url.startswith("https:") else False
    transport = httpx.AsyncHTTPTransport(
        verify=verify, trust_env=False, local_address=bind_ip, retries=0
    )
    # No proxy from the environment, no redirects (they could lead anywhere), and
    # no compression: a small compressed body could inflate past any bound.
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", "Connection": "close"}
    try:
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(
                transport=transport,
                timeout=timeout,
                trust_env=False,
                follow_redirects=False,
                headers=headers,
            ) as client,
            client.stream("GET", url) as response,
        ):
            local = _local_address(response)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > MAX_BODY:
                raise TrackerUnavailableError(f"tracker answer of {length} bytes is too large")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > MAX_BODY:
                    raise TrackerUnavailableError(f"tracker answer larger than {MAX_BODY} bytes")
                chunks.append(chunk)
            received_at = datetime.now(UTC)
            status = response.status_code
    except TimeoutError as exc:
        raise TrackerUnavailableError(f"no answer from the tracker within {timeout}s") from exc
    except (httpx.HTTPError, OSError) as exc:
        raise TrackerUnavailableError(f"tracker unreachable: {exc or type(exc).__name__}") from exc
    body = b"".join(chunks)
    if status != 200:
        # Some trackers refuse with an error status and a bencoded reason.
        try:
            tracker_http.parse_announce_response(body)
        except TrackerRefusedError:
            raise
        except TrackerError:
            pass
        raise TrackerUnavailableError(f"tracker answered HTTP {status}")
    return body, received_at, local


def _local_address(response: httpx.Response) -> tuple[str | None, int | None]:
    stream: Any = response.extensions.get("network_stream")
    addr = stream.get_extra_info("client_addr") if stream is not None else None
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), int(addr[1])
    return None, None


# -- UDP -----------------------------------------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    """Feeds a `UdpTrackerClient` from a connected UDP socket and runs its timer."""

    def __init__(self, client: UdpTrackerClient) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.waiters: dict[int, asyncio.Future[tuple[ClientEvent, datetime | None]]] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.closed: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        # The arrival instant, before any parsing: this is what a sighting records.
        received_at = datetime.now(UTC)
        self.client.receive_datagram(data, self.loop.time())
        self.pump(received_at)

    def error_received(self, exc: Exception) -> None:
        # An ICMP port-unreachable on a connected socket: nobody listens there.
        self._fail_all(TrackerUnavailableError(f"tracker unreachable: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = TrackerUnavailableError("tracker socket closed")
        self._fail_all(self.closed)
        if self.timer is not None:
            self.timer.cancel()

    def _fail_all(self, exc: BaseException) -> None:
        for request_id, waiter in list(self.waiters.items()):
            self.client.cancel(request_id)
            if not waiter.done():
                waiter.set_exception(exc)
        self.waiters.clear()

    def pump(self, received_at: datetime | None = None) -> None:
        """Deliver events, send what is due, and re-arm the timer."""
        while (event := self.client.next_event()) is not None:
            waiter = self.waiters.pop(event.request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result((event, received_at))
        if self.transport is not None and not self.transport.is_closing():
            for datagram in self.client.datagrams_to_send(self.loop.time()):
                self.transport.sendto(datagram)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        when = self.client.get_timer()
        if when is not None and self.closed is None:
            self.timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.client.handle_timer(self.loop.time())
        self.pump()

    async def wait(self, request_id: int, timeout: float) -> tuple[ClientEvent, datetime | None]:
        if self.closed is not None:
            self.client.cancel(request_id)
            raise self.closed
        waiter: asyncio.Future[tuple[ClientEvent, datetime | None]] = self.loop.create_future()
        self.waiters[request_id] = waiter
        self.pump()
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError as exc:
            raise TrackerUnavailableError(f"no answer from the tracker within {timeout}s") from exc
        finally:
            self.waiters.pop(request_id, None)
            self.client.cancel(request_id)


class UdpTracker:
    """One UDP tracker, its connection id shared by successive announces and scrapes.

    An async context manager: `async with UdpTracker(url, bind_ip=...) as t:`.
    """

    def __init__(
        self,
        url: str,
        *,
        bind_ip: str | None = None,
        max_tries: int = DEFAULT_MAX_TRIES,
        base_timeout: float = BASE_TIMEOUT,
        max_peers: int = MAX_PEERS,
    ) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TrackerError(f"invalid tracker URL {url!r}: {exc}") from exc
        if parts.scheme != "udp" or not parts.hostname or not port:
            raise TrackerError(f"not a udp://host:port tracker URL: {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = port
        self.bind_ip = bind_ip
        self.max_tries = max_tries
        self.base_timeout = base_timeout
        self.max_peers = max_peers
        self._protocol: _UdpProtocol | None = None
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Resolve the tracker's address and open the socket."""
        if self._protocol is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
                family, _, _, _, address = infos[0]
                client = UdpTrackerClient(
                    ipv6=family == socket.AF_INET6,
                    max_tries=self.max_tries,
                    base_timeout=self.base_timeout,
                    max_peers=self.max_peers,
                )
                local = (self.bind_ip, 0) if self.bind_ip else None
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(client),
                    local_addr=local,
                    remote_addr=(str(address[0]), int(address[1])),
                    family=family,
                )
        except (OSError, IndexError, TimeoutError) as exc:
            raise TrackerUnavailableError(f"cannot reach tracker {self.url}: {exc}") from exc
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        transport, self._transport, self._protocol = self._transport, None, None
        if transport is not None:
            transport.close()

    async def __aenter__(self) -> UdpTracker:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def _local(self) -> tuple[str | None, int | None]:
        sockname = self._transport.get_extra_info("sockname") if self._transport else None
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            return str(sockname[0]), int(sockname[1])
        return None, None

    async def announce(
        self, request: AnnounceRequest, *, timeout: float = DEFAULT_TIMEOUT
    ) -> AnnounceResult:
        if request.left <= 0:
            raise ValueError("an observer announces left > 0: it must never pose as a seeder")
        protocol = await self._opened(timeout)
        event, received_at = await protocol.wait(protocol.client.start_announce(request), timeout)
        if not isinstance(event, AnnounceDone):
            _raise_for(event)
        return AnnounceResult(
            self.url,
            request.infohash,
            received_at or datetime.now(UTC),
            event.response,
            *self._local(),
        )

    async def scrape(
        self, infohashes: Sequence[bytes], *, timeout: float = DEFAULT_TIMEOUT
    ) -> ScrapeResult:
        protocol = await self._opened(timeout)
        event, received_at = await protocol.wait(protocol.client.start_scrape(infohashes), timeout)
        if not isinstance(event, ScrapeDone):
            _raise_for(event)
        return ScrapeResult(self.url, received_at or datetime.now(UTC), event.files)

    async def _opened(self, timeout: float) -> _UdpProtocol:
        await self.open(timeout)
        if self._protocol is None:
            raise TrackerUnavailableError(f"tracker {self.url} is closed")
        return self._protocol


def _raise_for(event: ClientEvent) -> NoReturn:
    if isinstance(event, RequestRefused):
        raise TrackerRefusedError(event.message)
    if isinstance(event, RequestFailed):
        raise UdpTrackerError(f"malformed tracker reply: {event.reason}")
    if isinstance(event, RequestTimedOut):
        raise TrackerUnavailableError(f"no answer from the tracker after {event.tries} tries")
    raise TrackerError(f"unexpected tracker event {type(event).__name__}")
