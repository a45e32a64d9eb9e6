from __future__ import annotations

import re
from ipaddress import IPv6Address, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.enrich.prefixes import holds, like_patterns, parse_prefix, prefix_of


def like(pattern: str, text: str) -> bool:
    """SQL LIKE with '%' as its only wildcard (the patterns use no other)."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("%"))), text) is not None


# Addresses with long zero runs anywhere, where RFC 5952 text is hardest.
hextet = st.one_of(st.just(0), st.just(0), st.integers(0, 0xFFFF))
addresses = st.lists(hextet, min_size=8, max_size=8).map(
    lambda hs: IPv6Address(sum(h << (112 - 16 * i) for i, h in enumerate(hs)))
)


def test_examples() -> None:
    assert prefix_of("2001:db8:1:2:a:b:c:d", 64) == "2001:db8:1:2::/64"
    assert prefix_of("2001:DB8:1:2::1", 56) == "2001:db8:1::/56"
    assert prefix_of("2001:db8:1:2::1", 128) == "2001:db8:1:2::1"
    assert prefix_of("fe80::1%eth0", 128) == "fe80::1"
    assert prefix_of("192.0.2.1", 64) == "192.0.2.1"
    assert prefix_of("not an address", 64) == "not an address"
    longest = prefix_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 127)
    assert len(longest) <= 45  # the address columns are String(45)
    assert parse_prefix("2001:db8:1:2::/64") == IPv6Network("2001:db8:1:2::/64")
    assert parse_prefix("2001:db8::1") is None
    assert parse_prefix("192.0.2.0/24") is None
    assert like_patterns("192.0.2.1") == ("192.0.2.1",)
    assert like_patterns("2001:db8:0:2::/64") == ("2001:db8:0:2:%", "2001:db8::%")
    assert holds("2001:db8:1:2::/64", "2001:db8:1:2:ffff::1")
    assert not holds("2001:db8:1:2::/64", "2001:db8:1:3::1")
    assert not holds("2001:db8:1:2::/64", "junk")


@pytest.mark.parametrize("length", [31, 129])
def test_lengths_out_of_bounds_are_refused(length: int) -> None:
    with pytest.raises(ValueError, match="prefix length"):
        prefix_of("2001:db8::1", length)


@given(address=addresses, other=addresses, length=st.integers(32, 127))
def test_patterns_find_every_address_of_the_prefix(
    address: IPv6Address, other: IPv6Address, length: int
) -> None:
    key = prefix_of(str(address), length)
    network = IPv6Network(key)
    assert address in network and network.prefixlen == length
    assert holds(key, str(address))
    patterns = like_patterns(key)
    assert any(like(p, str(address)) for p in patterns)
    # Another address of the prefix (its free bits drawn like the others'),
    # and one maybe outside: `holds` is exact, the patterns only over-match.
    inside = IPv6Address(int(network.network_address) | (int(other) & int(network.hostmask)))
    assert holds(key, str(inside))
    assert any(like(p, str(inside)) for p in patterns)
    assert holds(key, str(other)) == (other in network)
