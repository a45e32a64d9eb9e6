"""Where a DHT run starts from: the public routers, or nodes the operator names.

A node that knows no other node cannot join the DHT. Real clients ship a few
well-known "routers", nodes run by client authors whose only job is to hand
out contacts; libtorrent, Transmission and uTorrent use the ones below. Names
are resolved at start, for both address families, within a bounded time, so
a run on a machine with no network (or no DNS) learns that in seconds and
says so, instead of watching nothing in silence.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from atalaya.errors import AtalayaError
from atalaya.networks.bittorrent.krpc import Address

# The routers libtorrent, Transmission and uTorrent bootstrap from.
DEFAULT_ROUTERS = (
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
)
RESOLVE_TIMEOUT = 5.0
MAX_ADDRESSES_PER_NAME = 8


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Resolved:
    """What each name gave; `failed` holds one line per name that gave nothing."""

    addresses: tuple[Address, ...]
    by_name: tuple[tuple[HostPort, tuple[Address, ...]], ...]
    failed: tuple[str, ...]


def parse_hostport(text: str, option: str = "--dht-bootstrap") -> HostPort:
    """HOST:PORT, IPv4:PORT or [IPv6]:PORT; AtalayaError naming `option` otherwise."""
    raw = text.strip()
    host, sep, port = raw.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address must be bracketed, or its last group reads as a port
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AtalayaError(
            f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.2:6881 or [fd00::2]:6881"
        )
    return HostPort(host, int(port))


def _family_of(literal: str) -> int | None:
    try:
        return ipaddress.ip_address(literal).version
    except ValueError:
        return None


async def resolve(
    names: Iterable[HostPort],
    *,
    families: Sequence[int] = (4, 6),
    timeout: float = RESOLVE_TIMEOUT,
) -> Resolved:
    """Resolve every name at once, keeping the addresses of `families`; bounded by `timeout`."""
    loop = asyncio.get_running_loop()
    wanted = {4: socket.AF_INET, 6: socket.AF_INET6}

    async def one(name: HostPort) -> tuple[Address, ...]:
        version = _family_of(name.host)
        if version is not None:
            return ((name.host, name.port),) if version in families else ()
        infos = await loop.getaddrinfo(name.host, name.port, type=socket.SOCK_DGRAM)
        found: dict[Address, None] = {}
        for family, _, _, _, sockaddr in infos:
            if family in (wanted[f] for f in families) and len(found) < MAX_ADDRESSES_PER_NAME:
                found[(str(sockaddr[0]), int(sockaddr[1]))] = None
        return tuple(found)

    names = list(dict.fromkeys(names))
    tasks = [asyncio.ensure_future(one(n)) for n in names]
    done, pending = await asyncio.wait(tasks, timeout=timeout) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    by_name: list[tuple[HostPort, tuple[Address, ...]]] = []
    failed: list[str] = []
    for name, task in zip(names, tasks, strict=True):
        if task in pending:
            failed.append(f"{name}: no answer from DNS within {timeout:g} s")
            continue
        exc = task.exception()
        if exc is not None:
            failed.append(f"{name}: {exc}")
        elif not task.result():
            failed.append(f"{name}: no IPv{'/IPv'.join(map(str, families))} address")
        else:
            by_name.append((name, task.result()))
    del done
    addresses = tuple(dict.fromkeys(a for _, addrs in by_name for a in addrs))
    return Resolved(addresses, tuple(by_name), tuple(failed))
