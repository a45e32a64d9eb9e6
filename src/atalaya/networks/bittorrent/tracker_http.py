"""HTTP tracker announce and scrape (BEP 3, compact peers BEP 23, peers6 BEP 7, scrape BEP 48).

Builds request URLs and parses the bencoded answers; the HTTP exchange itself
belongs to the caller. Answers are decoded with tight bencode limits and every
field is checked, so a hostile tracker gets at most a `TrackerError`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit, urlunsplit

from atalaya.networks.bittorrent.bencode import BencodeError, BValue, Limits, decode, encode
from atalaya.networks.bittorrent.tracker import (
    EVENTS,
    MAX_PEERS,
    AnnounceRequest,
    AnnounceResponse,
    Event,
    Peer,
    ScrapeStats,
    TrackerError,
    TrackerRefusedError,
    checked_int,
    decode_compact_peers,
    encode_compact_peers,
    text,
)

__all__ = [
    "MAX_RESPONSE_BYTES",
    "MAX_SCRAPE_FILES",
    "TRACKER_LIMITS",
    "TrackerError",
    "TrackerRefusedError",
    "announce_url",
    "encode_announce_response",
    "encode_scrape_response",
    "parse_announce_response",
    "parse_announce_url",
    "parse_scrape_response",
    "scrape_url",
    "scrape_url_base",
]

# A compact answer with 2000 IPv4 and 2000 IPv6 peers is 48 KB; a dictionary
# answer about 70 bytes a peer. Nothing a tracker legitimately sends is deeper than 3.
# Keys may come unsorted: opentracker lists a scrape's info-hashes in request order.
TRACKER_LIMITS = Limits(
    max_size=256 << 10,
    max_depth=4,
    max_tokens=40_000,
    max_string=128 << 10,
    max_int_digits=20,
    sorted_keys=False,
)
MAX_RESPONSE_BYTES = TRACKER_LIMITS.max_size
MAX_SCRAPE_FILES = 1000
MAX_URL = 8192


def _split(url: str) -> tuple[str, str, str, str]:
    """scheme, netloc, path, query of an http(s) tracker URL (its fragment dropped)."""
    if len(url) > MAX_URL:
        raise TrackerError(f"tracker URL longer than {MAX_URL} characters")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise TrackerError("tracker URL must be printable ASCII without spaces")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise TrackerError(f"invalid tracker URL: {exc}") from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise TrackerError(f"not an http(s) tracker URL: {url!r}")
    return parts.scheme, parts.netloc, parts.path, parts.query


def _with_query(url: str, params: Sequence[tuple[str, bytes]]) -> str:
    scheme, netloc, path, query = _split(url)
    # Raw bytes, every byte outside the unreserved set percent-encoded (BEP 3).
    added = "&".join(f"{name}={quote_from_bytes(value, safe='')}" for name, value in params)
    query = f"{query}&{added}" if query else added
    return urlunsplit((scheme, netloc, path or "/", query, ""))


def announce_url(base: str, request: AnnounceRequest, *, compact: bool = True) -> str:
    """The GET URL announcing `request` to the tracker at `base` (its own query kept)."""
    params: list[tuple[str, bytes]] = [
        ("info_hash", request.infohash),
        ("peer_id", request.peer_id),
        ("port", b"%d" % request.port),
        ("uploaded", b"%d" % request.uploaded),
        ("downloaded", b"%d" % request.downloaded),
        ("left", b"%d" % request.left),
    ]
    if compact:
        params.append(("compact", b"1"))
    if request.event != "none":
        params.append(("event", request.event.encode()))
    if request.numwant is not None:
        params.append(("numwant", b"%d" % request.numwant))
    if request.key is not None:
        # Hex, as libtorrent sends it; trackers compare it as an opaque string.
        params.append(("key", b"%08X" % request.key))
    return _with_query(base, params)


def parse_announce_url(url: str) -> AnnounceRequest:
    """The announce a GET URL carries: the tracker side of `announce_url`."""
    query = _split(url)[3]
    values: dict[str, bytes] = {}
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep:
            values[name] = unquote_to_bytes(value)

    def number(name: str, default: int | None = None) -> int | None:
        raw = values.get(name)
        if raw is None:
            return default
        if not raw.isdigit() or len(raw) > 20:
            raise TrackerError(f"{name} is not a number")
        return int(raw)

    def required(name: str) -> int:
        value = number(name)
        if value is None:
            raise TrackerError(f"announce without {name}")
        return value

    try:
        infohash, peer_id = values["info_hash"], values["peer_id"]
    except KeyError as exc:
        raise TrackerError(f"announce without {exc.args[0]}") from exc
    event_raw = values.get("event", b"").decode("ascii", errors="replace") or "none"
    event: Event | None = next((e for e in EVENTS if e == event_raw), None)
    if event is None:
        raise TrackerError(f"unknown event {event_raw!r}")
    key_raw = values.get("key")
    try:
        key = int(key_raw, 16) if key_raw is not None else None
    except ValueError as exc:
        raise TrackerError("key is not hexadecimal") from exc
    return AnnounceRequest(
        infohash=infohash,
        peer_id=peer_id,
        port=required("port"),
        left=required("left"),
        uploaded=number("uploaded", 0) or 0,
        downloaded=number("downloaded", 0) or 0,
        event=event,
        numwant=number("numwant"),
        key=key,
    )


def scrape_url_base(announce: str) -> str | None:
    """The scrape URL for an announce URL, or None where the tracker has none (BEP 48).

    Only the path's last segment counts, and only when it begins with "announce":
    that word becomes "scrape" and the rest, query included, stays as it was.
    """
    scheme, netloc, path, query = _split(announce)
    slash = path.rfind("/")
    if slash < 0 or not path.startswith("announce", slash + 1):
        return None
    path = path[: slash + 1] + "scrape" + path[slash + 1 + len("announce") :]
    return urlunsplit((scheme, netloc, path, query, ""))


def scrape_url(announce: str, infohashes: Sequence[bytes]) -> str:
    """The GET URL scraping `info_hashes` from the tracker at `announce`."""
    base = scrape_url_base(announce)
    if base is None:
        raise TrackerError(f"tracker {announce!r} has no scrape URL (BEP 48)")
    if not infohashes or len(infohashes) > MAX_SCRAPE_FILES:
        raise TrackerError(f"scrape needs 1 to {MAX_SCRAPE_FILES} info-hashes")
    if any(len(h) != 20 for h in infohashes):
        raise TrackerError("info-hashes must be 20 bytes")
    return _with_query(base, [("info_hash", h) for h in infohashes])


def _decode_dict(body: bytes) -> dict[bytes, BValue]:
    try:
        value = decode(body, TRACKER_LIMITS)
    except BencodeError as exc:
        raise TrackerError(f"tracker answer is not valid bencode: {exc}") from exc
    if not isinstance(value, dict):
        raise TrackerError("tracker answer is not a dictionary")
    failure = value.get(b"failure reason")
    if failure is not None:
        if not isinstance(failure, bytes):
            raise TrackerError("failure reason is not a string")
        raise TrackerRefusedError(text(failure))
    return value


def _optional_int(d: dict[bytes, BValue], key: bytes) -> int | None:
    value = d.get(key)
    return None if value is None else checked_int(key.decode(), value)


def _dict_peers(entries: list[BValue], max_peers: int) -> tuple[list[Peer], int]:
    peers: list[Peer] = []
    dropped = 0
    for entry in entries:
        if not isinstance(entry, dict):
            raise TrackerError("peer entry is not a dictionary")
        ip_raw, port = entry.get(b"ip"), entry.get(b"port")
        if not isinstance(ip_raw, bytes):
            raise TrackerError("peer entry without an ip string")
        port = checked_int("port", port, 0xFFFF)
        peer_id = entry.get(b"peer id")
        if peer_id is not None and not isinstance(peer_id, bytes):
            raise TrackerError("peer id is not a string")
        try:
            ip = ipaddress.ip_address(ip_raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            # BEP 3 allows a DNS name here; an observer records addresses, never names.
            dropped += 1
            continue
        if len(peers) >= max_peers:
            dropped += 1
            continue
        peers.append(Peer(str(ip), port, peer_id if peer_id and len(peer_id) == 20 else None))
    return peers, dropped


def _external_ip(raw: BValue | None) -> str | None:
    """BEP 24's "external ip": 4 or 16 raw bytes. Anything else is ignored, not refused:
    it says nothing about the peers, which are what the answer is for."""
    if isinstance(raw, bytes) and len(raw) in (4, 16):
        return str(ipaddress.ip_address(raw))
    return None


def parse_announce_response(body: bytes, *, max_peers: int = MAX_PEERS) -> AnnounceResponse:
    """The tracker's answer to an announce; `TrackerRefusedError` when it refused.

    Peers come from "peers" (compact string or list of dictionaries) and
    "peers6" (compact, BEP 7); at most `max_peers` are kept in all.
    """
    d = _decode_dict(body)
    interval = d.get(b"interval")
    if interval is None:
        raise TrackerError("announce answer without interval")
    peers: list[Peer] = []
    dropped = 0
    raw = d.get(b"peers", b"")
    if isinstance(raw, bytes):
        got, more = decode_compact_peers(raw, ipv6=False, max_peers=max_peers)
        peers.extend(got)
        dropped += more
    elif isinstance(raw, list):
        got_list, more = _dict_peers(raw, max_peers)
        peers.extend(got_list)
        dropped += more
    else:
        raise TrackerError("peers is neither a string nor a list")
    raw6 = d.get(b"peers6", b"")
    if not isinstance(raw6, bytes):
        raise TrackerError("peers6 is not a string")
    got6, more6 = decode_compact_peers(raw6, ipv6=True, max_peers=max_peers - len(peers))
    peers.extend(got6)
    dropped += more6
    warning = d.get(b"warning message")
    if warning is not None and not isinstance(warning, bytes):
        raise TrackerError("warning message is not a string")
    tracker_id = d.get(b"tracker id")
    if tracker_id is not None and not isinstance(tracker_id, bytes):
        raise TrackerError("tracker id is not a string")
    return AnnounceResponse(
        external_ip=_external_ip(d.get(b"external ip")),
        interval=checked_int("interval", interval, (1 << 31) - 1),
        peers=tuple(peers),
        min_interval=_optional_int(d, b"min interval"),
        complete=_optional_int(d, b"complete"),
        incomplete=_optional_int(d, b"incomplete"),
        downloaded=_optional_int(d, b"downloaded"),
        warning=None if warning is None else text(warning),
        tracker_id=tracker_id,
        peers_dropped=dropped,
    )


def parse_scrape_response(
    body: bytes, *, max_files: int = MAX_SCRAPE_FILES
) -> dict[bytes, ScrapeStats]:
    """Counts by 20-byte info-hash from a scrape answer; `TrackerRefusedError` when refused."""
    d = _decode_dict(body)
    files = d.get(b"files")
    if not isinstance(files, dict):
        raise TrackerError("scrape answer without a files dictionary")
    if len(files) > max_files:
        raise TrackerError(f"scrape answer with more than {max_files} files")
    out: dict[bytes, ScrapeStats] = {}
    for infohash, stats in files.items():
        if len(infohash) != 20:
            raise TrackerError("scrape answer keyed by something other than a 20-byte info-hash")
        if not isinstance(stats, dict):
            raise TrackerError("scrape entry is not a dictionary")
        complete, incomplete = stats.get(b"complete"), stats.get(b"incomplete")
        if complete is None or incomplete is None:
            raise TrackerError("scrape entry without complete and incomplete")
        out[infohash] = ScrapeStats(
            complete=checked_int("complete", complete),
            incomplete=checked_int("incomplete", incomplete),
            downloaded=_optional_int(stats, b"downloaded"),
        )
    return out


def encode_announce_response(response: AnnounceResponse, *, compact: bool = True) -> bytes:
    """A tracker's bencoded answer (for lab trackers and round-trip tests)."""
    v4 = [p for p in response.peers if ":" not in p.ip]
    v6 = [p for p in response.peers if ":" in p.ip]
    d: dict[bytes, BValue] = {b"interval": response.interval}
    if compact:
        d[b"peers"] = encode_compact_peers(v4, ipv6=False)
        if v6:
            d[b"peers6"] = encode_compact_peers(v6, ipv6=True)
    else:
        entries: list[BValue] = []
        for p in response.peers:
            entry: dict[bytes, BValue] = {b"ip": p.ip.encode(), b"port": p.port}
            if p.peer_id is not None:
                entry[b"peer id"] = p.peer_id
            entries.append(entry)
        d[b"peers"] = entries
    optional: dict[bytes, int | str | bytes | None] = {
        b"min interval": response.min_interval,
        b"complete": response.complete,
        b"incomplete": response.incomplete,
        b"downloaded": response.downloaded,
        b"warning message": response.warning,
        b"tracker id": response.tracker_id,
    }
    for key, value in optional.items():
        if value is not None:
            d[key] = value.encode() if isinstance(value, str) else value
    return encode(d)


def encode_scrape_response(files: dict[bytes, ScrapeStats]) -> bytes:
    """A tracker's bencoded scrape answer (for lab trackers and round-trip tests)."""
    out: dict[bytes, BValue] = {}
    for infohash, stats in files.items():
        entry: dict[bytes, BValue] = {b"complete": stats.complete, b"incomplete": stats.incomplete}
        if stats.downloaded is not None:
            entry[b"downloaded"] = stats.downloaded
        out[infohash] = entry
    return encode({b"files": out})
