"""IPv6 subscriber prefixes as text, and how to find their addresses in SQL.

An ISP gives each IPv6 subscriber a prefix, not an address: a /48 to /64 per
end site (RFC 6177, BCP 157), in practice mostly a /56 or a /64 for a home
line and a /64 for a mobile one. Devices pick their own interface ids inside
the /64 of their link, and temporary ("privacy") addresses change at least
daily (RFC 8981, which obsoletes RFC 4941). What stays put for one
subscriber is the prefix: `prefix_of` gives the /N of an address as the text
of the network, `2001:db8:1:2::/64`, at most 43 characters, so it fits the
String(45) address columns. IPv4 addresses are their own key.

Addresses are stored as RFC 5952 text (what `str(IPv6Address)` gives: lower
case, no leading zeros, the first longest run of two or more zero hextets
written `::`), so the addresses of one prefix are not one text range: the
`::` may swallow part of the prefix. `like_patterns` gives LIKE patterns
whose union holds the text of every address of the prefix, and maybe a few
more; `holds` tells them apart in Python, and `prefix_condition` is the
SQL condition. LIKE rather than a text range: on PostgreSQL, ranges follow
the database's collation, which may ignore ':'; LIKE matches characters.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from sqlalchemy import ColumnElement, or_

MIN_PREFIX = 32
MAX_PREFIX = 128


@lru_cache(maxsize=65_536)
def prefix_of(ip: str, length: int) -> str:
    """The key of `ip`: an IPv6 address's /`length` network as text (the address
    itself at /128), anything else unchanged."""
    if ":" not in ip:
        return ip
    if not MIN_PREFIX <= length <= MAX_PREFIX:
        raise ValueError(f"an IPv6 prefix length is {MIN_PREFIX} to {MAX_PREFIX}, not {length}")
    try:
        address = IPv6Address(ip)
    except ValueError:
        return ip
    if length == MAX_PREFIX:
        return str(IPv6Address(int(address)))  # without a scope id
    bits = MAX_PREFIX - length
    return str(IPv6Network(((int(address) >> bits) << bits, length)))


@lru_cache(maxsize=65_536)
def parse_prefix(key: str) -> IPv6Network | None:
    """The network of a key `prefix_of` gave for a prefix, else None."""
    if "/" not in key or ":" not in key:
        return None
    try:
        network = IPv6Network(key)
    except ValueError:
        return None
    return network if network.prefixlen < MAX_PREFIX else None


def holds(key: str, ip: str) -> bool:
    """Whether the address `ip` has the key `key` (is inside it, or is it)."""
    network = parse_prefix(key)
    if network is None:
        return ip == key
    try:
        return IPv6Address(ip) in network
    except ValueError:
        return False


def like_patterns(key: str) -> tuple[str, ...]:
    """LIKE patterns matching the RFC 5952 text of every address of `key`.

    With k = N // 16 hextets fixed by a /N, an address's text either spells
    those k hextets out and goes on with ':' (when its `::` starts after
    them, or it has none), or has its `::` start at a zero hextet j < k that
    follows a non-zero one (runs are maximal), and begins with the hextets
    before j and '::'. The patterns may match addresses outside the prefix
    (a longer `::`, the free bits of a hextet cut by N): filter with `holds`.
    """
    network = parse_prefix(key)
    if network is None:
        return (key,)
    value = int(network.network_address)
    hextets = [f"{(value >> (112 - 16 * i)) & 0xFFFF:x}" for i in range(8)]
    k = network.prefixlen // 16
    patterns = [":".join(hextets[:k]) + ":%"]
    for j in range(k):
        if hextets[j] == "0" and (j == 0 or hextets[j - 1] != "0"):
            patterns.append(":".join(hextets[:j]) + "::%")
    return tuple(patterns)


def prefix_condition(column: Any, key: str) -> ColumnElement[bool]:
    """True for rows whose `column` (address text) may have the key `key`:
    equality for an address, LIKE patterns for a prefix (then check `holds`)."""
    patterns = like_patterns(key)
    if parse_prefix(key) is None:
        return column == key  # type: ignore[no-any-return]
    return or_(*(column.like(p) for p in patterns))
