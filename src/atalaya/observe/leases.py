"""Watch targets shared by a fleet of observers through leases on one PostgreSQL.

Several observers, on several machines, watch one network's targets against
one store: no coordinator of our own, the database is the coordinator. Each
target has a `watch_lease` row naming the observer run that holds it and
until when. Every `renew_every(lease)` seconds an observer, in one
transaction: beats its heartbeat (`fleet_observer`), renews the leases it
still holds, works out its fair share (the targets over the observers whose
heartbeat is younger than a lease), releases what it holds beyond that share
(so a newcomer gets work) and claims what it lacks with `SELECT … FOR UPDATE
SKIP LOCKED` among free and expired leases, so that two claimers never take
one target and neither waits for the other. A clean stop releases everything
at once; a crashed observer's leases expire at most one lease after its last
renewal and are claimed at the others' next tick.

Times come from the observers' clocks, which a run already holds within
--max-clock-offset of a time source (a sighting's time is evidence): seconds
at most, against a lease of a minute.

SQLite has no row locks to skip (one writer locks the whole file): a fleet
needs PostgreSQL, and `require_fleet_engine` says so in one line.

The plan of a tick (`plan_leases`) and the spread of node ids over the DHT's
key space (`spread_node_id`) are pure functions; the rest is SQL.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, any_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import BindParameter

from atalaya.errors import AtalayaError
from atalaya.store import begin_write
from atalaya.store.tables import fleet_observer, sighting, watch_lease

DEFAULT_LEASE_SECONDS = 60.0
MIN_LEASE_SECONDS = 5.0
NODE_ID_BITS = 160
_KEY_SPACE = 1 << NODE_ID_BITS
# Rows per INSERT when the targets are first written.
_INSERT_CHUNK = 5_000


class FleetError(AtalayaError):
    """A fleet cannot run here (SQLite), or a lease operation was refused."""


def require_fleet_engine(engine: Engine) -> None:
    """FleetError unless `engine` is PostgreSQL: leases need row locks that SQLite lacks."""
    if engine.dialect.name != "postgresql":
        raise FleetError(
            "a fleet of observers needs PostgreSQL: watch targets are leased with "
            "SELECT … FOR UPDATE SKIP LOCKED, which SQLite does not have (it is the "
            "store for one machine: run without --fleet, or use --db postgresql://…)"
        )


def renew_every(lease_seconds: float) -> float:
    """Seconds between ticks: three renewals per lease, so one late tick loses nothing."""
    return lease_seconds / 3


# -- the plan of a tick (no SQL) -----------------------------------------------------


def fair_share(total: int, live: int) -> int:
    """Targets each of `live` observers should hold out of `total` (rounded up)."""
    if total <= 0:
        return 0
    return math.ceil(total / max(live, 1))


@dataclass(frozen=True)
class LeasePlan:
    """What one tick does once it knows what it holds: claim `claim` more, or release some."""

    claim: int
    release: tuple[str, ...] = ()


def plan_leases(held: Iterable[str], total: int, live: int) -> LeasePlan:
    """Claim up to the fair share, or release what is beyond it (the highest targets).

    Which ones are released is fixed (the keys sorted), so that a tick that
    runs twice releases the same, and the lowest stay where their peers
    were already found.
    """
    kept = sorted(set(held))
    share = fair_share(total, live)
    if len(kept) > share:
        return LeasePlan(claim=0, release=tuple(kept[share:]))
    return LeasePlan(claim=share - len(kept))


def spread_node_id(taken: Iterable[bytes], rng: random.Random) -> bytes:
    """A DHT node id in the middle of the widest gap the fleet's ids leave on the ring.

    Each observer then sits in another part of the key space: the DHT nodes
    near one part learn of it, and lookups start from different places. A
    little randomness in the low bits keeps two observers that pick at once
    from taking the very same id.
    """
    points = sorted({int.from_bytes(t, "big") for t in taken if len(t) == NODE_ID_BITS // 8})
    if not points:
        return rng.getrandbits(NODE_ID_BITS).to_bytes(NODE_ID_BITS // 8, "big")
    best_start, best_gap = points[-1], points[0] + _KEY_SPACE - points[-1]
    for low, high in itertools.pairwise(points):
        if high - low > best_gap:
            best_start, best_gap = low, high - low
    jitter = rng.randrange(max(1, best_gap // 16))
    value = (best_start + best_gap // 2 + jitter) % _KEY_SPACE
    return value.to_bytes(NODE_ID_BITS // 8, "big")


# -- SQL --------------------------------------------------------------------------


def _targets_param(targets: Sequence[str]) -> BindParameter[Any]:
    # One array parameter, not one parameter per target: a national watch
    # list has more targets than a statement may carry parameters.
    value: Any = list(targets)
    return bindparam("universe", value, type_=postgresql.ARRAY(watch_lease.c.target.type))


def ensure_targets(conn: Connection, network: str, targets: Sequence[str]) -> None:
    """A lease row, free, for every target of `network` that has none yet."""
    for start in range(0, len(targets), _INSERT_CHUNK):
        chunk = targets[start : start + _INSERT_CHUNK]
        stmt = postgresql.insert(watch_lease).on_conflict_do_nothing()
        conn.execute(stmt, [{"network": network, "target": t} for t in chunk])


def claim(
    conn: Connection,
    *,
    holder: str,
    network: str,
    targets: Sequence[str],
    limit: int,
    now: datetime,
    lease_seconds: float,
) -> list[str]:
    """Take up to `limit` free or expired leases among `targets`; the ones taken.

    Rows another transaction has locked (a claimer, a renewer) are skipped,
    not waited for: two claimers at once take disjoint sets.
    """
    if limit <= 0 or not targets:
        return []
    lease = watch_lease.c
    free = (
        select(lease.target)
        .where(
            lease.network == network,
            lease.target == any_(_targets_param(targets)),
            or_(lease.holder.is_(None), lease.expires_at < now),
        )
        .order_by(lease.target)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    chosen = [str(t) for t in conn.execute(free).scalars()]
    if not chosen:
        return []
    conn.execute(
        update(watch_lease)
        .where(lease.network == network, lease.target.in_(chosen))
        .values(
            holder=holder,
            expires_at=now + timedelta(seconds=lease_seconds),
            claimed_at=now,
        )
    )
    return chosen


def renew(
    conn: Connection,
    *,
    holder: str,
    network: str,
    now: datetime,
    lease_seconds: float,
    targets: Sequence[str] | None = None,
) -> set[str]:
    """Extend the leases `holder` still holds (of `targets`, or all); the ones renewed.

    A lease another observer has taken since is not renewed: the row names
    its new holder, and the UPDATE, which waits for a claimer's lock, reads
    that name once the claimer commits.
    """
    lease = watch_lease.c
    stmt = (
        update(watch_lease)
        .where(lease.network == network, lease.holder == holder)
        .values(expires_at=now + timedelta(seconds=lease_seconds))
        .returning(lease.target)
    )
    if targets is not None:
        stmt = stmt.where(lease.target.in_(list(targets)))
    return {str(t) for t in conn.execute(stmt).scalars()}


def release(
    conn: Connection, *, holder: str, network: str, targets: Sequence[str] | None = None
) -> int:
    """Give up `holder`'s leases (of `targets`, or all); how many were given up."""
    lease = watch_lease.c
    stmt = (
        update(watch_lease)
        .where(lease.network == network, lease.holder == holder)
        .values(holder=None, expires_at=None, claimed_at=None)
    )
    if targets is not None:
        stmt = stmt.where(lease.target.in_(list(targets)))
    return int(conn.execute(stmt).rowcount)


def live_observers(
    conn: Connection, network: str, now: datetime, lease_seconds: float
) -> list[tuple[str, str | None]]:
    """(run id, node id hex) of the observers of `network` whose heartbeat is recent."""
    fo = fleet_observer.c
    rows = conn.execute(
        select(fo.run_id, fo.node_id).where(
            fo.network == network,
            fo.stopped_at.is_(None),
            fo.heartbeat_at >= now - timedelta(seconds=lease_seconds),
        )
    )
    return [(str(r), n) for r, n in rows]


@dataclass
class FleetMember:
    """One observer run in a fleet: its registration, its ticks, its clean leave."""

    engine: Engine
    run_id: str
    network: str
    targets: Sequence[str]  # every target this observer could watch, lowercase hex
    host: str
    pid: int
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    rng: random.Random = field(default_factory=random.Random)
    held: set[str] = field(default_factory=set)

    def join(self, now: datetime) -> bytes:
        """Register, write the lease rows, and take a node id; the node id."""
        require_fleet_engine(self.engine)
        with begin_write(self.engine) as conn:
            ensure_targets(conn, self.network, self.targets)
            taken = [
                bytes.fromhex(n)
                for _, n in live_observers(conn, self.network, now, self.lease_seconds)
                if n
            ]
            node_id = spread_node_id(taken, self.rng)
            conn.execute(
                postgresql.insert(fleet_observer).values(
                    run_id=self.run_id,
                    network=self.network,
                    host=self.host[:255],
                    pid=self.pid,
                    node_id=node_id.hex(),
                    lease_seconds=self.lease_seconds,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        return node_id

    def tick(self, now: datetime) -> set[str]:
        """Heartbeat, renew, release beyond the fair share, claim up to it; what is held."""
        with begin_write(self.engine) as conn:
            conn.execute(
                update(fleet_observer)
                .where(fleet_observer.c.run_id == self.run_id)
                .values(heartbeat_at=now)
            )
            held = renew(
                conn,
                holder=self.run_id,
                network=self.network,
                now=now,
                lease_seconds=self.lease_seconds,
            )
            live = len(live_observers(conn, self.network, now, self.lease_seconds))
            plan = plan_leases(held, len(self.targets), live)
            if plan.release:
                release(conn, holder=self.run_id, network=self.network, targets=plan.release)
                held -= set(plan.release)
            held |= set(
                claim(
                    conn,
                    holder=self.run_id,
                    network=self.network,
                    targets=self.targets,
                    limit=plan.claim,
                    now=now,
                    lease_seconds=self.lease_seconds,
                )
            )
        self.held = held
        return set(held)

    def leave(self, now: datetime) -> None:
        """A clean stop: every lease released at once, the run marked stopped."""
        with begin_write(self.engine) as conn:
            release(conn, holder=self.run_id, network=self.network)
            conn.execute(
                update(fleet_observer)
                .where(fleet_observer.c.run_id == self.run_id)
                .values(stopped_at=now, heartbeat_at=now)
            )
        self.held = set()


# -- what `atalaya fleet status` shows ----------------------------------------------


@dataclass(frozen=True)
class ObserverStatus:
    run_id: str
    host: str
    pid: int
    node_id: str | None
    state: str  # live | silent (no heartbeat for a lease) | stopped
    started_at: datetime
    heartbeat_at: datetime
    leases: int  # leases held and not expired
    sightings_last_hour: int


@dataclass(frozen=True)
class FleetStatus:
    network: str
    targets: int  # lease rows
    held: int  # leases held and not expired
    observers: list[ObserverStatus]


def fleet_status(
    engine: Engine, network: str, now: datetime, *, since: timedelta = timedelta(days=1)
) -> FleetStatus:
    """Who holds what: the observers heard from since `now - since`, newest first."""
    require_fleet_engine(engine)
    fo, lease = fleet_observer.c, watch_lease.c
    hour_ago = now - timedelta(hours=1)
    held_by = (
        select(lease.holder, func.count().label("n"))
        .where(lease.network == network, lease.holder.is_not(None), lease.expires_at >= now)
        .group_by(lease.holder)
        .subquery()
    )
    seen = (
        select(sighting.c.run_id, func.count().label("n"))
        .where(sighting.c.network == network, sighting.c.seen_at >= hour_ago)
        .group_by(sighting.c.run_id)
        .subquery()
    )
    query = (
        select(
            fo.run_id,
            fo.host,
            fo.pid,
            fo.node_id,
            fo.lease_seconds,
            fo.started_at,
            fo.heartbeat_at,
            fo.stopped_at,
            func.coalesce(held_by.c.n, 0),
            func.coalesce(seen.c.n, 0),
        )
        .outerjoin(held_by, held_by.c.holder == fo.run_id)
        .outerjoin(seen, seen.c.run_id == fo.run_id)
        .where(fo.network == network, fo.heartbeat_at >= now - since)
        .order_by(fo.started_at.desc(), fo.run_id)
    )
    totals = select(
        func.count(),
        func.count().filter(and_(lease.holder.is_not(None), lease.expires_at >= now)),
    ).where(lease.network == network)
    observers = []
    with engine.connect() as conn:
        targets, held = conn.execute(totals).one()
        for row in conn.execute(query):
            run_id, host, pid, node_id, lease_s, started, beat, stopped, leases, seen_n = row
            if stopped is not None:
                state = "stopped"
            elif beat < now - timedelta(seconds=lease_s):
                state = "silent"
            else:
                state = "live"
            observers.append(
                ObserverStatus(
                    run_id, host, pid, node_id, state, started, beat, int(leases), int(seen_n)
                )
            )
    return FleetStatus(network, int(targets), int(held), observers)
