"""A fleet of three observers, each on a host of its own (a network namespace
with its own address), against a DHT of libtorrent seeders and one
PostgreSQL; one of them is killed with SIGKILL mid-run.

The lab: seeders on hosts of their own, each seeding every one of six
trackerless watched torrents, and filler DHT nodes. The observers run
`atalaya watch bittorrent --fleet` as an operator would, reaching the store
through its Unix socket (a namespace has no route to the host's loopback).
Once every observer holds its share, one is killed: its leases must go to
the other two, which then sight its targets' seeders; no sighting may be
written twice or lost by the two that stop cleanly, and every seeder of
every watched torrent must be sighted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from atalaya.lab.content import BuiltTorrent
from atalaya.lab.dht_lab_parts import (
    DHT_RATE_LIMIT,
    build_trackerless,
    close_all,
    join_dht,
    single_file_torrent,
    wait_announced,
    wait_dht_formed,
    write_hash_set,
)
from atalaya.lab.libtorrent_peer import LibtorrentPeer
from atalaya.lab.netns import NetnsHost, NetnsLab
from atalaya.store.tables import fleet_observer, proof_transcript, sighting, watch_lease
from tests.lab.netns_support import assert_gone, require_netns_here
from tests.support.cli import DEFAULT_ENV, run_atalaya

pytestmark = [pytest.mark.lab, pytest.mark.postgres, pytest.mark.slow]

TORRENTS = 6
SEEDERS = 3
FILLERS = 2
OBSERVERS = 3
LEASE_S = 9.0  # a tick every 3 s
DURATION_S = 75  # of each observer's run
SETTLE_S = 60.0  # bound on: every observer holding its share; a takeover
LAB_START_S = 90.0


@dataclass
class FleetLab:
    netns: NetnsLab
    seeders: dict[str, LibtorrentPeer]
    fillers: dict[str, LibtorrentPeer]
    torrents: list[BuiltTorrent]
    hash_set: Path

    @property
    def observers(self) -> list[NetnsHost]:
        return [self.netns.host(f"obs-{i + 1}") for i in range(OBSERVERS)]

    @property
    def watched(self) -> set[str]:
        return {b.hashes.v1.hex() for b in self.torrents if b.hashes.v1}


@pytest.fixture
def fleet_lab(tmp_path: Path) -> Iterator[FleetLab]:
    require_netns_here()
    names = [
        *(f"lt-seed-{i + 1}" for i in range(SEEDERS)),
        *(f"lt-filler-{i + 1}" for i in range(FILLERS)),
        *(f"obs-{i + 1}" for i in range(OBSERVERS)),
    ]
    netns = NetnsLab(names)
    seeders: dict[str, LibtorrentPeer] = {}
    fillers: dict[str, LibtorrentPeer] = {}
    deadline = time.monotonic() + LAB_START_S
    try:
        plans = [
            single_file_torrent(f"fleet-{i}", "v1", "watched", size=64_000 + i * 999, seed=40 + i)
            for i in range(TORRENTS)
        ]
        torrents = list(build_trackerless(plans, tmp_path / "content").values())
        hash_set = write_hash_set(torrents, tmp_path / "hashes.csv")
        netns.start()
        for name in netns.host_names:
            if not name.startswith("lt-"):
                continue
            host = netns.host(name)
            peer = LibtorrentPeer(
                host.ipv4, tmp_path / "peers" / name, netns=host, dht_rate_limit=DHT_RATE_LIMIT
            )
            (seeders if name.startswith("lt-seed") else fillers)[name] = peer
            peer.start()
        nodes = seeders | fillers
        join_dht(nodes.values())
        for peer in seeders.values():
            for built in torrents:
                peer.seed(built.torrent, tmp_path / "content")
        for name, peer in seeders.items():
            assert peer.wait_until("seeding", max(0.0, deadline - time.monotonic())), name
        wait_dht_formed(nodes, deadline)
        for peer in nodes.values():
            peer.force_dht_announce()
        endpoints = {(p.ip, p.port) for p in seeders.values()}
        expected = {b.hashes.v1: endpoints for b in torrents if b.hashes.v1}
        wait_announced(next(iter(fillers.values())), expected, deadline)
        yield FleetLab(netns, seeders, fillers, torrents, hash_set)
    finally:
        close_all([*seeders.values(), *fillers.values(), netns])
    assert_gone(netns.tag)


def socket_url(engine: Engine) -> str:
    """The store's URL through its Unix socket, which every namespace can reach."""
    with engine.connect() as conn:
        folders = str(conn.execute(text("SHOW unix_socket_directories")).scalar() or "")
        port = conn.execute(text("SHOW port")).scalar()
    folder = folders.split(",", maxsplit=1)[0].strip()
    if not folder:
        pytest.skip("this PostgreSQL listens on no Unix socket")
    url = engine.url.set(host=None, port=None, query={"host": folder, "port": str(port)})
    return url.render_as_string(hide_password=False)


def start_observer(lab: FleetLab, host: NetnsHost, url: str, log: Path) -> subprocess.Popen[bytes]:
    filler = next(iter(lab.fillers.values()))
    args = [
        sys.executable,
        "-m",
        "atalaya",
        "--db",
        url,
        "watch",
        "bittorrent",
        "--fleet",
        "--lease-seconds",
        str(LEASE_S),
        "--bind",
        host.ipv4,
        "--dht-bootstrap",
        f"{filler.ip}:{filler.port}",
        "--allow-network",
        str(lab.netns.ipv4_network),
        "--interval",
        "5",
        "--duration",
        str(DURATION_S),
        "--json",
    ]
    stream = log.open("wb")
    return host.popen(
        args, stdout=subprocess.PIPE, stderr=stream, env={**DEFAULT_ENV, **os.environ}
    )


def runs(engine: Engine) -> dict[str, str]:
    """Process id -> run id, of the runs that joined (`ip netns exec` keeps the pid)."""
    with engine.connect() as conn:
        rows = conn.execute(select(fleet_observer.c.pid, fleet_observer.c.run_id)).all()
    return {str(pid): run_id for pid, run_id in rows}


def leases(engine: Engine) -> dict[str, str | None]:
    now = datetime.now(UTC)
    with engine.connect() as conn:
        rows = conn.execute(
            select(watch_lease.c.target, watch_lease.c.holder, watch_lease.c.expires_at)
        ).all()
    return {t: (h if e is not None and e >= now else None) for t, h, e in rows}


def wait_for(what: str, check: object, timeout: float) -> float:
    """Poll `check()` every half second until true; the seconds it took."""
    assert callable(check)
    begin = time.monotonic()
    while not check():
        if time.monotonic() - begin > timeout:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.5)
    return time.monotonic() - begin


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_killed_observers_targets_go_to_the_others(
    fleet_lab: FleetLab, engine: Engine, tmp_path: Path
) -> None:
    lab = fleet_lab
    db = engine.url.render_as_string(hide_password=False)
    imported = run_atalaya("--db", db, "hashsets", "import", str(lab.hash_set), "--format", "csv")
    assert imported.returncode == 0, imported.stderr
    url = socket_url(engine)
    logs = {h.name: tmp_path / f"{h.name}.log" for h in lab.observers}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for host in lab.observers:
            procs[host.name] = start_observer(lab, host, url, logs[host.name])
        pids = {str(p.pid): name for name, p in procs.items()}

        def balanced() -> bool:
            by_pid = runs(engine)
            held = Counter(leases(engine).values())
            return len(by_pid) == OBSERVERS and all(
                held[run] == TORRENTS // OBSERVERS for run in by_pid.values()
            )

        try:
            wait_for("every observer holds its share", balanced, SETTLE_S)
        except AssertionError:
            raise AssertionError(
                {n: (p.poll(), logs[n].read_text()[-1500:]) for n, p in procs.items()}
            ) from None
        run_of = {pids[pid]: run for pid, run in runs(engine).items()}
        victim = "obs-3"
        victim_run = run_of[victim]

        def victim_sighted() -> bool:
            with engine.connect() as conn:
                n = conn.execute(
                    select(func.count()).where(sighting.c.run_id == victim_run)
                ).scalar()
            return bool(n)

        wait_for("the victim writes a sighting", victim_sighted, SETTLE_S)
        orphans = {t for t, h in leases(engine).items() if h == victim_run}
        assert len(orphans) == TORRENTS // OBSERVERS
        procs[victim].kill()  # SIGKILL: no release, no last write
        procs[victim].wait(timeout=10)
        killed_at = datetime.now(UTC)
        survivors = {run_of[n] for n in run_of if n != victim}

        def taken_over() -> bool:
            now = leases(engine)
            return all(now[t] in survivors for t in orphans)

        took = wait_for("the victim's targets are leased again", taken_over, SETTLE_S)
        print(f"victim's {len(orphans)} targets re-leased {took:.1f} s after SIGKILL")
        summaries = {}
        for name, proc in procs.items():
            if name == victim:
                continue
            stdout, _ = proc.communicate(timeout=DURATION_S + 60)
            assert proc.returncode == 0, (name, logs[name].read_text()[-2000:])
            summaries[run_of[name]] = json.loads(stdout)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                sighting.c.id,
                sighting.c.run_id,
                sighting.c.item_value,
                sighting.c.ip,
                sighting.c.port,
                sighting.c.seen_at,
                sighting.c.proof,
            )
        ).all()
        transcripts = Counter(conn.execute(select(proof_transcript.c.sighting_id)).scalars())
        stopped = dict(
            conn.execute(select(fleet_observer.c.run_id, fleet_observer.c.stopped_at)).all()
        )
    # The survivors stopped cleanly: marked so, and holding nothing.
    assert all(stopped[r] is not None for r in survivors) and stopped[victim_run] is None
    assert set(leases(engine).values()) == {None}
    # Nothing written twice: one row per probe, one transcript per row.
    probes = Counter((r.run_id, r.item_value, r.ip, r.port, r.seen_at) for r in rows)
    assert max(probes.values()) == 1
    assert all(transcripts[r.id] == 1 for r in rows)
    # Nothing lost by those that stopped cleanly: each wrote what it counted.
    per_run = Counter(r.run_id for r in rows)
    for run, summary in summaries.items():
        assert per_run[run] == summary["sightings"], summary
    # Every seeder of every watched torrent sighted, with proof.
    seeders = {(p.ip, p.port) for p in lab.seeders.values()}
    proven = {(r.item_value, r.ip, r.port) for r in rows if r.proof}
    assert proven == {(ih, ip, port) for ih in lab.watched for ip, port in seeders}
    # The victim's targets sighted again by the survivors after it died.
    after = {(r.item_value, r.ip, r.port) for r in rows if r.run_id in survivors}
    after_kill = {
        (r.item_value, r.ip, r.port)
        for r in rows
        if r.run_id in survivors and r.seen_at >= killed_at
    }
    assert {(ih, ip, port) for ih in orphans for ip, port in seeders} <= after_kill, after
    # Only lab seeders were sighted, and only watched torrents.
    assert {(r.ip, r.port) for r in rows} <= seeders
    assert {r.item_value for r in rows} <= lab.watched
