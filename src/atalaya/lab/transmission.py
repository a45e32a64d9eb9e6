"""A real Transmission 3.00 daemon (Debian transmission-daemon) as a v1 seeder.

Transmission 3.00 refuses v2 and hybrid torrents and its DHT drops packets
from 127/8 (see the lab notes), so it is given v1 torrents. On a loopback
address (the loopback lab) its DHT is off and it is found through the
tracker. On a host of a namespace lab (lab.netns, 100.64.0.0/10) it runs
inside that namespace with its DHT on, bootstrapping from the nodes it is
given. Its peer port, DHT, announces and RPC are bound to its own address.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from atalaya.errors import AtalayaError
from atalaya.lab.netns import NetnsHost
from atalaya.lab.ports import free_port, is_loopback, is_namespace_address
from atalaya.lab.processes import end_child
from atalaya.networks.bittorrent.bencode import encode

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_RPC_TIMEOUT = 5.0
_MAX_REPLY = 1 << 20
STATUS_SEEDING = 6  # torrent-get "status": 6 is "seeding" in RPC version 15+
_MAX_DHT_NODES = 300  # what Transmission itself saves in dht.dat
# RPC goes straight to the lab address, whatever *_proxy says in the environment.
_RPC_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class TransmissionError(AtalayaError):
    """The lab's Transmission daemon failed to start or refused a request."""


class TransmissionPeer:
    """transmission-daemon on `ip`, with its own config folder, peer port and RPC port.

    With `netns`, it runs inside that namespace lab host, on its IPv4 address,
    with its DHT on; `dht_nodes` (ip, port) are written into its dht.dat, the
    only way to hand Transmission bootstrap nodes without a name lookup.
    """

    def __init__(
        self,
        ip: str,
        workdir: Path,
        *,
        port: int | None = None,
        netns: NetnsHost | None = None,
        dht_nodes: Sequence[tuple[str, int]] = (),
    ) -> None:
        if netns is None:
            if not is_loopback(ip):
                raise ValueError(f"lab peers live on 127.0.0.0/8 only, got {ip!r}")
            if dht_nodes:
                raise ValueError("Transmission's DHT drops 127/8: no DHT nodes on loopback")
        elif ip != netns.ipv4 or not is_namespace_address(ip):
            raise ValueError(
                f"a Transmission in namespace {netns.netns} lives on its IPv4 address "
                f"{netns.ipv4} (in 100.64.0.0/10), got {ip!r}"
            )
        if len(dht_nodes) > _MAX_DHT_NODES:
            raise ValueError(f"at most {_MAX_DHT_NODES} DHT nodes, got {len(dht_nodes)}")
        self.ip = ip
        self.workdir = workdir
        self.port = port or 0
        self.rpc_port = 0
        self.netns = netns
        self.dht_nodes = tuple(dht_nodes)
        self.process: subprocess.Popen[bytes] | None = None
        self._session_id = ""

    @property
    def dht(self) -> bool:
        """Whether its DHT is on (only in a namespace lab)."""
        return self.netns is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def rpc_url(self) -> str:
        return f"http://{self.ip}:{self.rpc_port}/transmission/rpc"

    def start(self) -> None:
        """Write its settings, start the daemon and wait until its RPC answers."""
        if self.process is not None:
            return
        binary = shutil.which("transmission-daemon")
        if binary is None:
            raise TransmissionError("transmission-daemon is not installed: run scripts/setup.sh")
        config = self.workdir / "config"
        downloads = self.workdir / "downloads"
        config.mkdir(parents=True, exist_ok=True)
        downloads.mkdir(parents=True, exist_ok=True)
        if self.netns is None:
            if not self.port:
                self.port = free_port(self.ip)
            self.rpc_port = free_port(self.ip)
        else:
            if not self.port:
                self.port = self.netns.call(lambda: free_port(self.ip))
            self.rpc_port = self.netns.call(lambda: free_port(self.ip))
        (config / "settings.json").write_text(json.dumps(self._settings(downloads), indent=1))
        if self.dht_nodes:
            (config / "dht.dat").write_bytes(_dht_dat(self.dht_nodes))
        log = (self.workdir / "transmission.log").open("wb")
        # Info level in a namespace lab: its DHT's progress is logged there.
        level = "--log-error" if self.netns is None else "--log-info"
        args = [binary, "--foreground", "--config-dir", str(config), level]
        with log:
            if self.netns is None:
                self.process = subprocess.Popen(
                    args, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            else:
                self.process = self.netns.popen(args, cwd=self.workdir, stdout=log, stderr=log)
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                self.rpc("session-get", {"fields": ["version"]})
                return
            except (OSError, TransmissionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    text = (self.workdir / "transmission.log").read_text(errors="replace")
                    raise TransmissionError(
                        f"transmission-daemon did not start on {self.ip}: {text.strip()[-500:]}"
                    ) from None
                time.sleep(0.1)

    def _settings(self, downloads: Path) -> dict[str, Any]:
        whitelist = "127.*.*.*"
        if self.netns is not None:
            # RPC comes from the host side of the lab's bridge.
            whitelist += f",{self.netns.host_ipv4}"
        return {
            "bind-address-ipv4": self.ip,
            "bind-address-ipv6": "::1",
            "peer-port": self.port,
            "peer-port-random-on-start": False,
            "port-forwarding-enabled": False,
            "dht-enabled": self.dht,
            "lpd-enabled": False,
            "pex-enabled": True,
            "utp-enabled": False,
            "encryption": 1,  # prefer plain connections, accept encrypted ones
            "rpc-enabled": True,
            "rpc-bind-address": self.ip,
            "rpc-port": self.rpc_port,
            "rpc-authentication-required": False,
            "rpc-whitelist-enabled": True,
            "rpc-whitelist": whitelist,
            "rpc-host-whitelist-enabled": False,
            "download-dir": str(downloads),
            "incomplete-dir-enabled": False,
            "watch-dir-enabled": False,
            "blocklist-enabled": False,
            "speed-limit-up-enabled": False,
            "speed-limit-down-enabled": False,
            "ratio-limit-enabled": False,
            "idle-seeding-limit-enabled": False,
            "start-added-torrents": True,
            "message-level": 1,
        }

    def close(self) -> None:
        """Stop the daemon this object started; safe to call twice."""
        process, self.process = self.process, None
        end_child(process, _STOP_TIMEOUT)

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

    # -- RPC -----------------------------------------------------------------

    def rpc(self, method: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call one RPC method; its "arguments" on success, TransmissionError otherwise."""
        body = json.dumps({"method": method, "arguments": arguments or {}}).encode()
        # The first call of a session is refused with 409 and the id to send (CSRF guard).
        for _ in range(2):
            request = urllib.request.Request(  # noqa: S310 - always http://<lab ip>, built here
                self.rpc_url,
                data=body,
                headers={"X-Transmission-Session-Id": self._session_id},
            )
            try:
                with _RPC_OPENER.open(request, timeout=_RPC_TIMEOUT) as reply:
                    answer = json.loads(reply.read(_MAX_REPLY))
            except urllib.error.HTTPError as exc:
                if exc.code == 409:
                    self._session_id = exc.headers.get("X-Transmission-Session-Id", "")
                    continue
                raise TransmissionError(f"Transmission RPC {method}: HTTP {exc.code}") from exc
            if not isinstance(answer, dict) or answer.get("result") != "success":
                raise TransmissionError(f"Transmission RPC {method} failed: {answer!r:.200}")
            arguments_out = answer.get("arguments", {})
            return arguments_out if isinstance(arguments_out, dict) else {}
        raise TransmissionError(f"Transmission RPC {method}: no session id accepted")

    def seed(self, torrent: bytes, content_dir: Path) -> str:
        """Seed a v1 `torrent` whose content lies in `content_dir`; its info-hash hex."""
        added = self.rpc(
            "torrent-add",
            {
                "metainfo": base64.b64encode(torrent).decode(),
                "download-dir": str(content_dir.resolve()),
                "paused": False,
            },
        )
        entry = added.get("torrent-added") or added.get("torrent-duplicate") or {}
        infohash = entry.get("hashString")
        if not isinstance(infohash, str):
            raise TransmissionError(f"Transmission did not add the torrent: {added!r:.200}")
        return infohash.lower()

    def torrents(self) -> list[dict[str, Any]]:
        """Every torrent with its hashString, status, percentDone and error fields."""
        fields = ["id", "hashString", "name", "status", "percentDone", "error", "errorString"]
        reply = self.rpc("torrent-get", {"fields": fields})
        listed = reply.get("torrents", [])
        return [t for t in listed if isinstance(t, dict)]

    def wait_until_seeding(self, timeout: float) -> bool:
        """Whether every torrent is checked, complete and seeding within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            torrents = self.torrents()
            if torrents and all(
                t.get("status") == STATUS_SEEDING and t.get("percentDone") == 1 for t in torrents
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def wait_until_announced(self, timeout: float) -> bool:
        """Whether every torrent had a successful tracker announce within `timeout` seconds.

        Transmission announces a while after its check; a leecher that asks the
        tracker before then does not learn of it until its next announce.
        """
        deadline = time.monotonic() + timeout
        while True:
            reply = self.rpc("torrent-get", {"fields": ["trackerStats"]})
            torrents = [t for t in reply.get("torrents", []) if isinstance(t, dict)]
            if torrents and all(
                any(
                    isinstance(stat, dict) and stat.get("lastAnnounceSucceeded") is True
                    for stat in t.get("trackerStats", [])
                )
                for t in torrents
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def reannounce(self) -> None:
        """Announce every torrent to its trackers now."""
        self.rpc("torrent-reannounce")

    def log_tail(self, chars: int = 2000) -> str:
        """The end of its log (DHT progress is there in a namespace lab)."""
        try:
            text = (self.workdir / "transmission.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]


def _dht_dat(nodes: Sequence[tuple[str, int]]) -> bytes:
    """A dht.dat as Transmission 3.00 saves it: a random node id and compact IPv4 nodes.

    Transmission pings these nodes when it starts (about one every two seconds
    for the first eight), as it does after a restart.
    """
    compact = b"".join(
        ipaddress.IPv4Address(ip).packed + port.to_bytes(2, "big") for ip, port in nodes
    )
    return encode({b"id": secrets.token_bytes(20), b"nodes": compact})
