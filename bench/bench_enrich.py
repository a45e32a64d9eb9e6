"""Enrichment rate: addresses per second, against a bare maxminddb look-up loop.

    python bench/bench_enrich.py [--addresses N] [--sightings N] [--seed S] [--contenders …]

Generates N distinct synthetic IPv4 addresses from `--seed`: `--spain-share`
of them drawn inside the ranges of large Spanish access networks (from the
installed ASN table), the rest uniform over the global unicast space. Then,
each in its own subprocess (so each peak RSS is its own):

- `maxminddb`: the baseline, `reader.get(ip)` on the DB-IP City Lite file in
  a plain loop: what one look-up costs with nothing else done;
- `enricher`: `Enricher.enrich_many` in batches of `--batch`: location, ASN,
  jurisdiction (es-atlas/world-atlas), time zone and flags;
- `sqlite`, `postgresql`: `enrich_pending` end to end on a store holding
  `--sightings` sightings (10 M) over the addresses, each at least once:
  reading the distinct pending addresses, enriching, writing.

The baseline and the enricher must find the same number of addresses in the
location data, and the stores must hold one row per address; the run fails
otherwise. Results go to stdout and to the `bench_enrich` section of
docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import csv
import datetime
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import numpy as np

from benchdocs import ROOT, add_docs_options, footer, human_bytes, markers, pick, publish, run_child

START, END = markers("bench_enrich")

# Large Spanish access networks (public registry facts): addresses are drawn
# at random inside their announced ranges, never taken from any observation.
SPANISH_ASNS = (3352, 12479, 12430, 6739)

CONTENDERS = {
    "maxminddb": "bare `maxminddb` look-up loop (DB-IP City Lite), the baseline",
    "enricher": "`Enricher.enrich_many`: location, ASN, jurisdiction, time zone, flags",
    "sqlite": "`enrich_pending` on SQLite: read pending, enrich, write",
    "postgresql": "`enrich_pending` on PostgreSQL: read pending, enrich, write",
}


def _settings() -> Any:
    from atalaya.enrich.settings import EnrichSettings  # noqa: PLC0415

    return EnrichSettings.load()


def spanish_ranges(asn_table: Path) -> list[tuple[int, int]]:
    wanted = {str(a) for a in SPANISH_ASNS}
    with asn_table.open(encoding="utf-8", newline="") as f:
        return [(int(r[0]), int(r[1])) for r in csv.reader(f) if len(r) >= 3 and r[2] in wanted]


def make_addresses(count: int, spain_share: float, seed: int) -> list[str]:
    """`count` distinct addresses from `seed`: see the module docstring."""
    rng = random.Random(seed)
    settings = _settings()
    table = next(p for p in settings.asn_dbs if p.name.endswith("ipv4-num.csv"))
    ranges = spanish_ranges(table)
    if not ranges:
        raise SystemExit(f"no Spanish ranges in {table}: is the data installed (scripts/setup.sh)?")
    sizes = [end - start + 1 for start, end in ranges]
    cumulative = []
    total = 0
    for size in sizes:
        total += size
        cumulative.append(total)
    seen: set[int] = set()
    spanish = round(count * spain_share)
    out: list[str] = []
    while len(out) < spanish:
        pick = rng.randrange(total)
        i = bisect.bisect_right(cumulative, pick)
        value = ranges[i][0] + (pick - (cumulative[i] - sizes[i]))
        if value not in seen:
            seen.add(value)
            out.append(str(IPv4Address(value)))
    while len(out) < count:
        value = rng.getrandbits(32)
        if value not in seen and IPv4Address(value).is_global:
            seen.add(value)
            out.append(str(IPv4Address(value)))
    rng.shuffle(out)
    return out


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_maxminddb(ips: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import maxminddb  # noqa: PLC0415

    settings = _settings()
    path = next(p for p in settings.city_dbs if "ipv4" in p.name)
    started = time.perf_counter()
    reader = maxminddb.open_database(str(path))
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    found = 0
    for ip in ips:
        if reader.get(ip) is not None:
            found += 1
    run_s = time.perf_counter() - started
    return {"load_s": load_s, "run_s": run_s, "found": found}


def run_enricher(ips: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from atalaya.enrich.enricher import Enricher  # noqa: PLC0415

    started = time.perf_counter()
    enricher = Enricher.open(_settings())
    load_s = time.perf_counter() - started
    found = spain = 0
    started = time.perf_counter()
    for start in range(0, len(ips), args.batch):
        for item in enricher.enrich_many(ips[start : start + args.batch]):
            if "not_found" not in item.flags and "reserved" not in item.flags:
                found += 1
            if item.municipality_code is not None:
                spain += 1
    run_s = time.perf_counter() - started
    return {
        "load_s": load_s,
        "run_s": run_s,
        "found": found,
        "in_municipality": spain,
        "points": enricher.located_points,
    }


@contextlib.contextmanager
def postgres_database(url: str | None) -> Iterator[str]:
    """A fresh database on `url`'s server, or on a throw-away server of our own."""
    from sqlalchemy import create_engine, text  # noqa: PLC0415
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    with contextlib.ExitStack() as stack:
        if url is None:
            sys.path.insert(0, str(ROOT))
            from tests.support.postgres import postgres_server  # noqa: PLC0415

            url = stack.enter_context(postgres_server())
        name = f"bench_enrich_{os.getpid()}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def run_store(ips: list[str], args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select  # noqa: PLC0415

    from atalaya.enrich.enricher import Enricher  # noqa: PLC0415
    from atalaya.enrich.store import enrich_pending  # noqa: PLC0415
    from atalaya.store import create_store_engine, upgrade  # noqa: PLC0415
    from atalaya.store.tables import enrichment  # noqa: PLC0415

    url = args.db_url or f"sqlite:///{Path(args.workdir) / 'bench_enrich.db'}"
    engine = create_store_engine(url)
    upgrade(engine)
    fill_s = fill_sightings(engine, ips, args.sightings, args.seed)
    started = time.perf_counter()
    enricher = Enricher.open(_settings())
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    report = enrich_pending(engine, enricher, batch_size=args.batch)
    run_s = time.perf_counter() - started
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(enrichment)).scalar_one()
    engine.dispose()
    return {
        "load_s": load_s,
        "run_s": run_s,
        "fill_s": fill_s,
        "sightings": max(args.sightings, len(ips)),
        "stored": stored,
        "found": report.enriched - report.not_found,
    }


def fill_sightings(engine: Any, ips: list[str], sightings: int, seed: int) -> float:
    """Fill the sighting table with `sightings` rows over every address; seconds taken.

    Each address gets one sighting, the rest go to addresses drawn at random,
    one a second in time order: what enrichment reads is the distinct
    addresses of a table of the benchmark's size. Loaded with bench_leads'
    bulk path (indexes dropped and made again).
    """
    from bench_leads import bulk_insert  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    count = max(sightings, len(ips))
    order = np.concatenate([np.arange(len(ips)), rng.integers(0, len(ips), count - len(ips))])
    rng.shuffle(order)
    epoch = datetime.datetime(2026, 5, 1)
    columns = (
        "network",
        "item_kind",
        "item_value",
        "ip",
        "port",
        "seen_at",
        "found_by",
        "pieces_verified",
        "pieces_failed",
        "bytes_downloaded",
        "proof",
        "observer",
        "run_id",
    )

    def rows(start: int, end: int, sqlite: bool) -> Iterator[tuple[Any, ...]]:
        suffix = "" if sqlite else "+00"
        for k, i in enumerate(order[start:end].tolist(), start):
            at = epoch + datetime.timedelta(seconds=k)
            yield (
                "bittorrent",
                "btih",
                "ab" * 20,
                ips[i],
                6881,
                f"{at:%Y-%m-%d %H:%M:%S}.000000{suffix}",
                "dht",
                0,
                0,
                0,
                False,
                "atalaya/bench",
                "00000000-0000-4000-8000-000000000000",
            )

    return bulk_insert(engine, columns, rows, 0, count, bulk=True)


RUNNERS = {
    "maxminddb": run_maxminddb,
    "enricher": run_enricher,
    "sqlite": run_store,
    "postgresql": run_store,
}


def worker(args: argparse.Namespace) -> None:
    """Run one contender and print its figures as one JSON line."""
    started = time.perf_counter()
    ips = make_addresses(args.addresses, args.spain_share, args.seed)
    generate_s = time.perf_counter() - started
    result = RUNNERS[args.worker](ips, args)
    print(
        json.dumps(
            {
                "contender": args.worker,
                "addresses": len(ips),
                "generate_s": generate_s,
                "per_s": len(ips) / result["run_s"] if result["run_s"] else None,
                **result,
            }
        ),
        flush=True,
    )


def run_contender(
    name: str, args: argparse.Namespace, workdir: Path, db_url: str | None
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--addresses",
        str(args.addresses),
        "--sightings",
        str(args.sightings),
        "--spain-share",
        str(args.spain_share),
        "--seed",
        str(args.seed),
        "--batch",
        str(args.batch),
        "--workdir",
        str(workdir),
    ]
    if db_url is not None:
        cmd += ["--db-url", db_url]
    return run_child(cmd, f"contender {name}")


def data_versions() -> str:
    from atalaya.enrich.geoip import npm_package  # noqa: PLC0415

    settings = _settings()
    files = [
        *settings.city_dbs[:1],
        *settings.asn_dbs[:1],
        settings.spain_atlas,
        settings.world_atlas,
    ]
    return ", ".join(f"`{npm_package(p) or p.name}`" for p in files)


def render(args: argparse.Namespace, results: list[dict[str, Any]], skipped: list[str]) -> str:
    baseline = next((r for r in results if r["contender"] == "maxminddb"), None)
    lines = [
        START,
        "## Enrichment rate (`bench/bench_enrich.py`)",
        "",
        f"{args.addresses:,} distinct synthetic IPv4 addresses from seed {args.seed}: "
        f"{args.spain_share:.0%} drawn inside the ranges of large Spanish access "
        f"networks (AS {', '.join(map(str, SPANISH_ASNS))}), the rest uniform over the "
        f"global unicast space; enriched in batches of {args.batch:,}. "
        f"Data: {data_versions()}.",
        "",
        "| contender | load data | addresses / s | time | vs baseline | peak RSS |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ratio = (
            f"{baseline['per_s'] / r['per_s']:.1f} x slower"
            if baseline and r is not baseline and r["per_s"]
            else "-"
        )
        lines.append(
            f"| {CONTENDERS[r['contender']]} | {r['load_s']:.1f} s | {r['per_s']:,.0f} | "
            f"{r['run_s']:.1f} s | {ratio} | {human_bytes(r['peak_rss_bytes'])} |"
        )
    notes = []
    if baseline:
        notes.append(
            f"- Found in the location data: {baseline['found']:,} of {args.addresses:,} "
            "addresses, the same count for the baseline and the enricher (checked)."
        )
    enricher = next((r for r in results if r["contender"] == "enricher"), None)
    if enricher:
        notes.append(
            f"- The enricher placed {enricher['in_municipality']:,} addresses in a Spanish "
            f"municipality; it located {enricher['points']:,} distinct points (each point "
            "is located once, then cached)."
        )
    for r in results:
        if "fill_s" in r:
            notes.append(
                f"- {r['contender']}: {r['stored']:,} rows written, one per distinct address "
                f"of a sighting table of {r['sightings']:,} rows (every address at least "
                f"once); loading that table beforehand (not timed above) took "
                f"{r['fill_s']:.1f} s."
            )
    notes.append(
        "- Load data: opening the databases, parsing the ASN table and decoding and "
        "indexing both atlases, once per process; not part of the rate."
    )
    if skipped:
        notes.append(f"- Not run: {', '.join(skipped)}.")
    lines += [
        "",
        *notes,
        "",
        *footer({"SQLite": sqlite3.sqlite_version}),
        END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=200_000)
    parser.add_argument(
        "--sightings",
        type=int,
        default=10_000_000,
        help="rows in the stores' sighting table, over all the addresses",
    )
    parser.add_argument("--spain-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--batch", type=int, default=2_000, help="addresses per batch")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma-separated, from {', '.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--postgres-url",
        help="server for the postgresql contender (default: start one from Debian's binaries)",
    )
    add_docs_options(parser)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.addresses < 1 or args.batch < 1 or args.sightings < 0:
        parser.error("--addresses and --batch must be at least 1, --sightings at least 0")
    if not 0 <= args.spain_share <= 1:
        parser.error("--spain-share must be between 0 and 1")
    args.contender_list = pick(parser, args.contenders, CONTENDERS, "contenders")
    return args


def _postgres_available(args: argparse.Namespace) -> bool:
    if args.postgres_url:
        return True
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import find_bindir  # noqa: PLC0415

    return find_bindir() is not None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    results = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="bench_enrich-") as workdir:
        for name in args.contender_list:
            if name == "postgresql" and not _postgres_available(args):
                skipped.append("postgresql (no server: pass --postgres-url or install PostgreSQL)")
                continue
            print(f"running {name} …", file=sys.stderr, flush=True)
            if name == "postgresql":
                with postgres_database(args.postgres_url) as url:
                    result = run_contender(name, args, Path(workdir), url)
            else:
                result = run_contender(name, args, Path(workdir), None)
            print(json.dumps(result), flush=True)
            results.append(result)
    found = {r["contender"]: r["found"] for r in results}
    stored = {r["contender"]: r["stored"] for r in results if "stored" in r}
    if len(set(found.values())) > 1 or any(n != args.addresses for n in stored.values()):
        print(f"contenders disagree: found {found}, stored {stored}", file=sys.stderr)
        return 1
    publish(render(args, results, skipped), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
