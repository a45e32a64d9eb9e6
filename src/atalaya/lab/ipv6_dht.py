"""An IPv6 DHT of libtorrent peers, each on a host of a namespace lab.

Every node listens only on its host's unique-local address (lab.netns, one
/64 out of fd00::/8), so the DHT among them, their announces and their peer
wire are IPv6 only. It holds:

- `seeders`: libtorrent peers seeding the watched v1 torrent and the watched
  v2 torrent;
- `bystanders`: libtorrent peers seeding only an unwatched torrent;
- `fillers`: libtorrent DHT nodes with no torrent.

Torrents are trackerless. `start` returns once a filler's get_peers lookups
return every seeder for both watched torrents (the v2 one by its truncated
info-hash, as BEP 52 announces it) and every bystander for the unwatched one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from atalaya.errors import AtalayaError
from atalaya.lab.content import BuiltTorrent
from atalaya.lab.dht_lab_parts import (
    DHT_RATE_LIMIT,
    Endpoint,
    build_trackerless,
    close_all,
    join_dht,
    single_file_torrent,
    wait_announced,
    wait_dht_formed,
    write_hash_set,
)
from atalaya.lab.layout import HASH_SET_NAME
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.netns import NetnsLab

WATCHED_V1 = "netns-ipv6-watched-v1"
WATCHED_V2 = "netns-ipv6-watched-v2"
UNWATCHED = "netns-ipv6-unwatched"


@dataclass(frozen=True)
class Ipv6DhtSpec:
    """What to start; see the module docstring."""

    seeders: int = 2
    bystanders: int = 1
    fillers: int = 2
    seed: int = 11
    file_size: int = 300_000
    start_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.seeders <= 20 or not 0 <= self.bystanders <= 20:
            raise AtalayaError("the IPv6 DHT lab takes 1 to 20 seeders and 0 to 20 bystanders")
        if not 1 <= self.fillers <= 20:
            raise AtalayaError("the IPv6 DHT lab needs 1 to 20 filler nodes")
        if not 16_384 <= self.file_size <= 8 << 20:
            raise AtalayaError("lab file size must be between 16 KiB and 8 MiB")


class Ipv6DhtLab:
    """A running IPv6 DHT lab; see the module docstring."""

    def __init__(self, spec: Ipv6DhtSpec, lab_dir: Path) -> None:
        self.spec = spec
        self.lab_dir = lab_dir.resolve()
        self.content_dir = self.lab_dir / "content"
        self.hash_set = self.lab_dir / HASH_SET_NAME
        names = [
            *(f"lt-seed-{i + 1}" for i in range(spec.seeders)),
            *(f"lt-bystander-{i + 1}" for i in range(spec.bystanders)),
            *(f"lt-filler-{i + 1}" for i in range(spec.fillers)),
        ]
        self.netns = NetnsLab(names)
        self.seeders: dict[str, LibtorrentPeer] = {}
        self.bystanders: dict[str, LibtorrentPeer] = {}
        self.fillers: dict[str, LibtorrentPeer] = {}
        self.torrents: dict[str, BuiltTorrent] = {}
        self.startup_seconds: float | None = None

    # -- what users of the lab need ----------------------------------------------

    @property
    def watched(self) -> list[BuiltTorrent]:
        return [self.torrents[WATCHED_V1], self.torrents[WATCHED_V2]]

    @property
    def unwatched(self) -> BuiltTorrent:
        return self.torrents[UNWATCHED]

    @property
    def observer_ip(self) -> str:
        """The host side of the lab's bridge (its ULA ::1): where an observer binds."""
        return self.netns.host_ipv6

    @property
    def ipv6_network(self) -> str:
        """The lab's /64, for an observer's --allow-network."""
        return str(self.netns.ipv6_network)

    @property
    def bootstrap(self) -> Endpoint:
        """A filler node to bootstrap from."""
        first = next(iter(self.fillers.values()))
        return (first.ip, first.port)

    @property
    def nodes(self) -> dict[str, LibtorrentPeer]:
        return self.seeders | self.bystanders | self.fillers

    def names(self) -> dict[Endpoint, str]:
        """Every node's name by its ip:port."""
        return {(p.ip, p.port): name for name, p in self.nodes.items()}

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Start everything and wait until every announce is in the DHT; all or nothing."""
        begin = time.monotonic()
        deadline = begin + self.spec.start_timeout
        try:
            self._start(deadline)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - begin

    def _start(self, deadline: float) -> None:
        spec = self.spec
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        size = spec.file_size
        plans = [
            single_file_torrent(WATCHED_V1, "v1", "watched", size=size, seed=spec.seed),
            single_file_torrent(
                WATCHED_V2,
                "v2",
                "watched",
                size=size + 1_234,
                seed=spec.seed + 1,
                piece_size=16_384,
            ),
            single_file_torrent(
                UNWATCHED, "v1", "unwatched", size=size + 5_678, seed=spec.seed + 2
            ),
        ]
        self.torrents = build_trackerless(plans, self.content_dir)
        write_hash_set(self.torrents.values(), self.hash_set)
        self.netns.start()
        groups = {
            "lt-seed": self.seeders,
            "lt-bystander": self.bystanders,
            "lt-filler": self.fillers,
        }
        for name in self.netns.host_names:
            host = self.netns.host(name)
            peer = LibtorrentPeer(
                host.ipv6,
                self.lab_dir / "peers" / name,
                netns=host,
                dht_rate_limit=DHT_RATE_LIMIT,
            )
            groups[name.rsplit("-", 1)[0]][name] = peer
            peer.start()
        join_dht(self.nodes.values())
        for peer in self.seeders.values():
            for built in self.watched:
                peer.seed(built.torrent, self.content_dir)
        for peer in self.bystanders.values():
            peer.seed(self.unwatched.torrent, self.content_dir)
        for name, peer in (self.seeders | self.bystanders).items():
            if not peer.wait_until("seeding", max(0.0, deadline - time.monotonic())):
                raise AtalayaError(f"lab peer {name} did not finish checking its files in time")
        wait_dht_formed(self.nodes, deadline)
        for peer in self.nodes.values():
            peer.force_dht_announce()
        seeders = {(p.ip, p.port) for p in self.seeders.values()}
        expected: dict[bytes, set[Endpoint]] = {}
        for built in self.watched:
            for infohash in built.hashes.tracker_hashes:
                expected[infohash] = seeders
        if self.bystanders:
            for infohash in self.unwatched.hashes.tracker_hashes:
                expected[infohash] = {(p.ip, p.port) for p in self.bystanders.values()}
        finder = next(iter(self.fillers.values()))
        wait_announced(finder, expected, deadline, describe=self.names())

    def poll(self) -> None:
        """Drain every node's alerts; call now and then while the lab is up."""
        for peer in self.nodes.values():
            peer.poll()

    def close(self) -> None:
        """Stop every node and remove the namespaces; safe to call twice."""
        close_all([*self.nodes.values(), self.netns])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
