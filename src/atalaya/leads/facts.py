"""What lead building needs to know about an address, and where it comes from.

Grouping and scoring see an address only through `IpFacts`: network (ASN,
ISP), place (country, province, municipality, point) and flags such as
"cgnat" or "hosting". A `FactsSource` supplies them; `MappingFacts` serves
a fixed mapping (tests, benchmarks) and `atalaya.leads.enrichment` reads the
enrichment table. The addresses asked about are presence addresses: an IPv4
address, or an IPv6 prefix such as `2001:db8:1:2::/64` (see
`atalaya.enrich.prefixes`), whose facts are those of the lowest address
inside it that the source knows.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from atalaya.enrich.prefixes import parse_prefix, prefix_of

# RFC 6598 shared address space: used only behind carrier-grade NAT, so an
# address in it is shared by many subscribers whatever the enrichment says.
_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class IpFacts:
    country: str | None = None
    province_code: str | None = None
    province_name: str | None = None
    municipality_code: str | None = None
    municipality_name: str | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy_km: float | None = None
    asn: int | None = None
    isp: str | None = None
    time_zone: str | None = None
    flags: frozenset[str] = field(default_factory=frozenset)
    # Which enrichment data produced these facts (recorded with the lead).
    version: str | None = None

    @property
    def shared(self) -> bool:
        """Many subscribers use this address at once (carrier-grade NAT)."""
        return "cgnat" in self.flags


UNKNOWN = IpFacts()


def builtin_flags(ip: str) -> frozenset[str]:
    """Flags that follow from the address alone."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return frozenset()
    if addr.version == 4 and addr in _SHARED_SPACE:
        return frozenset({"cgnat"})
    return frozenset()


def complete(ip: str, facts: IpFacts | None) -> IpFacts:
    """`facts` (or UNKNOWN) with the flags the address itself implies."""
    base = facts if facts is not None else UNKNOWN
    extra = builtin_flags(ip)
    if extra <= base.flags:
        return base
    return replace(base, flags=base.flags | extra)


class FactsSource(Protocol):
    def lookup(self, ips: Collection[str]) -> dict[str, IpFacts]:
        """Facts for each address it knows; unknown addresses are left out."""
        ...

    def fingerprint(self) -> str:
        """Changes whenever facts for some address may have changed."""
        ...

    def changed_since(self, fingerprint: str) -> Collection[str] | None:
        """The exact addresses whose facts may differ from when `fingerprint` was taken.

        None when the source cannot tell: every stored address is compared.
        """
        ...


class MappingFacts:
    """Facts from a fixed mapping of address (or IPv6 prefix) to facts."""

    def __init__(self, facts: Mapping[str, IpFacts], version: str = "mapping") -> None:
        self._facts = dict(facts)
        self._version = version
        self._digest: str | None = None
        self._by_prefix: dict[int, dict[str, IpFacts]] = {}

    def lookup(self, ips: Collection[str]) -> dict[str, IpFacts]:
        found = {ip: self._facts[ip] for ip in ips if ip in self._facts}
        for key in ips:
            network = parse_prefix(key) if key not in found else None
            if network is not None:
                inside = self._lowest_inside(network.prefixlen).get(key)
                if inside is not None:
                    found[key] = inside
        return found

    def _lowest_inside(self, length: int) -> dict[str, IpFacts]:
        """Per /`length` prefix, the facts of the lowest mapped address in it."""
        known = self._by_prefix.get(length)
        if known is None:
            best: dict[str, tuple[int, IpFacts]] = {}
            for ip, facts in self._facts.items():
                key = prefix_of(ip, length)
                if key == ip or parse_prefix(key) is None:
                    continue
                value = int(ipaddress.IPv6Address(ip))
                if key not in best or value < best[key][0]:
                    best[key] = (value, facts)
            known = self._by_prefix[length] = {k: f for k, (_, f) in best.items()}
        return known

    def fingerprint(self) -> str:
        if self._digest is None:
            # Flags in order: a frozenset's repr follows the process's string
            # hashing, and the fingerprint must not change between processes.
            content = repr(
                sorted(
                    (ip, sorted(f.flags), repr(replace(f, flags=frozenset())))
                    for ip, f in self._facts.items()
                )
            ).encode()
            self._digest = hashlib.sha256(content).hexdigest()[:16]
        return f"{self._version}:{self._digest}"

    def changed_since(self, fingerprint: str) -> Collection[str] | None:
        return None  # a fixed mapping keeps no history: compare every address
