"""One real libtorrent session on its own lab address, for the lab and tests.

Settings follow the lab notes: literal listen and outgoing addresses (with
0.0.0.0 libtorrent treats loopback as local and keeps the DHT off it),
nothing that reaches outside (no bootstrap routers, LSD, UPnP, NAT-PMP), and
the DHT's one-node-per-/24 rules off, since lab nodes share a /24.

The address is a loopback one (127/8), or one of a namespace lab host's
(lab.netns: 100.64.0.0/10 or its ULA /64, IPv4 or IPv6): then the session is
opened from a thread inside that namespace, so its sockets and threads live
there, while this object is used from anywhere in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import libtorrent as lt

from atalaya.lab.netns import NetnsHost
from atalaya.lab.ports import free_port, is_loopback, is_namespace_address

PREDICATES = (
    "listening",
    "dht_ready",
    "seeding",
    "complete",
    "tracker_announced",
)

_ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
    | lt.alert.category_t.tracker_notification
    | lt.alert.category_t.dht_notification
    | lt.alert.category_t.dht_operation_notification
    | lt.alert.category_t.stats_notification
)
_POLL_SECONDS = 0.05
_MAX_RECORDED = 10_000


class LibtorrentPeer:
    """A libtorrent session on `ip` (127.x, or an address of namespace host `netns`),
    seeding or leeching lab torrents."""

    def __init__(
        self,
        ip: str,
        workdir: Path,
        *,
        port: int | None = None,
        dht: bool = True,
        dht_rate_limit: int | None = None,
        netns: NetnsHost | None = None,
    ) -> None:
        if netns is None:
            if not is_loopback(ip):
                raise ValueError(f"lab peers live on 127.0.0.0/8 only, got {ip!r}")
        elif ip not in netns.addresses or not is_namespace_address(ip):
            raise ValueError(
                f"a peer in namespace {netns.netns} lives on one of its addresses "
                f"{', '.join(netns.addresses)}, got {ip!r}"
            )
        self.netns = netns
        self.ip = ip
        self.workdir = workdir
        self.port = port or 0
        self.dht = dht
        self.dht_rate_limit = dht_rate_limit
        self._session: Any = None
        self._handles: dict[str, Any] = {}  # key: best info-hash hex (v2 if any)
        self._tracker_replies: set[str] = set()
        self._dht_announces: set[tuple[bytes, str, int]] = set()
        self._dht_peers: dict[bytes, set[tuple[str, int]]] = {}
        self._dht_samples: dict[tuple[str, int], set[bytes]] = {}
        self._stats: dict[str, int] | None = None
        self.errors: list[str] = []

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Open the session and listen on ip:port (a free port if none was given)."""
        if self._session is not None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.netns is None:
            self._open()
        else:
            self.netns.call(self._open)
        if not self.wait_until("listening", 10):
            self.close()
            raise OSError(f"libtorrent could not listen on {self.ip}:{self.port}: {self.errors}")

    def _open(self) -> None:
        # In a namespace lab this runs on a thread inside the namespace: the port
        # is picked there, and the session's threads and sockets are born there.
        if not self.port:
            self.port = free_port(self.ip)
        self._session = lt.session(self._settings())

    @property
    def endpoint(self) -> str:
        """ip:port, with brackets around an IPv6 address."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    def close(self) -> None:
        """Stop the session; safe to call twice."""
        session, self._session = self._session, None
        self._handles.clear()
        if session is not None:
            session.pause()
            del session

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

    def _settings(self) -> lt.settings_pack:
        settings: lt.settings_pack = {
            "listen_interfaces": self.endpoint,
            "outgoing_interfaces": self.ip,
            "listen_system_port_fallback": False,
            "enable_dht": self.dht,
            "dht_bootstrap_nodes": "",
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "alert_mask": _ALERTS,
            "user_agent": "atalaya-lab libtorrent/" + lt.__version__,
            # Every lab peer shares 127.0.0.0/24 and often one source address.
            "allow_multiple_connections_per_ip": True,
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_prefer_verified_node_ids": False,
            # Fresh BEP 51 samples: the default caches them for six hours.
            "dht_sample_infohashes_interval": 0,
            "upload_rate_limit": 0,
            "download_rate_limit": 0,
            "ignore_limits_on_local_network": True,
            "announce_to_all_tiers": True,
            "announce_to_all_trackers": True,
            # Closing should not hang on a tracker that is already gone.
            "stop_tracker_timeout": 1,
            # Peer wire over TCP only, which is what observers probe.
            "enable_outgoing_utp": False,
            "enable_incoming_utp": False,
            "active_downloads": -1,
            "active_seeds": -1,
            "active_limit": -1,
        }
        if self.dht_rate_limit is not None:
            settings["dht_block_ratelimit"] = self.dht_rate_limit
            settings["dht_upload_rate_limit"] = max(8000, self.dht_rate_limit * 2000)
        return settings

    @property
    def session(self) -> Any:
        """The libtorrent session, for what this class does not wrap."""
        if self._session is None:
            raise RuntimeError(f"lab peer {self.ip} is not started")
        return self._session

    # -- torrents ------------------------------------------------------------

    def seed(self, torrent: bytes, content_dir: Path) -> None:
        """Seed `torrent` whose content already lies in `content_dir`."""
        self._add(torrent, content_dir)

    def leech(self, torrent: bytes, save_dir: Path, *, download: bool = True) -> None:
        """Join `torrent` holding nothing yet, downloading into `save_dir`.

        With `download=False` it stays in the swarm (announces, connects,
        uploads nothing) but never downloads: a peer that holds nothing.
        """
        self._add(torrent, save_dir, upload_only=not download)

    def _add(self, torrent: bytes, save_dir: Path, *, upload_only: bool = False) -> None:
        save_dir.mkdir(parents=True, exist_ok=True)
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(torrent)
        params.save_path = str(save_dir)
        # Not auto-managed: the queue would hold back all but a few torrents.
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        if upload_only:
            params.flags |= lt.torrent_flags.upload_mode
        handle = self.session.add_torrent(params)
        self._handles[_key(handle.info_hashes())] = handle

    def torrents(self) -> dict[str, Any]:
        """The torrent handles by info-hash hex (v2 where the torrent has one, else v1)."""
        return dict(self._handles)

    def progress(self) -> dict[str, float]:
        """Fraction of each torrent held, by the same key as `torrents()`."""
        return {key: float(h.status().progress) for key, h in self._handles.items()}

    def holds(self, infohash: bytes) -> float:
        """Fraction held of the torrent with this v1 or v2 info-hash (0.0 if unknown)."""
        for handle in self._handles.values():
            ih = handle.info_hashes()
            if infohash in _raw_hashes(ih):
                return float(handle.status().progress)
        return 0.0

    # -- DHT -----------------------------------------------------------------

    def add_dht_node(self, ip: str, port: int) -> None:
        """Bootstrap from another lab node (the only way nodes find each other)."""
        self.session.add_dht_node((ip, port))

    def force_dht_announce(self) -> None:
        """Announce every torrent to the DHT now instead of on libtorrent's schedule."""
        for handle in self._handles.values():
            handle.force_dht_announce()

    def force_reannounce(self) -> None:
        """Announce every torrent to its trackers now."""
        for handle in self._handles.values():
            handle.force_reannounce(0, -1)

    def dht_announces_received(self) -> set[tuple[bytes, str, int]]:
        """(20-byte info-hash, ip, port) that other nodes announced to this one."""
        self.poll()
        return set(self._dht_announces)

    def dht_get_peers(self, infohash: bytes, timeout: float) -> set[tuple[str, int]]:
        """Peers this node's DHT finds for `info_hash` (v2 hashes are truncated to 20 bytes).

        Repeats the lookup until one returns a peer, or `timeout` seconds pass.
        """
        key = infohash[:20]
        deadline = time.monotonic() + timeout
        while True:
            self._dht_peers.pop(key, None)
            self.session.dht_get_peers(lt.sha1_hash(key))
            while key not in self._dht_peers and time.monotonic() < deadline:
                self.session.wait_for_alert(int(_POLL_SECONDS * 1000))
                self.poll()
            found = self._dht_peers.get(key, set())
            if found or time.monotonic() >= deadline:
                return set(found)
            # Spaced out: libtorrent ignores a source sending it over ~5 messages a second.
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def dht_sample_infohashes(self, ip: str, port: int, timeout: float) -> set[bytes] | None:
        """The info-hashes node ip:port samples for this one (BEP 51); None if no answer."""
        node = (ip, port)
        self._dht_samples.pop(node, None)
        self.session.dht_sample_infohashes(node, lt.sha1_hash(bytes(20)))
        deadline = time.monotonic() + timeout
        while node not in self._dht_samples and time.monotonic() < deadline:
            self.session.wait_for_alert(int(_POLL_SECONDS * 1000))
            self.poll()
        return self._dht_samples.get(node)

    def dht_nodes(self, timeout: float = 2.0) -> int:
        """Nodes in this session's DHT routing table (0 if libtorrent does not say in time)."""
        self._stats = None
        self.session.post_session_stats()
        deadline = time.monotonic() + timeout
        while self._stats is None and time.monotonic() < deadline:
            self.session.wait_for_alert(int(_POLL_SECONDS * 1000))
            self.poll()
        return int(self._stats.get("dht.dht_nodes", 0)) if self._stats else 0

    # -- waiting -------------------------------------------------------------

    def poll(self) -> None:
        """Drain libtorrent's alerts into this object's state (call now and then)."""
        for alert in self.session.pop_alerts():
            if isinstance(alert, lt.tracker_reply_alert):
                self._tracker_replies.add(_key(alert.handle.info_hashes()))
            elif isinstance(alert, lt.dht_announce_alert):
                announce = (alert.info_hash.to_bytes(), str(alert.ip), int(alert.port))
                if len(self._dht_announces) < _MAX_RECORDED:
                    self._dht_announces.add(announce)
            elif isinstance(alert, lt.dht_get_peers_reply_alert):
                found = self._dht_peers.setdefault(alert.info_hash.to_bytes(), set())
                for ip, port in alert.peers():
                    if len(found) < _MAX_RECORDED:
                        found.add((str(ip), int(port)))
            elif isinstance(alert, lt.dht_sample_infohashes_alert):
                ip, port = alert.endpoint
                samples = {h.to_bytes() for h in alert.samples[:_MAX_RECORDED]}
                self._dht_samples[(str(ip), int(port))] = samples
            elif isinstance(alert, lt.session_stats_alert):
                self._stats = dict(alert.values)
            elif isinstance(alert, lt.listen_failed_alert | lt.torrent_error_alert):
                self.errors.append(alert.message())
                del self.errors[:-20]

    def check(self, predicate_name: str) -> bool:
        """Whether `predicate_name` (one of PREDICATES) holds now."""
        test = self._predicates().get(predicate_name)
        if test is None:
            raise ValueError(f"unknown predicate {predicate_name!r}, expected one of {PREDICATES}")
        self.poll()
        return test()

    def wait_until(self, predicate_name: str, timeout: float) -> bool:
        """Poll until `predicate_name` holds or `timeout` seconds pass; whether it held.

        listening: the session listens; dht_ready: its routing table has a node;
        seeding: every torrent is checked and complete; complete: every torrent
        is complete (a leecher finished); tracker_announced / dht_announced:
        every torrent got a tracker announce reply.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.check(predicate_name):
                return True
            if time.monotonic() >= deadline:
                return False
            self.session.wait_for_alert(int(_POLL_SECONDS * 1000))

    def _predicates(self) -> dict[str, Callable[[], bool]]:
        return {
            "listening": lambda: bool(self.session.is_listening()),
            "dht_ready": lambda: self.dht_nodes() > 0,
            "seeding": lambda: all(_is_seeding(h) for h in self._handles.values()),
            "complete": lambda: all(h.status().is_seeding for h in self._handles.values()),
            "tracker_announced": lambda: set(self._handles) <= self._tracker_replies,
        }


def _is_seeding(handle: Any) -> bool:
    status = handle.status()
    return bool(status.is_seeding) and status.state == lt.torrent_status.seeding


def _raw_hashes(ih: Any) -> tuple[bytes, ...]:
    out = []
    if ih.has_v1():
        out.append(ih.v1.to_bytes())
    if ih.has_v2():
        out.append(ih.v2.to_bytes())
    return tuple(out)


def _key(ih: Any) -> str:
    best = ih.v2 if ih.has_v2() else ih.v1
    return str(best.to_bytes().hex())
