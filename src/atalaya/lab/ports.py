"""Free ports on a lab address, picked at run time, and the lab's address ranges."""

from __future__ import annotations

import ipaddress
import socket

_ATTEMPTS = 50
# Namespace labs (lab.netns) take their addresses from these two ranges only.
SHARED_SPACE = ipaddress.IPv4Network("100.64.0.0/10")
UNIQUE_LOCAL = ipaddress.IPv6Network("fd00::/8")


def free_port(ip: str) -> int:
    """A port free for both TCP and UDP on `ip` (IPv4 or IPv6) right now.

    Lab programs listen on one port for both (libtorrent's peer wire and DHT,
    opentracker's HTTP and UDP trackers), so both must be free.
    """
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    for _ in range(_ATTEMPTS):
        with socket.socket(family, socket.SOCK_STREAM) as tcp:
            tcp.bind((ip, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((ip, port))
                except OSError:
                    continue
            return port
    raise OSError(f"no port free for both TCP and UDP on {ip} after {_ATTEMPTS} attempts")


def is_loopback(ip: str) -> bool:
    """Whether `ip` is an IPv4 address in 127.0.0.0/8, the only range the loopback lab uses."""
    parts = ip.split(".")
    return (
        len(parts) == 4
        and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)
        and parts[0] == "127"
    )


def is_namespace_address(ip: str) -> bool:
    """Whether `ip` is in a namespace lab's ranges: 100.64.0.0/10 or fd00::/8."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv4Address):
        return addr in SHARED_SPACE
    return addr in UNIQUE_LOCAL and addr.scope_id is None
