"""BEP 42 node ids: the BEP's own table for IPv4, an independent CRC for IPv6."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.bittorrent.dht.nodeid import (
    crc32c,
    generate_node_id,
    is_exempt,
    is_valid_node_id,
)

# BEP 42's test vectors: IP, rand (the id's last byte), the id's first 21 bits
# (the first 2 bytes and the top 5 bits of the third).
BEP42_TABLE = [
    ("124.31.75.21", 1, "5fbfbf"),
    ("21.75.31.124", 86, "5a3ce9"),
    ("65.23.51.170", 22, "a5d432"),
    ("84.124.73.14", 65, "1b0321"),
    ("43.213.53.83", 90, "e56f6c"),
]


def _bitwise_crc32c(data: bytes) -> int:
    """CRC-32C one bit at a time: a second implementation to check the table one."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def test_crc32c_check_value() -> None:
    # The catalogue's check value of CRC-32/ISCSI (Castagnoli).
    assert crc32c(b"123456789") == 0xE3069283
    assert _bitwise_crc32c(b"123456789") == 0xE3069283


@given(st.binary(max_size=64))
def test_crc32c_agrees_with_the_bitwise_form(data: bytes) -> None:
    assert crc32c(data) == _bitwise_crc32c(data)


@pytest.mark.parametrize(("ip", "rand", "prefix"), BEP42_TABLE)
def test_bep42_table(ip: str, rand: int, prefix: str) -> None:
    head = bytes.fromhex(prefix)
    # Any id with those 21 bits and that last byte is valid; the middle is free.
    node_id = head[:2] + bytes([head[2] & 0xF8 | 0x5]) + b"\x42" * 16 + bytes([rand])
    assert is_valid_node_id(node_id, ip)
    flipped = bytes([node_id[0] ^ 0x01]) + node_id[1:]
    assert not is_valid_node_id(flipped, ip)
    # The low 3 bits of the third byte are free too; the 21st bit is not.
    assert is_valid_node_id(node_id[:2] + bytes([node_id[2] ^ 0x07]) + node_id[3:], ip)
    assert not is_valid_node_id(node_id[:2] + bytes([node_id[2] ^ 0x08]) + node_id[3:], ip)


def _v6_prefix_by_hand(packed: bytes, r: int) -> int:
    # BEP 42 for IPv6: the first 8 bytes masked with 01 03 07 0f 1f 3f 7f ff,
    # r in the top 3 bits of the first byte, CRC-32C of those 8 bytes.
    mask = bytes.fromhex("0103070f1f3f7fff")
    masked = bytearray(b & m for b, m in zip(packed[:8], mask, strict=True))
    masked[0] |= r << 5
    return _bitwise_crc32c(bytes(masked))


# 2001:db8::/32 is the IPv6 documentation prefix: not exempt, never a real node.
# (address, its bytes by hand, r, another address in the same /64)
V6_VECTORS = [
    ("2001:db8::1", bytes.fromhex("20010db8000000000000000000000001"), 5, "2001:db8::abcd"),
    (
        "2001:db8:ffff:ffff::7",
        bytes.fromhex("20010db8ffffffff0000000000000007"),
        0,
        "2001:db8:ffff:ffff:1:2:3:4",
    ),
    (
        "2001:db8:1234:5678:9abc::",
        bytes.fromhex("20010db8123456789abc000000000000"),
        7,
        "2001:db8:1234:5678::1",
    ),
]


@pytest.mark.parametrize(("ip", "packed", "r", "same_64"), V6_VECTORS)
def test_bep42_ipv6_against_a_hand_computed_prefix(
    ip: str, packed: bytes, r: int, same_64: str
) -> None:
    crc = _v6_prefix_by_hand(packed, r)
    node_id = crc.to_bytes(4, "big")[:3] + b"\x00" * 16 + bytes([0xA8 | r])
    assert not is_exempt(ip)
    assert is_valid_node_id(node_id, ip)
    assert not is_valid_node_id(bytes([node_id[0] ^ 0x80]) + node_id[1:], ip)
    # Only the first 64 bits of the address count.
    assert ipaddress.IPv6Address(packed) == ipaddress.IPv6Address(ip)
    assert is_valid_node_id(node_id, same_64)


@given(st.binary(min_size=16, max_size=16), st.randoms(use_true_random=False))
def test_generated_ipv6_ids_match_the_hand_prefix(packed: bytes, rng: random.Random) -> None:
    ip = str(ipaddress.IPv6Address(packed))
    node_id = generate_node_id(ip, rng)
    assert is_valid_node_id(node_id, ip)
    crc = _v6_prefix_by_hand(packed, node_id[19] & 0x7)
    assert int.from_bytes(node_id[:3], "big") >> 3 == crc >> 11


def test_local_addresses_are_exempt() -> None:
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "::1", "fd00::5", "fe80::1"):
        assert is_exempt(ip)
        assert is_valid_node_id(b"\x00" * 20, ip)
    assert not is_valid_node_id(b"\x00" * 19, "127.0.0.1")
    assert not is_valid_node_id(b"\x00" * 20, "not an ip")
