"""Magnet links for BitTorrent (BEP 9, BEP 52): parse and build.

`xt=urn:btih:` carries a v1 info-hash (40 hex digits, or 32 base32 letters);
`xt=urn:btmh:` a v2 one as a multihash (`1220` + 64 hex digits: SHA-256, 32
bytes). A hybrid torrent's link has both. `dn` is the display name, `tr` a
tracker (any number), `x.pe` a peer `host:port`. Other parameters are
ignored.

Only the info-hash is required (BEP 9): a link refused is an offender
missed. A `dn`, `tr` or `x.pe` that cannot be read, a peer's port out of
range, a parameter without "=", a malformed exact topic beside a good one:
each is dropped and noted in `Magnet.notes`, and the link still parses.
What is refused is a link that names no BitTorrent info-hash, or two
different ones of a kind. Every failure is a `MagnetError`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from atalaya.networks.bittorrent.notes import Notes, shown

MAX_MAGNET_LENGTH: Final = 16 * 1024
MAX_TRACKERS: Final = 100
MAX_PEERS: Final = 100
MAX_NAME_BYTES: Final = 1024
MAX_URL_BYTES: Final = 2048
SHA256_MULTIHASH_PREFIX: Final = bytes([0x12, 0x20])  # sha2-256, 32 bytes

_PREFIX: Final = "magnet:?"
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# "tr" and "tr.1", "xt" and "xt.2": numbered forms of one parameter.
_KEY: Final = re.compile(r"([a-z]+(?:\.[a-z]+)?)(?:\.[0-9]+)?")
_HEX: Final = re.compile(r"[0-9A-Fa-f]*")
_PEER: Final = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):([0-9]{1,5})")


class MagnetError(ValueError):
    """The text is not a BitTorrent magnet link this parser accepts."""


@dataclass(frozen=True)
class Magnet:
    """A BitTorrent magnet link's content."""

    infohash_v1: bytes | None = None  # 20 bytes
    infohash_v2: bytes | None = None  # 32 bytes
    name: str | None = None
    trackers: tuple[str, ...] = ()
    peers: tuple[tuple[str, int], ...] = ()  # (host, port); IPv6 hosts without brackets
    # What the link's text had that was dropped (see `notes.Notes`); not part of
    # what the link names, so two links naming the same compare equal.
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.infohash_v1 is None and self.infohash_v2 is None:
            raise MagnetError("a magnet link needs a v1 or a v2 info-hash")
        if self.infohash_v1 is not None and len(self.infohash_v1) != 20:
            raise MagnetError("a v1 info-hash is 20 bytes")
        if self.infohash_v2 is not None and len(self.infohash_v2) != 32:
            raise MagnetError("a v2 info-hash is 32 bytes")
        texts = [self.name or "", *self.trackers, *(host for host, _ in self.peers)]
        for text in texts:
            try:
                text.encode()
            except UnicodeEncodeError as e:
                raise MagnetError("magnet text must be encodable as UTF-8") from e
        for _, port in self.peers:
            if not 0 < port < 65536:
                raise MagnetError(f"peer port {port} outside 1..65535")

    @property
    def swarm_hashes(self) -> tuple[bytes, ...]:
        """The 20-byte keys of the swarms (v2 truncated, BEP 52) for DHT and trackers."""
        return tuple(h[:20] for h in (self.infohash_v1, self.infohash_v2) if h)

    def uri(self) -> str:
        """The magnet link; `parse_magnet` gives this object back."""
        parts = []
        if self.infohash_v1 is not None:
            parts.append(f"xt=urn:btih:{self.infohash_v1.hex()}")
        if self.infohash_v2 is not None:
            parts.append(f"xt=urn:btmh:{(SHA256_MULTIHASH_PREFIX + self.infohash_v2).hex()}")
        if self.name is not None:
            parts.append(f"dn={quote(self.name, safe='')}")
        parts.extend(f"tr={quote(url, safe='')}" for url in self.trackers)
        for host, port in self.peers:
            address = f"[{host}]" if ":" in host else host
            parts.append(f"x.pe={quote(address, safe='[]:')}:{port}")
        uri = _PREFIX + "&".join(parts)
        if len(uri) > MAX_MAGNET_LENGTH:
            raise MagnetError(f"magnet link longer than {MAX_MAGNET_LENGTH} characters")
        return uri


def parse_magnet(uri: str) -> Magnet:
    """Parse a BitTorrent magnet link; what only describes the torrent is dropped if unreadable."""
    if len(uri) > MAX_MAGNET_LENGTH:
        raise MagnetError(f"magnet link longer than {MAX_MAGNET_LENGTH} characters")
    if not uri[: len(_PREFIX)].lower() == _PREFIX:
        raise MagnetError("not a magnet link: it must start with 'magnet:?'")
    query = uri[len(_PREFIX) :]
    if "#" in query:
        query = query[: query.index("#")]
    notes = Notes()
    v1: bytes | None = None
    v2: bytes | None = None
    bad_topics: list[MagnetError] = []
    name: str | None = None
    trackers: list[str] = []
    peers: list[tuple[str, int]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, sep, raw = part.partition("=")
        if not sep:
            notes.add("parameter without '=' dropped", shown(key))
            continue
        m = _KEY.fullmatch(key.lower())
        base = m.group(1) if m else key.lower()
        try:
            if base == "xt":
                try:
                    found_v1, found_v2 = _exact_topic(_unquote(raw, "xt"))
                except MagnetError as e:
                    bad_topics.append(e)
                    raise
                if found_v1 is not None:
                    if v1 is not None and v1 != found_v1:
                        raise _AmbiguousError("two different v1 info-hashes")
                    v1 = found_v1
                if found_v2 is not None:
                    if v2 is not None and v2 != found_v2:
                        raise _AmbiguousError("two different v2 info-hashes")
                    v2 = found_v2
            elif base == "dn":
                if name is not None:
                    raise MagnetError("more than one display name (dn)")
                name = _unquote(raw.replace("+", " "), "dn", MAX_NAME_BYTES)
            elif base == "tr":
                if len(trackers) >= MAX_TRACKERS:
                    raise MagnetError(f"more than {MAX_TRACKERS} trackers")
                url = _tracker(_unquote(raw, "tr", MAX_URL_BYTES), notes)
                if url not in trackers:
                    trackers.append(url)
            elif base == "x.pe":
                if len(peers) >= MAX_PEERS:
                    raise MagnetError(f"more than {MAX_PEERS} peers")
                peer = _peer(_unquote(raw, "x.pe", 300))
                if peer not in peers:
                    peers.append(peer)
        except _AmbiguousError:
            raise
        except MagnetError as e:
            notes.add(f"{base} dropped", str(e))
    if v1 is None and v2 is None:
        if bad_topics:
            raise bad_topics[0]
        raise MagnetError("no BitTorrent info-hash (xt=urn:btih: or xt=urn:btmh:)")
    return Magnet(v1, v2, name, tuple(trackers), tuple(peers), notes.freeze())


class _AmbiguousError(MagnetError):
    """Two different info-hashes of one kind: which torrent the link names is unknown."""


def build_magnet(
    *,
    infohash_v1: bytes | None = None,
    infohash_v2: bytes | None = None,
    name: str | None = None,
    trackers: tuple[str, ...] = (),
    peers: tuple[tuple[str, int], ...] = (),
) -> str:
    """A magnet link for a torrent's info-hash(es), with name, trackers and peers."""
    return Magnet(infohash_v1, infohash_v2, name, trackers, peers).uri()


def _exact_topic(topic: str) -> tuple[bytes | None, bytes | None]:
    """(v1, v2) from one xt value; other URNs (sha1:, ed2k:, …) give (None, None)."""
    lowered = topic.lower()
    if lowered.startswith("urn:btih:"):
        digest = topic[len("urn:btih:") :]
        if len(digest) == 40 and _HEX.fullmatch(digest):
            return bytes.fromhex(digest), None
        if len(digest) == 32:
            try:
                return base64.b32decode(digest, casefold=True), None
            except ValueError as e:  # binascii.Error, or non-ASCII letters
                raise MagnetError(f"btih {digest!r} is not base32") from e
        raise MagnetError("btih must be 40 hex digits or 32 base32 letters")
    if lowered.startswith("urn:btmh:"):
        digest = topic[len("urn:btmh:") :]
        if len(digest) != 68 or not _HEX.fullmatch(digest):
            raise MagnetError("btmh must be a SHA-256 multihash: '1220' and 64 hex digits")
        raw = bytes.fromhex(digest)
        if raw[:2] != SHA256_MULTIHASH_PREFIX:
            raise MagnetError(f"btmh multihash {digest[:4]!r} is not SHA-256 ('1220')")
        return None, raw[2:]
    return None, None


def _tracker(text: str, notes: Notes) -> str:
    """A tracker URL, trimmed of surrounding whitespace."""
    url = text.strip()
    if url != text and url:
        notes.add("tracker URL trimmed of surrounding whitespace", shown(url))
    if not url or not url.isprintable() or " " in url:
        raise MagnetError(f"tracker URL {shown(text)} is empty or has spaces or control characters")
    return url


def _unquote(raw: str, what: str, limit: int = MAX_MAGNET_LENGTH) -> str:
    if _BAD_ESCAPE.search(raw):
        raise MagnetError(f"{what} has a '%' that is not followed by two hex digits")
    try:
        data = unquote_to_bytes(raw)
    except UnicodeEncodeError as e:  # lone surrogates in the text
        raise MagnetError(f"{what} is not valid text") from e
    if len(data) > limit:
        raise MagnetError(f"{what} longer than {limit} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        raise MagnetError(f"{what} is not UTF-8") from e
    if "\x00" in text:
        raise MagnetError(f"{what} contains NUL")
    return text


def _peer(text: str) -> tuple[str, int]:
    m = _PEER.fullmatch(text)
    if m is None:
        raise MagnetError(f"peer {shown(text)} is not host:port, IPv4:port or [IPv6]:port")
    port = int(m.group(3))
    if not 0 < port < 65536:
        raise MagnetError(f"peer port {port} outside 1..65535")
    host = m.group(1) or m.group(2)
    if not host.isprintable() or " " in host:
        raise MagnetError(f"peer host {shown(host)} has spaces or control characters")
    return host, port
