"""A DHT of real Transmission 3.00 daemons, each on a host of a namespace lab.

Transmission's DHT drops packets from 127/8, so this lab lives on
100.64.0.0/10 (lab.netns). It holds:

- `seeders`: Transmission daemons seeding the watched torrent (v1 only:
  Transmission 3.00 refuses v2 and hybrid torrents);
- `bystanders`: Transmission daemons seeding only an unwatched torrent;
- `holders`: libtorrent peers in the watched torrent's swarm holding nothing;
- `fillers`: libtorrent DHT nodes with no torrent.

Transmission 3.00 announces a torrent into the DHT only once it knows at
least nine DHT nodes, four of them "good" (they answered it), so a lab needs
ten DHT nodes or more; fillers make up the count. Each Transmission
bootstraps from a dht.dat naming the libtorrent nodes and the other
Transmissions; the libtorrent nodes bootstrap from each other and from every
Transmission. Torrents are trackerless: the DHT is the only way to their
peers. `start` returns once a filler's get_peers lookups return every seeder
and holder of the watched torrent and every bystander of the unwatched one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
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
from atalaya.lab.ports import free_port
from atalaya.lab.transmission import TransmissionPeer

# Transmission 3.00 (tr-dht.c) calls its DHT "broken", and does not announce,
# while it knows fewer than 4 good nodes or at most 8 nodes in all.
TRANSMISSION_MIN_DHT_NODES = 9
WATCHED = "netns-transmission-watched"
UNWATCHED = "netns-transmission-unwatched"


@dataclass(frozen=True)
class TransmissionDhtSpec:
    """What to start; see the module docstring."""

    seeders: int = 2
    bystanders: int = 1
    holders: int = 1
    fillers: int = 7
    seed: int = 7
    file_size: int = 300_000
    start_timeout: float = 120.0

    def __post_init__(self) -> None:
        if not 1 <= self.seeders <= 10:
            raise AtalayaError("the Transmission DHT lab needs 1 to 10 seeders")
        if not 0 <= self.bystanders <= 10 or not 0 <= self.holders <= 10:
            raise AtalayaError("the Transmission DHT lab takes 0 to 10 bystanders and holders")
        if not 1 <= self.fillers <= 40:
            raise AtalayaError("the Transmission DHT lab needs 1 to 40 filler nodes")
        if self.dht_nodes - 1 < TRANSMISSION_MIN_DHT_NODES:
            raise AtalayaError(
                f"Transmission 3.00 announces only once it knows {TRANSMISSION_MIN_DHT_NODES} "
                f"DHT nodes: the lab needs {TRANSMISSION_MIN_DHT_NODES + 1} nodes in all, "
                f"not {self.dht_nodes}; add fillers"
            )
        if not 16_384 <= self.file_size <= 8 << 20:
            raise AtalayaError("lab file size must be between 16 KiB and 8 MiB")

    @property
    def dht_nodes(self) -> int:
        return self.seeders + self.bystanders + self.holders + self.fillers


class TransmissionDhtLab:
    """A running Transmission DHT lab; see the module docstring."""

    def __init__(self, spec: TransmissionDhtSpec, lab_dir: Path) -> None:
        self.spec = spec
        self.lab_dir = lab_dir.resolve()
        self.content_dir = self.lab_dir / "content"
        self.hash_set = self.lab_dir / HASH_SET_NAME
        names = [
            *(f"tr-seed-{i + 1}" for i in range(spec.seeders)),
            *(f"tr-bystander-{i + 1}" for i in range(spec.bystanders)),
            *(f"lt-holder-{i + 1}" for i in range(spec.holders)),
            *(f"lt-filler-{i + 1}" for i in range(spec.fillers)),
        ]
        self.netns = NetnsLab(names)
        self.seeders: dict[str, TransmissionPeer] = {}
        self.bystanders: dict[str, TransmissionPeer] = {}
        self.holders: dict[str, LibtorrentPeer] = {}
        self.fillers: dict[str, LibtorrentPeer] = {}
        self.torrents: dict[str, BuiltTorrent] = {}
        self.startup_seconds: float | None = None

    # -- what users of the lab need ----------------------------------------------

    @property
    def watched(self) -> BuiltTorrent:
        return self.torrents[WATCHED]

    @property
    def unwatched(self) -> BuiltTorrent:
        return self.torrents[UNWATCHED]

    @property
    def observer_ip(self) -> str:
        """The host side of the lab's bridge: where an observer binds."""
        return self.netns.host_ipv4

    @property
    def ipv4_network(self) -> str:
        """The lab's /24, for an observer's --allow-network."""
        return str(self.netns.ipv4_network)

    @property
    def bootstrap(self) -> Endpoint:
        """A filler node to bootstrap from."""
        first = next(iter(self.fillers.values()))
        return (first.ip, first.port)

    @property
    def transmissions(self) -> dict[str, TransmissionPeer]:
        return self.seeders | self.bystanders

    @property
    def libtorrent_nodes(self) -> dict[str, LibtorrentPeer]:
        return self.holders | self.fillers

    def names(self) -> dict[Endpoint, str]:
        """Every node's name by its ip:port."""
        peers: dict[str, TransmissionPeer | LibtorrentPeer] = {
            **self.transmissions,
            **self.libtorrent_nodes,
        }
        return {(p.ip, p.port): name for name, p in peers.items()}

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
        plans = [
            single_file_torrent(WATCHED, "v1", "transmission", size=spec.file_size, seed=spec.seed),
            single_file_torrent(
                UNWATCHED, "v1", "unwatched", size=spec.file_size + 4_321, seed=spec.seed + 1
            ),
        ]
        self.torrents = build_trackerless(plans, self.content_dir)
        write_hash_set(self.torrents.values(), self.hash_set)
        self.netns.start()
        for name in self.netns.host_names:
            if not name.startswith("lt-"):
                continue
            host = self.netns.host(name)
            peer = LibtorrentPeer(
                host.ipv4,
                self.lab_dir / "peers" / name,
                netns=host,
                dht_rate_limit=DHT_RATE_LIMIT,
            )
            (self.holders if name.startswith("lt-holder") else self.fillers)[name] = peer
            peer.start()
        join_dht(self.libtorrent_nodes.values())
        # Ports first: each Transmission's dht.dat names the others too.
        ports = {}
        for name in self.netns.host_names:
            if name.startswith("tr-"):
                host = self.netns.host(name)
                ports[name] = host.call(partial(free_port, host.ipv4))
        libtorrent_endpoints = [(p.ip, p.port) for p in self.libtorrent_nodes.values()]
        for name, port in ports.items():
            host = self.netns.host(name)
            others = [(self.netns.host(n).ipv4, p) for n, p in ports.items() if n != name]
            daemon = TransmissionPeer(
                host.ipv4,
                self.lab_dir / "peers" / name,
                port=port,
                netns=host,
                dht_nodes=[*libtorrent_endpoints, *others],
            )
            (self.seeders if name.startswith("tr-seed") else self.bystanders)[name] = daemon
            daemon.start()
        for daemon in self.seeders.values():
            daemon.seed(self.watched.torrent, self.content_dir)
        for daemon in self.bystanders.values():
            daemon.seed(self.unwatched.torrent, self.content_dir)
        join_dht(
            self.libtorrent_nodes.values(), [(d.ip, d.port) for d in self.transmissions.values()]
        )
        for peer in self.holders.values():
            peer.leech(self.watched.torrent, peer.workdir / "data", download=False)
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        for name, daemon in self.transmissions.items():
            if not daemon.wait_until_seeding(max(0.0, deadline - time.monotonic())):
                raise AtalayaError(f"lab Transmission {name} did not start seeding in time")
        wait_dht_formed(self.libtorrent_nodes, deadline)
        for peer in self.holders.values():
            peer.force_dht_announce()
        watched_ih = self.watched.hashes.v1
        unwatched_ih = self.unwatched.hashes.v1
        if watched_ih is None or unwatched_ih is None:
            raise AtalayaError("lab torrents for Transmission must be v1")
        seeders = {(p.ip, p.port) for p in self.seeders.values()}
        holders = {(p.ip, p.port) for p in self.holders.values()}
        expected = {watched_ih: seeders | holders}
        if self.bystanders:
            expected[unwatched_ih] = {(p.ip, p.port) for p in self.bystanders.values()}
        finder = next(iter(self.fillers.values()))
        try:
            wait_announced(finder, expected, deadline, describe=self.names())
        except AtalayaError as exc:
            tails = {n: d.log_tail(300).strip() for n, d in self.transmissions.items()}
            raise AtalayaError(f"{exc} (Transmission logs end: {tails})") from None

    def poll(self) -> None:
        """Drain the libtorrent nodes' alerts; call now and then while the lab is up."""
        for peer in self.libtorrent_nodes.values():
            peer.poll()

    def close(self) -> None:
        """Stop everything and remove the namespaces; safe to call twice."""
        close_all([*self.libtorrent_nodes.values(), *self.transmissions.values(), self.netns])

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
