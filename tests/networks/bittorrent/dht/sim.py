"""An in-memory network of DHT engines with a fake clock, for tests.

Datagrams travel through a heap with a small random latency; nodes' timers
fire when the clock reaches them. Everything is bounded in steps and
simulated time, and seeded, so runs are reproducible.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from atalaya.networks.bittorrent.dht import DhtNode, Event, NodeConfig
from atalaya.networks.bittorrent.krpc import Address


@dataclass
class Delivery:
    at: float
    src: Address
    dst: Address
    data: bytes


@dataclass
class Sim:
    seed: int = 1
    now: float = 1000.0
    loss: float = 0.0
    nodes: dict[Address, DhtNode] = field(default_factory=dict)
    events: dict[Address, list[Event]] = field(default_factory=dict)
    delivered: list[Delivery] = field(default_factory=list)
    sent: list[Delivery] = field(default_factory=list)
    # Addresses whose datagrams land here instead of in a node (a test's own socket).
    taps: dict[Address, list[tuple[bytes, Address, float]]] = field(default_factory=dict)
    # Nodes that receive but never answer.
    mute: set[Address] = field(default_factory=set)
    # Drop this many of the next datagrams sent to an address.
    drop_next: dict[Address, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._heap: list[tuple[float, int, Address, Address, bytes]] = []
        self._seq = itertools.count()

    def add(self, addr: Address, config: NodeConfig) -> DhtNode:
        node = DhtNode(config, rng=random.Random(self.rng.getrandbits(64)), now=self.now)
        self.nodes[addr] = node
        self.events[addr] = []
        return node

    def add_many(
        self, count: int, base: NodeConfig, *, ip_prefix: str = "127.0.1."
    ) -> list[Address]:
        addrs = [(f"{ip_prefix}{i + 1}", 6881) for i in range(count)]
        for a in addrs:
            self.add(a, replace(base, bootstrap=base.bootstrap or (addrs[0],)))
        return addrs

    def inject(self, data: bytes, src: Address, dst: Address) -> None:
        """A datagram from outside (a test's socket) into the network."""
        heapq.heappush(self._heap, (self.now, next(self._seq), src, dst, data))

    def _flush(self) -> None:
        for src, node in self.nodes.items():
            for data, dst in node.datagrams_to_send(self.now):
                self.sent.append(Delivery(self.now, src, dst, data))
                if self.drop_next.get(dst, 0) > 0:
                    self.drop_next[dst] -= 1
                    continue
                if src in self.mute or self.rng.random() < self.loss:
                    continue
                at = self.now + self.rng.uniform(0.002, 0.02)
                heapq.heappush(self._heap, (at, next(self._seq), src, dst, data))

    def _drain_events(self) -> None:
        for a, node in self.nodes.items():
            while (event := node.next_event()) is not None:
                self.events[a].append(event)

    def run(
        self,
        until: Callable[[], bool] | None = None,
        *,
        max_time: float = 120.0,
        max_steps: int = 200_000,
    ) -> bool:
        """Advance until `until()` holds (True) or time/steps run out (False)."""
        end = self.now + max_time
        for _ in range(max_steps):
            self._flush()
            self._drain_events()
            if until is not None and until():
                return True
            timers = [t for n in self.nodes.values() if (t := n.get_timer()) is not None]
            candidates = timers + ([self._heap[0][0]] if self._heap else [])
            if not candidates:
                return until is None
            nxt = max(self.now, min(candidates))
            if nxt > end:
                self.now = end
                return until is None
            self.now = nxt
            while self._heap and self._heap[0][0] <= self.now:
                _, _, src, dst, data = heapq.heappop(self._heap)
                if dst in self.taps:
                    self.taps[dst].append((data, src, self.now))
                    continue
                node = self.nodes.get(dst)
                if node is None:
                    continue
                self.delivered.append(Delivery(self.now, src, dst, data))
                node.receive_datagram(data, src, self.now)
            for node in self.nodes.values():
                timer = node.get_timer()
                if timer is not None and timer <= self.now:
                    node.handle_timer(self.now)
        raise AssertionError("simulation ran out of steps")
