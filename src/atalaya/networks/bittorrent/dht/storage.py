"""Peers other nodes announced to us (announce_peer), bounded and expiring.

A DHT node keeps these to answer get_peers with `values` and to answer
sample_infohashes (BEP 51). Bounded in infohashes and peers per infohash;
the least recently announced infohash makes way for a new one.
"""

from __future__ import annotations

import random
from collections import OrderedDict

from atalaya.networks.bittorrent.krpc import Address


class PeerStore:
    def __init__(
        self, *, max_infohashes: int = 1000, max_peers: int = 100, ttl: float = 30 * 60.0
    ) -> None:
        self.max_infohashes = max_infohashes
        self.max_peers = max_peers
        self.ttl = ttl
        # infohash -> peer -> expiry; both levels ordered oldest first.
        self._torrents: OrderedDict[bytes, OrderedDict[Address, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._torrents)

    def add(self, infohash: bytes, peer: Address, now: float) -> None:
        peers = self._torrents.get(infohash)
        if peers is None:
            if len(self._torrents) >= self.max_infohashes:
                self._torrents.popitem(last=False)
            peers = OrderedDict()
            self._torrents[infohash] = peers
        else:
            self._torrents.move_to_end(infohash)
        peers.pop(peer, None)
        peers[peer] = now + self.ttl
        while len(peers) > self.max_peers:
            peers.popitem(last=False)

    def peers(self, infohash: bytes, now: float, count: int, rng: random.Random) -> list[Address]:
        """Up to `count` live peers for `infohash`, a random choice if there are more."""
        peers = self._torrents.get(infohash)
        if not peers:
            return []
        live = [peer for peer, expiry in peers.items() if expiry > now]
        if len(live) > count:
            live = rng.sample(live, count)
        return live

    def sample(self, count: int, rng: random.Random) -> list[bytes]:
        keys = list(self._torrents)
        if len(keys) > count:
            keys = rng.sample(keys, count)
        return keys

    def purge(self, now: float) -> None:
        for infohash in list(self._torrents):
            peers = self._torrents[infohash]
            for peer in [p for p, expiry in peers.items() if expiry <= now]:
                del peers[peer]
            if not peers:
                del self._torrents[infohash]
