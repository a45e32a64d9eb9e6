"""Enrichment in the store: incremental runs, look-ups for leads, referrals.

`enrich_pending(engine, enricher)` enriches every sighting address that has
no enrichment for the enricher's data version (all of them with
`refresh=True`, which first drops that version's rows), in batches, each its
own transaction, so a stop loses only the batch in progress and the next run
carries on. `enrichment_for_ips(conn, ips)` and, for IPv6 prefixes,
`enrichment_for_prefixes(conn, keys)` are what the leads stage reads.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv6Address
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, and_, delete, exists, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from atalaya.enrich.prefixes import parse_prefix, prefix_condition, prefix_of
from atalaya.enrich.record import Enrichment
from atalaya.store import begin_write
from atalaya.store.tables import enrichment, enrichment_data, sighting
from atalaya.store.times import utc

DEFAULT_BATCH = 2_000
# Addresses per `IN (…)`: under SQLite's and psycopg's parameter limits.
_IN_CHUNK = 500
# Prefixes per statement of LIKE patterns; beyond a few statements' worth,
# reading every enriched IPv6 address once is cheaper.
_PREFIX_CHUNK = 50
_PREFIX_SCAN = 200

_FIELDS = (
    "country",
    "db_country",
    "region",
    "city",
    "province_code",
    "province_name",
    "municipality_code",
    "municipality_name",
    "latitude",
    "longitude",
    "accuracy_km",
    "asn",
    "isp",
    "org",
    "time_zone",
)


class EnricherLike(Protocol):
    data_version: str
    sources: dict[str, Any]
    attribution: str

    def enrich_many(
        self, ips: Iterable[str], *, now: datetime | None = None
    ) -> list[Enrichment]: ...


@dataclass
class EnrichReport:
    """What one run did. `countries` counts the addresses enriched, by jurisdiction."""

    data_version: str
    attribution: str
    addresses: int = 0  # distinct sighting addresses
    up_to_date: int = 0  # already enriched for this data version, left alone
    enriched: int = 0
    refreshed: int = 0  # rows of this version dropped by --refresh to be recomputed
    not_found: int = 0
    countries: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "data_version": self.data_version,
            "addresses": self.addresses,
            "up_to_date": self.up_to_date,
            "enriched": self.enriched,
            "refreshed": self.refreshed,
            "not_found": self.not_found,
            "countries": dict(sorted(self.countries.items())),
            "attribution": self.attribution,
        }


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _row(item: Enrichment) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(item, name) for name in _FIELDS}
    row.update(
        ip=item.ip,
        data_version=item.data_version,
        flags=list(item.flags),
        computed_at=item.computed_at,
    )
    return row


def _from_row(row: Any) -> Enrichment:
    values = row._mapping
    computed_at = utc(values["computed_at"])
    flags = values["flags"] or []
    return Enrichment(
        ip=values["ip"],
        data_version=values["data_version"],
        computed_at=computed_at,
        flags=tuple(str(f) for f in flags),
        **{name: values[name] for name in _FIELDS},
    )


def _insert_new(conn: Connection, table: Table) -> Any:
    """INSERT that leaves rows whose key is taken as they are, on either engine."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def record_data_version(conn: Connection, enricher: EnricherLike) -> None:
    """Store the enricher's sources under its data version, once.

    Two runs may start at once: on PostgreSQL both can find no row, and the
    second insert then leaves the first one's row alone.
    """
    known = conn.execute(
        select(enrichment_data.c.data_version).where(
            enrichment_data.c.data_version == enricher.data_version
        )
    ).first()
    if known is None:
        conn.execute(
            _insert_new(conn, enrichment_data).values(
                data_version=enricher.data_version,
                sources=enricher.sources,
                attribution=enricher.attribution,
                created_at=datetime.now(UTC),
            )
        )


def insert_enrichments(conn: Connection, items: Sequence[Enrichment]) -> None:
    """Write `items`, leaving any (address, data version) already stored as it is.

    Rows of one data version are the same whoever computes them, so when two
    runs enrich the same pending addresses at once, the second's are dropped.
    """
    if items:
        conn.execute(_insert_new(conn, enrichment), [_row(i) for i in items])


def save_enrichments(conn: Connection, items: Sequence[Enrichment]) -> int:
    """Write `items`, replacing rows of the same (ip, data version); the number replaced."""
    replaced = 0
    by_version: dict[str, list[str]] = {}
    for item in items:
        by_version.setdefault(item.data_version, []).append(item.ip)
    for version, ips in by_version.items():
        for chunk in _chunks(ips, _IN_CHUNK):
            result = conn.execute(
                delete(enrichment).where(
                    enrichment.c.data_version == version, enrichment.c.ip.in_(chunk)
                )
            )
            replaced += max(result.rowcount or 0, 0)
    if items:
        conn.execute(insert(enrichment), [_row(i) for i in items])
    return replaced


def sighting_ips(conn: Connection) -> list[str]:
    """Every distinct address in the sightings, sorted."""
    rows = conn.execute(select(sighting.c.ip).distinct().order_by(sighting.c.ip))
    return [r[0] for r in rows]


def pending_ips(conn: Connection, data_version: str) -> list[str]:
    """Sighting addresses without an enrichment for `data_version`, sorted."""
    done = exists().where(
        and_(enrichment.c.ip == sighting.c.ip, enrichment.c.data_version == data_version)
    )
    rows = conn.execute(select(sighting.c.ip).where(~done).distinct().order_by(sighting.c.ip))
    return [r[0] for r in rows]


def enrich_pending(
    engine: Engine,
    enricher: EnricherLike,
    *,
    refresh: bool = False,
    batch_size: int = DEFAULT_BATCH,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> EnrichReport:
    """Enrich the sighting addresses that need it; see the module docstring.

    `on_start(n)` is told how many addresses will be enriched, `on_batch(k)`
    how many each finished batch held (for a progress display).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    report = EnrichReport(enricher.data_version, enricher.attribution)
    with begin_write(engine) as conn:
        record_data_version(conn, enricher)
        if refresh:
            # Dropped at once rather than replaced batch by batch: an
            # interrupted refresh leaves those addresses pending, and the
            # next run finishes them.
            result = conn.execute(
                delete(enrichment).where(enrichment.c.data_version == enricher.data_version)
            )
            report.refreshed = max(result.rowcount or 0, 0)
        every = sighting_ips(conn)
        todo = pending_ips(conn, enricher.data_version)
    report.addresses = len(every)
    report.up_to_date = len(every) - len(todo)
    if on_start is not None:
        on_start(len(todo))
    for batch in _chunks(todo, batch_size):
        items = enricher.enrich_many(batch, now=now)
        with begin_write(engine) as conn:
            insert_enrichments(conn, items)
        report.enriched += len(items)
        for item in items:
            key = item.country or "--"
            report.countries[key] = report.countries.get(key, 0) + 1
            if "not_found" in item.flags or "reserved" in item.flags:
                report.not_found += 1
        if on_batch is not None:
            on_batch(len(items))
    return report


def enrichment_for_ips(
    conn: Connection, ips: Collection[str], *, data_version: str | None = None
) -> dict[str, Enrichment]:
    """The enrichment of each address that has one: of `data_version`, or else
    the most recently computed one. Addresses without any are left out."""
    found: dict[str, Enrichment] = {}
    for chunk in _chunks(sorted(set(ips)), _IN_CHUNK):
        query = select(enrichment).where(enrichment.c.ip.in_(chunk))
        if data_version is not None:
            query = query.where(enrichment.c.data_version == data_version)
        for row in conn.execute(query):
            item = _from_row(row)
            held = found.get(item.ip)
            if held is None or (item.computed_at, item.data_version) > (
                held.computed_at,
                held.data_version,
            ):
                found[item.ip] = item
    return found


def enrichment_for_prefixes(
    conn: Connection, keys: Collection[str], *, data_version: str | None = None
) -> dict[str, Enrichment]:
    """For each IPv6 prefix among `keys` (as `prefixes.prefix_of` writes them),
    the enrichment of the lowest address inside it that has one, chosen as
    `enrichment_for_ips` chooses. Location and network databases place a
    whole /64 alike, so which address speaks for it rarely matters; the
    lowest makes the answer depend on the stored rows alone. Prefixes without
    any enriched address, and keys that are not prefixes, are left out."""
    wanted = {key for key in set(keys) if parse_prefix(key) is not None}
    if not wanted:
        return {}
    lengths = sorted({net.prefixlen for key in wanted if (net := parse_prefix(key)) is not None})
    query = select(enrichment.c.ip).distinct()
    if data_version is not None:
        query = query.where(enrichment.c.data_version == data_version)
    if len(wanted) > _PREFIX_SCAN:
        statements = [query.where(enrichment.c.ip.like("%:%"))]
    else:
        ordered = sorted(wanted)
        statements = [
            query.where(or_(*(prefix_condition(enrichment.c.ip, key) for key in part)))
            for part in _chunks(ordered, _PREFIX_CHUNK)
        ]
    lowest: dict[str, tuple[int, str]] = {}
    for statement in statements:
        for ip in conn.scalars(statement):
            try:
                value = int(IPv6Address(ip))
            except ValueError:
                continue
            for length in lengths:
                key = prefix_of(ip, length)
                if key in wanted and (key not in lowest or value < lowest[key][0]):
                    lowest[key] = (value, ip)
    found = enrichment_for_ips(conn, [ip for _, ip in lowest.values()], data_version=data_version)
    return {key: found[ip] for key, (_, ip) in lowest.items() if ip in found}


def latest_data_version(conn: Connection) -> str | None:
    """The data version recorded most recently, if any."""
    row = conn.execute(
        select(enrichment_data.c.data_version)
        .order_by(enrichment_data.c.created_at.desc(), enrichment_data.c.data_version)
        .limit(1)
    ).first()
    return row[0] if row is not None else None


def attribution_of(conn: Connection, data_version: str) -> str | None:
    row = conn.execute(
        select(enrichment_data.c.attribution).where(enrichment_data.c.data_version == data_version)
    ).first()
    return row[0] if row is not None else None


@dataclass(frozen=True)
class Referral:
    """Sighting addresses under another country's jurisdiction (`country` None: unknown)."""

    country: str | None
    addresses: int
    sightings: int
    first_seen: datetime
    last_seen: datetime


def referrals(conn: Connection, *, home_country: str, data_version: str) -> list[Referral]:
    """Per country other than `home_country`: addresses, sightings, first and last seen."""
    abroad = (enrichment.c.country != home_country) | enrichment.c.country.is_(None)
    query = (
        select(
            enrichment.c.country,
            func.count(func.distinct(sighting.c.ip)),
            func.count(),
            func.min(sighting.c.seen_at),
            func.max(sighting.c.seen_at),
        )
        .select_from(sighting.join(enrichment, enrichment.c.ip == sighting.c.ip))
        .where(enrichment.c.data_version == data_version, abroad)
        .group_by(enrichment.c.country)
    )
    out = [
        Referral(country, int(addresses), int(count), utc(first), utc(last))
        for country, addresses, count, first, last in conn.execute(query)
    ]
    return sorted(out, key=lambda r: (-r.sightings, r.country or "~"))


@dataclass(frozen=True)
class ReferralAddress:
    enrichment: Enrichment
    sightings: int
    first_seen: datetime
    last_seen: datetime


def referral_addresses(
    conn: Connection, *, country: str | None, data_version: str, limit: int = 10_000
) -> list[ReferralAddress]:
    """The addresses of one referral country (None: unknown jurisdiction)."""
    where = enrichment.c.country.is_(None) if country is None else enrichment.c.country == country
    query = (
        select(
            sighting.c.ip,
            func.count().label("n"),
            func.min(sighting.c.seen_at).label("first"),
            func.max(sighting.c.seen_at).label("last"),
        )
        .select_from(sighting.join(enrichment, enrichment.c.ip == sighting.c.ip))
        .where(enrichment.c.data_version == data_version, where)
        .group_by(sighting.c.ip)
        .order_by(func.count().desc(), sighting.c.ip)
        .limit(limit)
    )
    counted = conn.execute(query).all()
    items = enrichment_for_ips(conn, [r.ip for r in counted], data_version=data_version)
    return [
        ReferralAddress(items[r.ip], int(r.n), utc(r.first), utc(r.last))
        for r in counted
        if r.ip in items
    ]
