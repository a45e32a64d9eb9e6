"""The asyncio DHT client: against itself on loopback, and against real libtorrent and aria2."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from atalaya.networks.bittorrent.dht import (
    InfohashesSampled,
    LookupFinished,
    NodeConfig,
    PeersFound,
)
from atalaya.observe.bittorrent.dht_client import DhtArrival, DhtClient

if TYPE_CHECKING:
    from atalaya.lab.libtorrent_peer import LibtorrentPeer

PEER = ("127.0.62.9", 51413)


async def collect(stream: object) -> list[DhtArrival]:
    return [arrival async for arrival in stream]  # type: ignore[attr-defined]


def peers_of(arrivals: list[DhtArrival]) -> set[tuple[str, int]]:
    return {p for a in arrivals if isinstance(a.event, PeersFound) for p in a.event.peers}


# --- our own nodes on loopback ---------------------------------------------


def test_two_clients_find_each_others_peers_through_real_sockets() -> None:
    infohash = b"\x11" * 20

    async def main() -> None:
        async with DhtClient(bind="127.0.62.1") as holder:
            holder.engine.store_peer(infohash, PEER, asyncio.get_running_loop().time())
            [holder_addr] = holder.local_addresses
            async with DhtClient(
                bind="127.0.62.2", bootstrap=[holder_addr], pool=["127.0.62.3", "127.0.62.4"]
            ) as seeker:
                before = datetime.now(UTC)
                arrivals = await collect(seeker.get_peers(infohash, timeout=10))
                after = datetime.now(UTC)
                assert isinstance(arrivals[-1].event, LookupFinished)
                assert arrivals[-1].event.stats.reason == "converged"
                found = [a for a in arrivals if isinstance(a.event, PeersFound)]
                assert found
                first = found[0]
                assert isinstance(first.event, PeersFound)
                assert first.event.peers == (PEER,)
                assert first.event.source_node.addr == holder_addr
                assert first.event.source_node.node_id == holder.node_id
                assert first.received_utc.tzinfo is UTC
                assert before <= first.received_utc <= after
                assert first.local_addr in seeker.local_addresses
                assert len(seeker.local_addresses) == 3
                # The holder answered, and learned of the seeker by pinging it back.
                assert holder.engine.stats.replies_sent >= 1

    asyncio.run(main())


class _Recorder(asyncio.DatagramProtocol):
    """A socket that records who sent it what and never answers."""

    def __init__(self) -> None:
        self.sources: list[tuple[str, int]] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        self.sources.append((str(addr[0]), int(addr[1])))


def test_pool_rotates_source_addresses_per_remote_ip() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, recorder = await loop.create_datagram_endpoint(
            _Recorder, local_addr=("127.0.62.11", 0)
        )
        target = transport.get_extra_info("sockname")[:2]
        pool_ips = ["127.0.62.12", "127.0.62.13", "127.0.62.14"]
        try:
            # The target never answers; no backoff, so that the second crawl asks it again.
            config = NodeConfig(query_timeout=0.2, backoff_after=10)
            async with DhtClient(bind=pool_ips[0], pool=pool_ips[1:], config=config) as dht:
                for _ in range(2):
                    await collect(
                        dht.sample_infohashes(
                            nodes=[target], follow=False, respect_interval=False, timeout=5
                        )
                    )
        finally:
            transport.close()
        # 2 crawls x 2 attempts: queries to one IP rotate over the pool.
        assert len(recorder.sources) == 4
        assert {ip for ip, _ in recorder.sources} == set(pool_ips)

    asyncio.run(main())


def test_lookup_against_silent_node_ends_within_its_timeout() -> None:
    async def main() -> None:
        # A bound socket that never answers.
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.62.21", 0)
        )
        silent = transport.get_extra_info("sockname")[:2]
        try:
            config = NodeConfig(query_timeout=0.3)
            async with DhtClient(bind="127.0.62.22", bootstrap=[silent], config=config) as dht:
                arrivals = await collect(dht.get_peers(b"\x22" * 20, timeout=0.5))
                assert len(arrivals) == 1
                event = arrivals[0].event
                assert isinstance(event, LookupFinished)
                assert event.stats.responses == 0
                assert event.stats.reason in {"exhausted", "cancelled"}
                # The lookup is gone from the engine either way.
                assert dht.engine.active_lookups <= 1  # at most the background bootstrap
        finally:
            transport.close()

    asyncio.run(main())


def test_closing_ends_running_lookups() -> None:
    async def main() -> None:
        dht = DhtClient(bind="127.0.62.31", bootstrap=[("127.0.62.32", 9)])
        await dht.start()
        stream = dht.get_peers(b"\x33" * 20, timeout=60)
        dht.close()
        arrivals = await asyncio.wait_for(collect(stream), 5)
        assert isinstance(arrivals[-1].event, LookupFinished)
        assert arrivals[-1].event.stats.reason == "cancelled"

    asyncio.run(main())


# --- real libtorrent and aria2 nodes ----------------------------------------


@dataclass
class Lab:
    peers: list[LibtorrentPeer]
    seeder: LibtorrentPeer
    v1: bytes
    v2: bytes
    holders: list[tuple[str, int]]  # DHT nodes that stored the seeder's announce


@pytest.fixture(scope="module")
def libtorrent_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from atalaya.lab.files import write_random_file
    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.torrents import infohashes, make_torrent

    work = tmp_path_factory.mktemp("dht-lab")
    content = write_random_file(work / "seed" / "synthetic.bin", 300_000, seed=4242)
    torrent = make_torrent(content, version="hybrid", piece_size=32768)
    hashes = infohashes(torrent)
    assert hashes.v1 is not None and hashes.v2 is not None
    peers = [LibtorrentPeer(f"127.0.61.{i}", work / f"node{i}") for i in (1, 2, 3)]
    try:
        for peer in peers:
            peer.start()
        for peer in peers:
            for other in peers:
                if other is not peer:
                    peer.add_dht_node(other.ip, other.port)
        assert all(peer.wait_until("dht_ready", 20) for peer in peers)
        seeder = peers[0]
        seeder.seed(torrent, work / "seed")
        assert seeder.wait_until("seeding", 20)
        wanted = {hashes.v1, hashes.v2[:20]}
        holders: list[tuple[str, int]] = []
        for _ in range(60):  # at most ~30 s
            seeder.force_dht_announce()
            holders = [
                (p.ip, p.port)
                for p in peers
                if wanted
                <= {
                    ih
                    for ih, ip, port in p.dht_announces_received()
                    if (ip, port) == (seeder.ip, seeder.port)
                }
            ]
            if holders:
                break
            time.sleep(0.5)
        assert holders, "no lab node stored the seeder's DHT announce"
        yield Lab(peers, seeder, hashes.v1, hashes.v2, holders)
    finally:
        for peer in peers:
            peer.close()


@pytest.mark.lab
@pytest.mark.parametrize("which", ["v1", "v2"])
def test_get_peers_finds_the_libtorrent_seeder(libtorrent_lab: Lab, which: str) -> None:
    lab = libtorrent_lab
    seeder = (lab.seeder.ip, lab.seeder.port)
    # A v2 info-hash travels the DHT truncated to 20 bytes (BEP 52).
    infohash = lab.v1 if which == "v1" else lab.v2[:20]
    bootstrap = [(lab.peers[2].ip, lab.peers[2].port)]

    async def main() -> list[DhtArrival]:
        async with DhtClient(bind="127.0.61.50", bootstrap=bootstrap) as dht:
            return await collect(dht.get_peers(infohash, timeout=20))

    arrivals = asyncio.run(main())
    assert isinstance(arrivals[-1].event, LookupFinished)
    assert arrivals[-1].event.stats.responses >= 1
    hits = [a for a in arrivals if isinstance(a.event, PeersFound) and seeder in a.event.peers]
    assert hits, f"seeder {seeder} not found; got {peers_of(arrivals)}"
    sources = {a.event.source_node.addr for a in hits}  # type: ignore[union-attr]
    assert sources <= {(p.ip, p.port) for p in lab.peers}
    assert all(a.received_utc.tzinfo is UTC for a in hits)


@pytest.mark.lab
def test_sample_infohashes_on_libtorrent_returns_the_announced_hash(libtorrent_lab: Lab) -> None:
    lab = libtorrent_lab
    holder = lab.holders[0]

    async def main() -> list[DhtArrival]:
        async with DhtClient(bind="127.0.61.51") as dht:
            return await collect(dht.sample_infohashes(nodes=[holder], follow=False, timeout=10))

    arrivals = asyncio.run(main())
    sampled = [a.event for a in arrivals if isinstance(a.event, InfohashesSampled)]
    assert [s.source.addr for s in sampled] == [holder]
    assert lab.v1 in sampled[0].samples
    assert sampled[0].num is not None and sampled[0].num >= 1
    assert sampled[0].interval is not None


@pytest.mark.lab
def test_crawl_with_a_source_pool_samples_every_libtorrent_node(libtorrent_lab: Lab) -> None:
    lab = libtorrent_lab
    nodes = {(p.ip, p.port) for p in lab.peers}

    async def main() -> list[DhtArrival]:
        async with DhtClient(
            bind="127.0.61.52",
            pool=["127.0.61.53", "127.0.61.54"],
            bootstrap=[(lab.peers[1].ip, lab.peers[1].port)],
        ) as dht:
            return await collect(dht.sample_infohashes(max_nodes=10, timeout=15))

    arrivals = asyncio.run(main())
    sampled = [a for a in arrivals if isinstance(a.event, InfohashesSampled)]
    assert {a.event.source.addr for a in sampled} == nodes  # type: ignore[union-attr]
    holders = set(lab.holders)
    assert all(
        lab.v1 in a.event.samples  # type: ignore[union-attr]
        for a in sampled
        if a.event.source.addr in holders  # type: ignore[union-attr]
    )


@pytest.mark.lab
def test_aria2_as_a_second_dht_implementation(tmp_path: Path) -> None:
    """aria2 seeds and announces; our client, bootstrapped from aria2's node, finds it."""
    if shutil.which("aria2c") is None:
        if os.environ.get("CI"):
            pytest.fail("aria2c is required under CI: scripts/setup.sh installs it")
        pytest.skip("aria2c is not installed; scripts/setup.sh installs it")
    from atalaya.lab.files import write_random_file
    from atalaya.lab.libtorrent_peer import LibtorrentPeer
    from atalaya.lab.ports import free_port
    from atalaya.lab.torrents import infohashes, make_torrent

    content = write_random_file(tmp_path / "seed" / "synthetic.bin", 200_000, seed=777)
    torrent = make_torrent(content, version="v1", piece_size=16384)
    torrent_file = tmp_path / "synthetic.torrent"
    torrent_file.write_bytes(torrent)
    infohash = infohashes(torrent).v1
    assert infohash is not None
    aria_ip = "127.0.63.7"
    dht_port, tcp_port = free_port(aria_ip), free_port(aria_ip)
    with LibtorrentPeer("127.0.63.2", tmp_path / "lt") as lt_node:
        cmd = [
            "aria2c",
            "--no-conf=true",
            f"--dht-listen-addr={aria_ip}",
            f"--dht-listen-port={dht_port}",
            f"--bt-external-ip={aria_ip}",
            f"--interface={aria_ip}",
            f"--listen-port={tcp_port}",
            "--enable-dht=true",
            "--enable-dht6=false",
            "--disable-ipv6=true",
            f"--dht-entry-point={lt_node.ip}:{lt_node.port}",
            f"--dht-file-path={tmp_path / 'dht.dat'}",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--seed-ratio=0.0",
            "--check-integrity=true",
            "--bt-seed-unverified=true",
            f"--dir={tmp_path / 'seed'}",
            "--summary-interval=0",
            "--console-log-level=warn",
            "--enable-rpc=false",
            str(torrent_file),
        ]
        aria = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(60):  # at most ~30 s for aria2's announce to reach libtorrent
                if any(ih == infohash for ih, _, _ in lt_node.dht_announces_received()):
                    break
                time.sleep(0.5)

            async def main() -> tuple[list[DhtArrival], bool]:
                async with DhtClient(bind="127.0.63.50", bootstrap=[(aria_ip, dht_port)]) as dht:
                    arrivals = await collect(dht.get_peers(infohash, timeout=20))
                    aria_answered = dht.engine.routing.by_addr((aria_ip, dht_port)) is not None
                    return arrivals, aria_answered

            arrivals, aria_answered = asyncio.run(main())
        finally:
            aria.terminate()
            try:
                aria.wait(10)
            except subprocess.TimeoutExpired:
                aria.kill()
                aria.wait(5)
    assert aria_answered, "aria2's DHT node never answered our queries"
    assert (aria_ip, tcp_port) in peers_of(arrivals)
    assert isinstance(arrivals[-1].event, LookupFinished)


def test_ipv6_clients_find_each_others_peers_on_the_ipv6_loopback() -> None:
    """BEP 32 through real sockets: two IPv6 nodes on ::1, one holding a peer."""
    infohash = bytes(range(20))

    async def main() -> list[DhtArrival]:
        async with DhtClient(bind=("::1", 0), config=NodeConfig(family=6)) as holder:
            holder.engine.store_peer(infohash, ("fd00:77::9", 51413), holder._time())
            (addr,) = holder.local_addresses
            async with DhtClient(
                bind=("::1", 0), bootstrap=[addr], config=NodeConfig(family=6)
            ) as asker:
                assert asker.family == 6
                return await collect(asker.get_peers(infohash, timeout=5))

    arrivals = asyncio.run(main())
    assert peers_of(arrivals) == {("fd00:77::9", 51413)}
