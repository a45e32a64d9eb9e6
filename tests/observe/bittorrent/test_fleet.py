"""`atalaya watch bittorrent --fleet` and `atalaya fleet status`, without peers:
two observers in one process share a watch list on PostgreSQL and leave it
clean; SQLite refuses a fleet in one line."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from atalaya.observe.bittorrent.observer import BittorrentObserver, FleetSettings, ObserverConfig
from atalaya.observe.bittorrent.targets import infohash_target
from atalaya.observe.leases import FleetMember
from atalaya.store.tables import fleet_observer, watch_lease
from tests.support.cli import run_atalaya

pg = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
TARGETS = [infohash_target(secrets.token_bytes(20), "test") for _ in range(12)]


def test_watch_fleet_on_sqlite_says_it_needs_postgresql(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    assert run_atalaya("--db", db, "init").returncode == 0
    done = run_atalaya(
        "--db", db, "watch", "bittorrent", "--fleet", "--no-dht", "--infohash", "ab" * 20
    )
    assert done.returncode != 0
    assert "a fleet of observers needs PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr
    status = run_atalaya("--db", db, "fleet", "status")
    assert status.returncode != 0 and "needs PostgreSQL" in status.stderr


def test_watch_fleet_refuses_discovery(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    done = run_atalaya("--db", db, "watch", "bittorrent", "--fleet", "--discover", "--no-dht")
    assert done.returncode != 0 and "--fleet and --discover" in done.stderr


@pg
def test_two_observers_share_the_targets_and_release_them_on_stop(engine: Engine) -> None:
    config = ObserverConfig(
        use_dht=False, bind_ips=("127.0.0.1",), allowed_networks=("127.0.0.0/8",)
    )
    settings = FleetSettings(host="test", pid=1, lease_seconds=6.0)
    observers = [BittorrentObserver(engine, TARGETS, config, fleet=settings) for _ in range(2)]
    seen: list[dict[str, str | None]] = []

    def holders() -> dict[str, str | None]:
        with engine.connect() as conn:
            return dict(conn.execute(select(watch_lease.c.target, watch_lease.c.holder)).all())

    async def main() -> None:
        stop = asyncio.Event()
        runs = [asyncio.create_task(o.run(duration=12, stop=stop)) for o in observers]
        # Both join, then a tick (every 2 s) evens the shares out.
        for _ in range(40):
            await asyncio.sleep(0.5)
            now = await asyncio.to_thread(holders)
            seen.append(now)
            counts = [sum(h == o.run_id for h in now.values()) for o in observers]
            if counts == [6, 6]:
                break
        stop.set()
        await asyncio.wait_for(asyncio.gather(*runs), 30)

    asyncio.run(main())
    last = seen[-1]
    assert sorted(last.values()) == sorted([observers[0].run_id] * 6 + [observers[1].run_id] * 6)
    # What each observer watched is what it held.
    for observer in observers:
        assert observer.stats.leases_taken >= 6
    # A clean stop: every lease free, both runs marked stopped.
    assert set(holders().values()) == {None}
    with engine.connect() as conn:
        stopped = conn.execute(select(fleet_observer.c.stopped_at)).scalars().all()
        node_ids = conn.execute(select(fleet_observer.c.node_id)).scalars().all()
    assert len(stopped) == 2 and all(s is not None for s in stopped)
    assert len(set(node_ids)) == 2


@pg
def test_fleet_status_shows_who_holds_what(engine: Engine, db_url: str) -> None:
    hexes = [t.hex for t in TARGETS]
    now = datetime.now(UTC)
    members = [
        FleetMember(engine, f"run-{i}", "bittorrent", hexes, f"obs-{i}", 100 + i) for i in range(2)
    ]
    for member in members:
        member.join(now)
    for member in members:
        member.tick(now)
    text = run_atalaya("--db", db_url, "fleet", "status")
    assert text.returncode == 0, text.stderr
    assert "12 targets, 12 leased, 0 free or expired" in text.stdout
    assert "obs-0" in text.stdout and "obs-1" in text.stdout
    done = run_atalaya("--db", db_url, "fleet", "status", "--json")
    assert done.returncode == 0, done.stderr
    head, *rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert head == {"network": "bittorrent", "targets": 12, "held": 12}
    assert {(r["host"], r["state"], r["leases"], r["sightings_last_hour"]) for r in rows} == {
        ("obs-0", "live", 6, 0),
        ("obs-1", "live", 6, 0),
    }


def test_a_hybrid_named_twice_by_one_record_is_one_lease(tmp_path: Path) -> None:
    from atalaya.store import create_store_engine

    engine = create_store_engine(f"sqlite:///{tmp_path / 'a.db'}")
    v1, v2, alone = secrets.token_bytes(20), secrets.token_bytes(32), secrets.token_bytes(20)
    record = {"file_key": "sha1:" + "ab" * 20, "hash_set": "set"}
    targets = [
        infohash_target(v1, "test", **record),
        infohash_target(v2, "test", **record),
        infohash_target(alone, "test"),
    ]
    settings = FleetSettings(host="test", pid=1, lease_seconds=6.0)
    observer = BittorrentObserver(engine, targets, ObserverConfig(use_dht=False), fleet=settings)
    assert observer.fleet is not None
    assert sorted(observer.fleet.targets) == sorted([v1.hex(), alone.hex()])

    async def main() -> tuple[set[bytes], int]:
        observer._hold({v1.hex()})
        held = set(observer._targets)
        observer._hold(set())
        await asyncio.sleep(0)
        return held, observer.stats.targets

    held, counted = asyncio.run(main())
    assert held == {v1, v2}  # both names watched, one torrent counted
    assert counted == 0
    assert observer.stats.leases_taken == observer.stats.leases_lost == 1
    engine.dispose()


def test_an_observer_cut_off_from_the_store_lets_go_before_its_leases_run_out(
    tmp_path: Path,
) -> None:
    from sqlalchemy.exc import OperationalError

    from atalaya.store import create_store_engine

    engine = create_store_engine(f"sqlite:///{tmp_path / 'a.db'}")
    settings = FleetSettings(host="test", pid=1, lease_seconds=5.0)
    config = ObserverConfig(use_dht=False)
    observer = BittorrentObserver(engine, TARGETS[:2], config, fleet=settings)
    fleet = observer.fleet
    assert fleet is not None
    ticks: list[datetime] = []

    def tick(now: datetime) -> set[str]:
        ticks.append(now)
        if len(ticks) == 1:
            return {TARGETS[0].hex}
        raise OperationalError("SELECT 1", {}, Exception("the store is gone"))

    fleet.join = lambda now: b"\x01" * 20  # type: ignore[method-assign]
    fleet.tick = tick  # type: ignore[method-assign]
    fleet.leave = lambda now: None  # type: ignore[method-assign]
    watched: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        run = asyncio.create_task(observer.run(stop=stop))
        for _ in range(300):
            await asyncio.sleep(0.1)
            watched.append(observer.stats.targets)
            if observer.stats.leases_lost:
                break
        stop.set()
        await asyncio.wait_for(run, 30)

    asyncio.run(main())
    assert 1 in watched  # it watched its lease while it was renewed
    assert observer.stats.leases_lost == 1 and observer.stats.targets == 0
    # Let go at the last failed tick before the lease would run out unrenewed.
    assert len(ticks) >= 2 and observer.stats.errors == len(ticks) - 1
    engine.dispose()
