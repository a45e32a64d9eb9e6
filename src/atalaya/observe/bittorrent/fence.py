"""Which addresses an observer may talk to.

On a real network any address that can be a peer is fair game; a lab run,
a demo or a test fences itself in with `--allow-network CIDR`. Whatever the
fence, some addresses can never be a peer: unspecified, multicast and the
IPv4 broadcast address. Those are refused here, once, for every path a peer
address arrives by (DHT, tracker, PEX).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from atalaya.errors import AtalayaError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def parse_fence(cidrs: Iterable[str] | None) -> tuple[Network, ...] | None:
    """The networks of `--allow-network` values; None (no fence) when none are given."""
    if cidrs is None:
        return None
    networks = []
    for text in cidrs:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise AtalayaError(
                f"--allow-network {text!r}: expected a CIDR range such as 100.64.0.0/10 or fd00::/8"
            ) from None
    return tuple(networks) if networks else None


def can_be_peer(ip: str) -> bool:
    """False for what is never a peer: not an address, unspecified, multicast, broadcast."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (addr.is_unspecified or addr.is_multicast or addr == _BROADCAST)


def fence_admits(fence: tuple[Network, ...] | None, ip: str) -> bool:
    """Whether `ip` can be a peer and lies inside the fence (any, with no fence)."""
    if not can_be_peer(ip):
        return False
    if fence is None:
        return True
    addr = ipaddress.ip_address(ip)
    return any(addr.version == net.version and addr in net for net in fence)
