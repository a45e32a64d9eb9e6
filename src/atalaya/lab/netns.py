"""Test hosts in Linux network namespaces, joined by one bridge on the host side.

Some real peers refuse loopback (Transmission's DHT, aMule's Kad), so a lab
may give each of them a host of its own: a network namespace with `lo` up and
one end of a veth pair, whose other end sits on a bridge that also carries
the host side's address. Every address is the lab's own: one /24 out of
100.64.0.0/10 (shared address space, never routed on the Internet) and one
/64 out of the IPv6 unique-local range fd00::/8. No namespace has a default
route, so nothing in it can reach beyond the bridge (not even the host's
other addresses), and the host's IPv4 forwarding is off on the bridge.

Names carry a random per-run tag (`atlab-<tag>-<host>` for namespaces,
`atlab<tag>…` for links), so parallel runs never collide and leftovers of a
killed run can be found and removed by tag. `NetnsLab` is a context manager
that removes everything it made, also when its body raises or is
interrupted. It needs root and iproute2's `ip`; without them it raises
NetnsError (one clear line) before touching anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from atalaya.errors import AtalayaError
from atalaya.lab.ports import SHARED_SPACE, UNIQUE_LOCAL
from atalaya.lab.processes import cmdline, is_running, wait_gone

NETNS_PREFIX = "atlab-"
LINK_PREFIX = "atlab"
IP_TIMEOUT = 10.0
MAX_HOSTS = 200
NETNS_DIR = Path("/run/netns")
OWNER_DIR = Path("/run/atalaya-netns")
_LOCK_PATH = Path("/run/lock/atalaya-netns.lock")
_TAG = re.compile(r"[0-9a-f]{6}")
_HOST_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_CLONE_NEWNET = 0x40000000
_PICK_ATTEMPTS = 200
_STOP_TIMEOUT = 5.0

T = TypeVar("T")


class NetnsError(AtalayaError):
    """A namespace lab could not be made, used or removed."""


# -- the `ip` command ------------------------------------------------------------


def require_netns() -> None:
    """Raise NetnsError unless namespace labs can run here (Linux, root, iproute2)."""
    if not sys.platform.startswith("linux"):
        raise NetnsError("network namespace labs need Linux")
    if os.geteuid() != 0:
        raise NetnsError("network namespace labs need root (ip netns add); run as root")
    if shutil.which("ip") is None:
        raise NetnsError("network namespace labs need iproute2's ip: apt-get install iproute2")


def ip(*args: str, timeout: float = IP_TIMEOUT) -> str:
    """Run `ip ARGS` with a time limit; its standard output, NetnsError if it fails."""
    try:
        done = subprocess.run(
            ["ip", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise NetnsError("iproute2's ip is not installed: apt-get install iproute2") from None
    except subprocess.TimeoutExpired:
        raise NetnsError(f"ip {' '.join(args)} did not finish in {timeout:g} s") from None
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed: {done.stderr.strip()[:300]}")
    return done.stdout


def _ip_json(*args: str) -> list[dict[str, Any]]:
    text = ip("-j", *args).strip()
    data = json.loads(text) if text else []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def _exists_error(exc: NetnsError) -> bool:
    text = str(exc)
    return "Cannot find device" in text or "No such file" in text or "does not exist" in text


# -- one host --------------------------------------------------------------------


@dataclass(frozen=True)
class NetnsHost:
    """One test host: a namespace with its addresses on the lab's bridge."""

    name: str  # the lab's name for it, e.g. "tr-1"
    netns: str  # the namespace, e.g. "atlab-3fa9c1-tr-1"
    ipv4: str
    ipv6: str
    link: str  # the host-side end of its veth pair
    host_ipv4: str  # the bridge's addresses: the host side, where an observer binds
    host_ipv6: str

    @property
    def addresses(self) -> tuple[str, str]:
        return (self.ipv4, self.ipv6)

    def command(self, args: Sequence[str]) -> list[str]:
        """`args` as run inside this namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.netns, *args]

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start `args` inside this namespace; stop it with `stop` or processes.end_child."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.command(args), **kwargs)

    def run(self, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run `args` inside this namespace to completion, within `timeout` seconds."""
        return subprocess.run(
            self.command(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def call(self, fn: Callable[[], T], timeout: float = IP_TIMEOUT) -> T:
        """`fn()` run in a new thread that has joined this namespace; its result.

        Sockets that `fn` opens, and threads it starts (a libtorrent session's),
        belong to the namespace; the calling thread stays where it was.
        """
        return call_in_netns(self.netns, fn, timeout)

    def pids(self) -> list[int]:
        """Processes whose network namespace is this one (none of this process's)."""
        return netns_pids(self.netns)

    def owns(self, pid: int) -> bool:
        """Whether process `pid` lives in this namespace."""
        return netns_owns(self.netns, pid)

    def stop(self, pid: int, expect: str, timeout: float = _STOP_TIMEOUT) -> bool:
        """Stop `pid` if it lives here and runs `expect`: see `stop_in_netns`."""
        return stop_in_netns(self.netns, pid, expect, timeout)


def netns_pids(netns: str) -> list[int]:
    """Processes whose network namespace is `netns` (never this process)."""
    try:
        text = ip("netns", "pids", netns)
    except NetnsError as exc:
        if _exists_error(exc):
            return []
        raise
    return [int(p) for p in text.split() if p.isdigit() and int(p) != os.getpid()]


def netns_owns(netns: str, pid: int) -> bool:
    """Whether process `pid` lives in namespace `netns`."""
    try:
        mine = os.stat(NETNS_DIR / netns)
        theirs = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def stop_in_netns(netns: str, pid: int, expect: str, timeout: float = _STOP_TIMEOUT) -> bool:
    """SIGTERM, then SIGKILL, `pid` if it lives in `netns` and runs `expect`; whether it
    is gone. A pid of another namespace, or one now running something else, is left alone.
    """
    if not is_running(pid, expect):
        return True
    if not netns_owns(netns, pid):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, expect, timeout):
            return True
    return not is_running(pid, expect)


def call_in_netns(netns: str, fn: Callable[[], T], timeout: float = IP_TIMEOUT) -> T:
    """`fn()` run in a new thread that joined namespace `netns` (see NetnsHost.call)."""
    result: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            _enter_netns(netns)
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body, name=f"netns {netns}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise NetnsError(f"work in namespace {netns} did not finish in {timeout:g} s")
    if failure:
        raise failure[0]
    return result[0]


def _enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into `netns`."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetnsError(f"no namespace {netns}: {exc.strerror}") from None
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetnsError(f"cannot enter namespace {netns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


# -- the lab ---------------------------------------------------------------------


def new_tag() -> str:
    """A random run tag: six hex digits."""
    return secrets.token_hex(3)


class NetnsLab:
    """Hosts named `hosts`, each in its own namespace, on one bridge; see the module doc.

    The bridge has .1 of the lab's /24 and ::1 of its /64; host i (from 0) has
    .(i + 2) and ::(i + 2). `networks` pins the /24 and /64 (else random ones
    not in use on this machine are chosen).

    `subnets` > 1 spreads the hosts over that many /24s (host i in /24 number
    i % subnets), all on the one bridge: the bridge has .1 of each, and each
    namespace reaches the others' /24s on its link (routes with no gateway).
    Some peers limit how many contacts they keep from one /24 (aMule's Kad:
    two per routing bin), so a lab of such peers needs them apart.
    """

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        tag: str | None = None,
        networks: tuple[str, str] | None = None,
        timeout: float = IP_TIMEOUT,
        subnets: int = 1,
    ) -> None:
        if not 1 <= len(hosts) <= MAX_HOSTS:
            raise NetnsError(f"a namespace lab has 1 to {MAX_HOSTS} hosts, not {len(hosts)}")
        for name in hosts:
            if not _HOST_NAME.fullmatch(name):
                raise NetnsError(
                    f"host name {name!r}: lower-case letters, digits and '-', up to 20 characters"
                )
        if len(set(hosts)) != len(hosts):
            raise NetnsError("host names must differ")
        if not 1 <= subnets <= len(hosts) or (subnets > 1 and networks is not None):
            raise NetnsError(f"{subnets} subnets for {len(hosts)} hosts (none when pinned)")
        self.subnets = subnets
        self.tag = tag or new_tag()
        if not _TAG.fullmatch(self.tag):
            raise NetnsError(f"a lab tag is six hex digits, not {self.tag!r}")
        self.host_names = list(hosts)
        self.timeout = timeout
        self.bridge = f"{LINK_PREFIX}{self.tag}br"
        self._pinned = _parse_pinned(networks) if networks is not None else None
        self.ipv4_network: ipaddress.IPv4Network | None = None
        self.ipv4_networks: list[ipaddress.IPv4Network] = []
        self.ipv6_network: ipaddress.IPv6Network | None = None
        self.hosts: dict[str, NetnsHost] = {}
        self.startup_seconds: float | None = None
        self._started = False

    # -- addresses -------------------------------------------------------------

    @property
    def host_ipv4(self) -> str:
        return str(self._v4()[1])

    @property
    def host_ipv6(self) -> str:
        return str(self._v6()[1])

    def _v4(self) -> ipaddress.IPv4Network:
        if self.ipv4_network is None:
            raise NetnsError("the namespace lab is not started")
        return self.ipv4_network

    def _v6(self) -> ipaddress.IPv6Network:
        if self.ipv6_network is None:
            raise NetnsError("the namespace lab is not started")
        return self.ipv6_network

    def admits(self, address: str) -> bool:
        """Whether `address` is one of this lab's (its /24 in 100.64.0.0/10, its ULA /64)."""
        try:
            addr = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv4Address):
            self._v4()
            return addr in SHARED_SPACE and any(addr in net for net in self.ipv4_networks)
        return addr in UNIQUE_LOCAL and addr in self._v6()

    def host(self, name: str) -> NetnsHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise NetnsError(f"no host {name!r} in namespace lab {self.tag}") from None

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Make the bridge and every host; all or nothing."""
        if self._started:
            return
        require_netns()
        begin = time.monotonic()
        self._started = True
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - begin

    def _start(self) -> None:
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        (OWNER_DIR / self.tag).write_text(f"{os.getpid()}\n")
        with _network_lock():
            if self._pinned is not None:
                v4s, v6 = [self._pinned[0]], self._pinned[1]
            else:
                v4s, v6 = _pick_networks(self.subnets)
            self.ipv4_network, self.ipv4_networks, self.ipv6_network = v4s[0], v4s, v6
            ip("link", "add", self.bridge, "type", "bridge", timeout=self.timeout)
            for v4 in v4s:
                ip("addr", "add", f"{v4[1]}/24", "dev", self.bridge, timeout=self.timeout)
            ip(
                "-6",
                "addr",
                "add",
                f"{v6[1]}/64",
                "dev",
                self.bridge,
                "nodad",
                timeout=self.timeout,
            )
        # The host routes no IPv4 that arrives on the bridge, whatever its global
        # setting (IPv6 has no such per-interface switch: no routes out suffice).
        _write_sysctl(f"net/ipv4/conf/{self.bridge}/forwarding", "0")
        _write_sysctl(f"net/ipv6/conf/{self.bridge}/forwarding", "0")
        ip("link", "set", self.bridge, "up", timeout=self.timeout)
        for index, name in enumerate(self.host_names):
            self.hosts[name] = self._add_host(index, name)

    def _add_host(self, index: int, name: str) -> NetnsHost:
        self._v4()
        v4, v6 = self.ipv4_networks[index % self.subnets], self._v6()
        host = NetnsHost(
            name=name,
            netns=f"{NETNS_PREFIX}{self.tag}-{name}",
            ipv4=str(v4[index // self.subnets + 2]),
            ipv6=str(v6[index + 2]),
            link=f"{LINK_PREFIX}{self.tag}v{index}",
            host_ipv4=str(v4[1]),
            host_ipv6=str(v6[1]),
        )
        t = self.timeout
        ns = host.netns
        ip("netns", "add", ns, timeout=t)
        # Created straight into the namespace: "eth0" never exists on the host side.
        ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", ns, timeout=t)
        ip("link", "set", host.link, "master", self.bridge, "up", timeout=t)
        ip("-n", ns, "link", "set", "lo", "up", timeout=t)
        ip("-n", ns, "addr", "add", f"{host.ipv4}/24", "dev", "eth0", timeout=t)
        ip("-n", ns, "-6", "addr", "add", f"{host.ipv6}/64", "dev", "eth0", "nodad", timeout=t)
        ip("-n", ns, "link", "set", "eth0", "up", timeout=t)
        for other in self.ipv4_networks:
            if other != v4:
                ip("-n", ns, "route", "add", str(other), "dev", "eth0", timeout=t)
        return host

    def close(self) -> None:
        """Stop what still runs in the lab's namespaces, remove them, their links and
        the bridge. Safe to call twice; NetnsError if something could not be removed."""
        if not self._started:
            return
        self._started = False
        failure: BaseException | None = None
        # Interrupts wait until the teardown is done: a half-removed lab is what leaks.
        try:
            remove_leftovers(self.tag, timeout=self.timeout)
        except BaseException as exc:
            failure = exc
        if failure is not None:
            # Once more, in case an interrupt cut the first pass short.
            with contextlib.suppress(Exception):
                remove_leftovers(self.tag, timeout=self.timeout)
            raise failure

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except Exception:
            if exc is None:
                raise
            # The body's own error is the one to see; the teardown's is secondary.


# -- finding and removing what a lab made ----------------------------------------


def lab_namespaces(tag: str | None = None) -> list[str]:
    """Namespaces made by namespace labs (of run `tag`, or of any run)."""
    prefix = f"{NETNS_PREFIX}{tag}-" if tag else NETNS_PREFIX
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix) and _tag_of_netns(n) is not None)


def lab_links(tag: str | None = None) -> list[str]:
    """Host-side links (bridges, veth ends) made by namespace labs (of `tag`, or any)."""
    prefix = f"{LINK_PREFIX}{tag}" if tag else LINK_PREFIX
    names = [str(link.get("ifname", "")) for link in _ip_json("link", "show")]
    return sorted(n for n in names if n.startswith(prefix) and _tag_of_link(n) is not None)


def leftover_tags() -> set[str]:
    """Tags of every namespace lab with something still on this machine."""
    tags = {_tag_of_netns(n) for n in lab_namespaces()} | {_tag_of_link(n) for n in lab_links()}
    with contextlib.suppress(FileNotFoundError):
        tags |= {p.name for p in OWNER_DIR.iterdir() if _TAG.fullmatch(p.name)}
    return {t for t in tags if t is not None}


def stale_tags() -> set[str]:
    """Tags of namespace labs whose owning process is gone (killed runs)."""
    stale = set()
    for tag in leftover_tags():
        try:
            pid = int((OWNER_DIR / tag).read_text().strip())
        except (OSError, ValueError):
            stale.add(tag)
            continue
        if not cmdline(pid):
            stale.add(tag)
    return stale


def remove_leftovers(tag: str, *, timeout: float = IP_TIMEOUT) -> list[str]:
    """Remove everything lab run `tag` made; what was removed.

    Processes still inside its namespaces were started there by that lab (no
    one else knows those namespaces), so they are stopped first: a namespace
    with a live process would outlive its name.
    """
    if not _TAG.fullmatch(tag):
        raise NetnsError(f"a lab tag is six hex digits, not {tag!r}")
    removed: list[str] = []
    errors: list[str] = []
    namespaces = lab_namespaces(tag)
    for netns in namespaces:
        _stop_everything_in(netns, errors)
    links = lab_links(tag)
    # veth ends first (deleting one end deletes its pair), then the bridge.
    for link in sorted(links, key=lambda n: n.endswith("br")):
        try:
            ip("link", "del", link, timeout=timeout)
            removed.append(link)
        except NetnsError as exc:
            if not _exists_error(exc):
                errors.append(str(exc))
    for netns in namespaces:
        try:
            ip("netns", "del", netns, timeout=timeout)
            removed.append(netns)
        except NetnsError as exc:
            if not _exists_error(exc):
                errors.append(str(exc))
    with contextlib.suppress(FileNotFoundError):
        (OWNER_DIR / tag).unlink()
    if errors:
        raise NetnsError(f"namespace lab {tag} not fully removed: {'; '.join(errors)[:500]}")
    return removed


def _stop_everything_in(netns: str, errors: list[str]) -> None:
    try:
        pids = netns_pids(netns)
    except NetnsError as exc:
        errors.append(str(exc))
        return
    for pid in pids:
        what = cmdline(pid)
        if what and not stop_in_netns(netns, pid, what):
            errors.append(f"process {pid} ({what[:60]}) in {netns} would not stop")


def _tag_of_netns(name: str) -> str | None:
    tag = name[len(NETNS_PREFIX) :].split("-", 1)[0]
    return tag if _TAG.fullmatch(tag) else None


def _tag_of_link(name: str) -> str | None:
    tag = name[len(LINK_PREFIX) : len(LINK_PREFIX) + 6]
    rest = name[len(LINK_PREFIX) + 6 :]
    return tag if _TAG.fullmatch(tag) and re.fullmatch(r"br|v\d{1,3}", rest) else None


# -- choosing the lab's networks -------------------------------------------------


@contextlib.contextmanager
def _network_lock() -> Iterator[None]:
    """Held while a lab picks its networks and claims them: two labs never pick one."""
    _LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK_PATH.open("a") as handle:
        deadline = time.monotonic() + IP_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise NetnsError(f"{_LOCK_PATH} stayed locked for {IP_TIMEOUT:g} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _networks_in_use() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for link in _ip_json("addr", "show"):
        for info in link.get("addr_info", []):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                used.append(
                    ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False)
                )
    for family in ("-4", "-6"):
        for route in _ip_json(family, "route", "show", "table", "all"):
            dst = route.get("dst")
            if isinstance(dst, str) and dst != "default":
                with contextlib.suppress(ValueError):
                    used.append(ipaddress.ip_network(dst, strict=False))
    return used


def _pick_networks(count: int = 1) -> tuple[list[ipaddress.IPv4Network], ipaddress.IPv6Network]:
    used = _networks_in_use()

    def free(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        return not any(net.version == u.version and net.overlaps(u) for u in used)

    v4s: list[ipaddress.IPv4Network] = []
    v6 = None
    for _ in range(_PICK_ATTEMPTS * count):
        candidate = ipaddress.IPv4Network(
            (int(SHARED_SPACE.network_address) + 256 * secrets.randbelow(1 << 14), 24)
        )
        if free(candidate):
            v4s.append(candidate)
            used.append(candidate)
            if len(v4s) == count:
                break
    for _ in range(_PICK_ATTEMPTS):
        # RFC 4193: fd, a random 40-bit global id, a 16-bit subnet id.
        bits = secrets.randbits(56)
        candidate6 = ipaddress.IPv6Network((int(UNIQUE_LOCAL.network_address) | (bits << 64), 64))
        if free(candidate6):
            v6 = candidate6
            break
    if len(v4s) < count or v6 is None:
        raise NetnsError("no free /24 in 100.64.0.0/10 or /64 in fd00::/8 found")
    return v4s, v6


def _parse_pinned(
    networks: tuple[str, str],
) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    try:
        v4 = ipaddress.IPv4Network(networks[0])
        v6 = ipaddress.IPv6Network(networks[1])
    except ValueError as exc:
        raise NetnsError(f"namespace lab networks {networks!r}: {exc}") from None
    if v4.prefixlen != 24 or not v4.subnet_of(SHARED_SPACE):
        raise NetnsError(f"the lab's IPv4 network must be a /24 in {SHARED_SPACE}, not {v4}")
    if v6.prefixlen != 64 or not v6.subnet_of(UNIQUE_LOCAL):
        raise NetnsError(f"the lab's IPv6 network must be a /64 in {UNIQUE_LOCAL}, not {v6}")
    return v4, v6


def _write_sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    try:
        path.write_text(value)
    except OSError as exc:
        raise NetnsError(f"cannot set {key.replace('/', '.')} = {value}: {exc.strerror}") from None
