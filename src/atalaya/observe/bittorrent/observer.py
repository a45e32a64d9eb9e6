"""The BitTorrent observer: find every peer offering a watched torrent, probe
it, and record what it proved as sightings.

Peers come from the DHT, from trackers and from PEX; each (torrent, peer)
is probed once per run by a bounded pool of workers (twice if it claimed
pieces before anyone had served the metadata to verify them); each finished
probe is written at once by a single writer task, so a stop loses nothing
already seen. `duration` counts from the start, DHT bootstrap included.

A hybrid torrent (BEP 52) is one swarm with two names, v1 and v2. Once the
observer knows that two watched names belong together (the torrent's
metadata, from the store or fetched, says so; or one hash set record
carries both), it probes each peer under one of them only, accepts a
handshake that answers with either (libtorrent 2 answers an address that
once spoke v2 to it with the truncated v2 hash, and closes a second
connection from it), and records one sighting, under the v1 hash that keys
the torrent in the store, whose details name `infohash_v2`.

With `discover`, a BEP 51 crawl samples infohashes that no watch list names,
fetches their metadata from a peer and matches it against file fingerprints.

Each sighting is written with its proof transcript (`transcript`) and the
clock's latest measured offset; while that offset is beyond its bound
(`observe.clock`), peers are counted, not recorded. A torrent watched by
its infohash alone takes its file from its verified metadata; with
`full_file`, the watched file is downloaded whole and hashed (`full_file`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from atalaya import __version__
from atalaya.hashsets.algorithms import infohash_kind
from atalaya.hashsets.index import MatchIndex
from atalaya.networks.bittorrent.dht.node import (
    ExternalAddressChanged,
    InfohashesSampled,
    NodeConfig,
    PeersFound,
)
from atalaya.networks.bittorrent.krpc import Address
from atalaya.networks.bittorrent.metainfo import Metainfo, MetainfoError, parse_info
from atalaya.networks.bittorrent.peerwire import make_peer_id
from atalaya.observe.bittorrent.dht_client import DhtClient
from atalaya.observe.bittorrent.dht_state import MAX_SAVED_NODES, DhtState, save_state
from atalaya.observe.bittorrent.discovery import FileMatch, match_in_store, match_metainfo
from atalaya.observe.bittorrent.fence import fence_admits, parse_fence
from atalaya.observe.bittorrent.full_file import (
    FullFilePlan,
    full_file_proof,
    plan_full_file,
    reference_hashes,
)
from atalaya.observe.bittorrent.probe import ProbeResult, ProbeTimeouts, probe_peer, utc_now
from atalaya.observe.bittorrent.targets import (
    NETWORK,
    dht_key,
    infohash_target,
    twins_on_one_record,
)
from atalaya.observe.bittorrent.tracker_client import TrackerError, announce
from atalaya.observe.bittorrent.transcript import encode_transcript, metadata_key
from atalaya.observe.clock import ClockGuard, ClockReading, ClockSettings
from atalaya.observe.leases import FleetMember, renew_every
from atalaya.observe.sightings import (
    PROOF_FULL_FILE,
    PROOF_PIECES,
    Sighting,
    SightingWriter,
    new_run_id,
)
from atalaya.observe.watchlist import WatchTarget, add_watch_item
from atalaya.store import begin_write
from atalaya.store.tables import torrent_metadata

log = logging.getLogger(__name__)

PEER_ID_PREFIX = b"-AY0100-"  # Azureus style, so peers can tell what we are
CLIENT_NAME = f"Atalaya {__version__}"
# Bounds that keep one run's memory flat whatever the swarm does.
MAX_QUEUED_PROBES = 10_000
MAX_SEEN_PEERS = 200_000
MAX_DISCOVERY_CHECKS = 2_000
# Peers per target waiting for its metadata before they can be verified.
MAX_AWAITING_METADATA = 1_000
# Source ports of our recent connections, remembered to recognise ourselves.
MAX_OWN_ENDPOINTS = 65_536


@dataclass(frozen=True)
class ObserverConfig:
    # Local addresses to observe from, at most one per family; () means every
    # local address of both families (the DHT listens on 0.0.0.0 and ::).
    bind_ips: tuple[str, ...] = ()
    # UDP port of the DHT sockets; 0 lets the system choose.
    dht_port: int = 0
    dht_bootstrap: tuple[Address, ...] = ()
    # Node ids to reuse per family (from the state of an earlier run).
    dht_node_ids: dict[int, bytes] = field(default_factory=dict)
    # The external address an earlier run learnt; a BEP 42 id is derived from it.
    external_ip: str | None = None
    # CIDR ranges the run may talk to; None: any address that can be a peer.
    allowed_networks: tuple[str, ...] | None = None
    trackers: tuple[str, ...] = ()
    use_dht: bool = True
    discover: bool = False
    pieces_to_verify: int = 2
    max_concurrent_probes: int = 16
    # How often each target is looked up again while the run lasts.
    lookup_interval: float = 30.0
    lookup_timeout: float = 20.0
    tracker_timeout: float = 10.0
    # Seconds behind NAT with no unsolicited query before the DHT goes read-only.
    read_only_after: float = 120.0
    # Port we announce: we never accept connections, but trackers need one.
    announce_port: int = 6881
    probe_timeouts: ProbeTimeouts = field(default_factory=ProbeTimeouts)
    seed: int | None = None  # for reproducible piece choices in tests
    # Where the clock's offset is measured, how often, and the bound beyond
    # which sightings are not recorded as evidence.
    clock: ClockSettings = field(default_factory=ClockSettings)
    # Download the whole watched file from each peer and recompute its own
    # hashes (--full-file): for every target, or for targets of these categories.
    full_file: bool = False
    full_file_categories: frozenset[int] = frozenset()
    max_full_file_bytes: int = 2 * 1024**3
    full_file_timeout: float = 3600.0


@dataclass(frozen=True)
class FleetSettings:
    """Taking part in a fleet (atalaya.observe.leases): watch only the targets leased."""

    host: str
    pid: int
    lease_seconds: float


@dataclass
class ObserverStats:
    targets: int = 0
    peers_found: int = 0
    probed: int = 0
    holding: int = 0
    verified: int = 0
    failed_verification: int = 0
    sightings: int = 0
    discovered: int = 0
    errors: int = 0
    # Probed again once the torrent's metadata was known (counted in `probed` too).
    reprobed: int = 0
    read_only: bool = False  # a DHT node went read-only (BEP 43): unreachable behind NAT
    # Sightings not recorded because the clock was off beyond its bound, and why.
    not_evidence: int = 0
    clock_refusal: str | None = None
    clock_offset_s: float | None = None
    clock_source: str | None = None
    # In a fleet: leases taken (a target first held, or held again) and lost.
    leases_taken: int = 0
    leases_lost: int = 0


@dataclass(frozen=True)
class _Job:
    target: WatchTarget
    ip: str
    port: int
    found_by: str
    again: bool = False  # a second probe, now that the metadata is known


class BittorrentObserver:
    def __init__(
        self,
        engine: Engine,
        targets: Sequence[WatchTarget],
        config: ObserverConfig,
        *,
        index: MatchIndex | None = None,
        on_update: Callable[[ObserverStats], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        fleet: FleetSettings | None = None,
    ) -> None:
        if config.discover and index is None:
            raise ValueError("discovery needs a match index of the hash sets")
        if config.discover and fleet is not None:
            raise ValueError("discovery adds targets no lease covers: not in a fleet")
        self.engine = engine
        self.config = config
        self.index = index
        self.on_update = on_update
        # Stamps what arrives from peers: the time each sighting records.
        self.clock = clock
        self.run_id = new_run_id()
        self.stats = ObserverStats()
        self.writer = SightingWriter(engine)
        self._rng = random.Random(config.seed)
        # Announces use one id per run; each probe gets a fresh one, since some
        # clients (Transmission) refuse a quick reconnection under a known id.
        self.peer_id = make_peer_id(PEER_ID_PREFIX, self._rng)
        self._targets: dict[bytes, WatchTarget] = {}
        # By every name of the torrent (a hybrid's metadata is here twice).
        self._metadata: dict[bytes, Metainfo] = {}
        # A hybrid's v1 and v2 names, each to the other: known from its metadata ...
        self._twins: dict[bytes, bytes] = {}
        # ... or only said by a hash set record that carries both.
        self._hinted: dict[bytes, bytes] = {}
        # (torrent, ip, port) found, and probed (or being probed) for the first time.
        self._seen: set[tuple[bytes, str, int]] = set()
        self._started: set[tuple[bytes, str, int]] = set()
        self._checked: set[bytes] = set()
        # Peers that claimed pieces but could not give the metadata to verify them.
        self._awaiting: dict[bytes, list[_Job]] = {}
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue(MAX_QUEUED_PROBES)
        self._results: asyncio.Queue[Sighting | None] = asyncio.Queue()
        self._dhts: list[DhtClient] = []
        self._binds = _binds_by_family(config.bind_ips)
        self._stop = asyncio.Event()
        self._later: set[asyncio.Task[None]] = set()
        # (tracker URL, infohash) -> `left` announced, to say "stopped" at the end.
        self._announced: dict[tuple[str, bytes], int] = {}
        self.clock_guard = ClockGuard(config.clock)
        # Known files found in a torrent's metadata, by its metadata key.
        self._attributions: dict[bytes, list[FileMatch]] = {}
        # Reference hashes by file key, for full-file proofs.
        self._references: dict[str, dict[str, bytes]] = {}
        self._own_ips = set(config.bind_ips) | {ip for ip in (config.external_ip,) if ip}
        self._own_endpoints: dict[tuple[str, int], None] = {}
        # The latest external address learnt in this run (trackers, DHT votes).
        self.external_ip: str | None = None
        self._fence = parse_fence(config.allowed_networks)
        # In a fleet every target is a candidate, and only the leased ones are
        # watched; each has its own finder, stopped when its lease is lost.
        self._candidates = {t.value: t for t in targets}
        self._finders: dict[bytes, asyncio.Task[None]] = {}
        # What one lease covers: a torrent, so a hybrid that one hash set
        # record names twice is leased once, under its v1 name, and its
        # swarm is watched by one observer only.
        self._units: dict[str, list[bytes]] = {}
        self._held: set[str] = set()  # the units leased now
        v1_of = {v2: v1 for v1, v2 in twins_on_one_record(targets)}
        for value in self._candidates:
            self._units.setdefault(v1_of.get(value, value).hex(), []).append(value)
        self.fleet: FleetMember | None = None
        if fleet is not None:
            self.fleet = FleetMember(
                engine,
                self.run_id,
                NETWORK,
                sorted(self._units),
                fleet.host,
                fleet.pid,
                fleet.lease_seconds,
            )
        else:
            for target in targets:
                self._add_target(target)
        for v1, v2 in twins_on_one_record(targets):
            self._hinted[v1], self._hinted[v2] = v2, v1
        self._count_targets()

    # --- public -------------------------------------------------------------

    async def run(
        self, *, duration: float | None = None, stop: asyncio.Event | None = None
    ) -> ObserverStats:
        """Observe until `duration` seconds pass or `stop` is set; then drain and return."""
        if self.fleet is not None:
            node_id = await asyncio.to_thread(self.fleet.join, datetime.now(UTC))
            # Its own place in the key space, whatever an earlier run saved.
            self.config = replace(self.config, dht_node_ids={4: node_id, 6: node_id})
        self._load_metadata()
        self._clock_measured(await asyncio.to_thread(self.clock_guard.measure))
        tasks: list[asyncio.Task[None]] = [
            asyncio.create_task(self._clock_loop(), name="clock-offset")
        ]
        writer = asyncio.create_task(self._write_loop(), name="sighting-writer")
        try:
            if self.config.use_dht:
                await self._start_dht()
                # In the background: dead nodes can hold a bootstrap up for its whole
                # timeout, which must count against `duration` and yield to `stop`.
                # Lookups need not wait: with a small table they start from the
                # bootstrap nodes too, and trackers do not need the DHT at all.
                for dht in self._dhts:
                    tasks.append(asyncio.create_task(self._bootstrap(dht), name="dht-bootstrap"))
                    tasks.append(asyncio.create_task(self._watch_nat(dht), name="dht-nat"))
            tasks += [
                asyncio.create_task(self._probe_worker(), name=f"probe-{n}")
                for n in range(self.config.max_concurrent_probes)
            ]
            for target in list(self._targets.values()):
                tasks.append(asyncio.create_task(self._find_loop(target)))
            if self.fleet is not None:
                self._hold(await asyncio.to_thread(self.fleet.tick, datetime.now(UTC)))
                tasks.append(asyncio.create_task(self._lease_loop(self.fleet), name="leases"))
            if self.config.discover:
                for dht in self._dhts:
                    tasks.append(asyncio.create_task(self._discover_loop(dht), name="discover"))
            waiters = [asyncio.create_task(self._stop.wait())]
            if stop is not None:
                waiters.append(asyncio.create_task(stop.wait()))
            await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
        finally:
            self._stop.set()
            tasks += self._later
            tasks += self._finders.values()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for dht in self._dhts:
                dht.close()
            await self._announce_stopped()
            # Every finished probe is already queued: write them all before returning.
            await self._results.put(None)
            await writer
            if self.fleet is not None:
                # Only now: every sighting of a held target is written, so
                # whoever takes it over next starts after this run's last.
                try:
                    await asyncio.to_thread(self.fleet.leave, datetime.now(UTC))
                except SQLAlchemyError as exc:
                    log.warning("leases not released (they expire in a lease): %s", exc)
        return self.stats

    # --- a fleet's leases -----------------------------------------------------

    async def _lease_loop(self, fleet: FleetMember) -> None:
        """Tick the leases three times a lease; drop every target once they may be lost.

        A store that does not answer for a whole lease means the leases
        may have gone to others: watching on would have two observers on
        one target, so the run watches nothing until a tick succeeds.
        """
        every = renew_every(fleet.lease_seconds)
        renewed = time.monotonic()  # when the leases held were last renewed, at the latest
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every)
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                held = await asyncio.to_thread(fleet.tick, datetime.now(UTC))
            except SQLAlchemyError as exc:
                log.warning("leases not renewed: %s", exc)
                self.stats.errors += 1
                # They run out before the next tick could renew them: let go now.
                if time.monotonic() + every >= renewed + fleet.lease_seconds:
                    self._hold(set())
                continue
            renewed = started
            self._hold(held)

    def _hold(self, held: set[str]) -> None:
        """Watch exactly the torrents leased (hex keys), starting and stopping their finders."""
        held = held & self._units.keys()
        self.stats.leases_taken += len(held - self._held)
        self.stats.leases_lost += len(self._held - held)
        self._held = held
        wanted = {name for unit in held for name in self._units.get(unit, ())}
        for value in list(self._finders):
            if value not in wanted:
                self._finders.pop(value).cancel()
                # Should the lease come back, its peers are probed again: in
                # between another observer watched them, and they may have left.
                key = self._torrent_key(value)
                self._seen = {k for k in self._seen if k[0] != key}
                self._started = {k for k in self._started if k[0] != key}
                self._targets.pop(value, None)
        for value in wanted - self._finders.keys():
            target = self._candidates[value]
            self._targets[value] = target
            self._finders[value] = asyncio.create_task(self._find_loop(target))
        self._count_targets()
        self._update()

    # --- finding peers ------------------------------------------------------

    @property
    def dht_clients(self) -> list[DhtClient]:
        """The DHT clients of this run, one per address family (empty before `run`)."""
        return list(self._dhts)

    async def _start_dht(self) -> None:
        """One DHT node per address family we observe from, sharing the watch list.

        With no --bind, both families listen on every local address; a machine
        without IPv6 then runs the IPv4 node alone, and says so.
        """
        families = sorted(self._binds) if self._binds else [4, 6]
        for family in families:
            try:
                dht = await self._start_family(family)
            except OSError as exc:
                if self._binds or family == 4:
                    raise
                log.warning("no IPv6 DHT node: %s; observing over IPv4 only", exc)
                continue
            self._dhts.append(dht)

    async def _start_family(self, family: int) -> DhtClient:
        bind = self._binds.get(family) or _WILDCARD[family]
        external = self.config.external_ip
        config = NodeConfig(
            family=family,
            node_id=self.config.dht_node_ids.get(family),
            external_ip=external if external and _family(external) == family else None,
        )
        bootstrap = [a for a in self.config.dht_bootstrap if _family(a[0]) == family]
        port = self.config.dht_port
        for attempt in (port, 0):
            dht = DhtClient(
                bind=(bind, attempt),
                bootstrap=bootstrap,
                config=config,
                allowed_networks=self.config.allowed_networks,
            )
            try:
                await dht.start()
            except OSError as exc:
                # Another client on this machine holds the usual port: any
                # port serves an observer, which never needs to be found.
                if exc.errno != errno.EADDRINUSE or attempt == 0:
                    raise
                log.warning("UDP port %d is in use on %s; the DHT takes a free one", port, bind)
                continue
            own = [a for a in dht.local_addresses if a[0] not in _WILDCARD.values()]
            if external and _family(external) == family:
                own += [(external, a[1]) for a in dht.local_addresses]
            dht.engine.set_own_addresses(own)
            return dht
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _watch_nat(self, dht: DhtClient) -> None:
        """Learn our external address from the DHT, and go read-only when unreachable.

        Nodes tell us the address they see us at (BEP 42); once enough agree,
        the node takes a BEP 42 id for it, and it is ours: never probed. If
        that address is none of our own sockets' we are behind NAT; if, after
        `read_only_after` seconds, no node we never wrote to has queried us,
        nobody can reach us, and we tell others so (BEP 43 read-only) rather
        than fill their routing tables with an address that never answers.
        """
        started = asyncio.get_running_loop().time()
        local = {a[0] for a in dht.local_addresses}
        while not self._stop.is_set():
            for arrival in dht.other_events():
                event = arrival.event
                if isinstance(event, ExternalAddressChanged):
                    self._learn_external(event.ip)
                    for _, port in dht.local_addresses:
                        dht.engine.add_own_address((event.ip, port))
            behind_nat = self.external_ip is not None and self.external_ip not in local
            waited = asyncio.get_running_loop().time() - started
            if (
                behind_nat
                and not dht.engine.read_only
                and waited >= self.config.read_only_after
                and dht.engine.stats.unsolicited_queries == 0
            ):
                log.info("no node reached us in %.0f s behind NAT: DHT read-only (BEP 43)", waited)
                dht.engine.set_read_only(True)
                self.stats.read_only = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)

    # --- the clock --------------------------------------------------------------

    async def _clock_loop(self) -> None:
        """Measure the clock's offset again every `interval_s` while the run lasts."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.clock.interval_s)
            if not self._stop.is_set():
                self._clock_measured(await asyncio.to_thread(self.clock_guard.measure))

    def _clock_measured(self, reading: ClockReading) -> None:
        refusal = self.clock_guard.refusal()
        if refusal != self.stats.clock_refusal:
            if refusal is not None:
                log.warning("%s", refusal)
            elif self.stats.clock_refusal is not None:
                log.warning("the clock is back within its bound: sightings are evidence again")
        self.stats.clock_refusal = refusal
        self.stats.clock_offset_s = reading.offset_s
        self.stats.clock_source = reading.source
        self._update()

    async def _bootstrap(self, dht: DhtClient) -> None:
        await dht.bootstrap(timeout=self.config.lookup_timeout)

    def _add_target(self, target: WatchTarget) -> bool:
        if target.value in self._targets:
            return False
        self._targets[target.value] = target
        self._count_targets()
        return True

    def _count_targets(self) -> None:
        """Torrents watched: a hybrid's two names count once."""
        self.stats.targets = len({self._torrent_key(ih) for ih in self._targets})

    # --- a hybrid's two names ------------------------------------------------

    def _partner(self, infohash: bytes) -> bytes | None:
        """The torrent's other name, known or hinted; None for a single-name torrent."""
        return self._twins.get(infohash) or self._hinted.get(infohash)

    def _torrent_key(self, infohash: bytes) -> bytes:
        """One name per torrent: a hybrid's v1 hash, the store's key for it."""
        partner = self._partner(infohash)
        return partner if partner is not None and len(partner) == 20 else infohash

    def _learn_metadata(self, meta: Metainfo) -> list[bytes]:
        """Keep a torrent's metadata under each of its names; the names.

        Its metadata is the last word on which names belong together: it
        pairs a hybrid's two and undoes any hint that says otherwise.
        """
        names = [h for h in (meta.infohash_v1, meta.infohash_v2) if h is not None]
        for name in names:
            self._metadata[name] = meta
            for pairs in (self._twins, self._hinted):
                other = pairs.pop(name, None)
                if other is not None:
                    pairs.pop(other, None)
        if len(names) == 2:
            v1, v2 = names
            self._twins[v1], self._twins[v2] = v2, v1
        self._count_targets()
        return names

    async def _find_loop(self, target: WatchTarget) -> None:
        while not self._stop.is_set():
            finders = [self._from_trackers(target)]
            finders += [self._from_dht(dht, target) for dht in self._dhts]
            await asyncio.gather(*finders, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.lookup_interval)

    async def _from_dht(self, dht: DhtClient, target: WatchTarget) -> None:
        async for arrival in dht.get_peers(dht_key(target), timeout=self.config.lookup_timeout):
            if isinstance(arrival.event, PeersFound):
                for ip, port in arrival.event.peers:
                    await self._enqueue(_Job(target, ip, port, "dht"))

    async def _from_trackers(self, target: WatchTarget) -> None:
        urls = dict.fromkeys(self.config.trackers)
        meta = self._metadata.get(target.value)
        if meta is not None:
            urls.update(dict.fromkeys(meta.trackers))
        # An observer must never pose as a seeder: it announces something left.
        left = meta.total_size if meta is not None and meta.total_size > 0 else 1
        for url in urls:
            first = (url, target.value) not in self._announced
            try:
                result = await announce(
                    url,
                    target.value,
                    peer_id=self.peer_id,
                    port=self.config.announce_port,
                    left=left,
                    bind_ip=self._tracker_bind,
                    timeout=self.config.tracker_timeout,
                    event="started" if first else "none",
                )
                self._announced[(url, target.value)] = left
                if result.response.external_ip is not None:
                    self._learn_external(result.response.external_ip)
            except (TrackerError, OSError, ValueError) as exc:
                log.info("tracker %s: %s", url, exc)
                self.stats.errors += 1
                continue
            for peer in result.peers:
                await self._enqueue(_Job(target, peer.ip, peer.port, "tracker"))

    async def _announce_stopped(self) -> None:
        """Tell trackers we left, so they stop handing our address to others."""

        async def stopped(url: str, infohash: bytes, left: int) -> None:
            with contextlib.suppress(TrackerError, OSError, ValueError):
                await announce(
                    url,
                    infohash,
                    peer_id=self.peer_id,
                    port=self.config.announce_port,
                    left=left,
                    bind_ip=self._tracker_bind,
                    timeout=min(self.config.tracker_timeout, 3.0),
                    event="stopped",
                    udp_max_tries=1,
                )

        await asyncio.gather(
            *(stopped(url, ih, left) for (url, ih), left in self._announced.items())
        )

    async def _enqueue(self, job: _Job) -> None:
        key = (self._torrent_key(job.target.value), job.ip, job.port)
        if key in self._seen or len(self._seen) >= MAX_SEEN_PEERS:
            return
        if not self._may_contact(job.ip, job.port):
            return
        self._seen.add(key)
        self.stats.peers_found += 1
        self._update()
        await self._jobs.put(job)

    def _learn_external(self, ip: str) -> None:
        """An address a tracker or the DHT saw us at: ours, so never probed as a peer."""
        self._own_ips.add(ip)
        self.external_ip = ip

    def _own_endpoint(self, ip: str, port: int) -> None:
        """Our end of a probe's connection: peers pass it on by PEX as if it were a peer."""
        self._own_endpoints[(ip, port)] = None
        if len(self._own_endpoints) > MAX_OWN_ENDPOINTS:
            self._own_endpoints.pop(next(iter(self._own_endpoints)))

    def _may_contact(self, ip: str, port: int) -> bool:
        """Whether a reported peer is someone else, inside the run's fence.

        Ourselves is our address *and* a port of ours (the one we announce,
        or the source port of one of our connections): a peer sharing our
        public address (the same NAT, a shared host) is still a peer.
        """
        if port == self.config.announce_port and ip in self._own_ips:
            return False  # ourselves, as trackers and PEX may echo us
        if (ip, port) in self._own_endpoints:
            return False  # one of our own connections, passed on by PEX
        if self._binds and _family(ip) not in self._binds:
            return False  # no address of ours to reach it from
        return fence_admits(self._fence, ip)

    # --- probing ------------------------------------------------------------

    async def _probe_worker(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await self._probe(job)
            except Exception:  # a bug in one probe must not end the run
                log.exception("probe of %s:%s failed", job.ip, job.port)
                self.stats.errors += 1

    async def _probe(self, job: _Job) -> None:
        target = job.target
        if not job.again:
            peer = (self._torrent_key(target.value), job.ip, job.port)
            if peer in self._started:
                # Found under the torrent's other name before the two were
                # known to be one: probed under that name already, or now.
                self.stats.peers_found -= 1
                self._update()
                return
            if len(self._started) < MAX_SEEN_PEERS:
                self._started.add(peer)
        meta = self._metadata.get(target.value)
        if meta is not None:
            job = replace(job, target=await self._attributed(target, meta))
            target = job.target
        plan = await self._full_file_plan(target, meta) if meta is not None else None
        result = await self._probe_once(job, meta, plan)
        if result.metadata is not None and result.info_dict is not None and meta is None:
            self._remember_metadata(result, job)
            job = replace(job, target=await self._attributed(target, result.metadata))
            target = job.target
            # The metadata came with this probe: now the whole file can be asked for.
            wanted = await self._full_file_plan(target, result.metadata)
            plan = wanted if isinstance(wanted, str) else None
            if isinstance(wanted, FullFilePlan) and (result.have_fraction or 0) > 0:
                again = await self._probe_once(job, result.metadata, wanted)
                if again.peer_id is not None:
                    result, plan = again, wanted
                else:
                    plan = "the peer did not answer a second connection for the whole file"
        if self._needs_metadata_first(job, result, meta):
            self._await_metadata(job)
        for ip, port in result.pex_peers:
            with contextlib.suppress(asyncio.QueueFull):
                await self._enqueue(_Job(target, ip, port, "pex"))
        if result.error is not None:
            self.stats.errors += 1
        holds = (result.have_fraction or 0) > 0
        if not holds and result.pieces_verified == 0 and result.pieces_failed == 0:
            self._update()
            return  # nothing offered: not a sighting
        self.stats.holding += 1
        self.stats.verified += result.pieces_verified > 0 and result.pieces_failed == 0
        self.stats.failed_verification += result.pieces_failed > 0
        if self.clock_guard.refusal() is not None:
            # A time that may be off by more than the bound must not name a
            # subscriber: the peer is counted, not recorded.
            self.stats.not_evidence += 1
            self._update()
            return
        await self._results.put(self._sighting(job, result, plan))
        self._update()

    async def _probe_once(
        self, job: _Job, meta: Metainfo | None, plan: FullFilePlan | str | None
    ) -> ProbeResult:
        partner = self._partner(job.target.value)
        full = plan if isinstance(plan, FullFilePlan) else None
        timeouts = self.config.probe_timeouts
        if full is not None:
            timeouts = replace(timeouts, total=max(timeouts.total, self.config.full_file_timeout))
        result = await probe_peer(
            job.ip,
            job.port,
            job.target.value,
            torrent=meta,
            bind_ip=self._binds.get(_family(job.ip)),
            peer_id=make_peer_id(PEER_ID_PREFIX, self._rng),
            pieces_to_verify=self.config.pieces_to_verify,
            rng=self._rng,
            timeouts=timeouts,
            client_name=CLIENT_NAME,
            clock=self.clock,
            on_connected=self._own_endpoint,
            aliases=(partner,) if partner is not None else (),
            full_file=full.file_index if full is not None else None,
        )
        self.stats.probed += 1
        return result

    async def _attributed(self, target: WatchTarget, meta: Metainfo) -> WatchTarget:
        """The target, with the known file its metadata carries when the watch list named none.

        A torrent named only by its infohash (--infohash, a watch item) says
        nothing of what it holds; its verified metadata may: a file whose
        BEP 52 pieces root, or whose first v1 piece, is an imported
        fingerprint. The most severe such file names the sighting.
        """
        if target.file_key is not None:
            return target
        key = metadata_key(meta)
        matches = self._attributions.get(key)
        if matches is None:
            matches = await asyncio.to_thread(match_in_store, self.engine, meta)
            if len(self._attributions) < MAX_DISCOVERY_CHECKS:
                self._attributions[key] = matches
        if not matches:
            return target
        best = max(matches, key=lambda m: (m.match.category, -m.file_index))
        found = best.match
        return replace(
            target,
            reason=f"{target.reason}; {best.reason}",
            file_key=found.file_key,
            category=found.category,
            hash_set=found.hash_set,
            hash_set_sha256=found.hash_set_sha256,
        )

    def _wants_full_file(self, target: WatchTarget) -> bool:
        return target.file_key is not None and (
            self.config.full_file
            or (target.category is not None and target.category in self.config.full_file_categories)
        )

    async def _full_file_plan(
        self, target: WatchTarget, meta: Metainfo
    ) -> FullFilePlan | str | None:
        """Which file of the torrent to download whole, and its reference hashes.

        None when no full file is wanted for this target; a sentence saying
        why not when one is wanted but cannot be had.
        """
        if not self._wants_full_file(target):
            return None
        assert target.file_key is not None
        reference = self._references.get(target.file_key)
        if reference is None:
            reference = await asyncio.to_thread(reference_hashes, self.engine, target.file_key)
            self._references[target.file_key] = reference
        return plan_full_file(meta, target.file_key, reference, self.config.max_full_file_bytes)

    def _needs_metadata_first(self, job: _Job, result: ProbeResult, meta: Metainfo | None) -> bool:
        """Whether the peer claimed pieces that could not be checked for want of metadata.

        A peer that will not serve the info dictionary (a liar often will
        not) must still be verified once another peer has served it;
        otherwise its claim would stand unchecked. Only once per peer.
        """
        return (
            not job.again
            and meta is None
            and result.metadata is None
            and self.config.pieces_to_verify > 0
            and result.error is not None
            and result.error.phase == "metadata"
            and bool(result.have_fraction or result.pieces_held)
        )

    def _await_metadata(self, job: _Job) -> None:
        waiting = self._awaiting.setdefault(job.target.value, [])
        if len(waiting) < MAX_AWAITING_METADATA:
            waiting.append(replace(job, again=True))
        self._probe_awaiting(job.target.value)

    def _probe_awaiting(self, infohash: bytes) -> None:
        """Queue the peers waiting for this torrent's metadata, if it is known now."""
        if infohash not in self._metadata:
            return
        for job in self._awaiting.pop(infohash, []):
            try:
                self._jobs.put_nowait(job)
            except asyncio.QueueFull:
                return  # the queue bound wins over a second look
            self.stats.reprobed += 1

    def _sighting(
        self, job: _Job, result: ProbeResult, plan: FullFilePlan | str | None = None
    ) -> Sighting:
        target = job.target
        meta = result.metadata or self._metadata.get(target.value)
        seen_at = result.handshake_at or result.connected_at or self.clock()
        details: dict[str, object] = {"reserved": result.reserved_bits, "reason": target.reason}
        infohash = target.value
        if meta is not None and meta.infohash_v1 and meta.infohash_v2:
            # A hybrid, as its metadata proves: one sighting under its v1 name.
            infohash = meta.infohash_v1
            details["infohash_v2"] = meta.infohash_v2.hex()
            details["asked_infohash"] = target.hex
        answered = result.handshake_infohash
        if answered is not None and ("infohash_v2" in details or answered != dht_key(target)):
            details["handshake_infohash"] = answered.hex()  # which name the peer answered to
        if result.yourip:
            details["yourip"] = result.yourip
        if result.listen_port:
            details["listen_port"] = result.listen_port
        if result.error is not None:
            details["error"] = {
                "kind": str(result.error.kind),
                "phase": result.error.phase,
                "detail": result.error.detail,
            }
        if result.pieces_unavailable:
            details["pieces_unavailable"] = result.pieces_unavailable
        item_kind = infohash_kind(infohash)
        clock = self.clock_guard.reading
        proof_kind = PROOF_PIECES if result.proof else None
        full_file = None
        if isinstance(plan, str):
            details["full_file"] = plan
        elif plan is not None:
            full_file = full_file_proof(plan, result)
            if full_file is None:
                details["full_file"] = "the peer does not claim every piece of the file"
            elif full_file.ok:
                proof_kind = PROOF_FULL_FILE
        transcript = encode_transcript(
            result, item_kind=item_kind, item_value=infohash.hex(), clock=clock, full_file=full_file
        )
        return Sighting(
            network="bittorrent",
            item_kind=item_kind,
            item_value=infohash.hex(),
            ip=job.ip,
            port=job.port,
            seen_at=seen_at,
            found_by=job.found_by,
            run_id=self.run_id,
            client=result.client or result.client_from_peer_id,
            peer_id=result.peer_id.hex() if result.peer_id else None,
            advertised_name=meta.name if meta is not None else None,
            have_fraction=result.have_fraction,
            pieces_verified=result.pieces_verified,
            pieces_failed=result.pieces_failed,
            bytes_downloaded=result.bytes_downloaded,
            file_key=target.file_key,
            category=target.category,
            hash_set=target.hash_set,
            hash_set_sha256=target.hash_set_sha256,
            local_ip=result.local_ip,
            local_port=result.local_port,
            clock_offset_s=clock.offset_s,
            details=details,
            proof_kind=proof_kind,
            transcript=transcript,
        )

    async def _write_loop(self) -> None:
        while True:
            first = await self._results.get()
            batch = [first]
            while not self._results.empty():
                batch.append(self._results.get_nowait())
            items = [s for s in batch if s is not None]
            if items:
                await asyncio.to_thread(self.writer.write, items)
                self.stats.sightings = self.writer.written
                self._update()
            if None in batch:
                return

    # --- metadata -----------------------------------------------------------

    def _load_metadata(self) -> None:
        wanted = [t.hex for t in self._targets.values()]
        if not wanted:
            return
        # A hybrid is stored under its v1 name; a watched v2 name finds it too.
        query = select(torrent_metadata.c.info).where(
            torrent_metadata.c.infohash.in_(wanted) | torrent_metadata.c.infohash_v2.in_(wanted)
        )
        with self.engine.connect() as conn:
            for (info,) in conn.execute(query):
                with contextlib.suppress(MetainfoError):
                    self._learn_metadata(parse_info(bytes(info)))

    def _remember_metadata(self, result: ProbeResult, job: _Job) -> None:
        assert result.metadata is not None and result.info_dict is not None
        meta = result.metadata
        for name in self._learn_metadata(meta):
            self._probe_awaiting(name)
        key = meta.infohash_v1 or meta.infohash_v2
        assert key is not None, "parsed metadata has at least one name"
        row = {
            "infohash": key.hex(),
            "infohash_v2": meta.infohash_v2.hex() if meta.infohash_v2 else None,
            "name": meta.name,
            "info": result.info_dict,
            "fetched_at": result.handshake_at or self.clock(),
            "fetched_from": f"{job.ip}:{job.port}",
        }
        try:
            with begin_write(self.engine) as conn:
                conn.execute(insert(torrent_metadata), [row])
        except IntegrityError:  # stored by an earlier run: the first copy stays
            log.debug("metadata for %s already stored", key.hex())

    # --- discovery ----------------------------------------------------------

    async def _discover_loop(self, dht: DhtClient) -> None:
        assert self.index is not None
        while not self._stop.is_set():
            sampled: list[bytes] = []
            async for arrival in dht.sample_infohashes(
                timeout=self.config.lookup_timeout, respect_interval=False
            ):
                if isinstance(arrival.event, InfohashesSampled):
                    sampled += arrival.event.samples
            watched = self._swarm_keys()
            for infohash in dict.fromkeys(sampled):
                if self._stop.is_set() or len(self._checked) >= MAX_DISCOVERY_CHECKS:
                    break
                if infohash in self._checked or infohash in watched:
                    continue
                self._checked.add(infohash)
                await self._check_unknown(dht, infohash)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.lookup_interval)

    def _swarm_keys(self) -> set[bytes]:
        """The 20-byte DHT keys of the watched torrents, by each of their names."""
        names = list(self._targets)
        names += [self._twins[n] for n in names if n in self._twins]
        return {n[:20] for n in names}

    async def _check_unknown(self, dht: DhtClient, infohash: bytes) -> None:
        """Fetch an unknown torrent's metadata and watch it if it carries a known file."""
        assert self.index is not None
        peers: list[tuple[str, int]] = []
        async for arrival in dht.get_peers(infohash, timeout=self.config.lookup_timeout):
            if isinstance(arrival.event, PeersFound):
                peers += arrival.event.peers
        for ip, port in list(dict.fromkeys(peers))[:3]:
            result = await probe_peer(
                ip,
                port,
                infohash,
                bind_ip=self._binds.get(_family(ip)),
                peer_id=make_peer_id(PEER_ID_PREFIX, self._rng),
                pieces_to_verify=0,
                rng=self._rng,
                fetch_metadata=True,
                timeouts=replace(self.config.probe_timeouts, unchoke=0.0),
                client_name=CLIENT_NAME,
                clock=self.clock,
                on_connected=self._own_endpoint,
            )
            if result.metadata is None:
                continue
            matches = await asyncio.to_thread(
                match_metainfo, self.index, self.engine, result.metadata
            )
            if not matches:
                return
            first = matches[0]
            reason = f"discovered: {first.reason}"
            target_hash = result.metadata.infohash_v1 or result.metadata.infohash_v2 or infohash
            add_watch_item(
                self.engine,
                NETWORK,
                infohash_kind(target_hash),
                target_hash,
                origin="discovery",
                reason=reason,
                hash_set_name=first.match.hash_set,
                file_key=first.match.file_key,
                category=first.match.category,
            )
            target = infohash_target(
                target_hash,
                reason,
                first.match.file_key,
                first.match.category,
                first.match.hash_set,
                first.match.hash_set_sha256,
            )
            if self._add_target(target):
                self.stats.discovered += 1
                self._remember_metadata(result, _Job(target, ip, port, "dht"))
                self._update()
                for peer_ip, peer_port in dict.fromkeys(peers):
                    await self._enqueue(_Job(target, peer_ip, peer_port, "dht"))
                finder = asyncio.create_task(self._find_loop(target))
                self._later.add(finder)
            return

    def _update(self) -> None:
        if self.on_update is not None:
            self.on_update(self.stats)

    @property
    def _tracker_bind(self) -> str | None:
        # A tracker's family is known only once its name resolves; with a
        # single family bound, that address is the one to announce from.
        return next(iter(self._binds.values())) if len(self._binds) == 1 else None


_WILDCARD = {4: "0.0.0.0", 6: "::"}  # noqa: S104 - listening everywhere is the point


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _binds_by_family(bind_ips: Sequence[str]) -> dict[int, str]:
    """The bind addresses by family; ValueError for two of one family or a non-address."""
    binds: dict[int, str] = {}
    for text in bind_ips:
        family = ipaddress.ip_address(text).version
        if family in binds:
            raise ValueError(f"two bind addresses of IPv{family}: {binds[family]} and {text}")
        binds[family] = text
    return binds


def save_run_state(path: Path, previous: DhtState, observer: BittorrentObserver) -> None:
    """Keep what the run's DHT nodes learnt (ids, good contacts, external address) for the next."""
    state = DhtState(
        node_ids=dict(previous.node_ids),
        nodes={f: list(v) for f, v in previous.nodes.items()},
        external_ip=previous.external_ip,
    )
    if observer.external_ip is not None:
        state.external_ip = observer.external_ip
    for dht in observer.dht_clients:
        state.node_ids[dht.family] = dht.node_id
        contacts = dht.good_contacts(MAX_SAVED_NODES)
        if contacts:  # a run that met nobody keeps the last run's contacts
            state.nodes[dht.family] = contacts
        external = dht.engine.external_address
        if external is not None:
            state.external_ip = external[0]
    save_state(path, state)
