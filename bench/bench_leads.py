"""Lead building: full and incremental, on SQLite and PostgreSQL, against a GROUP BY.

    python bench/bench_leads.py [--sightings N] [--addresses N] [--increment F] [--seed S]

Generates a synthetic month-by-month history of devices offering watched
items (numpy, from `--seed`; made-up infohashes and places, never real ones):
static, dynamic and carrier-grade NAT subscribers of 20 made-up ISPs in 52
provinces, Zipf-popular items, peer ids that change with each client session.
For each engine, in its own subprocess (so that its peak RSS is its own):

1. loads all but the newest `--increment` of the sightings (bulk: executemany
   on SQLite, COPY on PostgreSQL), then times the baseline, one
   `SELECT ip, count(*), count(DISTINCT item_value), min(seen_at), max(seen_at)
   … GROUP BY ip` read to the end;
2. times a full lead build;
3. loads the newest sightings and times an incremental build;
4. times a full rebuild of everything and checks that it gives exactly the
   leads the incremental build left (the run fails otherwise).

Enrichment has its own benchmark, bench/bench_enrich.py; here every address
gets made-up facts (ISP, province, flags) from the same seed.

PostgreSQL is a throw-away server started the way the tests start it
(tests/support/postgres.py: fsync off). The results go to stdout and to the
`bench_leads` section of docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
from numpy.typing import NDArray
from sqlalchemy import Engine, func, select, text

from benchdocs import ROOT, add_docs_options, footer, human_bytes, markers, pick, publish, run_child

sys.path.insert(0, str(ROOT))  # tests.support.postgres: the tests' throw-away server

from tests.support.postgres import find_bindir, postgres_server

from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.facts import IpFacts, MappingFacts
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import lead, lead_factor, lead_link, lead_presence

START, END = markers("bench_leads")

ENGINES = {"sqlite": "SQLite (WAL, file on local disk)", "postgresql": "PostgreSQL (fsync off)"}
EPOCH = np.datetime64("2026-05-01T00:00:00", "us")
DAYS = 180
US_DAY = 86_400_000_000
ISPS = 20
PROVINCES = 52
ITEMS = 20_000
CGNAT_POOL = 400
CLIENTS = ["libtorrent/2.1.1", "Transmission 3.00", "qBittorrent/4.6.2", "Deluge 2.1.1"]
# Index definitions dropped for the bulk load and made again after it
# (sorted index builds instead of millions of random B-tree inserts).
SIGHTING_INDEXES = {
    "ix_sighting_seen_at": "seen_at",
    "ix_sighting_ip_seen_at": "ip, seen_at",
    "ix_sighting_item": "network, item_kind, item_value",
}
LOAD_CHUNK = 200_000


@dataclass
class Workload:
    """Sightings as parallel arrays, sorted by time."""

    at_us: NDArray[np.int64]
    ip: NDArray[np.int64]  # index into `addresses`
    port: NDArray[np.int64]
    item: NDArray[np.int64]
    peer: NDArray[np.int64]  # -1: no peer id
    client: NDArray[np.int64]
    proof: NDArray[np.bool_]
    addresses: list[str]
    facts: dict[str, IpFacts]
    item_category: NDArray[np.int64]
    item_has_file: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.at_us)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64: a cheap, well-spread hash of integer arrays."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _public_ipv4(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct made-up addresses outside private, shared and reserved space."""
    firsts = np.array([o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198)])
    seen: set[int] = set()
    out: list[str] = []
    while len(out) < n:
        values = (rng.choice(firsts, n) << 24) | rng.integers(0, 1 << 24, n)
        for v in values.tolist():
            if v not in seen and len(out) < n:
                seen.add(v)
                out.append(f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}")
    return out


def make_workload(sightings: int, addresses: int, seed: int) -> Workload:
    """The same synthetic history for every engine, from `seed`."""
    rng = np.random.default_rng(seed)
    devices = max(int(addresses * 0.6), 1)
    # Items: Zipf-like popularity; category and whether a hash set names a file.
    popularity = 1.0 / np.arange(1, ITEMS + 1) ** 1.05
    popularity /= popularity.sum()
    item_category = rng.choice([1, 2, 3, 4], ITEMS, p=[0.1, 0.2, 0.5, 0.2])
    item_has_file = rng.random(ITEMS) < 0.9
    # Devices: ISP and province, kind, collection, activity, lifetime.
    slot_weight = rng.dirichlet(np.ones(ISPS * PROVINCES) * 0.7)
    slot = rng.choice(ISPS * PROVINCES, devices, p=slot_weight)
    kind = rng.choice(3, devices, p=[0.55, 0.40, 0.05])  # static, dynamic, cgnat
    period_us = rng.integers(2, 15, devices) * US_DAY  # dynamic: days per address
    period_us = np.where(kind == 2, US_DAY, period_us)  # cgnat: port mapping per day
    size = np.clip(rng.geometric(1 / 8, devices), 1, 60)
    offsets = np.concatenate([[0], np.cumsum(size)])
    collection = rng.choice(ITEMS, int(offsets[-1]), p=popularity)
    activity = rng.lognormal(0.0, 1.0, devices)
    start = rng.integers(0, DAYS * US_DAY, devices)
    length = np.minimum(
        rng.exponential(40 * US_DAY, devices).astype(np.int64) + US_DAY, DAYS * US_DAY - start
    )
    port = rng.integers(1024, 65536, devices)
    client = rng.integers(0, len(CLIENTS), devices)

    d = rng.choice(devices, sightings, p=activity / activity.sum())
    at = start[d] + (rng.random(sightings) * length[d]).astype(np.int64)
    item = collection[offsets[d] + rng.integers(0, 1 << 30, sightings) % size[d]]
    epoch = np.where(kind[d] == 0, 0, (at - start[d]) // period_us[d]).astype(np.uint64)
    h = _mix(d.astype(np.uint64) * np.uint64(1_000_003) + epoch)

    # Addresses: a device holds one address per epoch (its whole life when
    # static) in its (ISP, province) slot. Each slot gets a share of the pool
    # in proportion to the (device, epoch) pairs it has, and its pairs take
    # its addresses in turn, in time order: with more pairs than addresses,
    # every address is used and dynamic ones pass to later subscribers.
    behind_nat = kind[d] == 2
    pool = addresses - CGNAT_POOL
    pair_keys, pair_of = np.unique(np.where(behind_nat, 0, h), return_inverse=True)
    first = np.full(len(pair_keys), len(d), dtype=np.int64)
    np.minimum.at(first, pair_of, np.arange(len(d)))
    pair_device = d[first]
    pair_start = start[pair_device] + epoch[first].astype(np.int64) * period_us[pair_device]
    pair_slot = slot[pair_device]
    counted = pair_slot[kind[pair_device] != 2]
    per_slot = np.bincount(counted, minlength=ISPS * PROVINCES)
    slot_size = np.where(per_slot > 0, np.maximum(per_slot * pool // max(len(counted), 1), 1), 0)
    # Rounding down left a few addresses over: to the slots with most pairs.
    spare = max(pool - int(slot_size.sum()), 0)
    slot_size[np.argsort(-per_slot, kind="stable")[:spare]] += 1
    pool = int(slot_size.sum())
    slot_base = np.concatenate([[0], np.cumsum(slot_size)[:-1]])
    by_time = np.lexsort((pair_start, pair_slot))
    rank = np.empty(len(pair_keys), dtype=np.int64)
    rank[by_time] = np.arange(len(by_time)) - np.repeat(
        np.concatenate([[0], np.cumsum(np.bincount(pair_slot, minlength=ISPS * PROVINCES))[:-1]]),
        np.bincount(pair_slot, minlength=ISPS * PROVINCES),
    )
    pair_ip = slot_base[pair_slot] + rank % np.maximum(slot_size[pair_slot], 1)
    ip = pair_ip[pair_of]
    ip = np.where(behind_nat, pool + (h % np.uint64(CGNAT_POOL)).astype(np.int64), ip)
    sport = np.where(behind_nat, 1024 + (h >> np.uint64(20)) % np.uint64(60000), port[d])
    # Peer ids: half the sightings come with a handshake; one id per device
    # and week of client session.
    session = (at - start[d]) // (7 * US_DAY)
    peer = np.where(rng.random(sightings) < 0.5, d * 64 + session, -1)
    proof = rng.random(sightings) < 0.05

    names = _public_ipv4(rng, pool) + [
        f"100.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(CGNAT_POOL)
    ]
    slot_of_ip = np.repeat(np.arange(ISPS * PROVINCES), slot_size)
    flag_draw = rng.random(pool)
    facts: dict[str, IpFacts] = {}
    for i, name in enumerate(names):
        if i >= pool:
            facts[name] = IpFacts(
                country="ES",
                asn=64499,
                isp="Example Mobile",
                flags=frozenset({"cgnat", "mobile"}),
                version="bench",
            )
            continue
        s = int(slot_of_ip[i])
        isp, prov = divmod(s, PROVINCES)
        flags = (
            frozenset({"hosting"})
            if flag_draw[i] < 0.005
            else frozenset({"vpn"})
            if flag_draw[i] < 0.01
            else frozenset()
        )
        facts[name] = IpFacts(
            country="ES",
            province_code=f"{prov + 1:02d}",
            province_name=f"Province {prov + 1}",
            municipality_code=f"{prov + 1:02d}{isp:03d}",
            municipality_name=f"Town {prov + 1}-{isp}",
            lat=36.0 + prov * 0.15,
            lon=-9.0 + isp * 0.6,
            accuracy_km=10.0,
            asn=64500 + isp,
            isp=f"Example ISP {isp}",
            time_zone="Europe/Madrid",
            flags=flags,
            version="bench",
        )
    order = np.argsort(at, kind="stable")
    return Workload(
        at_us=at[order],
        ip=ip[order],
        port=sport[order].astype(np.int64),
        item=item[order],
        peer=peer[order],
        client=client[d][order],
        proof=proof[order],
        addresses=names,
        facts=facts,
        item_category=item_category,
        item_has_file=item_has_file,
    )


def _rows(w: Workload, lo: int, hi: int, sqlite: bool) -> Iterator[tuple[Any, ...]]:
    """Sighting rows in the column order of `_COLUMNS`."""
    times = np.datetime_as_string(EPOCH + w.at_us[lo:hi].astype("timedelta64[us]"), unit="us")
    names, clients = w.addresses, CLIENTS
    ips, ports, items = w.ip[lo:hi].tolist(), w.port[lo:hi].tolist(), w.item[lo:hi].tolist()
    peers, cl, proofs = w.peer[lo:hi].tolist(), w.client[lo:hi].tolist(), w.proof[lo:hi].tolist()
    hashes, files, cats = _item_texts(w)
    peer_ids: dict[int, str] = {}
    suffix = "" if sqlite else "+00"
    for k, stamp in enumerate(times.tolist()):
        it, pv, proof = items[k], peers[k], proofs[k]
        pid = None
        if pv >= 0:
            pid = peer_ids.get(pv)
            if pid is None:
                tail = hashlib.blake2b(pv.to_bytes(8, "little"), digest_size=12).hexdigest()
                pid = peer_ids[pv] = "2d4c54323130302d" + tail
        yield (
            "bittorrent",
            "btih",
            hashes[it],
            names[ips[k]],
            ports[k],
            stamp.replace("T", " ") + suffix,
            "tracker",
            clients[cl[k]],
            pid,
            2 if proof else 0,
            0,
            32768 if proof else 0,
            proof,
            files[it],
            cats[it],
            "atalaya/bench",
            "00000000-0000-4000-8000-000000000000",
        )


def _item_texts(w: Workload) -> tuple[list[str], list[str | None], list[int]]:
    """Made-up infohash and file key of every item, and its category."""
    hashes = [f"{i:040x}" for i in range(ITEMS)]
    files = [f"sha1:{i:040x}" if has else None for i, has in enumerate(w.item_has_file.tolist())]
    return hashes, files, w.item_category.tolist()


_COLUMNS = (
    "network",
    "item_kind",
    "item_value",
    "ip",
    "port",
    "seen_at",
    "found_by",
    "client",
    "peer_id",
    "pieces_verified",
    "pieces_failed",
    "bytes_downloaded",
    "proof",
    "file_key",
    "category",
    "observer",
    "run_id",
)


def load(engine: Engine, w: Workload, lo: int, hi: int, *, bulk: bool) -> float:
    """Insert sightings lo..hi; `bulk` drops and remakes the sighting indexes."""
    return bulk_insert(
        engine, _COLUMNS, lambda start, end, sqlite: _rows(w, start, end, sqlite), lo, hi, bulk=bulk
    )


def bulk_insert(
    engine: Engine,
    columns: Sequence[str],
    rows: Callable[[int, int, bool], Iterable[tuple[Any, ...]]],
    lo: int,
    hi: int,
    *,
    bulk: bool,
) -> float:
    """Insert sightings lo..hi, `rows(start, end, sqlite)` giving them in `columns` order.

    The driver's fastest path (sqlite3 `executemany`, PostgreSQL `COPY`), in
    chunks; `bulk` drops the sighting indexes first and makes them again after
    (sorted index builds instead of millions of random B-tree inserts).
    Returns the seconds taken.
    """
    started = time.perf_counter()
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        if bulk:
            for name in SIGHTING_INDEXES:
                conn.execute(text(f"DROP INDEX {name}"))
        raw = conn.connection.driver_connection
        assert raw is not None
        names = ", ".join(columns)
        for start in range(lo, hi, LOAD_CHUNK):
            end = min(start + LOAD_CHUNK, hi)
            if sqlite:
                marks = ", ".join("?" * len(columns))
                raw.executemany(
                    f"INSERT INTO sighting ({names}) VALUES ({marks})", rows(start, end, True)
                )
            else:
                with raw.cursor() as cur, cur.copy(f"COPY sighting ({names}) FROM STDIN") as cp:
                    for row in rows(start, end, False):
                        cp.write_row(row)
        if bulk:
            for name, cols in SIGHTING_INDEXES.items():
                conn.execute(text(f"CREATE INDEX {name} ON sighting ({cols})"))
    if not sqlite:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return time.perf_counter() - started


def group_by_baseline(engine: Engine) -> tuple[float, int]:
    started = time.perf_counter()
    query = text(
        "SELECT ip, count(*), count(DISTINCT item_value), min(seen_at), max(seen_at) "
        "FROM sighting GROUP BY ip"
    )
    count = 0
    with engine.connect() as conn:
        for _ in conn.execute(query):
            count += 1
    return time.perf_counter() - started, count


def digest(engine: Engine) -> dict[str, Any]:
    """What the lead tables hold, to compare an incremental state with a rebuild."""
    h = hashlib.sha256()
    with engine.connect() as conn:
        for row in conn.execute(
            select(lead.c.id, lead.c.sightings, lead.c.presences, lead.c.score).order_by(lead.c.id)
        ):
            h.update(repr(tuple(row)).encode())
        for row in conn.execute(
            select(lead_presence.c.id, lead_presence.c.lead_id).order_by(lead_presence.c.id)
        ):
            h.update(repr(tuple(row)).encode())
        for row in conn.execute(
            select(lead_factor.c.lead_id, lead_factor.c.name, lead_factor.c.contribution).order_by(
                lead_factor.c.lead_id, lead_factor.c.name
            )
        ):
            h.update(repr(tuple(row)).encode())
        links = conn.scalar(select(func.count()).select_from(lead_link)) or 0
        presences = conn.scalar(select(func.count()).select_from(lead_presence)) or 0
        leads = conn.scalar(select(func.count()).select_from(lead)) or 0
        multi = conn.scalar(select(func.count()).select_from(lead).where(lead.c.addresses > 1))
    return {
        "sha256": h.hexdigest(),
        "leads": leads,
        "presences": presences,
        "links": links,
        "multi_address_leads": multi or 0,
    }


@contextmanager
def database(name: str, workdir: Path) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{workdir / 'bench_leads.sqlite'}"
        return
    with postgres_server() as url:
        yield url


def worker(args: argparse.Namespace) -> None:
    """Run one engine and print its figures as one JSON line."""
    w = make_workload(args.sightings, args.addresses, args.seed)
    base = len(w) - round(len(w) * args.increment)
    now = (
        (EPOCH + np.timedelta64(DAYS + 1, "D"))
        .astype(datetime.datetime)
        .replace(tzinfo=datetime.UTC)
    )
    facts = MappingFacts(w.facts, version="bench")
    config = LeadsConfig()
    result: dict[str, Any] = {"engine": args.worker, "sightings": len(w), "base": base}
    with (
        tempfile.TemporaryDirectory(prefix="bench_leads-") as tmp,
        database(args.worker, Path(tmp)) as url,
    ):
        engine = create_store_engine(url)
        upgrade(engine)
        result["load_base_s"] = load(engine, w, 0, base, bulk=True)
        result["group_by_s"], result["addresses"] = group_by_baseline(engine)
        print(f"{args.worker}: loaded {base:,}; full build …", file=sys.stderr, flush=True)
        full = build_leads(engine, facts, config, now=now)
        result["full_s"] = full.seconds
        result["full_leads"] = full.leads_total
        result["load_increment_s"] = load(engine, w, base, len(w), bulk=False)
        print(f"{args.worker}: incremental build …", file=sys.stderr, flush=True)
        inc = build_leads(engine, facts, config, now=now)
        assert inc.mode == "incremental", inc
        result["incremental_s"] = inc.seconds
        result["incremental"] = inc.as_dict()
        after_increment = digest(engine)
        result["state"] = after_increment
        result["rebuild_s"] = result["same_as_rebuild"] = None
        if args.verify:
            print(f"{args.worker}: full rebuild …", file=sys.stderr, flush=True)
            rebuild = build_leads(engine, facts, config, now=now, rebuild=True)
            result["rebuild_s"] = rebuild.seconds
            result["same_as_rebuild"] = digest(engine) == after_increment
        if args.worker == "sqlite":
            result["db_bytes"] = (Path(tmp) / "bench_leads.sqlite").stat().st_size
        engine.dispose()
    print(json.dumps(result), flush=True)


def run_engine(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--sightings",
        str(args.sightings),
        "--addresses",
        str(args.addresses),
        "--increment",
        str(args.increment),
        "--seed",
        str(args.seed),
        "--verify" if args.verify else "--no-verify",
    ]
    return run_child(cmd, f"engine {name}")


def postgres_version() -> str:
    """The version of the PostgreSQL server binaries the benchmark starts."""
    bindir = find_bindir()
    if bindir is None:
        return "?"
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return "?"
    found = re.search(r"\d+(\.\d+)+", out)
    return found.group(0) if found else "?"


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds else "-"


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    first = results[0]
    state = first["state"]
    inc = first["incremental"]
    lines = [
        START,
        "## Lead building (`bench/bench_leads.py`)",
        "",
        f"{first['sightings']:,} synthetic sightings over {first['addresses']:,} addresses "
        f"(seed {args.seed}, {DAYS} days, {ISPS} made-up ISPs in {PROVINCES} provinces, "
        f"{CGNAT_POOL} carrier-grade NAT addresses, {ITEMS:,} Zipf-popular items). "
        f"The full build reads the first {first['base']:,}; the incremental build the newest "
        f"{first['sightings'] - first['base']:,} ({args.increment:.1%})"
        + (
            "; a full rebuild then reads all of them to check the incremental result"
            if args.verify
            else " (no check rebuild: --no-verify)"
        )
        + f". Result: {state['leads']:,} leads of {state['presences']:,} presences, "
        f"{state['links']:,} links, {state['multi_address_leads']:,} leads over more than "
        "one address"
        + ("; the incremental state and the rebuild are identical" if args.verify else "")
        + ("; the engines agree" if len(results) > 1 else "")
        + f" (digest `{state['sha256'][:16]}`).",
        "",
        "| engine | GROUP BY ip (baseline) | full build | sightings / s | incremental "
        "| new sightings / s | full rebuild | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        new = r["sightings"] - r["base"]
        lines.append(
            f"| {ENGINES[r['engine']]} | {r['group_by_s']:.1f} s | {r['full_s']:.1f} s | "
            f"{_rate(r['base'], r['full_s'])} | {r['incremental_s']:.1f} s | "
            f"{_rate(new, r['incremental_s'])} | "
            + (f"{r['rebuild_s']:.1f} s" if r["rebuild_s"] is not None else "not run")
            + " | "
            f"{human_bytes(r['peak_rss_bytes'])} |"
        )
    lines += [
        "",
        f"- Incremental build: {inc['sightings']:,} new sightings touched "
        f"{inc['presences_removed']:,} presences, wrote {inc['presences_written']:,}, "
        f"replaced {inc['leads_removed']:,} leads with {inc['leads_written']:,} and "
        f"rescored {inc['leads_rescored']:,} (recency of recent leads, rarity changes).",
        "- Loading (not part of the figures above): "
        + "; ".join(
            f"{r['engine']} {_rate(r['base'], r['load_base_s'])} sightings/s bulk, "
            f"{_rate(r['sightings'] - r['base'], r['load_increment_s'])} with indexes"
            for r in results
        )
        + ".",
        "- The baseline reads what a lead list per address needs from the sighting table "
        "in one SQL pass; lead building also groups by time window and device, links "
        "presences by peer id and collection, scores every factor and writes presences, "
        "items, links, factors and leads.",
        "- Peak RSS is the benchmark process's (data generation included), not the "
        "PostgreSQL server's.",
    ]
    lines += [
        "",
        *footer(
            {
                "SQLite": sqlite3.sqlite_version,
                "PostgreSQL": postgres_version(),
                "SQLAlchemy": sqlalchemy.__version__,
            }
        ),
        END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sightings", type=int, default=10_000_000)
    parser.add_argument("--addresses", type=int, default=200_000)
    parser.add_argument(
        "--increment", type=float, default=0.01, help="share of newest sightings built last"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated, from {', '.join(ENGINES)}"
    )
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="rebuild after the incremental build and check both agree (default: yes)",
    )
    add_docs_options(parser)
    parser.add_argument("--worker", choices=list(ENGINES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sightings < 10 or args.addresses < CGNAT_POOL * 2:
        parser.error(f"--sightings must be at least 10 and --addresses at least {CGNAT_POOL * 2}")
    if not 0 < args.increment < 1:
        parser.error("--increment must be between 0 and 1")
    args.engine_list = pick(parser, args.engines, ENGINES, "engines")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    results = []
    for name in args.engine_list:
        print(f"running {name} …", file=sys.stderr, flush=True)
        result = run_engine(name, args)
        print(json.dumps(result), flush=True)
        results.append(result)
    problems = [r["engine"] for r in results if r["same_as_rebuild"] is False]
    digests = {r["state"]["sha256"] for r in results}
    if problems or len(digests) != 1:
        print(
            f"incremental state differs from the rebuild on {problems}, or engines disagree "
            f"({len(digests)} digests)",
            file=sys.stderr,
        )
        return 1
    publish(render(args, results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
