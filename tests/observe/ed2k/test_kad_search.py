"""Kad source searches against fake Kad nodes on loopback: lookup, sources, limits, hostiles."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.networks.ed2k import kad
from atalaya.networks.ed2k.tags import Tag
from atalaya.observe.ed2k.kad_search import (
    KadClient,
    KadSearchConfig,
    KadSearchResult,
    RateLimiter,
)

FILE = bytes.fromhex("5a5a0102030405060708090a0b0c0d0e")
TARGET = kad.kad_id_from_hash(FILE)
FAST = KadSearchConfig(
    lookup_timeout=0.5, results_window=0.5, total_timeout=5.0, allow_loopback=True
)
Reply = Callable[[kad.KadMessage, tuple[str, int]], list[bytes]]


def source_tags(ip: str, port: int, kind: int = 1) -> tuple[Tag, ...]:
    return (
        Tag.uint(kad.TAG_SOURCETYPE, kind),
        Tag.uint(kad.TAG_SOURCEIP, kad.ip_to_kad(ip)),
        Tag.uint(kad.TAG_SOURCEPORT, port),
        Tag.uint(kad.TAG_SOURCEUPORT, port + 10),
    )


@dataclass
class FakeNode(asyncio.DatagramProtocol):
    """A Kad node on 127.x that answers as `reply` says and records what it got."""

    ip: str
    node_id: int
    reply: Reply | None = None
    contacts: list[kad.Contact] = field(default_factory=list)
    sources: list[kad.SearchResult] = field(default_factory=list)
    received: list[kad.KadMessage] = field(default_factory=list)
    port: int = 0
    transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = kad.decode(data)
        assert message is not None
        self.received.append(message)
        out = (self.reply or self.honest)(message, addr)
        assert self.transport is not None
        for datagram in out:
            self.transport.sendto(datagram, addr)

    def honest(self, message: kad.KadMessage, addr: tuple[str, int]) -> list[bytes]:
        if isinstance(message, kad.BootstrapReq):
            return [kad.encode(kad.BootstrapRes(self.node_id, 4662, 8, tuple(self.contacts)))]
        if isinstance(message, kad.Req) and message.receiver == self.node_id:
            return [kad.encode(kad.Res(message.target, tuple(self.contacts)))]
        if isinstance(message, kad.SearchSourceReq) and self.sources:
            return [kad.encode(kad.SearchRes(self.node_id, message.target, tuple(self.sources)))]
        return []

    @property
    def contact(self) -> kad.Contact:
        return kad.Contact(self.node_id, self.ip, self.port, 4662, 8)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.ip, 0))
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def search(nodes: list[FakeNode], bootstrap: list[FakeNode], **cfg: Any) -> KadSearchResult:
    for node in nodes:
        await node.start()
    try:
        config = dataclasses.replace(FAST, **cfg)
        async with KadClient("127.0.0.1", config=config) as client:
            return await client.find_sources(FILE, 1000, [(n.ip, n.port) for n in bootstrap])
    finally:
        for node in nodes:
            node.close()


def test_a_search_walks_toward_the_file_and_collects_its_sources() -> None:
    async def body() -> None:
        # Each on its own address: the rate limits, like aMule's, are per address.
        far = FakeNode("127.0.0.2", TARGET ^ (1 << 127))
        near = FakeNode("127.0.0.3", TARGET ^ 5)
        nearer = FakeNode("127.0.0.4", TARGET ^ 1)
        firewalled = kad.SearchResult(
            kad.kad_id_from_hash(bytes(range(16))),
            (
                Tag.uint(kad.TAG_SOURCETYPE, 3),
                Tag.uint(kad.TAG_SOURCEIP, kad.ip_to_kad("100.64.9.9")),
            ),
        )
        nearer.sources = [
            kad.SearchResult(kad.kad_id_from_hash(os.urandom(16)), source_tags("100.64.1.2", 4662)),
            firewalled,
        ]
        for node in (far, near, nearer):
            await node.start()
        far.contacts = [near.contact]
        near.contacts = [nearer.contact]
        async with KadClient("127.0.0.1", config=FAST) as client:
            result = await client.find_sources(FILE, 1000, [(far.ip, far.port)])
        for node in (far, near, nearer):
            node.close()
        assert [s.source.ip for s in result.reachable] == ["100.64.1.2"]
        assert [s.source.source_type for s in result.firewalled] == [3]
        # Each REQ named its receiver's id and asked for the file's Kad id.
        reqs = [m for m in nearer.received if isinstance(m, kad.Req)]
        assert reqs and all(r.receiver == nearer.node_id and r.target == TARGET for r in reqs)
        assert any(isinstance(m, kad.SearchSourceReq) for m in nearer.received)
        assert result.malformed == 0 and result.nodes_answered == 3

    asyncio.run(body())


def test_hostile_nodes_cost_a_datagram_never_the_search() -> None:
    async def body() -> None:
        def hostile(message: kad.KadMessage, addr: tuple[str, int]) -> list[bytes]:
            garbage = [
                b"",
                b"\xe4",
                b"\xe4\x09" + b"\xff" * 30,  # a bootstrap answer cut short
                b"\xe5\x3b" + b"\x78\x9c" + b"\x00" * 40,  # a packed answer that does not inflate
                b"\xe4\x3b" + b"\x00" * 32 + b"\xff\xff",  # 65,535 results announced
                os.urandom(2000),
            ]
            return garbage

        liar = FakeNode("127.0.0.5", TARGET ^ 9, reply=hostile)
        honest = FakeNode("127.0.0.6", TARGET ^ 3)
        honest.sources = [
            kad.SearchResult(kad.kad_id_from_hash(os.urandom(16)), source_tags("100.64.3.4", 4662))
        ]
        result = await search([liar, honest], [liar, honest])
        assert [s.source.ip for s in result.sources] == ["100.64.3.4"]
        assert result.malformed >= 5

    asyncio.run(body())


def test_a_silent_network_ends_within_the_time_limit() -> None:
    async def body() -> None:
        silent = FakeNode("127.0.0.1", TARGET, reply=lambda m, a: [])
        loop = asyncio.get_running_loop()
        begin = loop.time()
        result = await search([silent], [silent], total_timeout=2.0)
        assert loop.time() - begin < 3.0
        assert result.sources == []

    asyncio.run(body())


def test_contacts_and_sources_are_bounded() -> None:
    async def body() -> None:
        flood = FakeNode("127.0.0.1", TARGET ^ 2)
        flood.contacts = [
            kad.Contact(TARGET ^ (i + 100), "127.0.0.1", 1000 + i, 4662, 8) for i in range(200)
        ]
        flood.sources = [
            kad.SearchResult(
                kad.kad_id_from_hash(os.urandom(16)), source_tags(f"100.64.0.{i}", 4662)
            )
            for i in range(1, 200)
        ]
        result = await search([flood], [flood], max_contacts=20, max_sources=7, max_queries=5)
        assert len(result.sources) == 7 and result.queries <= 5

    asyncio.run(body())


def test_the_rate_limiter_keeps_under_amules_flood_limits() -> None:
    limiter = RateLimiter()
    # SEARCH_SOURCE_REQ: aMule allows 3 a minute from one address; we send at most 2.
    assert limiter.take("100.64.0.2", kad.SEARCH_SOURCE_REQ, 0.0)
    assert not limiter.take("100.64.0.2", kad.SEARCH_SOURCE_REQ, 1.0)
    assert limiter.wait_time("100.64.0.2", kad.SEARCH_SOURCE_REQ, 1.0) == pytest.approx(29.0)
    assert limiter.take("100.64.0.3", kad.SEARCH_SOURCE_REQ, 1.0)  # another node: its own budget
    assert limiter.take("100.64.0.2", kad.SEARCH_SOURCE_REQ, 31.0)
    sent = sum(limiter.take("100.64.0.2", kad.REQ, t / 10) for t in range(600))
    assert sent <= 5 + 60 / 12 + 1  # within a minute: under aMule's 10


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_any_datagram_is_parsed_or_dropped_never_raised(data: bytes) -> None:
    client = KadClient("127.0.0.1", config=FAST)
    client.datagram_received(data, ("127.0.0.9", 4672))
    client.datagram_received(b"\xe4" + data, ("127.0.0.9", 4672))
    client.datagram_received(b"\xe4\x3b" + data, ("127.0.0.9", 4672))
