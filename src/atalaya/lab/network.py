"""The lab network: real peers on distinct 127.x addresses sharing the catalogue.

`LabNetwork(spec, lab_dir).start()` writes the content, starts opentracker,
libtorrent seeders and leechers (and optionally a Transmission seeder and an
aMule eD2K client), forms a DHT among the libtorrent nodes and waits, within
`spec.start_timeout`, until every seeder seeds, every peer has announced to
the tracker and every seeder's DHT announce has reached another node. It
starts everything or, on any failure, stops what it started and raises
AtalayaError.

The aMule client shares two of the catalogue's files over eD2K, one watched
and one not. On loopback aMule is a source found by address (its Kad and
server connections refuse 127/8: see `lab.amule`), so it is watched with
`atalaya watch ed2k --source IP:PORT`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from atalaya.errors import AtalayaError
from atalaya.lab.amule import AmulePeer
from atalaya.lab.content import BuiltTorrent, PlannedFile, PlannedTorrent, build, catalogue
from atalaya.lab.layout import DEFAULT_IP_PREFIX
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.opentracker import OpenTracker
from atalaya.lab.ports import free_port, is_loopback
from atalaya.lab.transmission import TransmissionPeer

_DHT_FORM_SHARE = 0.5  # of the time left, for the routing tables to fill
# The catalogue's files aMule shares (by torrent name): one watched, one not,
# so a sighting there shows the watch list at work and not just a reachable peer.
AMULE_SHARES = ("lab-watched-v2", "lab-unwatched-v1")
AMULE_HOST = 91


@dataclass(frozen=True)
class LabSpec:
    """What to start. Addresses are `ip_prefix`.N: tracker .1, seeders .10+, leechers .50+,
    Transmission .90, aMule .91; two labs at once need different prefixes."""

    seeders: int = 3
    leechers: int = 1
    transmission: bool = False
    amule: bool = False
    ip_prefix: str = DEFAULT_IP_PREFIX
    seed: int = 1
    file_size: int = 200_000
    dht_rate_limit: int = 100
    start_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not 2 <= self.seeders <= 40:
            raise AtalayaError("the lab needs 2 to 40 seeders (one shares only unwatched files)")
        if not 1 <= self.leechers <= 40:
            raise AtalayaError("the lab needs 1 to 40 leechers")
        if not is_loopback(f"{self.ip_prefix}.1"):
            raise AtalayaError(f"lab addresses must be in 127.0.0.0/8, got {self.ip_prefix}.N")
        if not 16_384 <= self.file_size <= 8 << 20:
            raise AtalayaError("lab file size must be between 16 KiB and 8 MiB")

    def ip(self, host: int) -> str:
        return f"{self.ip_prefix}.{host}"


@dataclass
class Holdings:
    """Which torrents (by name) a peer seeds, and which it joined holding nothing."""

    seeds: list[str] = field(default_factory=list)
    holds_nothing: list[str] = field(default_factory=list)


class LabNetwork:
    """A running lab; see the module docstring."""

    def __init__(self, spec: LabSpec, lab_dir: Path) -> None:
        self.spec = spec
        self.lab_dir = lab_dir.resolve()
        self.content_dir = self.lab_dir / "content"
        self.tracker: OpenTracker | None = None
        self.peers: dict[str, LibtorrentPeer] = {}
        self.transmission: TransmissionPeer | None = None
        self.amule: AmulePeer | None = None
        self.torrents: dict[str, BuiltTorrent] = {}
        self.holdings: dict[str, Holdings] = {}
        self.started_at: float | None = None
        self.startup_seconds: float | None = None

    # -- names ---------------------------------------------------------------

    @property
    def seeder_names(self) -> list[str]:
        return [f"seed-{i + 1}" for i in range(self.spec.seeders)]

    @property
    def leecher_names(self) -> list[str]:
        return [f"leech-{i + 1}" for i in range(self.spec.leechers)]

    def _assign(self, plan: list[PlannedTorrent]) -> None:
        """Seeders but the last share watched content; the last only unwatched."""
        watched_seeders = self.seeder_names[:-1]
        only_unwatched = self.seeder_names[-1]
        for name in [*self.seeder_names, *self.leecher_names]:
            self.holdings[name] = Holdings()
        watched = [p for p in plan if p.purpose not in ("unwatched", "transmission")]
        for j, torrent in enumerate(watched):
            owners = {watched_seeders[j % len(watched_seeders)]}
            if torrent.version == "hybrid" and len(watched_seeders) > 1:
                owners.add(watched_seeders[(j + 1) % len(watched_seeders)])
            for owner in sorted(owners):
                self.holdings[owner].seeds.append(torrent.name)
        for torrent in plan:
            if torrent.purpose == "unwatched":
                self.holdings[only_unwatched].seeds.append(torrent.name)
            elif torrent.purpose == "watched":
                for leecher in self.leecher_names:
                    self.holdings[leecher].holds_nothing.append(torrent.name)
            elif torrent.purpose == "transmission":
                self.holdings.setdefault("transmission", Holdings()).seeds.append(torrent.name)

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Start everything and wait until it is ready; all or nothing."""
        self.started_at = time.time()
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
        tracker_ip = spec.ip(1)
        tracker_port = free_port(tracker_ip)
        trackers = [
            f"http://{tracker_ip}:{tracker_port}/announce",
            f"udp://{tracker_ip}:{tracker_port}/announce",
        ]
        plan = catalogue(seed=spec.seed, file_size=spec.file_size, transmission=spec.transmission)
        self._assign(plan)
        torrent_dir = self.lab_dir / "torrents"
        torrent_dir.mkdir(exist_ok=True)
        for planned in plan:
            built = build(planned, self.content_dir, trackers)
            self.torrents[planned.name] = built
            (torrent_dir / f"{planned.name}.torrent").write_bytes(built.torrent)
        whitelist = [h for t in self.torrents.values() for h in t.hashes.tracker_hashes]
        self.tracker = OpenTracker(
            tracker_ip, self.lab_dir / "tracker", whitelist, port=tracker_port
        )
        self.tracker.start()

        hosts = {name: 10 + i for i, name in enumerate(self.seeder_names)}
        hosts |= {name: 50 + i for i, name in enumerate(self.leecher_names)}
        for name, host in hosts.items():
            peer = LibtorrentPeer(
                spec.ip(host), self.lab_dir / "peers" / name, dht_rate_limit=spec.dht_rate_limit
            )
            self.peers[name] = peer
            peer.start()
        for peer in self.peers.values():
            for other in self.peers.values():
                if other is not peer:
                    peer.add_dht_node(other.ip, other.port)
        for name, peer in self.peers.items():
            for torrent in self.holdings[name].seeds:
                peer.seed(self.torrents[torrent].torrent, self.content_dir)
            for torrent in self.holdings[name].holds_nothing:
                peer.leech(self.torrents[torrent].torrent, peer.workdir / "data", download=False)
        if spec.transmission:
            self.transmission = TransmissionPeer(spec.ip(90), self.lab_dir / "transmission")
            self.transmission.start()
            for torrent in self.holdings["transmission"].seeds:
                self.transmission.seed(self.torrents[torrent].torrent, self.content_dir)
        if spec.amule:
            # Started while the DHT forms: it waits for itself (hashing its
            # files), within its own start timeout.
            shared = [self.content_dir / f.path for f in self.amule_files()]
            self.amule = AmulePeer(
                spec.ip(AMULE_HOST), self.lab_dir / "amule", shared, nick="nodo-lab"
            )
            self.amule.start()
        self._wait_ready(deadline)

    def amule_files(self) -> list[PlannedFile]:
        """The catalogue files the lab's aMule shares."""
        return [f for name in AMULE_SHARES for f in self.torrents[name].plan.files]

    def _wait_ready(self, deadline: float) -> None:
        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        for name in self.seeder_names:
            if not self.peers[name].wait_until("seeding", left()):
                raise AtalayaError(f"lab peer {name} did not finish checking its files in time")
        self._wait_dht_formed(time.monotonic() + left() * _DHT_FORM_SHARE)
        for peer in self.peers.values():
            peer.force_dht_announce()
        for name, peer in self.peers.items():
            if not peer.wait_until("tracker_announced", left()):
                raise AtalayaError(f"lab peer {name} got no reply from the lab tracker in time")
        if self.transmission is not None:
            if not self.transmission.wait_until_seeding(left()):
                raise AtalayaError("the lab's Transmission did not start seeding in time")
            if not self.transmission.wait_until_announced(left()):
                raise AtalayaError("the lab's Transmission did not announce to the tracker in time")
        self._wait_dht_announced(deadline)

    def _wait_dht_formed(self, deadline: float) -> None:
        """Until every node knows every other one (or the deadline: then it must know one)."""
        want = len(self.peers) - 1
        pending = dict(self.peers)
        while pending:
            counts = {name: peer.dht_nodes() for name, peer in pending.items()}
            pending = {name: self.peers[name] for name, n in counts.items() if n < want}
            if pending and time.monotonic() >= deadline:
                lonely = [name for name, n in counts.items() if n == 0]
                if lonely:
                    raise AtalayaError(f"lab DHT did not form: {', '.join(lonely)} know no node")
                return
            if pending:
                time.sleep(0.1)

    def _wait_dht_announced(self, deadline: float) -> None:
        """Until another node holds each seeder's DHT announce of each torrent it seeds."""
        missing: set[tuple[bytes, str, int]] = set()
        for name in self.seeder_names:
            peer = self.peers[name]
            for torrent in self.holdings[name].seeds:
                for infohash in self.torrents[torrent].hashes.tracker_hashes:
                    missing.add((infohash, peer.ip, peer.port))
        while True:
            for peer in self.peers.values():
                missing -= {a for a in peer.dht_announces_received() if a[1] != peer.ip}
            if not missing:
                return
            if time.monotonic() >= deadline:
                example = sorted(missing)[0]
                raise AtalayaError(
                    f"lab DHT: {len(missing)} announces did not arrive in time "
                    f"(e.g. {example[0].hex()} from {example[1]}:{example[2]})"
                )
            time.sleep(0.1)

    def poll(self) -> None:
        """Drain every session's alerts; a supervisor calls this now and then."""
        for peer in self.peers.values():
            peer.poll()

    def close(self) -> None:
        """Stop everything this network started; safe to call twice."""
        for peer in self.peers.values():
            peer.close()
        if self.transmission is not None:
            self.transmission.close()
        if self.amule is not None:
            self.amule.close()
        if self.tracker is not None:
            self.tracker.close()

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

    def child_pids(self) -> list[int]:
        """Process ids of the daemons this network started (not its own)."""
        daemons = (self.tracker, self.transmission, self.amule)
        return [d.pid for d in daemons if d is not None and d.pid is not None]
