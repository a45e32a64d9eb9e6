"""The observer's fence: what can never be a peer, and --allow-network ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.errors import AtalayaError
from atalaya.observe.bittorrent.fence import can_be_peer, fence_admits, parse_fence


@pytest.mark.parametrize(
    "ip", ["0.0.0.0", "::", "224.0.0.1", "239.255.255.250", "ff02::1", "255.255.255.255", "x", ""]
)
def test_never_a_peer(ip: str) -> None:
    assert not can_be_peer(ip)
    assert not fence_admits(None, ip)


@pytest.mark.parametrize("ip", ["198.51.100.7", "2001:db8::1", "100.64.77.10", "127.0.0.1"])
def test_no_fence_admits_any_peer(ip: str) -> None:
    assert fence_admits(None, ip)


def test_fence_admits_only_its_ranges() -> None:
    fence = parse_fence(["100.64.0.0/10", "fd00::/8"])
    assert fence_admits(fence, "100.64.77.3")
    assert fence_admits(fence, "fd12:3456::1")
    assert not fence_admits(fence, "127.0.0.1")
    assert not fence_admits(fence, "2001:db8::1")
    assert not fence_admits(fence, "100.128.0.1")


def test_fence_parsing() -> None:
    assert parse_fence(None) is None
    assert parse_fence([]) is None
    (net,) = parse_fence([" 127.1.2.3/8 "]) or ()
    assert str(net) == "127.0.0.0/8"  # host bits are forgiven, not an error
    with pytest.raises(AtalayaError, match="--allow-network 'nonsense'"):
        parse_fence(["nonsense"])


@given(st.ip_addresses())
def test_fence_of_everything_admits_every_possible_peer(addr: object) -> None:
    fence = parse_fence(["0.0.0.0/0", "::/0"])
    assert fence_admits(fence, str(addr)) == can_be_peer(str(addr))


def test_ourselves_is_an_address_and_a_port_of_ours(tmp_path: object) -> None:
    """A peer on our address with another port is a peer (same NAT, shared host);
    our announced port and the source ports of our own connections are us."""
    from pathlib import Path

    from atalaya.observe.bittorrent.observer import BittorrentObserver, ObserverConfig
    from atalaya.store import create_store_engine

    assert isinstance(tmp_path, Path)
    engine = create_store_engine(f"sqlite:///{tmp_path / 'a.db'}")
    config = ObserverConfig(bind_ips=("100.64.9.1",), external_ip=None, announce_port=6881)
    observer = BittorrentObserver(engine, [], config)
    observer._learn_external("203.0.113.5")
    assert not observer._may_contact("100.64.9.1", 6881)
    assert not observer._may_contact("203.0.113.5", 6881)
    assert observer._may_contact("203.0.113.5", 51413)  # another subscriber behind our NAT
    assert observer._may_contact("100.64.9.1", 40001)
    observer._own_endpoint("100.64.9.1", 40001)  # a probe of ours connected from there
    assert not observer._may_contact("100.64.9.1", 40001)
    assert not observer._may_contact("2001:db8::1", 6881)  # no IPv6 address bound
    engine.dispose()
