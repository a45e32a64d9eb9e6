"""Reading sightings and reading and writing lead tables, fast on both engines.

Builds read millions of sightings and write millions of presence items: the
readers ask for the raw column values they need, and `bulk_insert` uses
COPY on PostgreSQL and a plain executemany on SQLite.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Select,
    String,
    Table,
    cast,
    delete,
    func,
    select,
    type_coerce,
)

from atalaya.leads.days import day_rows, week_rows
from atalaya.leads.facts import IpFacts
from atalaya.leads.lead import LeadRecord
from atalaya.leads.lineage import Spot, Stretch, locate
from atalaya.leads.linking import Link
from atalaya.leads.presence import ItemKey, ItemStat, Presence, SightingRow
from atalaya.store.tables import (
    lead,
    lead_factor,
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

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)
ONE_US = timedelta(microseconds=1)
# Rows per statement where a list of values goes into IN (…): well under
# SQLite's limit of 32,766 bound parameters.
IN_CHUNK = 5_000


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; naive values (SQLite) are UTC."""
    if value.tzinfo is None:
        return (value - EPOCH_NAIVE) // ONE_US
    return (value - EPOCH) // ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def item_conditions(table: Table, items: Collection[ItemKey]) -> Iterator[ColumnElement[bool]]:
    """Conditions on `table`'s network, kind and value that together select `items`.

    One per (network, kind) and chunk of values: each is a plain IN on the
    last column of the (network, kind, value) indexes.
    """
    by_kind: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item in items:
        by_kind[(item.network, item.kind)].append(item.value)
    for (network, kind), values in sorted(by_kind.items()):
        for part in chunks(sorted(values)):
            yield ((table.c.network == network) & (table.c.kind == kind) & table.c.value.in_(part))


# --- sightings ---------------------------------------------------------------


def at_us(conn: Connection) -> ColumnElement[Any]:
    """`seen_at` as integer microseconds since the epoch, computed by the database.

    Millions of datetime objects cost more than the rest of a row; the
    database does the arithmetic exactly: PostgreSQL's EXTRACT(EPOCH) is a
    numeric with the microseconds, and SQLite keeps the text SQLAlchemy wrote
    ('YYYY-MM-DD HH:MM:SS.ffffff', UTC).
    """
    seen = sighting.c.seen_at
    if conn.dialect.name == "sqlite":
        # SQLite's date functions round to milliseconds (47.9996 s becomes
        # 48): whole seconds from the text without its fraction, then the
        # microseconds from the text.
        as_text = type_coerce(seen, String)
        seconds = cast(func.strftime("%s", func.substr(as_text, 1, 19)), BigInteger)
        micro = cast(func.substr(as_text, 21, 6), BigInteger)
        return seconds * 1_000_000 + micro
    return cast(func.extract("epoch", seen) * 1_000_000, BigInteger)


def sighting_query(conn: Connection) -> Select[Any]:
    """Selects the columns of `SightingRow`; see `sighting_rows` to convert."""
    return select(
        sighting.c.id,
        sighting.c.ip,
        sighting.c.port,
        at_us(conn),
        sighting.c.network,
        sighting.c.item_kind,
        sighting.c.item_value,
        sighting.c.file_key,
        sighting.c.category,
        sighting.c.proof,
        sighting.c.peer_id,
        sighting.c.client,
    )


def sighting_rows(conn: Connection, query: Select[Any]) -> Iterator[SightingRow]:
    """Rows of a `sighting_query`, streamed through the driver's own cursor.

    A full build reads every sighting once: the driver's cursor (a named,
    server-side one on PostgreSQL) is several times faster than result rows.
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw = conn.connection.driver_connection
    assert raw is not None
    if compiled.positional:
        params: Any = tuple(compiled.params[name] for name in compiled.positiontup or ())
    else:
        params = compiled.params
    if conn.dialect.name == "sqlite":
        params = tuple(_sqlite_param(v) for v in params)
        cursor = raw.cursor()
    else:
        cursor = raw.cursor(name=f"leads_scan_{id(query):x}")
        cursor.itersize = 20_000
    make = SightingRow._make
    try:
        cursor.execute(str(compiled), params)
        while batch := cursor.fetchmany(20_000):
            for r in batch:
                yield make(
                    (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]), r[10], r[11])
                )
    finally:
        cursor.close()


def _sqlite_param(value: Any) -> Any:
    """What SQLAlchemy would bind on SQLite, for the few types queries here use."""
    if isinstance(value, datetime):
        return sqlite_time(value)
    return value


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy stores a DateTime as on SQLite (naive UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


# --- bulk writes ---------------------------------------------------------------


def _converters(
    conn: Connection, table: Table, columns: Sequence[str]
) -> list[tuple[int, Callable[[Any], Any]]]:
    """(position, conversion) for the columns the driver cannot take as they are."""
    sqlite = conn.dialect.name == "sqlite"

    def as_json(v: Any) -> Any:
        return None if v is None else json.dumps(v)

    def as_text_time(v: Any) -> Any:
        return None if v is None else sqlite_time(v)

    def as_text_day(v: Any) -> Any:
        return None if v is None else v.isoformat()

    out: list[tuple[int, Callable[[Any], Any]]] = []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, JSON):
            out.append((i, as_json))
        elif sqlite and isinstance(kind, DateTime):
            out.append((i, as_text_time))
        elif sqlite and isinstance(kind, Date):
            out.append((i, as_text_day))
        # Booleans need nothing: sqlite3 stores True and False as 1 and 0.
    return out


def bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Append `rows` (tuples in `columns` order) to `table` in this transaction."""
    convert = _converters(conn, table, columns)

    def converted() -> Iterator[Sequence[Any]]:
        if not convert:
            yield from rows
            return
        for row in rows:
            values = list(row)
            for i, f in convert:
                values[i] = f(values[i])
            yield values

    count = 0
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in converted():
                copy.write_row(row)
                count += 1
        return count
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608 - names are ours
    cursor = conn.connection.cursor()
    try:
        batch: list[Sequence[Any]] = []
        for row in converted():
            batch.append(row)
            if len(batch) >= 50_000:
                cursor.executemany(sql, batch)
                count += len(batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)
            count += len(batch)
    finally:
        cursor.close()
    return count


# --- presences -------------------------------------------------------------------

# The address facts (IpFacts, in field order) a presence and a lead both carry.
FACT_COLUMNS = (
    "country",
    "province_code",
    "province_name",
    "municipality_code",
    "municipality_name",
    "lat",
    "lon",
    "accuracy_km",
    "asn",
    "isp",
    "time_zone",
    "flags",
    "facts_version",
)
PRESENCE_COLUMNS = (
    "id",
    "lead_id",
    "ip",
    "port",
    "first_seen",
    "last_seen",
    "sightings",
    "opened_by",
    "days",
    "client",
    "ports",
    *FACT_COLUMNS,
    "block",
)
ITEM_COLUMNS = (
    "presence_id",
    "network",
    "kind",
    "value",
    "file_key",
    "category",
    "proof",
    "sightings",
    "in_prefix",
)
DAY_COLUMNS = ("presence_id", "day", "week", "sightings")
WEEK_COLUMNS = ("presence_id", "week", "sightings")


def presence_row(p: Presence, lead_id: int, facts: IpFacts, block: str | None) -> tuple[Any, ...]:
    return (
        p.id,
        lead_id,
        p.ip,
        p.port,
        from_us(p.first_at),
        from_us(p.last_at),
        p.sightings,
        p.opened_by,
        sorted(p.days),
        p.client,
        sorted(p.ports),
        facts.country,
        facts.province_code,
        facts.province_name,
        facts.municipality_code,
        facts.municipality_name,
        facts.lat,
        facts.lon,
        facts.accuracy_km,
        facts.asn,
        facts.isp,
        facts.time_zone,
        sorted(facts.flags),
        facts.version,
        block,
    )


def item_rows(p: Presence, prefix: Collection[ItemKey]) -> Iterator[tuple[Any, ...]]:
    for item in sorted(p.items):
        s = p.items[item]
        yield (
            p.id,
            *item,
            s.file_key,
            s.category,
            s.proof,
            s.sightings,
            item in prefix,
        )


def write_presences(
    conn: Connection,
    presences: Iterable[tuple[Presence, int, IpFacts, str | None, Collection[ItemKey]]],
    *,
    days: Mapping[int, Mapping[int, int]],
) -> int:
    """Insert presences with their items, peer ids and sightings per day and week:
    (presence, lead id, facts, block, prefix), and `days` by presence id
    (`atalaya.leads.days.day_counts`; every presence must have its counts)."""
    items: list[tuple[Any, ...]] = []
    peers: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    per_day: list[tuple[Any, ...]] = []
    per_week: list[tuple[Any, ...]] = []
    for p, lead_id, facts, block, prefix in presences:
        rows.append(presence_row(p, lead_id, facts, block))
        items.extend(item_rows(p, prefix))
        peers.extend((p.id, pid) for pid in sorted(p.peer_ids))
        per_day.extend(day_rows(p.id, days[p.id]))
        per_week.extend(week_rows(p.id, days[p.id]))
    bulk_insert(conn, lead_presence, PRESENCE_COLUMNS, rows)
    bulk_insert(conn, lead_presence_item, ITEM_COLUMNS, items)
    bulk_insert(conn, lead_presence_peer, ("presence_id", "peer_id"), peers)
    bulk_insert(conn, lead_presence_day, DAY_COLUMNS, per_day)
    bulk_insert(conn, lead_presence_week, WEEK_COLUMNS, per_week)
    return len(rows)


def load_presences(
    conn: Connection, where: ColumnElement[bool] | None = None, *, ids: Collection[int] = ()
) -> dict[int, tuple[Presence, IpFacts, int]]:
    """Presences (with facts and lead id) matching `where`, or with these `ids`."""
    found: dict[int, tuple[Presence, IpFacts, int]] = {}
    queries: list[Select[Any]] = []
    base = select(lead_presence)
    if where is not None:
        queries.append(base.where(where))
    for part in chunks(sorted(ids)):
        queries.append(base.where(lead_presence.c.id.in_(part)))
    for query in queries:
        for r in conn.execute(query).mappings().all():
            p = Presence(
                id=r["id"],
                ip=r["ip"],
                port=r["port"],
                first_at=to_us(r["first_seen"]),
                last_at=to_us(r["last_seen"]),
                sightings=r["sightings"],
                opened_by=r["opened_by"],
                days=set(r["days"]),
                clients={r["client"]: r["sightings"]} if r["client"] is not None else {},
                ports=set(r["ports"]),
            )
            facts = IpFacts(
                country=r["country"],
                province_code=r["province_code"],
                province_name=r["province_name"],
                municipality_code=r["municipality_code"],
                municipality_name=r["municipality_name"],
                lat=r["lat"],
                lon=r["lon"],
                accuracy_km=r["accuracy_km"],
                asn=r["asn"],
                isp=r["isp"],
                time_zone=r["time_zone"],
                flags=frozenset(r["flags"]),
                version=r["facts_version"],
            )
            found[p.id] = (p, facts, r["lead_id"])
    all_ids = sorted(found)
    for part in chunks(all_ids):
        items = select(lead_presence_item).where(lead_presence_item.c.presence_id.in_(part))
        for r in conn.execute(items).mappings().all():
            item = ItemKey(r["network"], r["kind"], r["value"])
            found[r["presence_id"]][0].items[item] = ItemStat(
                file_key=r["file_key"],
                category=r["category"],
                proof=bool(r["proof"]),
                sightings=r["sightings"],
            )
        peers = select(lead_presence_peer).where(lead_presence_peer.c.presence_id.in_(part))
        for r in conn.execute(peers).mappings().all():
            found[r["presence_id"]][0].peer_ids.add(r["peer_id"])
    return found


# --- links and leads -----------------------------------------------------------


def write_links(conn: Connection, links: Iterable[tuple[Link, int]]) -> int:
    return bulk_insert(
        conn,
        lead_link,
        ("presence_a", "presence_b", "reason", "lead_id", "evidence"),
        ((k.a, k.b, k.reason, lead_id, k.evidence) for k, lead_id in links),
    )


LEAD_COLUMNS = (
    "id",
    "first_seen",
    "last_seen",
    "sightings",
    "presences",
    "addresses",
    "items",
    "known_files",
    "verified_items",
    "highest_category",
    "networks",
    "ip",
    "client",
    *FACT_COLUMNS,
    "score",
    "weights_version",
    "scored_at",
)


def write_leads(conn: Connection, leads: Iterable[LeadRecord], scored_at: datetime) -> int:
    rows: list[tuple[Any, ...]] = []
    factors: list[tuple[Any, ...]] = []
    provinces: list[tuple[int, str]] = []
    for rec in leads:
        s, f = rec.summary, rec.facts
        rows.append(
            (
                rec.id,
                from_us(s.first_at),
                from_us(s.last_at),
                s.sightings,
                len(rec.presence_ids),
                rec.addresses,
                len(s.items),
                s.known_files,
                s.verified_items,
                s.highest_category,
                s.networks,
                rec.ip,
                rec.client,
                f.country,
                f.province_code,
                f.province_name,
                f.municipality_code,
                f.municipality_name,
                f.lat,
                f.lon,
                f.accuracy_km,
                f.asn,
                f.isp,
                f.time_zone,
                list(rec.flags),
                f.version,
                rec.score,
                rec.weights_version,
                scored_at,
            )
        )
        factors.extend(
            (rec.id, x.name, x.raw, x.value, x.weight, x.contribution) for x in rec.factors
        )
        provinces.extend((rec.id, code) for code in rec.provinces)
    bulk_insert(conn, lead, LEAD_COLUMNS, rows)
    bulk_insert(
        conn, lead_factor, ("lead_id", "name", "raw", "value", "weight", "contribution"), factors
    )
    bulk_insert(conn, lead_province, ("lead_id", "province_code"), provinces)
    return len(rows)


def delete_leads(conn: Connection, ids: Collection[int]) -> None:
    for part in chunks(sorted(ids)):
        conn.execute(delete(lead_factor).where(lead_factor.c.lead_id.in_(part)))
        conn.execute(delete(lead_province).where(lead_province.c.lead_id.in_(part)))
        conn.execute(delete(lead).where(lead.c.id.in_(part)))


# --- where sightings lie -----------------------------------------------------------


def spots(conn: Connection, ids: Collection[int]) -> list[Spot]:
    """Where the sightings with these ids lie (address, port, time)."""
    found: list[Spot] = []
    for part in chunks(sorted(ids)):
        query = sighting_query(conn).where(sighting.c.id.in_(part))
        found.extend(Spot(r.id, r.ip, r.port, r.at) for r in sighting_rows(conn, query))
    return found


def stored_holders(conn: Connection, ids: Collection[int]) -> dict[int, int]:
    """The stored lead holding each of these sightings, where one does."""
    where = spots(conn, ids)
    stretches: list[Stretch] = []
    p = lead_presence.c
    for part in chunks(sorted({s.ip for s in where})):
        query = select(p.ip, p.port, p.first_seen, p.last_seen, p.lead_id).where(p.ip.in_(part))
        stretches.extend(
            Stretch(r.ip, r.port, to_us(r.first_seen), to_us(r.last_seen), r.lead_id)
            for r in conn.execute(query)
        )
    return locate(where, stretches)


def stored_places(conn: Connection) -> dict[int, set[str]]:
    """Every stored lead with the provinces of its presences (empty where none)."""
    places: dict[int, set[str]] = {lead_id: set() for lead_id in conn.scalars(select(lead.c.id))}
    query = select(lead_province.c.lead_id, lead_province.c.province_code)
    for lead_id, code in conn.execute(query):
        places[lead_id].add(code)
    return places


# --- state -----------------------------------------------------------------------


def read_state(conn: Connection) -> dict[str, str]:
    return {k: v for k, v in conn.execute(select(lead_state.c.key, lead_state.c.value))}


def write_state(conn: Connection, values: dict[str, str]) -> None:
    conn.execute(delete(lead_state))
    if values:
        conn.execute(lead_state.insert(), [{"key": k, "value": v} for k, v in values.items()])
