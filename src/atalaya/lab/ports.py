"""Free ports on a loopback address, picked at run time."""

from __future__ import annotations

import socket

_ATTEMPTS = 50


def free_port(ip: str) -> int:
    """A port free for both TCP and UDP on `ip` right now.

    Lab programs listen on one port for both (libtorrent's peer wire and DHT,
    opentracker's HTTP and UDP trackers), so both must be free.
    """
    for _ in range(_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((ip, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((ip, port))
                except OSError:
                    continue
            return port
    raise OSError(f"no port free for both TCP and UDP on {ip} after {_ATTEMPTS} attempts")


def is_loopback(ip: str) -> bool:
    """Whether `ip` is an IPv4 address in 127.0.0.0/8, the only range the lab uses."""
    parts = ip.split(".")
    return (
        len(parts) == 4
        and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)
        and parts[0] == "127"
    )
