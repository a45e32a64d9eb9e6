"""`atalaya watch bittorrent` with its real-world defaults, where the world is out of reach.

The default run joins the public DHT through the public routers. These tests
never let it reach them: each runs the real CLI inside a network namespace
made for the test, with only a loopback interface and no route anywhere, so
name resolution fails as it does on a machine with no network. Namespaces
need root; CI runs as root, so there the tests are required.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def no_network() -> Iterator[str]:
    """A network namespace with loopback only: no route, no DNS; removed afterwards."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("network namespaces need root, which CI has")
        pytest.skip("network namespaces need root")
    name = f"atl-nonet-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, timeout=10
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=10)


def cli(tmp_path: Path, *args: str, ns: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI, in namespace `ns` when given, with its state folder under `tmp_path`."""
    inside = ["ip", "netns", "exec", ns] if ns else []
    return subprocess.run(
        [*inside, sys.executable, "-m", "atalaya", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "COLUMNS": "200"},
    )


def test_default_run_without_network_ends_with_one_clear_line(
    no_network: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'atalaya.db'}"
    assert cli(tmp_path, "--db", db, "init", ns=no_network).returncode == 0
    result = cli(
        tmp_path,
        "--db",
        db,
        "watch",
        "bittorrent",
        "--infohash",
        secrets.token_hex(20),
        "--duration",
        "30",
        ns=no_network,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "none of the DHT bootstrap routers resolves" in lines[0]
    assert "router.bittorrent.com:6881" in lines[0] and "--dht-bootstrap" in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "state").exists()  # nothing learnt, nothing saved


def test_check_prints_the_plan_and_fails_without_a_way_in(no_network: str, tmp_path: Path) -> None:
    result = cli(tmp_path, "watch", "bittorrent", "--check", ns=no_network)
    assert result.returncode == 2
    assert "0.0.0.0:6881 and [::]:6881" in result.stdout
    assert "bootstrap (public routers): router.bittorrent.com:6881:" in result.stdout
    assert "allowed networks: any address that can be a peer" in result.stdout
    assert "never announce_peer" in result.stdout
    assert "none of the DHT bootstrap routers resolves" in result.stderr


def test_check_with_saved_contacts_can_start_without_routers(
    no_network: str, tmp_path: Path
) -> None:
    state = tmp_path / "state" / "atalaya" / "dht.json"
    state.parent.mkdir(parents=True)
    state.write_text(
        '{"version": 1, "external_ip": "203.0.113.9",'
        ' "ipv4": {"node_id": null, "nodes": [["192.0.2.1", 6881], ["192.0.2.2", 6881]]}}'
    )
    result = cli(tmp_path, "watch", "bittorrent", "--check", "--port", "0", ns=no_network)
    assert result.returncode == 0, result.stderr
    assert f"saved state: {state} (2 contacts" in result.stdout
    assert "external address: 203.0.113.9 (learnt by the last run)" in result.stdout
    assert "port chosen at start" in result.stdout


def test_check_with_a_fence_and_named_nodes(tmp_path: Path) -> None:
    # Named nodes: no routers are resolved, no state is read; nothing leaves loopback.
    result = cli(
        tmp_path,
        "watch",
        "bittorrent",
        "--check",
        "--bind",
        "127.0.0.5",
        "--dht-bootstrap",
        "127.0.0.2:6881",
        "--dht-bootstrap",
        "192.0.2.7:6881",
        "--allow-network",
        "127.0.0.0/8",
    )
    assert result.returncode == 0, result.stderr
    assert "DHT listens on (UDP): 127.0.0.5:6881" in result.stdout
    assert "bootstrap (--dht-bootstrap): 127.0.0.2:6881 -> 127.0.0.2:6881" in result.stdout
    assert "not contacted (outside --allow-network): 192.0.2.7:6881" in result.stdout
    assert "allowed networks: 127.0.0.0/8" in result.stdout
    assert "public routers" not in result.stdout and "saved state" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bind", "127.0.0.5", "--bind", "127.0.0.6"], "at most one address per family"),
        (["--bind", "nowhere"], "--bind 'nowhere': expected a local IPv4 or IPv6 address"),
        (["--allow-network", "10.0.0.0/33"], "--allow-network '10.0.0.0/33'"),
        (["--dht-bootstrap", "fd00::2:6881"], "--dht-bootstrap 'fd00::2:6881'"),
    ],
)
def test_operator_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli(tmp_path, "watch", "bittorrent", "--check", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
