"""Building leads from sightings: all at once, or only what new sightings touch.

A full build scans every sighting, address by address, into presences
(`presence.scan`), links presences (`linking`), takes connected groups as
leads and scores them (`lead.assemble`).

An incremental build takes the sightings added since the last build and

1. rescans, for each address (address and port where shared) they touch,
   the stretch bounded by silences longer than the window that they fall
   in: presences outside it cannot change;
2. re-links the changed presences and those of the leads they belonged to,
   against everything else in the store (links are pairwise, so the links
   among untouched leads still hold), and joins whole untouched leads where
   a new link reaches one;
3. rescores the new leads, the leads holding an item whose rarity crossed
   the threshold, and the recency of recent leads when the day changed.

Both end in the same tables with the same values (tests check this on
random sighting streams split at random points), except `scored_at`, which
says when each lead's score was last computed.

Every build, full or incremental, then records what it changed compared
with the leads it found (`atalaya.leads.lineage` decides, and
`atalaya.leads.history` stores): merges, splits and jurisdiction changes,
under a numbered build. That history is not a lead table: a rebuild keeps
it and adds to it only what it groups differently (on the same sightings,
settings and code, nothing), so incremental builds followed by a rebuild
leave the history the incremental builds wrote.

Sightings written while a build runs are not lost: on PostgreSQL an id can
become visible after a higher one, so ids missing just below the highest
are remembered and looked for again by the next builds (for 10 minutes).
"""

from __future__ import annotations

import bisect
import json
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    distinct,
    func,
    or_,
    select,
    text,
    update,
)

from atalaya.enrich.prefixes import prefix_of
from atalaya.errors import AtalayaError
from atalaya.leads.addresses import exact_addresses
from atalaya.leads.config import GroupingConfig, LeadsConfig
from atalaya.leads.days import DayCounts, day_counts
from atalaya.leads.facts import FactsSource, IpFacts, complete
from atalaya.leads.history import orphans, reattach, record_build
from atalaya.leads.lead import LeadRecord, assemble
from atalaya.leads.lineage import (
    MERGE,
    SPLIT,
    Change,
    PlaceChange,
    Stretch,
    changes,
    locate,
    place_changes,
)
from atalaya.leads.linking import Link, Node, all_links, block_of, links_between, prefix
from atalaya.leads.presence import (
    US_PER_DAY,
    ItemKey,
    Presence,
    SightingRow,
    by_address,
    keyed,
    presence_address,
    scan,
    scan_address,
)
from atalaya.leads.scoring import FactorScore, recency_days, scaled, total
from atalaya.leads.storage import (
    bulk_insert,
    chunks,
    delete_leads,
    from_us,
    item_conditions,
    load_presences,
    read_state,
    sighting_query,
    sighting_rows,
    spots,
    stored_holders,
    stored_places,
    to_us,
    write_leads,
    write_links,
    write_presences,
    write_state,
)
from atalaya.store import begin_write
from atalaya.store.tables import (
    lead,
    lead_factor,
    lead_item,
    lead_link,
    lead_presence,
    lead_presence_day,
    lead_presence_item,
    lead_presence_peer,
    lead_presence_week,
    lead_province,
    lead_state,
    sighting,
)

# Bump when grouping or scoring code changes what a build produces.
# 2: IPv6 presences by /64; a peer id alone no longer links across provinces or networks.
# 3: sightings per presence and day (lead_presence_day) for the charts.
ALGORITHM = "3"
# Ids missing this close below the highest may still be in flight.
PENDING_LOOKBACK = 10_000
PENDING_TTL_US = 10 * 60 * 1_000_000
# When more than this share of addresses changed facts, rebuilding is cheaper.
REBUILD_SHARE = 0.5
# Sort key of sighting rows: (at, id).
_AT_ID = itemgetter(3, 0)
_FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
_LEAD_TABLES = (
    lead_link,
    lead_presence_item,
    lead_presence_peer,
    lead_presence_day,
    lead_presence_week,
    lead_presence,
    lead_factor,
    lead_province,
    lead,
    lead_item,
    lead_state,
)


@dataclass
class BuildReport:
    mode: str  # "full" or "incremental"
    reason: str = ""
    sightings: int = 0  # sightings read as new
    last_sighting_id: int = 0
    pending_ids: int = 0
    presences_written: int = 0
    presences_removed: int = 0
    leads_written: int = 0
    leads_removed: int = 0
    links_written: int = 0
    leads_rescored: int = 0
    leads_total: int = 0
    # What the build recorded in the leads' history (see atalaya.leads.history).
    build_id: int = 0
    merges: int = 0
    splits: int = 0
    jurisdiction_changes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Stage = Callable[[str], None]


@dataclass
class _Trail:
    """What a build changed in the leads it found."""

    lineage: list[Change] = field(default_factory=list)
    places: list[PlaceChange] = field(default_factory=list)


def build_leads(
    engine: Engine,
    facts: FactsSource,
    config: LeadsConfig,
    *,
    now: datetime,
    rebuild: bool = False,
    on_stage: Stage | None = None,
) -> BuildReport:
    """Bring the lead tables up to date with the sightings, in one transaction."""
    started = time.perf_counter()
    stage = on_stage or (lambda _s: None)
    now_us = to_us(now)
    with begin_write(engine) as conn:
        _lock(conn)
        state = read_state(conn)
        reason = _full_build_reason(state, config, rebuild)
        report: BuildReport
        trail = _Trail()
        if reason is None:
            report = _incremental(conn, facts, config, now_us, state, stage, trail)
            if report.mode == "full":
                reason = report.reason
        if reason is not None:
            trail = _Trail()
            report = _full(conn, facts, config, now_us, stage, trail)
            report.reason = reason
        stage("recording lineage")
        merged = {c.old_id for c in trail.lineage if c.kind == MERGE}
        trail.lineage.extend(reattach(conn, orphans(conn, merged)))
        report.build_id = record_build(
            conn,
            at=now,
            mode=report.mode,
            reason=report.reason,
            algorithm=ALGORITHM,
            last_sighting_id=report.last_sighting_id,
            lineage=trail.lineage,
            places=trail.places,
        )
        report.merges = sum(c.kind == MERGE for c in trail.lineage)
        report.splits = sum(c.kind == SPLIT for c in trail.lineage)
        report.jurisdiction_changes = len(trail.places)
        report.leads_total = conn.scalar(select(func.count()).select_from(lead)) or 0
    report.seconds = time.perf_counter() - started
    return report


def _lock(conn: Connection) -> None:
    """One build at a time (the second waits for the first), with room to sort."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7461656164)"))
        # A full build sorts every sighting by address: in memory where it fits.
        conn.execute(text("SET LOCAL work_mem = '256MB'"))
    # On SQLite, `begin_write` took the write lock when the transaction began.


def _full_build_reason(state: Mapping[str, str], config: LeadsConfig, rebuild: bool) -> str | None:
    if rebuild:
        return "asked (--rebuild)"
    if "last_sighting_id" not in state:
        return "first build"
    if state.get("algorithm") != ALGORITHM:
        return "the grouping code changed"
    if state.get("grouping") != config.grouping.digest():
        raise AtalayaError(
            "the grouping settings changed since the last build: "
            "run 'atalaya leads build --rebuild' to regroup every sighting"
        )
    return None


def _facts_for(source: FactsSource, ips: Collection[str]) -> dict[str, IpFacts]:
    found = source.lookup(ips)
    return {ip: complete(ip, found.get(ip)) for ip in ips}


def _node(p: Presence, facts: IpFacts, block: str | None) -> Node:
    return Node(
        id=p.id,
        ip=p.ip,
        port=p.port,
        first_at=p.first_at,
        last_at=p.last_at,
        items=frozenset(p.items),
        peer_ids=frozenset(p.peer_ids),
        block=block,
        client=p.client,
        province=facts.province_code,
        asn=facts.asn,
        isp=facts.isp,
    )


def _stretch(p: Presence, lead_id: int) -> Stretch:
    return Stretch(p.ip, p.port, p.first_at, p.last_at, lead_id)


def _places(presences: Iterable[tuple[Presence, IpFacts]]) -> set[str]:
    return {c for _, f in presences if (c := f.province_code) is not None}


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller root wins, so roots are lead ids once all are joined.
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo


def _missing_ids(conn: Connection, after: int, upto: int) -> list[int]:
    lo = max(after, upto - PENDING_LOOKBACK)
    if upto <= lo:
        return []
    present = set(
        conn.scalars(select(sighting.c.id).where(sighting.c.id > lo, sighting.c.id <= upto))
    )
    return [i for i in range(lo + 1, upto + 1) if i not in present]


def _state(
    config: LeadsConfig, facts: FactsSource, last_id: int, pending: Mapping[int, int], now_us: int
) -> dict[str, str]:
    return {
        "algorithm": ALGORITHM,
        "grouping": config.grouping.digest(),
        "weights": config.scoring.version(),
        "facts": facts.fingerprint(),
        "last_sighting_id": str(last_id),
        "pending": json.dumps({str(k): v for k, v in sorted(pending.items())}),
        "now": str(now_us),
    }


def _item_leads(records: Iterable[tuple[int, Iterable[ItemKey]]]) -> dict[ItemKey, int]:
    counts: dict[ItemKey, int] = defaultdict(int)
    for _lead_id, items in records:
        for item in set(items):
            counts[item] += 1
    return dict(counts)


# --- full build ------------------------------------------------------------------


def _clear(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        names = ", ".join(t.name for t in _LEAD_TABLES)
        conn.execute(text(f"TRUNCATE {names}"))
    else:
        for table in _LEAD_TABLES:
            conn.execute(delete(table))


def _full(
    conn: Connection,
    source: FactsSource,
    config: LeadsConfig,
    now_us: int,
    stage: Stage,
    trail: _Trail,
) -> BuildReport:
    grouping = config.grouping
    report = BuildReport(mode="full")
    # The leads found, to tell what became of them (history outlives a rebuild).
    old_places = stored_places(conn)
    max_id = conn.scalar(select(func.max(sighting.c.id))) or 0
    pending = dict.fromkeys(_missing_ids(conn, 0, max_id), now_us)
    stage("looking up addresses")
    ips = list(conn.scalars(select(sighting.c.ip).where(sighting.c.id <= max_id).distinct()))
    facts = _facts_for(source, {presence_address(ip, grouping) for ip in ips})

    stage("scanning sightings")
    query = (
        sighting_query(conn)
        .where(sighting.c.id <= max_id)
        .order_by(sighting.c.ip, sighting.c.seen_at, sighting.c.id)
    )
    if pending:
        query = query.where(sighting.c.id.not_in(list(pending)))
    presences: list[Presence] = []
    days: DayCounts = {}
    for ip, rows in by_address(sighting_rows(conn, query), grouping):
        rows.sort(key=_AT_ID)
        report.sightings += len(rows)
        found = list(scan_address(rows, grouping, shared=facts[ip].shared))
        days.update(day_counts(rows, found))
        presences.extend(found)

    stage("linking presences")
    frequency: dict[ItemKey, int] = defaultdict(int)
    for p in presences:
        for item in p.items:
            frequency[item] += 1
    # Rarest first: popular items stay out of prefixes, so fewer candidates.
    ranks = {h: i for i, h in enumerate(sorted(frequency, key=lambda h: (frequency[h], h)))}
    by_id = {p.id: p for p in presences}
    blocks = {p.id: block_of(facts[p.ip], grouping) for p in presences}
    nodes = {p.id: _node(p, facts[p.ip], blocks[p.id]) for p in presences}
    links = list(all_links(nodes, ranks, grouping))
    uf = _UnionFind()
    for p in presences:
        uf.find(p.id)
    for link in links:
        uf.union(link.a, link.b)
    members: dict[int, list[Presence]] = defaultdict(list)
    for p in presences:
        members[uf.find(p.id)].append(p)

    stage("scoring leads")
    item_leads = _item_leads(
        (lead_id, (h for p in ps for h in p.items)) for lead_id, ps in members.items()
    )
    presence_facts = {p.id: facts[p.ip] for p in presences}
    records = [
        assemble(ps, presence_facts, item_leads, now_us, config.scoring) for ps in members.values()
    ]
    new_ids = set(members)
    old_holder: dict[int, int] = {}
    if old_places:
        stage("tracing lineage")
        # Where each new lead's first sighting was, before the old leads go.
        old_holder = stored_holders(conn, new_ids - old_places.keys())

    stage("clearing leads")
    _clear(conn)
    stage("writing leads")
    report.presences_written = write_presences(
        conn,
        (
            (
                p,
                uf.find(p.id),
                facts[p.ip],
                blocks[p.id],
                set(prefix(p.items, ranks, grouping)) if blocks[p.id] else set(),
            )
            for p in sorted(by_id.values(), key=lambda p: p.id)
        ),
        days=days,
    )
    report.links_written = write_links(conn, ((k, uf.find(k.a)) for k in links))
    report.leads_written = write_leads(conn, records, from_us(now_us))
    bulk_insert(
        conn,
        lead_item,
        ("network", "kind", "value", "rank", "leads"),
        ((*h, r, item_leads[h]) for h, r in ranks.items()),
    )
    report.last_sighting_id = max_id
    report.pending_ids = len(pending)
    write_state(conn, _state(config, source, max_id, pending, now_us))
    if old_places:
        # Where each vanished lead's first sighting is now.
        gone = old_places.keys() - new_ids
        new_holder = {old: uf.find(old) for old in gone if old in by_id}
        where = spots(conn, gone - new_holder.keys())
        near = {s.ip for s in where}
        new_holder.update(
            locate(where, (_stretch(p, uf.find(p.id)) for p in presences if p.ip in near))
        )
        trail.lineage = changes(old_places.keys(), new_ids, old_holder, new_holder)
        trail.places = place_changes(
            old_places, {rec.id: set(rec.provinces) for rec in records if rec.id in old_places}
        )
    return report


# --- incremental build -------------------------------------------------------------


@dataclass(frozen=True)
class _Range:
    ip: str
    port: int | None  # None: every port of the address
    lo: int
    hi: int


def _incremental(
    conn: Connection,
    source: FactsSource,
    config: LeadsConfig,
    now_us: int,
    state: Mapping[str, str],
    stage: Stage,
    trail: _Trail,
) -> BuildReport:
    grouping = config.grouping
    report = BuildReport(mode="incremental")
    last_id = int(state["last_sighting_id"])
    old_pending = {int(k): int(v) for k, v in json.loads(state.get("pending", "{}")).items()}
    max_id = max(conn.scalar(select(func.max(sighting.c.id))) or 0, last_id)

    stage("reading new sightings")
    new_rows = list(
        keyed(
            sighting_rows(
                conn, sighting_query(conn).where(sighting.c.id > last_id, sighting.c.id <= max_id)
            ),
            grouping,
        )
    )
    retry = [i for i, seen in old_pending.items() if now_us - seen <= PENDING_TTL_US]
    for part in chunks(sorted(retry)):
        query = sighting_query(conn).where(sighting.c.id.in_(part))
        new_rows.extend(keyed(sighting_rows(conn, query), grouping))
    found = {r.id for r in new_rows}
    pending = {i: old_pending[i] for i in retry if i not in found}
    for i in _missing_ids(conn, last_id, max_id):
        if i not in found:
            pending.setdefault(i, now_us)
    report.sightings = len(new_rows)
    report.last_sighting_id = max_id
    report.pending_ids = len(pending)

    # Addresses whose facts changed since they were grouped are regrouped whole.
    whole: set[str] = set()
    if state.get("facts") != source.fingerprint():
        stage("comparing address facts")
        whole = _changed_addresses(conn, source, _candidates(source, state.get("facts"), grouping))
        known = conn.scalar(select(func.count(distinct(lead_presence.c.ip)))) or 0
        if known and len(whole) > REBUILD_SHARE * known:
            report.mode = "full"
            report.reason = f"facts changed for {len(whole)} of {known} addresses"
            return report

    facts = _facts_for(source, {r.ip for r in new_rows} | whole)
    ranges = _ranges(conn, new_rows, facts, whole, grouping.window_days)

    stage("rescanning touched addresses")
    rescanned, removed, days = _rescan(conn, ranges, facts, max_id, pending, config)
    report.presences_removed = len(removed)
    report.presences_written = len(rescanned)

    changed = _relink(conn, rescanned, removed, days, config, now_us, report, stage, trail)
    stage("rescoring")
    rescore = changed
    old_now = int(state.get("now", now_us))
    if state.get("weights") != config.scoring.version():
        rescore_all = set(conn.scalars(select(lead.c.id))) - changed
        report.leads_rescored += _rescore(conn, rescore_all, config, now_us)
    elif now_us // US_PER_DAY != old_now // US_PER_DAY:
        report.leads_rescored += _refresh_recency(conn, config, old_now, now_us, rescore)
    write_state(conn, _state(config, source, max_id, pending, now_us))
    return report


def _candidates(
    source: FactsSource, fingerprint: str | None, grouping: GroupingConfig
) -> set[str] | None:
    """The presence addresses whose facts may have changed since the last build.

    None: the source cannot tell, so every stored presence is compared. An
    exact IPv6 address stands for its prefix's presences (a prefix takes the
    facts of its lowest enriched address).
    """
    if fingerprint is None:
        return None
    changed = source.changed_since(fingerprint)
    if changed is None:
        return None
    length = grouping.ipv6_prefix_length
    return {prefix_of(ip, length) if ":" in ip else ip for ip in changed}


def _changed_addresses(
    conn: Connection, source: FactsSource, candidates: set[str] | None = None
) -> set[str]:
    """Presence addresses whose stored facts differ from the source's now.

    Only `candidates` are read when given: at ten million sightings reading
    every presence's facts at each build cost more than the build itself.
    """
    cols = (
        lead_presence.c.ip,
        lead_presence.c.country,
        lead_presence.c.province_code,
        lead_presence.c.province_name,
        lead_presence.c.municipality_code,
        lead_presence.c.municipality_name,
        lead_presence.c.lat,
        lead_presence.c.lon,
        lead_presence.c.accuracy_km,
        lead_presence.c.asn,
        lead_presence.c.isp,
        lead_presence.c.time_zone,
        lead_presence.c.flags,
        lead_presence.c.facts_version,
    )
    stored: dict[str, set[IpFacts]] = defaultdict(set)
    if candidates is None:
        rows: Iterable[Any] = conn.execute(select(*cols))
    else:
        rows = (
            r
            for part in chunks(sorted(candidates))
            for r in conn.execute(select(*cols).where(lead_presence.c.ip.in_(part)))
        )
    for r in rows:
        stored[r.ip].add(
            IpFacts(
                country=r.country,
                province_code=r.province_code,
                province_name=r.province_name,
                municipality_code=r.municipality_code,
                municipality_name=r.municipality_name,
                lat=r.lat,
                lon=r.lon,
                accuracy_km=r.accuracy_km,
                asn=r.asn,
                isp=r.isp,
                time_zone=r.time_zone,
                flags=frozenset(r.flags),
                version=r.facts_version,
            )
        )
    current = _facts_for(source, list(stored))
    return {ip for ip, seen in stored.items() if seen != {current[ip]}}


def _ranges(
    conn: Connection,
    rows: Sequence[SightingRow],
    facts: Mapping[str, IpFacts],
    whole: Collection[str],
    window_days: float,
) -> list[_Range]:
    """The stretches of each touched key to rescan, bounded by long silences."""
    window = round(window_days * US_PER_DAY)
    times: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for r in rows:
        if r.ip not in whole:
            times[(r.ip, r.port if facts[r.ip].shared else None)].append(r.at)
    existing: dict[tuple[str, int | None], list[tuple[int, int, str]]] = defaultdict(list)
    ips = sorted({ip for ip, _ in times})
    cols = (
        lead_presence.c.ip,
        lead_presence.c.port,
        lead_presence.c.first_seen,
        lead_presence.c.last_seen,
        lead_presence.c.opened_by,
    )
    for part in chunks(ips):
        for ip, port, first, last, opened in conn.execute(
            select(*cols).where(lead_presence.c.ip.in_(part))
        ):
            existing[(ip, port)].append((to_us(first), to_us(last), opened))
    out = [_Range(ip, None, to_us(_FAR_PAST), to_us(_FAR_FUTURE)) for ip in sorted(whole)]
    for key, ts in times.items():
        ts.sort()
        lo, hi = ts[0], ts[-1]
        for start, end in _segments(existing.get(key, [])):
            i = bisect.bisect_left(ts, start - window)
            if i < len(ts) and ts[i] <= end + window:
                lo, hi = min(lo, start), max(hi, end)
        out.append(_Range(key[0], key[1], lo, hi))
    return out


def _segments(presences: list[tuple[int, int, str]]) -> list[tuple[int, int]]:
    """Spans of presences between silences longer than the window."""
    spans: list[tuple[int, int]] = []
    for first, last, opened in sorted(presences):
        if opened == "device_change" and spans:
            spans[-1] = (spans[-1][0], max(spans[-1][1], last))
        else:
            spans.append((first, last))
    return spans


def _rescan(
    conn: Connection,
    ranges: Sequence[_Range],
    facts: Mapping[str, IpFacts],
    max_id: int,
    pending: Mapping[int, int],
    config: LeadsConfig,
) -> tuple[list[tuple[Presence, IpFacts]], dict[int, tuple[Presence, IpFacts, int]], DayCounts]:
    """New presences of the ranges (and their sightings per day), and the
    stored ones they replace."""
    if not ranges:
        return [], {}, {}
    tmp = Table(
        "lead_scan_range",
        MetaData(),
        Column("ip", String(45), nullable=False),  # an exact address of the key
        Column("key", String(45), nullable=False),  # the presence address
        Column("port", Integer, nullable=True),
        Column("lo", DateTime(timezone=True), nullable=False),
        Column("hi", DateTime(timezone=True), nullable=False),
        prefixes=["TEMPORARY"],
    )
    tmp.create(conn)
    try:
        # An IPv6 prefix's ranges name the exact addresses seen in them.
        spans = [(r.ip, from_us(r.lo), from_us(r.hi)) for r in ranges]
        conn.execute(
            tmp.insert(),
            [
                {"ip": ip, "key": r.ip, "port": r.port, "lo": from_us(r.lo), "hi": from_us(r.hi)}
                for r, exact in zip(ranges, exact_addresses(conn, spans), strict=True)
                for ip in sorted(exact | {r.ip})
            ],
        )
        query = sighting_query(conn).join(
            tmp,
            and_(
                tmp.c.ip == sighting.c.ip,
                sighting.c.seen_at >= tmp.c.lo,
                sighting.c.seen_at <= tmp.c.hi,
                or_(tmp.c.port.is_(None), tmp.c.port == sighting.c.port),
            ),
        )
        query = query.where(sighting.c.id <= max_id)
        if pending:
            query = query.where(sighting.c.id.not_in(list(pending)))
        rows = list(keyed(sighting_rows(conn, query), config.grouping))
        old = (
            select(lead_presence.c.id)
            .distinct()
            .join(
                tmp,
                and_(
                    tmp.c.key == lead_presence.c.ip,
                    lead_presence.c.first_seen >= tmp.c.lo,
                    lead_presence.c.last_seen <= tmp.c.hi,
                    or_(tmp.c.port.is_(None), tmp.c.port == lead_presence.c.port),
                ),
            )
        )
        removed_ids = list(conn.scalars(old))
    finally:
        tmp.drop(conn)
    removed = load_presences(conn, ids=removed_ids)
    by_range: dict[tuple[str, int | None], list[SightingRow]] = defaultdict(list)
    whole = {r.ip for r in ranges if r.port is None}
    for row in rows:
        key = (row.ip, None if row.ip in whole else row.port)
        by_range[key].append(row)
    out: list[tuple[Presence, IpFacts]] = []
    days: DayCounts = {}
    for (ip, port), group in sorted(by_range.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        group.sort(key=_AT_ID)
        found = list(
            scan_address(group, config.grouping, shared=facts[ip].shared)
            if port is None
            else scan(group, config.grouping, by_port=True)
        )
        days.update(day_counts(group, found))
        out.extend((p, facts[ip]) for p in found)
    return out, removed, days


def _relink(
    conn: Connection,
    rescanned: list[tuple[Presence, IpFacts]],
    removed: Mapping[int, tuple[Presence, IpFacts, int]],
    days: DayCounts,
    config: LeadsConfig,
    now_us: int,
    report: BuildReport,
    stage: Stage,
    trail: _Trail,
) -> set[int]:
    """Regroup what changed into leads; returns the ids of the leads written."""
    grouping = config.grouping
    if not rescanned and not removed:
        return set()
    stage("relinking")
    dirty = {lead_id for _, _, lead_id in removed.values()}
    survivors = {
        pid: value
        for part in chunks(sorted(dirty))
        for pid, value in load_presences(conn, lead_presence.c.lead_id.in_(part)).items()
        if pid not in removed
    }
    # The items of every lead this build removes, to keep lead counts per item.
    old_items: dict[int, set[ItemKey]] = defaultdict(set)
    for p, _, lead_id in [*removed.values(), *survivors.values()]:
        old_items[lead_id].update(p.items)
    # Out with the replaced presences (items, peers and links cascade) and
    # with every link inside the dirty leads: they are found again below.
    for part in chunks(sorted(removed)):
        conn.execute(delete(lead_presence).where(lead_presence.c.id.in_(part)))
    for part in chunks(sorted(dirty)):
        conn.execute(delete(lead_link).where(lead_link.c.lead_id.in_(part)))

    # D: the presences to regroup, with their facts.
    group: dict[int, tuple[Presence, IpFacts]] = {p.id: (p, f) for p, f in rescanned}
    group.update({pid: (p, f) for pid, (p, f, _) in survivors.items()})
    ranks = _ranks(conn, {h for p, _ in group.values() for h in p.items})
    blocks = {pid: block_of(f, grouping) for pid, (_, f) in group.items()}
    nodes = {pid: _node(p, f, blocks[pid]) for pid, (p, f) in group.items()}
    links = list(all_links(nodes, ranks, grouping))

    # Links from D to presences of untouched leads.
    outside = _outside_candidates(conn, nodes, ranks, grouping)
    others = load_presences(conn, ids={c for cs in outside.values() for c in cs})
    other_nodes = {pid: _node(p, f, block_of(f, grouping)) for pid, (p, f, _) in others.items()}
    for pid in sorted(outside):
        for cid in sorted(outside[pid]):
            links.extend(links_between(nodes[pid], other_nodes[cid], grouping))
    uf = _UnionFind()
    for pid in nodes:
        uf.find(pid)
    for link in links:
        a = link.a if link.a in nodes else -others[link.a][2]
        b = link.b if link.b in nodes else -others[link.b][2]
        uf.union(a, b)

    # Components: D members plus whole untouched leads (negative ids).
    comp_members: dict[int, list[int]] = defaultdict(list)
    comp_leads: dict[int, set[int]] = defaultdict(set)
    for pid in nodes:
        comp_members[uf.find(pid)].append(pid)
    for key in list(uf.parent):
        if key < 0:
            root = uf.find(key)
            if root in comp_members:
                comp_leads[root].add(-key)
    merged = {lead_id for leads in comp_leads.values() for lead_id in leads}
    merged_presences = {
        pid: value
        for part in chunks(sorted(merged))
        for pid, value in load_presences(conn, lead_presence.c.lead_id.in_(part)).items()
    }
    new_lead: dict[int, int] = {}  # presence id -> lead id
    lead_presences: dict[int, list[tuple[Presence, IpFacts]]] = {}
    for root, pids in comp_members.items():
        everything = [group[pid] for pid in pids] + [
            (p, f) for p, f, lead_id in merged_presences.values() if lead_id in comp_leads[root]
        ]
        lead_id = min(p.id for p, _ in everything)
        lead_presences[lead_id] = everything
        for p, _ in everything:
            new_lead[p.id] = lead_id

    _trace(conn, trail, removed, survivors, merged_presences, rescanned, new_lead, lead_presences)

    stage("writing leads")
    delete_leads(conn, dirty | merged)
    report.leads_removed = len(dirty | merged)
    write_presences(
        conn,
        (
            (
                p,
                new_lead[p.id],
                f,
                blocks[p.id],
                set(prefix(p.items, ranks, grouping)) if blocks[p.id] else set(),
            )
            for p, f in sorted(rescanned, key=lambda pf: pf[0].id)
        ),
        days=days,
    )
    moved = [
        {"pid": pid, "lid": new_lead[pid]}
        for pid, (_, _, old) in sorted(survivors.items())
        if new_lead[pid] != old
    ]
    moved += [
        {"pid": pid, "lid": new_lead[pid]}
        for pid, (_, _, old) in sorted(merged_presences.items())
        if new_lead[pid] != old
    ]
    if moved:
        conn.execute(
            update(lead_presence)
            .where(lead_presence.c.id == bindparam("pid"))
            .values(lead_id=bindparam("lid")),
            moved,
        )
    targets = {old: new_lead[pid] for pid, (_, _, old) in merged_presences.items()}
    for old in sorted(merged):
        target = targets[old]
        if target != old:
            conn.execute(update(lead_link).where(lead_link.c.lead_id == old).values(lead_id=target))
    unique = {(k.a, k.b, k.reason): k for k in links}
    report.links_written = write_links(
        conn, ((unique[key], new_lead[key[0]]) for key in sorted(unique))
    )

    for p, _, lead_id in merged_presences.values():
        old_items[lead_id].update(p.items)
    new_items = {
        lead_id: {h for p, _ in ps for h in p.items} for lead_id, ps in lead_presences.items()
    }
    before, after = _recount_items(conn, old_items.values(), new_items.values())
    affected_items = set(after)
    records = [
        assemble(
            [p for p, _ in ps],
            {p.id: f for p, f in ps},
            after,
            now_us,
            config.scoring,
        )
        for ps in lead_presences.values()
    ]
    report.leads_written = write_leads(conn, records, from_us(now_us))
    written = {rec.id for rec in records}
    threshold = config.scoring.rare_other_leads + 1
    crossed = [
        h
        for h in affected_items
        if (before.get(h, 0) <= threshold) != (after.get(h, 0) <= threshold)
    ]
    holders: set[int] = set()
    for where in item_conditions(lead_presence_item, crossed):
        holders.update(
            conn.scalars(
                select(lead_presence.c.lead_id)
                .distinct()
                .join(lead_presence_item, lead_presence_item.c.presence_id == lead_presence.c.id)
                .where(where)
            )
        )
    report.leads_rescored += _rescore(conn, holders - written, config, now_us)
    return written


def _trace(
    conn: Connection,
    trail: _Trail,
    removed: Mapping[int, tuple[Presence, IpFacts, int]],
    survivors: Mapping[int, tuple[Presence, IpFacts, int]],
    merged: Mapping[int, tuple[Presence, IpFacts, int]],
    rescanned: Sequence[tuple[Presence, IpFacts]],
    new_lead: Mapping[int, int],
    lead_presences: Mapping[int, Sequence[tuple[Presence, IpFacts]]],
) -> None:
    """Lineage and jurisdiction changes of a relink: the old leads it replaces
    (those of `removed`, `survivors`, `merged`) against the new ones."""
    before = {**removed, **survivors, **merged}
    old_members: dict[int, list[tuple[Presence, IpFacts]]] = defaultdict(list)
    for p, f, lead_id in before.values():
        old_members[lead_id].append((p, f))
    old_ids, new_ids = set(old_members), set(lead_presences)
    # A new lead's first sighting: in the old presence of that id, else
    # inside one whose id changed on rescanning (or new, and in none).
    born = new_ids - old_ids
    old_holder = {i: before[i][2] for i in born if i in before}
    where = spots(conn, born - old_holder.keys())
    old_holder.update(locate(where, (_stretch(p, lead_id) for p, _, lead_id in before.values())))
    gone = old_ids - new_ids
    new_holder = {i: new_lead[i] for i in gone if i in new_lead}
    where = spots(conn, gone - new_holder.keys())
    new_holder.update(locate(where, (_stretch(p, new_lead[p.id]) for p, _ in rescanned)))
    trail.lineage = changes(old_ids, new_ids, old_holder, new_holder)
    trail.places = place_changes(
        {i: _places(ps) for i, ps in old_members.items()},
        {i: _places(ps) for i, ps in lead_presences.items()},
    )


def _outside_candidates(
    conn: Connection,
    nodes: Mapping[int, Node],
    ranks: Mapping[ItemKey, int],
    grouping: GroupingConfig,
) -> dict[int, set[int]]:
    """For each node, the stored presences outside `nodes` it may link to.

    A candidate shares a peer id with the node, or is in the same network and
    area and shares an item that is in the prefix of both.
    """
    by_peer: dict[str, list[int]] = defaultdict(list)
    by_item: dict[tuple[str, ItemKey], list[int]] = defaultdict(list)
    for node in nodes.values():
        for pid in node.peer_ids:
            by_peer[pid].append(node.id)
        if node.block is not None:
            for key in prefix(node.items, ranks, grouping):
                by_item[(node.block, key)].append(node.id)
    found: dict[int, set[int]] = defaultdict(set)
    peer = lead_presence_peer
    for part in chunks(sorted(by_peer)):
        query = select(peer.c.presence_id, peer.c.peer_id).where(peer.c.peer_id.in_(part))
        for cid, peer_id in conn.execute(query).all():
            if cid not in nodes:
                for nid in by_peer[peer_id]:
                    found[nid].add(cid)
    item = lead_presence_item
    for where in item_conditions(item, {h for _, h in by_item}):
        query = (
            select(
                item.c.presence_id, item.c.network, item.c.kind, item.c.value, lead_presence.c.block
            )
            .join(lead_presence, lead_presence.c.id == item.c.presence_id)
            .where(item.c.in_prefix.is_(True), where, lead_presence.c.block.is_not(None))
        )
        for row in conn.execute(query).all():
            other, area = int(row[0]), str(row[4])
            shared_item = ItemKey(str(row[1]), str(row[2]), str(row[3]))
            if other not in nodes:
                for nid in by_item.get((area, shared_item), ()):
                    found[nid].add(other)
    return found


def _item_numbers(
    conn: Connection, column: Column[Any], items: Collection[ItemKey]
) -> dict[ItemKey, int]:
    """`column` of lead_item for those of `items` it holds."""
    found: dict[ItemKey, int] = {}
    t = lead_item
    for where in item_conditions(t, items):
        for network, kind, value, n in conn.execute(
            select(t.c.network, t.c.kind, t.c.value, column).where(where)
        ).all():
            found[ItemKey(network, kind, value)] = n
    return found


def _ranks(conn: Connection, items: Collection[ItemKey]) -> dict[ItemKey, int]:
    """Prefix-filter ranks of `items`; items seen for the first time go first."""
    ranks = _item_numbers(conn, lead_item.c.rank, items)
    fresh = sorted(set(items) - set(ranks))
    if fresh:
        lowest = conn.scalar(select(func.min(lead_item.c.rank)))
        start = (lowest if lowest is not None else 0) - len(fresh)
        new = {h: start + i for i, h in enumerate(fresh)}
        bulk_insert(
            conn,
            lead_item,
            ("network", "kind", "value", "rank", "leads"),
            ((*h, r, 0) for h, r in new.items()),
        )
        ranks.update(new)
    return ranks


def _recount_items(
    conn: Connection, old: Iterable[set[ItemKey]], new: Iterable[set[ItemKey]]
) -> tuple[dict[ItemKey, int], dict[ItemKey, int]]:
    """Leads per item before and after replacing the leads `old` by `new`.

    Each set is one lead's items; the counts in lead_item are updated.
    """
    delta: dict[ItemKey, int] = defaultdict(int)
    for items in old:
        for h in items:
            delta[h] -= 1
    for items in new:
        for h in items:
            delta[h] += 1
    before = _item_numbers(conn, lead_item.c.leads, delta.keys())
    after = {h: before.get(h, 0) + d for h, d in delta.items()}
    rows = [
        {"i_network": h.network, "i_kind": h.kind, "i_value": h.value, "n": after[h]}
        for h in sorted(delta)
        if delta[h]
    ]
    if rows:
        conn.execute(
            update(lead_item)
            .where(
                lead_item.c.network == bindparam("i_network"),
                lead_item.c.kind == bindparam("i_kind"),
                lead_item.c.value == bindparam("i_value"),
            )
            .values(leads=bindparam("n")),
            rows,
        )
    return before, after


def _rescore(conn: Connection, lead_ids: Collection[int], config: LeadsConfig, now_us: int) -> int:
    """Recompute these leads from their stored presences."""
    if not lead_ids:
        return 0
    by_lead: dict[int, list[tuple[Presence, IpFacts]]] = defaultdict(list)
    for part in chunks(sorted(lead_ids)):
        for p, f, lead_id in load_presences(conn, lead_presence.c.lead_id.in_(part)).values():
            by_lead[lead_id].append((p, f))
    items = {h for ps in by_lead.values() for p, _ in ps for h in p.items}
    counts = _item_numbers(conn, lead_item.c.leads, items)
    records = [
        assemble([p for p, _ in ps], {p.id: f for p, f in ps}, counts, now_us, config.scoring)
        for ps in by_lead.values()
    ]
    delete_leads(conn, list(by_lead))
    return write_leads(conn, records, from_us(now_us))


def _refresh_recency(
    conn: Connection, config: LeadsConfig, old_now: int, now_us: int, skip: Collection[int]
) -> int:
    """Recency moves with the calendar: update the leads young enough to feel it."""
    factor = config.scoring.factors.get("recency")
    if factor is None:
        return 0
    # Leads older than this had recency at its cap before and still have.
    horizon = (min(old_now, now_us) // US_PER_DAY - int(factor.cap) - 1) * US_PER_DAY
    recent = {
        lead_id: to_us(last)
        for lead_id, last in conn.execute(
            select(lead.c.id, lead.c.last_seen).where(lead.c.last_seen >= from_us(horizon))
        )
        if lead_id not in skip
    }
    if not recent:
        return 0
    contributions: dict[int, list[FactorScore]] = defaultdict(list)
    for part in chunks(sorted(recent)):
        for r in conn.execute(
            select(lead_factor).where(lead_factor.c.lead_id.in_(part))
        ).mappings():
            contributions[r["lead_id"]].append(
                FactorScore(r["name"], r["raw"], r["value"], r["weight"], r["contribution"])
            )
    factor_rows: list[dict[str, Any]] = []
    lead_rows: list[dict[str, Any]] = []
    for lead_id, last in recent.items():
        raw = float(min(recency_days(last, now_us), factor.cap))
        value = scaled(factor, raw)
        fresh = FactorScore("recency", raw, value, factor.weight, value * factor.weight + 0.0)
        factors = [fresh if f.name == "recency" else f for f in contributions[lead_id]]
        factor_rows.append({"lid": lead_id, "raw": raw, "value": value, "c": fresh.contribution})
        lead_rows.append({"lid": lead_id, "score": total(factors), "at": from_us(now_us)})
    conn.execute(
        update(lead_factor)
        .where(lead_factor.c.lead_id == bindparam("lid"), lead_factor.c.name == "recency")
        .values(raw=bindparam("raw"), value=bindparam("value"), contribution=bindparam("c")),
        factor_rows,
    )
    conn.execute(
        update(lead)
        .where(lead.c.id == bindparam("lid"))
        .values(score=bindparam("score"), scored_at=bindparam("at")),
        lead_rows,
    )
    return len(lead_rows)


__all__ = ["BuildReport", "LeadRecord", "Link", "build_leads"]
