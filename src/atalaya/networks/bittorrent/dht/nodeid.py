"""Node ids: XOR distance and BEP 42's tie between a node's id and its IP.

BEP 42 makes the first 21 bits of a node id a CRC32-C of the node's masked IP
and a 3-bit random number `r`, which the id's last byte carries. Nodes on
local networks (127/8, 10/8, 172.16/12, 192.168/16, 169.254/16 and their IPv6
counterparts) are exempt: any id is valid for them.
"""

from __future__ import annotations

import ipaddress
import random

ID_BITS = 160
ID_BYTES = 20

_EXEMPT = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)
_V4_MASK = (0x03, 0x0F, 0x3F, 0xFF)
_V6_MASK = (0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum BEP 42 uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def distance(a: bytes, b: bytes) -> int:
    """Kademlia XOR distance between two ids, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def is_exempt(ip: str) -> bool:
    """True for addresses BEP 42 exempts from the id restriction (local networks)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in _EXEMPT)


def _prefix(ip: str, r: int) -> int:
    """The 32-bit CRC whose top 21 bits a valid id for `ip` and `r` starts with."""
    packed = ipaddress.ip_address(ip).packed
    mask = _V4_MASK if len(packed) == 4 else _V6_MASK
    masked = bytearray(b & m for b, m in zip(packed, mask, strict=False))
    masked[0] |= (r & 0x7) << 5
    return crc32c(bytes(masked))


def generate_node_id(ip: str, rng: random.Random) -> bytes:
    """A random node id that satisfies BEP 42 for `ip`."""
    rand = rng.getrandbits(8)
    crc = _prefix(ip, rand & 0x7)
    middle = rng.getrandbits(8 * 16).to_bytes(16, "big")
    third = ((crc >> 8) & 0xF8) | rng.getrandbits(3)
    return bytes(((crc >> 24) & 0xFF, (crc >> 16) & 0xFF, third)) + middle + bytes((rand,))


def is_valid_node_id(node_id: bytes, ip: str) -> bool:
    """Whether `node_id` satisfies BEP 42 for `ip`; exempt addresses always do."""
    if len(node_id) != ID_BYTES:
        return False
    if is_exempt(ip):
        return True
    try:
        crc = _prefix(ip, node_id[19] & 0x7)
    except ValueError:
        return False
    top21 = int.from_bytes(node_id[:3], "big") >> 3
    return top21 == crc >> 11


def random_id(rng: random.Random) -> bytes:
    return rng.getrandbits(ID_BITS).to_bytes(ID_BYTES, "big")


def random_id_in_range(low: int, high: int, rng: random.Random) -> bytes:
    """A random id in [low, high)."""
    return rng.randrange(low, high).to_bytes(ID_BYTES, "big")
