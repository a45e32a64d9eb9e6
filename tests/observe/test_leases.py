"""Leases of watch targets (atalaya.observe.leases): the plan of a tick and the
node-id spread without a database, and the leases themselves on a real
PostgreSQL: two claimers never hold one target, an expired lease is taken
over, a release frees at once, a renewal by another observer is refused."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from atalaya.observe.leases import (
    FleetError,
    FleetMember,
    claim,
    ensure_targets,
    fair_share,
    fleet_status,
    plan_leases,
    release,
    renew,
    require_fleet_engine,
    spread_node_id,
)
from atalaya.store import begin_write, create_store_engine
from atalaya.store.tables import watch_lease

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NET = "bittorrent"
LEASE = 30.0
TARGETS = [f"{i:040x}" for i in range(1, 31)]

# -- no database ------------------------------------------------------------------


@given(st.integers(0, 10_000), st.integers(0, 50))
def test_fair_shares_cover_every_target(total: int, live: int) -> None:
    share = fair_share(total, live)
    assert share * max(live, 1) >= total
    assert share == 0 or (share - 1) * max(live, 1) < total


def test_plan_claims_up_to_the_share_and_releases_beyond_it() -> None:
    assert plan_leases([], 30, 3).claim == 10
    assert plan_leases(["a", "b"], 30, 3).claim == 8
    over = plan_leases(["d", "a", "c", "b"], 6, 3)
    assert over.claim == 0 and over.release == ("c", "d")
    assert plan_leases(["a"], 0, 2) == plan_leases(["a"], 0, 0)


@given(st.lists(st.binary(min_size=20, max_size=20), max_size=20), st.integers(0, 2**32))
def test_a_spread_node_id_lands_in_the_widest_gap(taken: list[bytes], seed: int) -> None:
    node_id = spread_node_id(taken, random.Random(seed))
    assert len(node_id) == 20
    points = sorted({int.from_bytes(t, "big") for t in taken})
    if not points:
        return
    ring = 1 << 160
    gaps = [(b - a) % ring or ring for a, b in zip(points, points[1:] + points[:1], strict=True)]
    widest = max(gaps)
    value = int.from_bytes(node_id, "big")
    # Its nearest neighbour is at least about a third of the widest gap away.
    nearest = min(min((value - p) % ring, (p - value) % ring) for p in points)
    assert nearest >= widest // 2 - widest // 16 - 1


def test_three_spread_ids_split_the_key_space() -> None:
    rng = random.Random(1)
    ids: list[bytes] = []
    for _ in range(3):
        ids.append(spread_node_id(ids, rng))
    tops = sorted(i[0] for i in ids)
    # Each in another part of the ring: no two within 1/8 of it.
    assert all(b - a >= 32 for a, b in itertools.pairwise(tops))


def test_sqlite_refuses_a_fleet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(FleetError, match="needs PostgreSQL"):
        require_fleet_engine(eng)
    eng.dispose()


# -- on PostgreSQL ----------------------------------------------------------------

pg = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def leased(engine: Engine) -> Iterator[Engine]:
    with begin_write(engine) as conn:
        ensure_targets(conn, NET, TARGETS)
        ensure_targets(conn, NET, TARGETS)  # twice: nothing changes
    yield engine


def holders(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(select(watch_lease.c.target, watch_lease.c.holder))
        return {t: h for t, h in rows}


def take(engine: Engine, who: str, limit: int, now: datetime = NOW) -> list[str]:
    with begin_write(engine) as conn:
        return claim(
            conn,
            holder=who,
            network=NET,
            targets=TARGETS,
            limit=limit,
            now=now,
            lease_seconds=LEASE,
        )


@pg
def test_claimers_in_open_transactions_skip_each_others_rows(leased: Engine) -> None:
    with begin_write(leased) as first:
        a = claim(
            first, holder="A", network=NET, targets=TARGETS, limit=20, now=NOW, lease_seconds=LEASE
        )
        # A has not committed: B neither waits for A's rows nor takes them.
        b = take(leased, "B", 20)
    assert len(a) == 20 and len(b) == 10
    assert not set(a) & set(b)
    assert holders(leased) == {**dict.fromkeys(a, "A"), **dict.fromkeys(b, "B")}


@pg
def test_many_claimers_at_once_never_share_a_target(leased: Engine) -> None:
    results: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claimer(who: str) -> None:
        barrier.wait(timeout=10)
        got: list[str] = []
        for _ in range(5):
            got += take(leased, who, 3)
        results[who] = got

    threads = [threading.Thread(target=claimer, args=(f"O{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    everything = [t for got in results.values() for t in got]
    assert len(everything) == len(set(everything)) == len(TARGETS)
    owner = holders(leased)
    for who, got in results.items():
        assert all(owner[t] == who for t in got)


@pg
def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew(leased: Engine) -> None:
    mine = take(leased, "A", 5)
    assert take(leased, "B", 30, NOW + timedelta(seconds=LEASE - 1)) == [
        t for t in TARGETS if t not in mine
    ]
    later = NOW + timedelta(seconds=LEASE + 1)
    taken = take(leased, "B", 5, later)
    assert sorted(taken) == sorted(mine)
    with begin_write(leased) as conn:
        assert renew(conn, holder="A", network=NET, now=later, lease_seconds=LEASE) == set()
    assert set(holders(leased).values()) == {"B"}


@pg
def test_renewal_by_another_observer_is_refused(leased: Engine) -> None:
    mine = take(leased, "A", 3)
    with begin_write(leased) as conn:
        assert (
            renew(conn, holder="B", network=NET, now=NOW, lease_seconds=LEASE, targets=mine)
            == set()
        )
        assert renew(
            conn,
            holder="A",
            network=NET,
            now=NOW + timedelta(seconds=20),
            lease_seconds=LEASE,
            targets=mine,
        ) == set(mine)
    # Renewed to NOW + 50 s: still A's at NOW + 45 s.
    assert take(leased, "B", 30, NOW + timedelta(seconds=45)) == TARGETS[3:]


@pg
def test_a_release_frees_the_leases_at_once(leased: Engine) -> None:
    mine = take(leased, "A", 4)
    with begin_write(leased) as conn:
        assert release(conn, holder="B", network=NET) == 0
        assert release(conn, holder="A", network=NET, targets=mine[:1]) == 1
        assert release(conn, holder="A", network=NET) == 3
    assert take(leased, "B", 4) == mine


@pg
def test_members_share_fairly_and_a_silent_one_is_taken_over(engine: Engine) -> None:
    def member(run_id: str) -> FleetMember:
        return FleetMember(engine, run_id, NET, TARGETS, "host", 1, LEASE, random.Random(run_id))

    a, b, c = member("a" * 36), member("b" * 36), member("c" * 36)
    ids = [m.join(NOW) for m in (a, b, c)]
    assert len(set(ids)) == 3
    # Three live observers: each claims its third.
    held_a = a.tick(NOW + timedelta(seconds=1))
    held_b = b.tick(NOW + timedelta(seconds=2))
    held_c = c.tick(NOW + timedelta(seconds=3))
    assert len(held_a) == len(held_b) == len(held_c) == 10
    assert held_a | held_b | held_c == set(TARGETS)
    # Every observer ticks three times a lease; c crashes after its tick at +13 s.
    every = LEASE / 3
    for step in range(1, 9):
        t = NOW + timedelta(seconds=3 + step * every)
        held_a, held_b = a.tick(t), b.tick(t)
        if step < 2:
            held_c = c.tick(t)
        assert not held_a & held_b
    # c's leases ran out at +43 s; by +83 s a and b hold everything, half each.
    assert held_a | held_b == set(TARGETS)
    assert len(held_a) == len(held_b) == 15
    status = fleet_status(engine, NET, t + timedelta(seconds=1))
    states = {o.run_id[0]: (o.state, o.leases) for o in status.observers}
    assert states == {"a": ("live", 15), "b": ("live", 15), "c": ("silent", 0)}
    assert status.targets == status.held == 30
    # a stops cleanly: every lease of its is free at once, b takes them.
    a.leave(t + timedelta(seconds=3))
    assert len(b.tick(t + timedelta(seconds=4))) == 30
