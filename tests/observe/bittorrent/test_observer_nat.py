"""The observer behind NAT: it learns its external address from the DHT and,
when nobody can reach it, goes read-only (BEP 43).

Three small nodes of the test's own, on loopback, answer every query and say
(BEP 42 "ip") that they see the observer at 203.0.113.5, an address none of
its sockets has: the observer is behind NAT as far as it can tell.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from atalaya.networks.bittorrent.dht.nodeid import is_valid_node_id
from atalaya.networks.bittorrent.krpc import (
    KrpcError,
    Ping,
    Response,
    decode_message,
    encode_message,
)
from atalaya.observe.bittorrent.dht_state import DhtState, load_state
from atalaya.observe.bittorrent.observer import (
    BittorrentObserver,
    ObserverConfig,
    save_run_state,
)
from atalaya.store import create_store_engine, upgrade

EXTERNAL = "203.0.113.5"
OBSERVER_IP = "127.0.71.10"


@dataclass
class Reporter(asyncio.DatagramProtocol):
    """Answers any query, telling the asker it comes from EXTERNAL; records what it got."""

    transport: asyncio.DatagramTransport | None = None
    queries: list[object] = field(default_factory=list)
    node_id: bytes = field(default_factory=lambda: os.urandom(20))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        try:
            query = decode_message(data)
        except KrpcError:
            return
        self.queries.append(query)
        reply = Response(
            transaction_id=query.transaction_id,
            sender_id=self.node_id,
            requester=(EXTERNAL, int(addr[1])),
        )
        assert self.transport is not None
        self.transport.sendto(encode_message(reply), addr)


async def reporters(ips: list[str]) -> list[tuple[Reporter, tuple[str, int]]]:
    loop = asyncio.get_running_loop()
    out = []
    for ip in ips:
        transport, protocol = await loop.create_datagram_endpoint(Reporter, local_addr=(ip, 0))
        out.append((protocol, transport.get_extra_info("sockname")[:2]))
    return out


def observe(tmp_path: Path, *, knock: bool) -> tuple[BittorrentObserver, list[Reporter]]:
    """Run the observer 4 s against three reporters; `knock`: a stranger queries it first."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'atalaya.db'}")
    upgrade(engine)

    async def main() -> tuple[BittorrentObserver, list[Reporter]]:
        nodes = await reporters(["127.0.71.1", "127.0.71.2", "127.0.71.3"])
        config = ObserverConfig(
            bind_ips=(OBSERVER_IP,),
            dht_bootstrap=tuple(addr for _, addr in nodes),
            allowed_networks=("127.0.0.0/8",),
            read_only_after=1.5,
        )
        observer = BittorrentObserver(engine, [], config)
        run = asyncio.create_task(observer.run(duration=4.0))
        if knock:
            # A node we never wrote to reaches us: we are reachable after all.
            while not observer.dht_clients:
                await asyncio.sleep(0.05)
            (dht,) = observer.dht_clients
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("127.0.71.4", 0)
            )
            ping = Ping(transaction_id=b"kn", sender_id=os.urandom(20))
            transport.sendto(encode_message(ping), dht.local_addresses[0])
            await asyncio.sleep(0.5)
            transport.close()
        await run
        for protocol, _ in nodes:
            assert protocol.transport is not None
            protocol.transport.close()
        return observer, [p for p, _ in nodes]

    try:
        return asyncio.run(main())
    finally:
        engine.dispose()


def test_unreachable_behind_nat_goes_read_only_with_a_bep42_id(tmp_path: Path) -> None:
    observer, nodes = observe(tmp_path, knock=False)
    assert observer.external_ip == EXTERNAL
    assert observer.stats.read_only
    (dht,) = observer.dht_clients
    assert dht.engine.read_only
    assert is_valid_node_id(dht.node_id, EXTERNAL)
    # It started as a full node: its first queries did not say ro=1.
    flags = [getattr(q, "read_only", None) for n in nodes for q in n.queries]
    assert flags and flags[0] is False
    # Saved for the next run: the external address and the id made for it.
    path = tmp_path / "dht.json"
    save_run_state(path, DhtState(), observer)
    state = load_state(path)
    assert state.external_ip == EXTERNAL
    assert state.node_ids[4] == dht.node_id


def test_reachable_behind_nat_stays_a_full_node(tmp_path: Path) -> None:
    observer, _ = observe(tmp_path, knock=True)
    assert observer.external_ip == EXTERNAL
    (dht,) = observer.dht_clients
    assert dht.engine.stats.unsolicited_queries >= 1
    assert not observer.stats.read_only and not dht.engine.read_only
