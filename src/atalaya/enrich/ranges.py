"""Flags that lower a lead's actionability, from lists of address ranges and ASNs.

A range list is a text file with one CIDR block or address a line (`#` starts
a comment); an ASN list has one AS number a line (`AS64512` or `64512`). Each
list is configured under a flag name: `hosting`, `vpn`, `anonymiser`,
`mobile`, `cgnat`… Atalaya ships one list, carrier-grade NAT's shared address
space (RFC 6598, 100.64.0.0/10) under `cgnat`; hosting and VPN lists, of
IPv4 and IPv6 blocks, are the operator's to supply. Parsing is sans-I/O; any
problem is a `RangeListError`.

`cgnat` is for IPv4 only: carrier-grade NAT shares one IPv4 address among
subscribers, while each IPv6 subscriber holds a prefix of its own (the
leads stage groups IPv6 by prefix). A `cgnat` list with IPv6 blocks is
refused, and an ASN list under `cgnat` flags IPv4 addresses only.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Address, IPv6Address, collapse_addresses, ip_network

MAX_LINES = 2_000_000
MAX_LINE = 200
FLAG_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
CGNAT = "cgnat"
DEFAULT_RANGE_LISTS = {CGNAT: "cgnat.txt"}  # files in atalaya/enrich/data


class RangeListError(ValueError):
    """A range or ASN list, or a flag name, is not in the accepted form."""


def check_flag_name(name: str) -> str:
    if not FLAG_NAME.fullmatch(name):
        raise RangeListError(
            f"flag name {name[:50]!r} must be lower-case letters, digits and _ (at most 40)"
        )
    return name


def _lines(text: str) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if number > MAX_LINES:
            raise RangeListError(f"more than {MAX_LINES} lines")
        if len(raw) > MAX_LINE:
            raise RangeListError(f"line {number}: longer than {MAX_LINE} characters")
        line = raw.split("#", 1)[0].strip()
        if line:
            yield number, line


def parse_range_list(text: str) -> list[tuple[int, int, int]]:
    """(version, first, last) of every block, as integers; RangeListError if bad."""
    blocks = []
    for number, line in _lines(text):
        try:
            network = ip_network(line, strict=False)
        except ValueError:
            raise RangeListError(f"line {number}: {line[:60]!r} is not a CIDR block") from None
        blocks.append(network)
    ranges = []
    for version in (4, 6):
        same = [b for b in blocks if b.version == version]
        for block in collapse_addresses(same):  # type: ignore[type-var]
            ranges.append((version, int(block.network_address), int(block.broadcast_address)))
    return ranges


def parse_asn_list(text: str) -> set[int]:
    """The AS numbers of an ASN list; RangeListError if bad."""
    numbers = set()
    for number, line in _lines(text):
        digits = line[2:] if line[:2].upper() == "AS" else line
        if (
            not (digits.isascii() and digits.isdigit())
            or len(digits) > 10
            or int(digits) > 2**32 - 1
        ):
            raise RangeListError(f"line {number}: {line[:30]!r} is not an AS number")
        numbers.add(int(digits))
    return numbers


def default_range_list(flag: str) -> str:
    """The text of a list Atalaya ships."""
    name = DEFAULT_RANGE_LISTS[flag]
    return resources.files("atalaya.enrich").joinpath("data", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class _Ranges:
    starts: list[int]
    ends: list[int]

    def holds(self, value: int) -> bool:
        i = bisect_right(self.starts, value) - 1
        return i >= 0 and value <= self.ends[i]


class FlagRules:
    """Which flags an address (and its AS number) carries."""

    def __init__(
        self,
        range_lists: Mapping[str, Iterable[tuple[int, int, int]]],
        asn_lists: Mapping[str, Iterable[int]] | None = None,
    ) -> None:
        self._ranges: list[tuple[str, int, _Ranges]] = []
        for flag, listed in sorted(range_lists.items()):
            check_flag_name(flag)
            ranges = list(listed)
            if flag == CGNAT and any(v == 6 for v, _, _ in ranges):
                raise RangeListError(
                    "the cgnat list holds IPv6 blocks: carrier-grade NAT shares IPv4 "
                    "addresses; an IPv6 subscriber has a prefix of its own"
                )
            for version in (4, 6):
                spans = sorted((a, b) for v, a, b in ranges if v == version)
                if spans:
                    self._ranges.append(
                        (flag, version, _Ranges([a for a, _ in spans], [b for _, b in spans]))
                    )
        self._asns = {check_flag_name(f): frozenset(a) for f, a in (asn_lists or {}).items()}

    def flags(self, ip: IPv4Address | IPv6Address, asn: int | None) -> set[str]:
        found = set()
        value = int(ip)
        for flag, version, ranges in self._ranges:
            if version == ip.version and ranges.holds(value):
                found.add(flag)
        if asn is not None:
            found.update(flag for flag, asns in self._asns.items() if asn in asns)
            if ip.version == 6:
                found.discard(CGNAT)
        return found
