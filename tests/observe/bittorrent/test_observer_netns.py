"""`atalaya watch bittorrent`, run as an operator runs it, against DHTs of other
implementations on test hosts in network namespaces (atalaya.lab.netns).

IPv4: real Transmission 3.00 daemons seeding a trackerless watched torrent,
on 100.64.0.0/10 (their DHT drops 127/8). The observer binds the host side of
the lab's bridge and knows one filler node: it must find every Transmission
seeder through the DHT and verify pieces from each, and record no sighting
of the filler nodes, the bystander (which seeds only an unwatched torrent)
or the libtorrent peer that holds nothing.

IPv6: the same with libtorrent seeders of v1 and v2 torrents on a ULA /64.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab.netns_support import assert_gone, require_netns_here
from tests.support.cli import DEFAULT_ENV

pytestmark = [pytest.mark.lab, pytest.mark.slow]

DURATION = 60


@dataclass
class Lab:
    """What a test needs of a running namespace lab."""

    workdir: Path
    hash_set: Path
    bind: str
    bootstrap: str
    network: str
    seeders: dict[tuple[str, int], str]  # (ip, port) -> name, of watched seeders
    others: dict[tuple[str, int], str]  # every other node
    watched: set[str]  # info-hashes (hex) on the watch list


@dataclass
class Run:
    """One `watch --duration` run against a lab."""

    lab: Lab
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    wall_seconds: float


def atalaya(db_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atalaya", "--db", db_url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        # The purpose and recipient an operator's profile sets (LED art. 25).
        env={**DEFAULT_ENV, **os.environ},
    )


def watch(lab: Lab) -> Run:
    """init, import the lab's hash set, one `watch --duration` run, export."""
    db_url = f"sqlite:///{lab.workdir / 'atalaya.db'}"
    init = atalaya(db_url, "init")
    assert init.returncode == 0, init.stderr
    imported = atalaya(db_url, "hashsets", "import", str(lab.hash_set), "--format", "csv", "--json")
    assert imported.returncode == 0, imported.stderr
    begin = time.monotonic()
    done = atalaya(
        db_url,
        "watch",
        "bittorrent",
        "--bind",
        lab.bind,
        "--dht-bootstrap",
        lab.bootstrap,
        "--allow-network",
        lab.network,
        "--duration",
        str(DURATION),
        "--json",
        timeout=DURATION + 60,
    )
    wall = time.monotonic() - begin
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    exported = atalaya(db_url, "sightings", "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    return Run(lab, summary, rows, wall)


@pytest.fixture(scope="module")
def transmission_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_netns_here("transmission-daemon")
    from atalaya.lab.transmission_dht import TransmissionDhtLab, TransmissionDhtSpec

    workdir = tmp_path_factory.mktemp("observer-netns-v4")
    lab = TransmissionDhtLab(TransmissionDhtSpec(), workdir / "lab")
    with lab:
        ip, port = lab.bootstrap
        seeders = {(p.ip, p.port): n for n, p in lab.seeders.items()}
        yield Lab(
            workdir=workdir,
            hash_set=lab.hash_set,
            bind=lab.observer_ip,
            bootstrap=f"{ip}:{port}",
            network=lab.ipv4_network,
            seeders=seeders,
            others={e: n for e, n in lab.names().items() if e not in seeders},
            watched={h.hex() for h in (lab.watched.hashes.v1, lab.watched.hashes.v2) if h},
        )
    assert_gone(lab.netns.tag)


@pytest.fixture(scope="module")
def ipv6_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_netns_here()
    from atalaya.lab.ipv6_dht import Ipv6DhtLab, Ipv6DhtSpec

    workdir = tmp_path_factory.mktemp("observer-netns-v6")
    lab = Ipv6DhtLab(Ipv6DhtSpec(), workdir / "lab")
    with lab:
        ip, port = lab.bootstrap
        seeders = {(p.ip, p.port): n for n, p in lab.seeders.items()}
        yield Lab(
            workdir=workdir,
            hash_set=lab.hash_set,
            bind=lab.observer_ip,
            bootstrap=f"[{ip}]:{port}",
            network=lab.ipv6_network,
            seeders=seeders,
            others={e: n for e, n in lab.names().items() if e not in seeders},
            watched={h.hex() for b in lab.watched for h in (b.hashes.v1, b.hashes.v2) if h},
        )
    assert_gone(lab.netns.tag)


def check_every_seeder_verified_through_the_dht(run: Run) -> None:
    sighted: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in run.rows:
        sighted.setdefault((row["ip"], row["port"]), []).append(row)
    names = {**run.lab.seeders, **run.lab.others}
    wrong = {names.get(e, f"{e[0]}:{e[1]}") for e in sighted if e not in run.lab.seeders}
    assert not wrong, f"sighted nodes that seed nothing watched: {sorted(wrong)}"
    missing = {n for e, n in run.lab.seeders.items() if e not in sighted}
    assert not missing, f"seeders never sighted: {sorted(missing)}; summary {run.summary}"
    for endpoint, rows in sighted.items():
        for row in rows:
            assert row["network"] == "bittorrent"
            assert row["item_value"] in run.lab.watched
            assert row["found_by"] == "dht", (run.lab.seeders[endpoint], row)
            assert row["pieces_verified"] > 0, (run.lab.seeders[endpoint], row)
            assert row["pieces_failed"] == 0, (run.lab.seeders[endpoint], row)
            assert row["proof"] is True
    assert run.summary["failed_verification"] == 0
    assert run.summary["sightings"] == len(run.rows)


def test_observer_finds_and_verifies_every_transmission_seeder(transmission_lab: Lab) -> None:
    run = watch(transmission_lab)
    print(f"watch wall time: {run.wall_seconds:.1f} s; summary {run.summary}")
    check_every_seeder_verified_through_the_dht(run)
    # Transmission gives its own client name in the extended handshake.
    assert all(row["client"].startswith("Transmission") for row in run.rows)


def test_observer_finds_and_verifies_every_ipv6_seeder(ipv6_lab: Lab) -> None:
    run = watch(ipv6_lab)
    print(f"watch wall time: {run.wall_seconds:.1f} s; summary {run.summary}")
    check_every_seeder_verified_through_the_dht(run)
    # Both watched torrents, v1 and v2, from every seeder.
    assert {(r["ip"], r["port"], r["item_value"]) for r in run.rows} >= {
        (ip, port, ih) for ip, port in ipv6_lab.seeders for ih in ipv6_lab.watched
    }
