"""What HTTP (BEP 3, 23, 7) and UDP (BEP 15) trackers share: requests, answers, peers, errors.

The two wire formats carry the same announce: one request type and one
response type serve both, so an observer handles a tracker's answer the same
way whichever transport brought it.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

Event = Literal["none", "completed", "started", "stopped"]
EVENTS: tuple[Event, ...] = get_args(Event)
# BEP 15 numbers the events in this order; BEP 3 sends their names, "none" as nothing.
EVENT_CODES: dict[Event, int] = {event: code for code, event in enumerate(EVENTS)}

INFO_HASH_SIZE = 20
PEER_ID_SIZE = 20
MAX_PEERS = 2000
MAX_TEXT = 512
_U63 = (1 << 63) - 1
_U32 = (1 << 32) - 1
_I32 = (1 << 31) - 1
_PEER4 = struct.Struct(">BBBBH")
_PEER6 = struct.Struct(">16sH")


class TrackerError(ValueError):
    """A tracker request or answer that is malformed, out of bounds or unusable."""


class TrackerRefusedError(TrackerError):
    """The tracker answered with a refusal ("failure reason", or a BEP 15 error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"tracker refused: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Peer:
    """A peer address from a tracker; `peer_id` only in the dictionary form."""

    ip: str
    port: int
    peer_id: bytes | None = None


@dataclass(frozen=True)
class AnnounceRequest:
    """One announce, as both transports send it.

    `info_hash` is 20 bytes (a v2 info-hash is announced truncated, BEP 52).
    `numwant` None leaves the number of peers to the tracker; `key` None sends none.
    """

    infohash: bytes
    peer_id: bytes
    port: int
    left: int
    uploaded: int = 0
    downloaded: int = 0
    event: Event = "none"
    numwant: int | None = None
    key: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.infohash, bytes) or len(self.infohash) != INFO_HASH_SIZE:
            raise TrackerError("info_hash must be 20 bytes")
        if not isinstance(self.peer_id, bytes) or len(self.peer_id) != PEER_ID_SIZE:
            raise TrackerError("peer_id must be 20 bytes")
        _check_int("port", self.port, 0xFFFF)
        for name in ("left", "uploaded", "downloaded"):
            _check_int(name, getattr(self, name), _U63)
        if self.event not in EVENT_CODES:
            raise TrackerError(f"unknown event {self.event!r}")
        if self.numwant is not None:
            _check_int("numwant", self.numwant, _I32)
        if self.key is not None:
            _check_int("key", self.key, _U32)


@dataclass(frozen=True)
class AnnounceResponse:
    """A tracker's answer to an announce.

    `complete` counts seeders and `incomplete` leechers, where the tracker says.
    `peers_dropped` counts peer entries received but not kept: beyond the
    caller's bound, or (dictionary form) naming a host instead of an address.
    """

    interval: int
    peers: tuple[Peer, ...]
    min_interval: int | None = None
    complete: int | None = None
    incomplete: int | None = None
    downloaded: int | None = None
    warning: str | None = None
    tracker_id: bytes | None = None
    peers_dropped: int = 0
    # BEP 24: the address the tracker saw us at (behind NAT, our public one).
    external_ip: str | None = None


@dataclass(frozen=True)
class ScrapeStats:
    """One torrent's counts in a scrape answer; `downloaded` is optional over HTTP."""

    complete: int
    incomplete: int
    downloaded: int | None = None


def checked_int(name: str, value: object, maximum: int = _U63) -> int:
    """`value` as a non-negative int no larger than `maximum`, or TrackerError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise TrackerError(f"{name} must be an integer from 0 to {maximum}")
    return value


_check_int = checked_int


def text(raw: bytes) -> str:
    """Tracker-supplied text made safe to log and show: bounded, printable only."""
    decoded = raw[: MAX_TEXT * 4].decode("utf-8", errors="replace")[:MAX_TEXT]
    # Hostile text may carry terminal escape sequences; nothing unprintable passes.
    return "".join(c if c.isprintable() else "\ufffd" for c in decoded)


def decode_compact_peers(
    data: bytes, *, ipv6: bool, max_peers: int = MAX_PEERS
) -> tuple[tuple[Peer, ...], int]:
    """Peers from the compact form (BEP 23: 6 bytes; BEP 7: 18 bytes each).

    Returns the first `max_peers` peers and how many more there were.
    """
    size = 18 if ipv6 else 6
    if len(data) % size:
        raise TrackerError(f"compact peers of {len(data)} bytes, not a multiple of {size}")
    count = len(data) // size
    kept = max(0, min(count, max_peers))
    body = data[: kept * size]
    if ipv6:
        peers = tuple(
            Peer(str(ipaddress.IPv6Address(addr)), port) for addr, port in _PEER6.iter_unpack(body)
        )
    else:
        # Formatted by hand: ipaddress costs ten times as much per peer.
        peers = tuple(
            Peer(f"{a}.{b}.{c}.{d}", port) for a, b, c, d, port in _PEER4.iter_unpack(body)
        )
    return peers, count - kept


def encode_compact_peers(peers: Iterable[Peer], *, ipv6: bool) -> bytes:
    """The compact form of `peers`, all of the one address family."""
    out = []
    for peer in peers:
        try:
            ip = ipaddress.ip_address(peer.ip)
        except ValueError as exc:
            raise TrackerError(f"not an IP address: {peer.ip!r}") from exc
        if (ip.version == 6) != ipv6:
            raise TrackerError(f"{peer.ip} is not an IPv{6 if ipv6 else 4} address")
        _check_int("port", peer.port, 0xFFFF)
        out.append(ip.packed + peer.port.to_bytes(2, "big"))
    return b"".join(out)
