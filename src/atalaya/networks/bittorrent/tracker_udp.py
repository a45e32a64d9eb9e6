"""UDP tracker protocol (BEP 15): packet codec and a sans-I/O client state machine.

The client follows aioquic's shape: commands (`start_announce`, `start_scrape`),
`receive_datagram(data, now)`, `datagrams_to_send(now)`, `get_timer()` /
`handle_timer(now)` and `next_event()`. The caller owns the socket and the
clock; `now` is any monotonic number of seconds. One client talks to one
tracker address, and the caller must hand it only datagrams from that address.

Datagrams that answer nothing we asked are dropped and counted (`ignored`):
a stray packet must not end a request. A request ends with one event:
answered, refused by the tracker (an error packet, or opentracker's bare
header), failed (an answer to its transaction id that does not parse), or
given up after `max_tries` sends of one message, waiting 15·2^n seconds
after the n-th retransmission (n from 0, capped at 8) as BEP 15 says.
"""

from __future__ import annotations

import secrets
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from atalaya.networks.bittorrent.tracker import (
    EVENT_CODES,
    EVENTS,
    MAX_PEERS,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    TrackerError,
    decode_compact_peers,
    encode_compact_peers,
    text,
)

PROTOCOL_ID = 0x41727101980
ACTION_CONNECT = 0
ACTION_ANNOUNCE = 1
ACTION_SCRAPE = 2
ACTION_ERROR = 3
# A scrape request of 74 info-hashes still fits in a small UDP packet (BEP 15).
MAX_SCRAPE_HASHES = 74
MAX_DATAGRAM = 65_535
CONNECTION_ID_LIFETIME = 60.0
BASE_TIMEOUT = 15.0
MAX_BACKOFF_EXPONENT = 8
DEFAULT_MAX_TRIES = 4
MAX_PENDING = 256
_ID_DRAWS = 64
_NOT_SERVED = "empty announce reply: the tracker does not serve this info-hash"

_HEADER = struct.Struct(">II")
_CONNECT = struct.Struct(">QII")
_CONNECT_REPLY = struct.Struct(">IIQ")
_ANNOUNCE = struct.Struct(">QII20s20sQQQIIIiH")
_ANNOUNCE_REPLY = struct.Struct(">IIIII")
_SCRAPE_HEAD = struct.Struct(">QII")
_SCRAPE_ENTRY = struct.Struct(">III")


class UdpTrackerError(TrackerError):
    """A UDP tracker packet that is malformed or not what BEP 15 allows."""


# -- packets -----------------------------------------------------------------


@dataclass(frozen=True)
class ConnectRequest:
    transaction_id: int


@dataclass(frozen=True)
class AnnouncePacket:
    """An announce request; `ip` 0 asks the tracker to use the packet's source."""

    connection_id: int
    transaction_id: int
    request: AnnounceRequest
    ip: int = 0


@dataclass(frozen=True)
class ScrapePacket:
    connection_id: int
    transaction_id: int
    infohashes: tuple[bytes, ...]


@dataclass(frozen=True)
class ConnectReply:
    transaction_id: int
    connection_id: int


@dataclass(frozen=True)
class AnnounceReply:
    transaction_id: int
    response: AnnounceResponse


@dataclass(frozen=True)
class ScrapeReply:
    """Counts in the order of the request's info-hashes (UDP replies carry no hashes)."""

    transaction_id: int
    stats: tuple[ScrapeStats, ...]


@dataclass(frozen=True)
class ErrorReply:
    transaction_id: int
    message: str


RequestPacket = ConnectRequest | AnnouncePacket | ScrapePacket
ReplyPacket = ConnectReply | AnnounceReply | ScrapeReply | ErrorReply


def _u32(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise UdpTrackerError(f"{name} must fit in 32 bits")


def _u64(name: str, value: int) -> None:
    if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        raise UdpTrackerError(f"{name} must fit in 64 bits")


def encode_connect(transaction_id: int) -> bytes:
    _u32("transaction_id", transaction_id)
    return _CONNECT.pack(PROTOCOL_ID, ACTION_CONNECT, transaction_id)


def encode_announce(packet: AnnouncePacket) -> bytes:
    _u64("connection_id", packet.connection_id)
    _u32("transaction_id", packet.transaction_id)
    _u32("ip", packet.ip)
    r = packet.request
    return _ANNOUNCE.pack(
        packet.connection_id,
        ACTION_ANNOUNCE,
        packet.transaction_id,
        r.infohash,
        r.peer_id,
        r.downloaded,
        r.left,
        r.uploaded,
        EVENT_CODES[r.event],
        packet.ip,
        r.key or 0,
        -1 if r.numwant is None else r.numwant,
        r.port,
    )


def encode_scrape(packet: ScrapePacket) -> bytes:
    _u64("connection_id", packet.connection_id)
    _u32("transaction_id", packet.transaction_id)
    if not 1 <= len(packet.infohashes) <= MAX_SCRAPE_HASHES:
        raise UdpTrackerError(f"a scrape carries 1 to {MAX_SCRAPE_HASHES} info-hashes")
    if any(len(h) != 20 for h in packet.infohashes):
        raise UdpTrackerError("info-hashes must be 20 bytes")
    head = _SCRAPE_HEAD.pack(packet.connection_id, ACTION_SCRAPE, packet.transaction_id)
    return head + b"".join(packet.infohashes)


def encode_request(packet: RequestPacket) -> bytes:
    if isinstance(packet, ConnectRequest):
        return encode_connect(packet.transaction_id)
    if isinstance(packet, AnnouncePacket):
        return encode_announce(packet)
    return encode_scrape(packet)


def decode_request(data: bytes) -> RequestPacket:
    """A client's packet, as a tracker reads it (lab trackers, round-trip tests)."""
    if len(data) > MAX_DATAGRAM:
        raise UdpTrackerError("datagram too large")
    if len(data) < 16:
        raise UdpTrackerError(f"request of {len(data)} bytes, shorter than 16")
    connection_id, action, transaction_id = _CONNECT.unpack_from(data)
    if action == ACTION_CONNECT:
        if connection_id != PROTOCOL_ID:
            raise UdpTrackerError("connect request without the BEP 15 protocol id")
        return ConnectRequest(transaction_id)
    if action == ACTION_ANNOUNCE:
        # BEP 41 options may follow the 98 fixed bytes; they are not needed here.
        if len(data) < _ANNOUNCE.size:
            raise UdpTrackerError(f"announce request of {len(data)} bytes, shorter than 98")
        f = _ANNOUNCE.unpack_from(data)
        event_code, numwant = f[8], f[11]
        if event_code >= len(EVENTS):
            raise UdpTrackerError(f"unknown event code {event_code}")
        if numwant < -1:
            raise UdpTrackerError(f"invalid num_want {numwant}")
        try:
            request = AnnounceRequest(
                infohash=f[3],
                peer_id=f[4],
                downloaded=f[5],
                left=f[6],
                uploaded=f[7],
                event=EVENTS[event_code],
                key=f[10],
                numwant=None if numwant == -1 else numwant,
                port=f[12],
            )
        except TrackerError as exc:
            raise UdpTrackerError(str(exc)) from exc
        return AnnouncePacket(connection_id, transaction_id, request, ip=f[9])
    if action == ACTION_SCRAPE:
        body = data[16:]
        if not body or len(body) % 20 or len(body) // 20 > MAX_SCRAPE_HASHES:
            raise UdpTrackerError("scrape request must carry 1 to 74 info-hashes")
        hashes = tuple(body[i : i + 20] for i in range(0, len(body), 20))
        return ScrapePacket(connection_id, transaction_id, hashes)
    raise UdpTrackerError(f"unknown action {action}")


def encode_reply(packet: ReplyPacket, *, ipv6: bool = False) -> bytes:
    """A tracker's packet (lab trackers and tests)."""
    _u32("transaction_id", packet.transaction_id)
    if isinstance(packet, ConnectReply):
        _u64("connection_id", packet.connection_id)
        return _CONNECT_REPLY.pack(ACTION_CONNECT, packet.transaction_id, packet.connection_id)
    if isinstance(packet, AnnounceReply):
        r = packet.response
        head = _ANNOUNCE_REPLY.pack(
            ACTION_ANNOUNCE, packet.transaction_id, r.interval, r.incomplete or 0, r.complete or 0
        )
        return head + encode_compact_peers(r.peers, ipv6=ipv6)
    if isinstance(packet, ScrapeReply):
        entries = b"".join(
            _SCRAPE_ENTRY.pack(s.complete, s.downloaded or 0, s.incomplete) for s in packet.stats
        )
        return _HEADER.pack(ACTION_SCRAPE, packet.transaction_id) + entries
    return _HEADER.pack(ACTION_ERROR, packet.transaction_id) + packet.message.encode()


def peek_header(data: bytes) -> tuple[int, int]:
    """(action, transaction_id) of a tracker's packet."""
    if len(data) < 8:
        raise UdpTrackerError(f"reply of {len(data)} bytes, shorter than 8")
    action, transaction_id = _HEADER.unpack_from(data)
    return action, transaction_id


def decode_reply(data: bytes, *, ipv6: bool = False, max_peers: int = MAX_PEERS) -> ReplyPacket:
    """A tracker's packet. `ipv6`: the announce went over IPv6, so peers are 18 bytes."""
    if len(data) > MAX_DATAGRAM:
        raise UdpTrackerError("datagram too large")
    action, transaction_id = peek_header(data)
    if action == ACTION_CONNECT:
        if len(data) < _CONNECT_REPLY.size:
            raise UdpTrackerError(f"connect reply of {len(data)} bytes, shorter than 16")
        return ConnectReply(transaction_id, _CONNECT_REPLY.unpack_from(data)[2])
    if action == ACTION_ANNOUNCE:
        if len(data) < _ANNOUNCE_REPLY.size:
            raise UdpTrackerError(f"announce reply of {len(data)} bytes, shorter than 20")
        _, _, interval, leechers, seeders = _ANNOUNCE_REPLY.unpack_from(data)
        try:
            peers, dropped = decode_compact_peers(
                data[_ANNOUNCE_REPLY.size :], ipv6=ipv6, max_peers=max_peers
            )
        except TrackerError as exc:
            raise UdpTrackerError(str(exc)) from exc
        response = AnnounceResponse(
            interval=interval,
            peers=peers,
            complete=seeders,
            incomplete=leechers,
            peers_dropped=dropped,
        )
        return AnnounceReply(transaction_id, response)
    if action == ACTION_SCRAPE:
        body = data[8:]
        if len(body) % _SCRAPE_ENTRY.size:
            raise UdpTrackerError("scrape reply is not a whole number of 12-byte entries")
        stats = tuple(
            ScrapeStats(complete=seeders, incomplete=leechers, downloaded=completed)
            for seeders, completed, leechers in _SCRAPE_ENTRY.iter_unpack(body)
        )
        return ScrapeReply(transaction_id, stats)
    if action == ACTION_ERROR:
        return ErrorReply(transaction_id, text(data[8:]))
    raise UdpTrackerError(f"unknown action {action}")


# -- client state machine ----------------------------------------------------


@dataclass(frozen=True)
class AnnounceDone:
    """The tracker answered announce `request_id`; `now` is the caller's clock on arrival."""

    request_id: int
    response: AnnounceResponse
    now: float


@dataclass(frozen=True)
class ScrapeDone:
    """Counts by info-hash for scrape `request_id` (hashes the tracker left out are absent)."""

    request_id: int
    files: dict[bytes, ScrapeStats]
    now: float


@dataclass(frozen=True)
class RequestRefused:
    """The tracker answered request `request_id` with an error packet."""

    request_id: int
    message: str
    now: float


@dataclass(frozen=True)
class RequestFailed:
    """The tracker answered request `request_id` with a packet that does not parse."""

    request_id: int
    reason: str
    now: float


@dataclass(frozen=True)
class RequestTimedOut:
    """No answer after `tries` sends of one message: the request is given up."""

    request_id: int
    tries: int


ClientEvent = AnnounceDone | ScrapeDone | RequestRefused | RequestFailed | RequestTimedOut


@dataclass
class _Exchange:
    """One message in flight (connect, or a request's announce/scrape) and its retries."""

    transaction_id: int
    tries: int = 0
    due: bool = True  # must be (re)sent at the next datagrams_to_send
    resend_at: float | None = None


@dataclass
class _Request:
    request_id: int
    announce: AnnounceRequest | None
    infohashes: tuple[bytes, ...]
    exchange: _Exchange


class UdpTrackerClient:
    """Announces and scrapes against one UDP tracker, without I/O.

    `randbits(32)` supplies transaction ids: unpredictable by default, since a
    guessed id is all an off-path attacker needs to inject an answer.
    """

    def __init__(
        self,
        *,
        ipv6: bool = False,
        max_tries: int = DEFAULT_MAX_TRIES,
        base_timeout: float = BASE_TIMEOUT,
        max_peers: int = MAX_PEERS,
        max_pending: int = MAX_PENDING,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        if max_tries < 1 or base_timeout <= 0 or max_pending < 1:
            raise ValueError("max_tries, base_timeout and max_pending must be positive")
        self.ipv6 = ipv6
        self.max_tries = max_tries
        self.base_timeout = base_timeout
        self.max_peers = max_peers
        self.max_pending = max_pending
        self._randbits = randbits
        self._next_request_id = 1
        self._requests: dict[int, _Request] = {}
        self._connect: _Exchange | None = None
        self._connection_id: int | None = None
        self._connection_expires = float("-inf")
        self._events: deque[ClientEvent] = deque()
        self.ignored = 0

    # -- commands --

    def start_announce(self, request: AnnounceRequest) -> int:
        """Queue an announce; returns the request id its event will carry."""
        return self._add(request, ())

    def start_scrape(self, infohashes: Sequence[bytes]) -> int:
        """Queue a scrape of 1 to 74 info-hashes; returns the request id."""
        hashes = tuple(infohashes)
        if not 1 <= len(hashes) <= MAX_SCRAPE_HASHES or any(len(h) != 20 for h in hashes):
            raise UdpTrackerError(f"a scrape takes 1 to {MAX_SCRAPE_HASHES} 20-byte info-hashes")
        return self._add(None, hashes)

    def cancel(self, request_id: int) -> None:
        """Forget a request; a late answer to it is ignored."""
        self._requests.pop(request_id, None)
        if not self._requests:
            self._connect = None

    @property
    def pending(self) -> int:
        return len(self._requests)

    def _add(self, announce: AnnounceRequest | None, hashes: tuple[bytes, ...]) -> int:
        if len(self._requests) >= self.max_pending:
            raise UdpTrackerError(f"more than {self.max_pending} requests outstanding")
        request_id = self._next_request_id
        self._next_request_id += 1
        self._requests[request_id] = _Request(
            request_id, announce, hashes, _Exchange(self._new_transaction_id())
        )
        return request_id

    def _new_transaction_id(self) -> int:
        in_use = {r.exchange.transaction_id for r in self._requests.values()}
        if self._connect is not None:
            in_use.add(self._connect.transaction_id)
        # 2^32 ids and at most max_pending + 1 in use: a few draws suffice.
        for _ in range(_ID_DRAWS):
            tid = self._randbits(32) & 0xFFFFFFFF
            if tid not in in_use:
                return tid
        raise UdpTrackerError("the random source keeps repeating transaction ids")

    # -- I/O hooks --

    def _live_connection_id(self, now: float) -> int | None:
        return self._connection_id if now < self._connection_expires else None

    def _send(self, exchange: _Exchange, now: float) -> None:
        exchange.tries += 1
        exchange.due = False
        backoff = self.base_timeout * 2 ** min(exchange.tries - 1, MAX_BACKOFF_EXPONENT)
        exchange.resend_at = now + backoff

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """The packets to send now, in order."""
        due = [r for r in self._requests.values() if r.exchange.due]
        if not due:
            return []
        connection_id = self._live_connection_id(now)
        if connection_id is None:
            # The id expires a minute after it arrived (BEP 15): fetch a new one first.
            self._connection_id = None
            if self._connect is None:
                self._connect = _Exchange(self._new_transaction_id())
            if not self._connect.due:
                return []
            self._send(self._connect, now)
            return [encode_connect(self._connect.transaction_id)]
        out = []
        for request in due:
            self._send(request.exchange, now)
            out.append(self._encode(request, connection_id))
        return out

    def _encode(self, request: _Request, connection_id: int) -> bytes:
        tid = request.exchange.transaction_id
        if request.announce is not None:
            return encode_announce(AnnouncePacket(connection_id, tid, request.announce))
        return encode_scrape(ScrapePacket(connection_id, tid, request.infohashes))

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called, or None while nothing is in flight."""
        times = [r.exchange.resend_at for r in self._requests.values()]
        if self._connect is not None:
            times.append(self._connect.resend_at)
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def handle_timer(self, now: float) -> None:
        """Retransmit what timed out, or give it up after `max_tries` sends."""
        connect = self._connect
        if connect is not None and connect.resend_at is not None and connect.resend_at <= now:
            connect.resend_at = None
            if connect.tries >= self.max_tries:
                self._connect = None
                # Requests waiting for a connection id share its fate.
                for request in list(self._requests.values()):
                    if request.exchange.due:
                        self._give_up(request, connect.tries)
            else:
                connect.due = True
        for request in list(self._requests.values()):
            exchange = request.exchange
            if exchange.resend_at is None or exchange.resend_at > now:
                continue
            exchange.resend_at = None
            if exchange.tries >= self.max_tries:
                self._give_up(request, exchange.tries)
            else:
                exchange.due = True

    def _give_up(self, request: _Request, tries: int) -> None:
        del self._requests[request.request_id]
        self._events.append(RequestTimedOut(request.request_id, tries))
        if not self._requests:
            self._connect = None

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Take one datagram from the tracker's address, arrived at `now`."""
        try:
            action, tid = peek_header(data)
        except UdpTrackerError:
            self.ignored += 1
            return
        if self._connect is not None and tid == self._connect.transaction_id:
            self._on_connect_reply(data, now)
            return
        request = next(
            (r for r in self._requests.values() if r.exchange.transaction_id == tid), None
        )
        expected = ACTION_SCRAPE if request is None or request.announce is None else ACTION_ANNOUNCE
        # Only an answer to a message already sent, of the kind asked for, counts.
        if request is None or request.exchange.tries == 0 or action not in {expected, ACTION_ERROR}:
            self.ignored += 1
            return
        del self._requests[request.request_id]
        self._events.append(self._answer(request, action, data, now))

    def _answer(self, request: _Request, action: int, data: bytes, now: float) -> ClientEvent:
        if action == ACTION_ANNOUNCE and len(data) == _HEADER.size:
            # opentracker's answer for an info-hash it does not serve: a bare header.
            return RequestRefused(request.request_id, _NOT_SERVED, now)
        try:
            reply = decode_reply(data, ipv6=self.ipv6, max_peers=self.max_peers)
        except UdpTrackerError as exc:
            # It carries our transaction id, so it is the tracker's answer, and a broken one.
            return RequestFailed(request.request_id, str(exc), now)
        if isinstance(reply, ErrorReply):
            return RequestRefused(request.request_id, reply.message, now)
        if isinstance(reply, AnnounceReply):
            return AnnounceDone(request.request_id, reply.response, now)
        if isinstance(reply, ScrapeReply):
            files = dict(zip(request.infohashes, reply.stats, strict=False))
            return ScrapeDone(request.request_id, files, now)
        return RequestFailed(request.request_id, "unexpected reply", now)

    def _on_connect_reply(self, data: bytes, now: float) -> None:
        try:
            reply = decode_reply(data)
        except UdpTrackerError:
            self.ignored += 1
            return
        if isinstance(reply, ConnectReply):
            self._connect = None
            self._connection_id = reply.connection_id
            self._connection_expires = now + CONNECTION_ID_LIFETIME
        elif isinstance(reply, ErrorReply):
            self._connect = None
            for request in list(self._requests.values()):
                if request.exchange.due:
                    del self._requests[request.request_id]
                    self._events.append(RequestRefused(request.request_id, reply.message, now))
        else:
            self.ignored += 1

    def next_event(self) -> ClientEvent | None:
        """The next event, or None when there is none."""
        return self._events.popleft() if self._events else None
