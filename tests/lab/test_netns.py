"""Test hosts in network namespaces (atalaya.lab.netns) and the DHT labs built on them.

These need root and iproute2: skipped here without them, failed under CI.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atalaya.errors import AtalayaError
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.netns import (
    OWNER_DIR,
    NetnsError,
    NetnsHost,
    NetnsLab,
    lab_links,
    lab_namespaces,
    leftover_tags,
    remove_leftovers,
    require_netns,
    stale_tags,
)
from atalaya.lab.ports import is_namespace_address
from atalaya.lab.processes import cmdline, is_running
from atalaya.lab.transmission import TransmissionPeer
from tests.lab.netns_support import assert_gone, require_netns_here

pytestmark = pytest.mark.lab

# Documentation addresses (RFC 5737, RFC 3849): outside every lab range.
OUTSIDE_V4 = "192.0.2.1"
OUTSIDE_V6 = "2001:db8::1"


def listener(ip: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((ip, 0))
    sock.listen()
    return sock


def connect_error(ip: str, port: int) -> int:
    """The errno of a TCP connect to ip:port (0 if it connected)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex((ip, port))


def echo_over(server: socket.socket, client_ip: str, bind_ip: str) -> tuple[bytes, str]:
    """Connect from `bind_ip` to `server`, send a line; what arrived and from where."""
    family = socket.AF_INET6 if ":" in client_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.bind((bind_ip, 0))
        client.connect(server.getsockname()[:2])
        server.settimeout(5)
        conn, peer = server.accept()
        with conn:
            client.sendall(b"hello\n")
            return conn.recv(16), str(peer[0])


# -- no root needed ---------------------------------------------------------------


def test_refuses_bad_lab_arguments() -> None:
    with pytest.raises(NetnsError, match="host name"):
        NetnsLab(["Bad_Name"])
    with pytest.raises(NetnsError, match="must differ"):
        NetnsLab(["a", "a"])
    with pytest.raises(NetnsError, match="1 to 200 hosts"):
        NetnsLab([])
    with pytest.raises(NetnsError, match="six hex digits"):
        NetnsLab(["a"], tag="zzzzzz")
    for networks, what in (
        (("10.0.0.0/24", "fd00:1::/64"), "IPv4"),
        (("100.64.0.0/16", "fd00:1::/64"), "IPv4"),
        (("100.64.3.0/24", "2001:db8::/64"), "IPv6"),
        (("100.64.3.0/24", "fd00:1::/48"), "IPv6"),
    ):
        with pytest.raises(NetnsError, match=what):
            NetnsLab(["a"], networks=networks)
    with pytest.raises(NetnsError, match="six hex digits"):
        remove_leftovers("../etc")


def test_require_netns_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        with pytest.raises(NetnsError, match="root"):
            require_netns()
        return
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(NetnsError, match="iproute2"):
        require_netns()


def test_namespace_address_ranges() -> None:
    for inside in ("100.64.0.1", "100.127.255.254", "fd00::1", "fdff:1:2:3::9"):
        assert is_namespace_address(inside), inside
    for outside in ("127.0.0.1", "100.63.255.255", "100.128.0.1", "10.0.0.1", "fc00::1", "::1"):
        assert not is_namespace_address(outside), outside
    assert not is_namespace_address("fd00::1%eth0")
    assert not is_namespace_address("not an address")


def test_peers_refuse_addresses_outside_their_lab(tmp_path: Path) -> None:
    host = NetnsHost(
        name="a",
        netns="atlab-000000-a",
        ipv4="100.64.9.2",
        ipv6="fd00:9::2",
        link="atlab000000v0",
        host_ipv4="100.64.9.1",
        host_ipv6="fd00:9::1",
    )
    # Without a namespace host: loopback only, as before.
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        LibtorrentPeer("100.64.9.2", tmp_path)
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        TransmissionPeer("100.64.9.2", tmp_path)
    # With one: only its own addresses.
    for wrong in ("100.64.9.3", "127.0.0.1", "fd00:9::3", OUTSIDE_V6):
        with pytest.raises(ValueError, match="namespace atlab-000000-a"):
            LibtorrentPeer(wrong, tmp_path, netns=host)
    for wrong in ("fd00:9::2", "100.64.9.3"):
        with pytest.raises(ValueError, match="namespace atlab-000000-a"):
            TransmissionPeer(wrong, tmp_path, netns=host)
    # A host whose addresses are not in the namespace ranges is refused too.
    stray = NetnsHost("b", "atlab-000000-b", "10.1.1.2", "fd00:9::5", "l", "10.1.1.1", "fd00:9::1")
    with pytest.raises(ValueError, match=r"100\.64\.0\.0/10"):
        TransmissionPeer("10.1.1.2", tmp_path, netns=stray)
    with pytest.raises(ValueError, match="namespace atlab-000000-b"):
        LibtorrentPeer("10.1.1.2", tmp_path, netns=stray)
    with pytest.raises(ValueError, match="127/8"):
        TransmissionPeer("127.0.0.9", tmp_path, dht_nodes=[("127.0.0.8", 6881)])


# -- namespaces ---------------------------------------------------------------------


def test_hosts_are_reachable_from_the_host_side_and_nowhere_else() -> None:
    require_netns_here()
    with NetnsLab(["a", "b"]) as lab:
        tag = lab.tag
        assert lab.startup_seconds is not None
        assert lab_namespaces(tag) == [f"atlab-{tag}-a", f"atlab-{tag}-b"]
        assert ipaddress.ip_network(str(lab.ipv4_network)).subnet_of(
            ipaddress.IPv4Network("100.64.0.0/10")
        )
        assert str(lab.ipv6_network).startswith("fd")
        a, b = lab.host("a"), lab.host("b")
        for ip in (*a.addresses, *b.addresses, lab.host_ipv4, lab.host_ipv6):
            assert lab.admits(ip), ip
        elsewhere = "100.64.0.1" if not lab.admits("100.64.0.1") else "100.127.255.1"
        for ip in (elsewhere, "127.0.0.1", OUTSIDE_V4, OUTSIDE_V6, "fd00::1", "bogus"):
            assert not lab.admits(ip), ip
        # A listener inside answers from the host side, over IPv4 and IPv6 (nodad:
        # usable at once), and the host side is the bridge's address.
        for ip, host_ip in ((a.ipv4, lab.host_ipv4), (a.ipv6, lab.host_ipv6)):
            server = a.call(lambda ip=ip: listener(ip))
            with server:
                assert echo_over(server, ip, host_ip) == (b"hello\n", host_ip)
        # Host to host across the bridge, inside the namespaces.
        server = b.call(lambda: listener(b.ipv4))
        with server:
            got = a.call(lambda: echo_over(server, b.ipv4, a.ipv4))
            assert got == (b"hello\n", a.ipv4)
        # No default route: anything outside the lab is unreachable at once.
        for host in (a, b):
            for family in ("-4", "-6"):
                routes = host.run(["ip", family, "route", "show", "default"], timeout=5)
                assert routes.returncode == 0 and routes.stdout.strip() == ""
            assert host.call(lambda: connect_error(OUTSIDE_V4, 9)) == errno.ENETUNREACH
            assert host.call(lambda: connect_error(OUTSIDE_V6, 9)) == errno.ENETUNREACH
            # The host side's own address is the only way out, and it is on-link.
            assert host.run(["ip", "-4", "route"], timeout=5).stdout.count("\n") == 1
        # The host does not route what arrives on the bridge.
        bridge = Path(f"/proc/sys/net/ipv4/conf/{lab.bridge}/forwarding").read_text()
        assert bridge.strip() == "0"
        assert tag in leftover_tags()
        assert tag not in stale_tags()  # its owner, this process, is alive
    assert_gone(tag)
    assert not (OWNER_DIR / tag).exists()
    lab.close()  # twice is fine


def test_hosts_in_several_subnets_reach_each_other_and_the_host_side() -> None:
    require_netns_here()
    with NetnsLab(["a", "b", "c"], subnets=3) as lab:
        tag = lab.tag
        nets = lab.ipv4_networks
        assert len({str(n) for n in nets}) == 3
        a, b, c = lab.host("a"), lab.host("b"), lab.host("c")
        for host, net in zip((a, b, c), nets, strict=True):
            assert ipaddress.IPv4Address(host.ipv4) in net and lab.admits(host.ipv4)
            assert host.host_ipv4 == str(net[1])
        # Across /24s on the one bridge, and from the host side's first address.
        server = c.call(lambda: listener(c.ipv4))
        with server:
            assert a.call(lambda: echo_over(server, c.ipv4, a.ipv4)) == (b"hello\n", a.ipv4)
            assert echo_over(server, c.ipv4, lab.host_ipv4) == (b"hello\n", lab.host_ipv4)
        for host in (a, b, c):
            assert host.call(lambda: connect_error(OUTSIDE_V4, 9)) == errno.ENETUNREACH
            routes = host.run(["ip", "-4", "route", "show", "default"], timeout=5)
            assert routes.stdout.strip() == ""
    assert_gone(tag)


def test_process_in_a_namespace_is_stopped_by_pid_and_only_there() -> None:
    require_netns_here()
    with NetnsLab(["a", "b"]) as lab:
        a, b = lab.host("a"), lab.host("b")
        process = a.popen(["sleep", "60"])
        try:
            deadline = time.monotonic() + 5
            while not cmdline(process.pid).startswith("sleep 60"):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            # `ip netns exec` execs the program: the pid is the program's.
            assert a.owns(process.pid) and not b.owns(process.pid)
            assert a.pids() == [process.pid]
            assert b.pids() == []
            assert not b.stop(process.pid, "sleep 60")  # not b's: left alone
            assert process.poll() is None
            # Not what we started: nothing of ours to stop, and it is left alone.
            assert a.stop(process.pid, "something else")
            assert process.poll() is None
            assert a.stop(process.pid, "sleep 60")
            assert process.wait(5) == -signal.SIGTERM
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(5)
        done = a.run(["ip", "-br", "addr", "show", "eth0"], timeout=5)
        assert a.ipv4 in done.stdout and a.ipv6 in done.stdout


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_everything_is_removed_after_an_error_inside(interrupt: type[BaseException]) -> None:
    require_netns_here()
    lab = NetnsLab(["a", "b", "c"])
    with pytest.raises(interrupt), lab:
        process = lab.host("b").popen(["sleep", "60"])
        assert lab_namespaces(lab.tag) and lab_links(lab.tag)
        raise interrupt("boom")
    assert_gone(lab.tag)
    # The process left running inside was stopped with its namespace.
    assert process.wait(5) in (-signal.SIGTERM, -signal.SIGKILL)


def test_leftovers_of_a_killed_run_are_found_and_removed() -> None:
    require_netns_here()
    script = (
        "import time\n"
        "from atalaya.lab.netns import NetnsLab\n"
        "lab = NetnsLab(['x', 'y'])\n"
        "lab.start()\n"
        "lab.host('x').popen(['sleep', '60'])\n"
        "print(lab.tag, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert child.stdout is not None
        tag = child.stdout.readline().strip()
        assert len(tag) == 6, tag
        assert tag in leftover_tags() and tag not in stale_tags()
        child.kill()  # no teardown: what it made is left behind
        child.wait(5)
        assert len(lab_namespaces(tag)) == 2 and len(lab_links(tag)) == 3
        assert tag in stale_tags()
        removed = remove_leftovers(tag)
        assert len(removed) == 5
        assert_gone(tag)
        assert tag not in leftover_tags()
        assert remove_leftovers(tag) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


# -- the DHT labs -------------------------------------------------------------------


@pytest.mark.slow
def test_transmission_dht_lab_forms(tmp_path: Path) -> None:
    require_netns_here("transmission-daemon")
    from atalaya.lab.transmission_dht import TransmissionDhtLab, TransmissionDhtSpec

    with pytest.raises(AtalayaError, match="announces only once it knows 9"):
        TransmissionDhtSpec(fillers=3)
    lab = TransmissionDhtLab(TransmissionDhtSpec(), tmp_path)
    with lab:
        assert lab.startup_seconds is not None
        print(f"Transmission DHT lab ready in {lab.startup_seconds:.1f} s")
        pids = [d.pid for d in lab.transmissions.values()]
        for daemon in lab.transmissions.values():
            assert daemon.dht and is_namespace_address(daemon.ip) and lab.netns.admits(daemon.ip)
            assert daemon.pid is not None and daemon.netns is not None
            assert daemon.netns.owns(daemon.pid)
        # Another filler than the one the lab asked while starting finds them too.
        finder = lab.fillers["lt-filler-2"]
        watched_ih, unwatched_ih = lab.watched.hashes.v1, lab.unwatched.hashes.v1
        assert watched_ih is not None and unwatched_ih is not None
        assert lab.watched.hashes.v2 is None
        found = finder.dht_get_peers(watched_ih, 20)
        names = lab.names()
        seeders = {(d.ip, d.port) for d in lab.seeders.values()}
        holders = {(p.ip, p.port) for p in lab.holders.values()}
        deadline = time.monotonic() + 20
        while not seeders | holders <= found and time.monotonic() < deadline:
            time.sleep(1)
            found |= finder.dht_get_peers(watched_ih, 5)
        assert seeders | holders <= found, {names.get(e, e) for e in found}
        bystanders = {(d.ip, d.port) for d in lab.bystanders.values()}
        assert not bystanders & found
        assert bystanders <= finder.dht_get_peers(unwatched_ih, 20)
        # The hash set names the watched torrent only.
        text = lab.hash_set.read_text()
        assert watched_ih.hex() in text and unwatched_ih.hex() not in text
    assert_gone(lab.netns.tag)
    for pid in pids:
        assert pid is not None
        assert not is_running(pid, "transmission-daemon")


def test_ipv6_dht_lab_forms(tmp_path: Path) -> None:
    require_netns_here()
    from atalaya.lab.ipv6_dht import Ipv6DhtLab, Ipv6DhtSpec

    lab = Ipv6DhtLab(Ipv6DhtSpec(), tmp_path)
    with lab:
        assert lab.startup_seconds is not None
        print(f"IPv6 DHT lab ready in {lab.startup_seconds:.1f} s")
        network = ipaddress.IPv6Network(lab.ipv6_network)
        for peer in lab.nodes.values():
            assert ipaddress.IPv6Address(peer.ip) in network
        assert ipaddress.IPv6Address(lab.observer_ip) in network
        finder = lab.fillers["lt-filler-2"]
        seeders = {(p.ip, p.port) for p in lab.seeders.values()}
        bystanders = {(p.ip, p.port) for p in lab.bystanders.values()}
        v1, v2 = lab.watched
        assert v1.hashes.v1 is not None and v1.hashes.v2 is None
        assert v2.hashes.v2 is not None and v2.hashes.v1 is None
        for infohash in (v1.hashes.v1, v2.hashes.v2):
            found = finder.dht_get_peers(infohash, 20)
            deadline = time.monotonic() + 10
            while not seeders <= found and time.monotonic() < deadline:
                time.sleep(1)
                found |= finder.dht_get_peers(infohash, 5)
            assert seeders <= found and not bystanders & found
            for ip, _ in found:
                assert ipaddress.IPv6Address(ip) in network
        for peer in lab.seeders.values():
            assert peer.check("seeding")
            assert peer.holds(v2.hashes.v2) == 1.0
    assert_gone(lab.netns.tag)
