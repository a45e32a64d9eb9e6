"""Resolving where the DHT starts from: HOST:PORT parsing and bounded resolution."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.errors import AtalayaError
from atalaya.observe.bittorrent.bootstrap import (
    DEFAULT_ROUTERS,
    HostPort,
    parse_hostport,
    resolve,
)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.2:6881", "127.0.0.2", 6881),
        (" router.example:25401 ", "router.example", 25401),
        ("[fd00::2]:6881", "fd00::2", 6881),
        ("localhost:1", "localhost", 1),
    ],
)
def test_parse_hostport(text: str, host: str, port: int) -> None:
    assert parse_hostport(text) == HostPort(host, port)


@pytest.mark.parametrize(
    "text", ["", "6881", "host:", ":6881", "host:0", "host:65536", "host:x", "fd00::2:6881"]
)
def test_parse_hostport_refuses_with_the_option_named(text: str) -> None:
    with pytest.raises(AtalayaError, match=r"^--dht-bootstrap"):
        parse_hostport(text)


@given(st.text(max_size=40))
def test_parse_hostport_fails_only_with_a_typed_error(text: str) -> None:
    try:
        parsed = parse_hostport(text)
    except AtalayaError:
        return
    assert 0 < parsed.port < 65536 and parsed.host


def test_default_routers_are_the_well_known_ones() -> None:
    hosts = {parse_hostport(r).host for r in DEFAULT_ROUTERS}
    assert hosts == {
        "router.bittorrent.com",
        "dht.transmissionbt.com",
        "router.utorrent.com",
        "dht.libtorrent.org",
    }


def test_resolve_literals_by_family() -> None:
    names = [HostPort("127.0.0.2", 6881), HostPort("::1", 6882)]
    both = asyncio.run(resolve(names, families=(4, 6)))
    assert both.addresses == (("127.0.0.2", 6881), ("::1", 6882))
    only4 = asyncio.run(resolve(names, families=(4,)))
    assert only4.addresses == (("127.0.0.2", 6881),)
    assert len(only4.failed) == 1 and "[::1]:6882" in only4.failed[0]


def test_resolve_a_name_through_the_system_resolver() -> None:
    resolved = asyncio.run(resolve([HostPort("localhost", 7000)], families=(4,)))
    assert ("127.0.0.1", 7000) in resolved.addresses


def test_resolve_reports_each_name_that_gives_nothing() -> None:
    # .invalid never resolves (RFC 6761); the answer comes from the local resolver.
    resolved = asyncio.run(
        resolve([HostPort("nowhere.invalid", 6881), HostPort("127.0.0.3", 1)], timeout=5)
    )
    assert resolved.addresses == (("127.0.0.3", 1),)
    assert len(resolved.failed) == 1 and resolved.failed[0].startswith("nowhere.invalid:6881")
