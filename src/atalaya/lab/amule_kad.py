"""A Kad network of real aMule 2.3.3 daemons, each on a host of a namespace lab.

aMule's Kad refuses contacts on 127/8 and private ranges, so this lab lives
on 100.64.0.0/10 (lab.netns: one bridge, no default route, removed on exit
and on failure). Its nodes, all with Kad on and eD2K servers off:

- ``seed``: shares the watched file complete, and requires protocol
  obfuscation (no plain eD2K connection: only an observer that keys it from
  the user hash Kad gives can prove it);
- ``partial``: holds some parts of the watched file (a paused download,
  written as a ``.part`` + ``.part.met`` in its Temp folder before it
  starts), and shares those parts;
- ``bystander``: shares only an unwatched file;
- ``downloader``: a paused download of the watched file holding nothing;
- ``relay``: a plain Kad node sharing nothing.

Two things make the network form and publish reliably (found by running it):

- each node's ``nodes.dat`` (version 2, RoutingZone::ReadFile) lists every
  other node, so nothing has to be bootstrapped by hand and no node reaches
  outside (``KadNodesUrl`` is empty);
- each node's ``preferencesKad.dat`` (Prefs::ReadFile) holds a Kad id that
  shares its top byte with the watched file's Kad key: aMule stores a
  source only on nodes within its search tolerance of the key, so every
  node is a place where the sharers publish and a searcher asks.

aMule publishes a file's source (one file every 2 s, after its first
node lookup has run its course and its TCP firewall check passed); `start`
returns once every node says Kad is connected and not firewalled, and the
watched file's sources appear in Kad some tens of seconds later.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from atalaya.errors import AtalayaError
from atalaya.lab.amule import AmuleError, AmulePeer, Obfuscation, obfuscation_conf
from atalaya.lab.files import random_bytes
from atalaya.lab.layout import MANIFEST_NAME, MANIFEST_VERSION
from atalaya.lab.netns import NetnsHost, NetnsLab
from atalaya.lab.processes import end_child
from atalaya.networks.ed2k.hashing import PART_SIZE, ed2k_hash
from atalaya.networks.ed2k.kad import KADEMLIA_VERSION, ip_to_kad, kad_id_from_hash, write_id
from atalaya.networks.ed2k.tags import Tag, write_tag_list
from atalaya.networks.ed2k.wire import Writer

TCP_PORT: Final = 4662
UDP_PORT: Final = 4672
EC_PORT: Final = 4712
WATCHED_NAME: Final = "kad-watched.bin"
UNWATCHED_NAME: Final = "kad-unwatched.bin"
# Three parts: the partial node can hold the first and the last, not the middle.
WATCHED_SIZE: Final = 2 * PART_SIZE + 300_000
UNWATCHED_SIZE: Final = 400_000
PARTIAL_PARTS: Final = (0, 2)
NODE_NAMES: Final = ("seed", "partial", "bystander", "downloader", "relay")
SHARERS: Final = ("seed", "partial", "bystander")
_START_TIMEOUT = 420.0
_RECHECK_AFTER = 170.0  # seen: every firewall check done by 140 s after start
KAD_HASH_SET_NAME: Final = "ed2k-hashes.txt"  # `hashsets import --format lines --algorithm ed2k`
_KAD_LINE = re.compile(r"Kad:\s*(.+)$", re.MULTILINE)
# part.met (PartFile.cpp): version, and the tag ids it reads.
_PARTFILE_VERSION = 0xE0
_FT_FILENAME = 0x01
_FT_FILESIZE = 0x02
_FT_GAPSTART = 0x09
_FT_GAPEND = 0x0A
_FT_STATUS = 0x14  # 1: paused


@dataclass(frozen=True)
class KadContact:
    kad_id: int
    ip: str
    udp_port: int
    tcp_port: int


def nodes_dat(contacts: Sequence[KadContact]) -> bytes:
    """A version 2 nodes.dat naming `contacts`, each marked verified.

    Layout (RoutingZone::ReadFile): u32 0, u32 version, u32 count, then per
    contact its id (Kad's 128-bit form), IPv4 as a host-order u32, UDP and
    TCP ports, Kad version, the UDP key (u32 key, u32 IP) and a verified byte.
    """
    writer = Writer().u32(0).u32(2).u32(len(contacts))
    for contact in contacts:
        write_id(writer, contact.kad_id)
        writer.u32(ip_to_kad(contact.ip)).u16(contact.udp_port).u16(contact.tcp_port)
        writer.u8(KADEMLIA_VERSION).u32(0).u32(0).u8(1)
    return writer.getvalue()


def preferences_kad(kad_id: int) -> bytes:
    """preferencesKad.dat (Prefs::WriteFile): IP (unknown: 0), u16 0, the Kad id, u8 0."""
    return write_id(Writer().u32(0).u16(0), kad_id).u8(0).getvalue()


def part_hashes(content: bytes) -> list[bytes]:
    """eD2K part hashes of a file of more than one part (with eMule's empty last one)."""
    from Crypto.Hash import MD4  # noqa: PLC0415 - pycryptodome, as hashing.py uses it

    hashes = [
        MD4.new(content[i : i + PART_SIZE]).digest()  # noqa: S303 - eD2K's own hash
        for i in range(0, len(content), PART_SIZE)
    ]
    if len(content) % PART_SIZE == 0:
        hashes.append(MD4.new(b"").digest())  # noqa: S303 - eD2K's own hash
    return hashes


def write_part_file(
    temp: Path, number: int, name: str, content: bytes, held: Sequence[int]
) -> tuple[Path, Path]:
    """A paused download of `content` in aMule's Temp folder holding parts `held`.

    The .part has the held parts' bytes and zeros elsewhere; the .part.met
    (PartFile::LoadPartFile, version 0xE0) has the part hashes, a gap for
    every part not held, and the .part's modification time, so aMule loads
    it as it left it without rehashing.
    """
    if len(content) <= PART_SIZE:
        raise AtalayaError("a partial share needs a file of more than one part")
    temp.mkdir(parents=True, exist_ok=True)
    part = temp / f"{number:03d}.part"
    met = temp / f"{number:03d}.part.met"
    parts = (len(content) + PART_SIZE - 1) // PART_SIZE
    data = bytearray(len(content))
    for index in held:
        start = index * PART_SIZE
        data[start : start + PART_SIZE] = content[start : start + PART_SIZE]
    part.write_bytes(bytes(data) if held else b"")
    mtime = int(part.stat().st_mtime)
    hashes = part_hashes(content)
    tags = [
        Tag.string(_FT_FILENAME, name),
        Tag.uint(_FT_FILESIZE, len(content)),
        Tag.uint(_FT_STATUS, 1),
    ]
    gaps = [i for i in range(parts) if i not in set(held)]
    for number_of_gap, index in enumerate(gaps):
        start = index * PART_SIZE
        end = min(len(content), start + PART_SIZE)
        # A gap's tags are named by a mark byte and the gap's number in digits.
        tags.append(Tag.uint(bytes([_FT_GAPSTART]) + str(number_of_gap).encode(), start))
        tags.append(Tag.uint(bytes([_FT_GAPEND]) + str(number_of_gap).encode(), end))
    writer = Writer().u8(_PARTFILE_VERSION).u32(mtime).hash16(ed2k_hash(content))
    writer.u16(len(hashes))
    for digest in hashes:
        writer.hash16(digest)
    write_tag_list(writer, tags)
    met.write_bytes(writer.getvalue())
    os.utime(part, (mtime, mtime))
    return part, met


class AmuleKadNode(AmulePeer):
    """amuled with Kad on, in namespace `host`, on fixed ports (the namespace is its own)."""

    def __init__(
        self,
        host: NetnsHost,
        workdir: Path,
        files: Sequence[Path],
        *,
        kad_id: int,
        contacts: Sequence[KadContact],
        nick: str = "",
        obfuscation: Obfuscation = "requested",
    ) -> None:
        self.host = host
        self.obfuscation = obfuscation
        self.ip = host.ipv4
        self.workdir = workdir
        self.files = tuple(files)
        self.nick = nick or f"kad-{host.name}"
        self.port = TCP_PORT
        self.udp_port = UDP_PORT
        self.ec_port = EC_PORT
        self.kad_id = kad_id
        self.contacts = tuple(contacts)
        self._password = secrets.token_hex(12)
        self.process = None

    @property
    def contact(self) -> KadContact:
        return KadContact(self.kad_id, self.ip, self.udp_port, self.port)

    def prepare(self) -> Path:
        """Write its configuration folder (Temp may already hold part files); its path."""
        config = self.workdir / "config"
        share = self.workdir / "share"
        for folder in (config / "Temp", share):
            folder.mkdir(parents=True, exist_ok=True)
        for file in self.files:
            target = share / file.name
            if not target.exists():
                shutil.copy2(file, target)
        (config / "amule.conf").write_text(self._conf(config))
        (config / "nodes.dat").write_bytes(nodes_dat([c for c in self.contacts if c.ip != self.ip]))
        (config / "preferencesKad.dat").write_bytes(preferences_kad(self.kad_id))
        return config

    def start(self) -> None:
        if self.process is not None:
            return
        if shutil.which("amuled") is None or shutil.which("amulecmd") is None:
            raise AmuleError("amuled/amulecmd are not installed: run scripts/setup.sh")
        config = self.prepare()
        with (self.workdir / "amuled.log").open("wb") as log:
            self.process = self.host.popen(
                ["amuled", "--config-dir", str(config), "--log-stdout"],
                cwd=self.workdir,
                stdout=log,
                stderr=log,
            )

    def wait_started(self, deadline: float) -> None:
        """Until EC answers and every file it should share is listed."""
        while True:
            try:
                if len(self.shared()) >= len(self.files):
                    return
            except AmuleError:
                pass
            if self.process is None or self.process.poll() is not None:
                raise AmuleError(f"amuled {self.host.name} ended: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise AmuleError(f"amuled {self.host.name} did not start: {self.log_tail()}")
            time.sleep(1.0)

    def kad_status(self) -> str:
        """What amulecmd says of Kad: 'Connected (ok)', 'Connected (firewalled)', …"""
        match = _KAD_LINE.search(self.command("status"))
        return match.group(1).strip() if match else "unknown"

    def log_tail(self, size: int = 400) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "amuled.log").read_text(errors="replace").strip()[-size:]
        return ""

    def _conf(self, config: Path) -> str:
        md5 = hashlib.md5(self._password.encode(), usedforsecurity=False).hexdigest()
        return (
            "[eMule]\n"
            f"Nick={self.nick}\n"
            f"Address={self.ip}\n"
            f"Port={self.port}\nUDPPort={self.udp_port}\nUDPEnable=1\n"
            "ConnectToKad=1\nConnectToED2K=0\nAutoconnect=1\nReconnect=1\n"
            "KadNodesUrl=\nEd2kServersUrl=\nNewVersionCheck=0\nUPnPEnabled=0\n"
            "MaxUpload=100000\nUploadCapacity=100000\nSlotAllocation=1000\n"
            "MaxDownload=0\n"
            f"TempDir={config / 'Temp'}\nIncomingDir={self.workdir / 'share'}\n"
            "ShareHiddenFiles=0\nIPFilterAutoLoad=0\nFilterLanIPs=0\nParanoidFiltering=0\n"
            "[ExternalConnect]\n"
            "AcceptExternalConnections=1\n"
            f"ECAddress={self.ip}\nECPort={self.ec_port}\nECPassword={md5}\n"
            "[WebServer]\nEnabled=0\n" + obfuscation_conf(self.obfuscation)
        )

    def close(self) -> None:
        process, self.process = self.process, None
        end_child(process, 10.0)


def kad_id_near(key: int, salt: int) -> int:
    """A Kad id with `key`'s top byte (within aMule's store tolerance of it), the rest random."""
    low = int.from_bytes(hashlib.sha256(f"{salt}-{secrets.token_hex(4)}".encode()).digest()[:15])
    return (key & (0xFF << 120)) | low


@dataclass(frozen=True)
class KadLabFiles:
    watched: Path
    unwatched: Path
    watched_hash: bytes
    unwatched_hash: bytes


class AmuleKadLab:
    """A running Kad network of aMule daemons; see the module docstring."""

    def __init__(self, lab_dir: Path, *, seed: int = 41, tag: str | None = None) -> None:
        self.lab_dir = lab_dir.resolve()
        self.seed = seed
        # One /24 each: aMule keeps at most two Kad contacts of one /24 in a routing bin.
        self.netns = NetnsLab(list(NODE_NAMES), tag=tag, subnets=len(NODE_NAMES))
        self.nodes: dict[str, AmuleKadNode] = {}
        self.files: KadLabFiles | None = None
        self.startup_seconds: float | None = None
        self.rechecks: list[str] = []  # sharers whose Kad was reconnected (see _wait_kad)

    @property
    def observer_ip(self) -> str:
        """The host side of the lab's bridge: where a searcher binds."""
        return self.netns.host_ipv4

    @property
    def bootstrap(self) -> list[tuple[str, int]]:
        return [(n.ip, n.udp_port) for n in self.nodes.values()]

    def _write_files(self) -> KadLabFiles:
        content_dir = self.lab_dir / "content"
        content_dir.mkdir(parents=True, exist_ok=True)
        watched = content_dir / WATCHED_NAME
        unwatched = content_dir / UNWATCHED_NAME
        watched_bytes = random_bytes(WATCHED_SIZE, self.seed)
        unwatched_bytes = random_bytes(UNWATCHED_SIZE, self.seed + 1)
        watched.write_bytes(watched_bytes)
        unwatched.write_bytes(unwatched_bytes)
        return KadLabFiles(watched, unwatched, ed2k_hash(watched_bytes), ed2k_hash(unwatched_bytes))

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start every node; return once each says Kad is connected (all or nothing)."""
        begin = time.monotonic()
        try:
            self._start(begin + timeout)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - begin

    def _start(self, deadline: float) -> None:
        files = self.files = self._write_files()
        self.netns.start()
        key = kad_id_from_hash(files.watched_hash)
        ids = {name: kad_id_near(key, i) for i, name in enumerate(NODE_NAMES)}
        contacts = [
            KadContact(ids[name], self.netns.host(name).ipv4, UDP_PORT, TCP_PORT)
            for name in NODE_NAMES
        ]
        shares = {"seed": [files.watched], "bystander": [files.unwatched]}
        for name in NODE_NAMES:
            self.nodes[name] = AmuleKadNode(
                self.netns.host(name),
                self.lab_dir / "nodes" / name,
                shares.get(name, []),
                kad_id=ids[name],
                contacts=contacts,
                # The seed takes no plain eD2K connection: only an observer
                # that keys obfuscation from the user hash Kad gives proves it.
                obfuscation="required" if name == "seed" else "requested",
            )
        content = files.watched.read_bytes()
        temp = self.lab_dir / "nodes"
        write_part_file(
            temp / "partial" / "config" / "Temp", 1, WATCHED_NAME, content, PARTIAL_PARTS
        )
        write_part_file(temp / "downloader" / "config" / "Temp", 1, WATCHED_NAME, content, ())
        for node in self.nodes.values():
            node.start()
        for name, node in self.nodes.items():
            node.wait_started(deadline)
            if name == "partial" and files.watched_hash not in {f.ed2k for f in node.shared()}:
                raise AmuleError("the partial node does not share its parts of the watched file")
        self._wait_kad(deadline)

    def _wait_kad(self, deadline: float) -> None:
        """Until every node is on Kad and every sharer passed its firewall check
        (aMule publishes no source while it thinks it is firewalled).

        aMule counts the answers to its first four firewall checks only and
        needs two TCP connections back; when too few come (seen 1 in 3 lab
        runs: one node still firewalled after 300 s), it waits an hour to
        check again. A sharer still firewalled after `_RECHECK_AFTER` s has
        its Kad reconnected, which checks again at once.
        """
        recheck_at = time.monotonic() + _RECHECK_AFTER
        rechecked: set[str] = set()
        while True:
            states = {}
            for name, node in self.nodes.items():
                try:
                    states[name] = node.kad_status()
                except AmuleError as exc:
                    # amulecmd under load now and then gets an empty EC reply.
                    states[name] = f"no answer ({exc})"[:120]
            if all(s.startswith("Connected") for s in states.values()) and all(
                states[name] == "Connected (ok)" for name in SHARERS
            ):
                return
            if time.monotonic() > deadline:
                raise AmuleError(f"Kad did not connect on every lab node: {states}")
            if time.monotonic() > recheck_at:
                for name in SHARERS:
                    if states[name] == "Connected (firewalled)" and name not in rechecked:
                        rechecked.add(name)
                        self.rechecks.append(name)
                        with contextlib.suppress(AmuleError):
                            self.nodes[name].command("disconnect kad")
                            time.sleep(2.0)
                            self.nodes[name].command("connect kad")
            time.sleep(2.0)

    def manifest(self, *, supervisor_pid: int | None = None) -> dict[str, Any]:
        """What `lab up --ed2k` prints and tests read: nodes, files, where to bind."""
        if self.files is None:
            raise AtalayaError("the Kad lab is not started")
        return {
            "manifest_version": MANIFEST_VERSION,
            "kind": "ed2k-kad",
            "supervisor_pid": supervisor_pid,
            "startup_seconds": self.startup_seconds,
            "kad_reconnected": self.rechecks,
            "netns_tag": self.netns.tag,
            "observer_ip": self.observer_ip,
            "kad_bootstrap": [f"{ip}:{port}" for ip, port in self.bootstrap],
            "watched": {
                "name": WATCHED_NAME,
                "size": WATCHED_SIZE,
                "ed2k": self.files.watched_hash.hex(),
                "link": f"ed2k://|file|{WATCHED_NAME}|{WATCHED_SIZE}|"
                f"{self.files.watched_hash.hex()}|/",
            },
            "unwatched": {"name": UNWATCHED_NAME, "ed2k": self.files.unwatched_hash.hex()},
            "nodes": [
                {
                    "name": name,
                    "ip": node.ip,
                    "tcp_port": node.port,
                    "udp_port": node.udp_port,
                    "kad_id": f"{node.kad_id:032x}",
                    "pid": node.pid,
                }
                for name, node in self.nodes.items()
            ],
            "hash_set": str(self.lab_dir / KAD_HASH_SET_NAME),
        }

    def write_outputs(self, *, supervisor_pid: int | None = None) -> Path:
        """The watched file's hash as a hash set of lines, and the manifest; its path."""
        if self.files is None:
            raise AtalayaError("the Kad lab is not started")
        (self.lab_dir / KAD_HASH_SET_NAME).write_text(self.files.watched_hash.hex() + "\n")
        path = self.lab_dir / MANIFEST_NAME
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(self.manifest(supervisor_pid=supervisor_pid), indent=2))
        partial.replace(path)
        return path

    def close(self) -> None:
        """Stop every daemon and remove the namespaces; safe to call twice."""
        for node in self.nodes.values():
            with contextlib.suppress(Exception):
                node.close()
        self.netns.close()

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


__all__ = ["AmuleKadLab", "AmuleKadNode", "KadContact", "nodes_dat", "preferences_kad"]
