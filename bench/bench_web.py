"""Map and list response times for a one-week province filter, on SQLite and PostgreSQL.

    python bench/bench_web.py [--sightings N] [--addresses N] [--repeat R] [--seed S]

Uses bench/bench_leads.py's synthetic history (made-up addresses, items and
places; the same generator and seed), loads it into a fresh store for each
engine (in its own subprocess), builds the leads, adds a unit covering the
province with the most leads in the busiest week of the history, and times,
for that week and province:

- the baseline: the bare SQL a map needs (`SELECT id, lat, lon, score,
  known_files FROM lead WHERE province_code = … AND last_seen >= … AND
  first_seen < … ORDER BY score DESC`) read to the end through the driver;
- `select_leads`, the application's one query behind the map and the list
  (score in force with analysts' overrides, the unit's visibility);
- `GET /api/map` and `GET /` (the list page) through the real Starlette
  application in-process (session lookup, query, JSON or HTML, gzip, the
  audit record every request writes);
- a filter change as the page makes it without reloading (`GET /api/map`
  and `GET /api/leads` with a minimum score added; the browser sends both at
  once, the figure is their sum), paging the list alone (`GET /api/leads`,
  page 2), and search from one box (`GET /api/search`) by an address, its
  /16 prefix, an info-hash and a client's peer id prefix;

and the same for a unit covering every province (the widest one-week
selection). Each figure is the median of `--repeat` runs after one warm-up.
Results go to stdout and to the `bench_web` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
from sqlalchemy import Engine, bindparam, func, select, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bench_leads as gen  # noqa: E402
from atalaya.accounts import AccountPolicy, add_unit, add_user  # noqa: E402
from atalaya.accounts.visibility import conflict_clause, visible_lead_ids_clause  # noqa: E402
from atalaya.leads.build import build_leads  # noqa: E402
from atalaya.leads.config import LeadsConfig  # noqa: E402
from atalaya.leads.facts import MappingFacts  # noqa: E402
from atalaya.leads.selection import select_leads  # noqa: E402
from atalaya.store import create_store_engine, upgrade  # noqa: E402
from atalaya.store.tables import lead, lead_presence, lead_presence_item  # noqa: E402
from atalaya.web.app import create_app  # noqa: E402
from atalaya.web.filters import Filters  # noqa: E402
from atalaya.web.settings import WebSettings  # noqa: E402
from benchdocs import DEFAULT_DOCS, footer, human_bytes, markers, pick, run_child, update_docs  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about its HTTP client
    from starlette.testclient import TestClient

ROOT = BENCH.parent
START, END = markers("bench_web")
PASSWORD = "bench password, made up"
# Logins are not what is timed: a cheap Argon2 keeps set-up short.
POLICY = AccountPolicy(argon2_time_cost=1, argon2_memory_cost_kib=8192, argon2_parallelism=1)


def busiest_week_and_province(engine: Engine) -> tuple[datetime.date, str, int]:
    """The Monday of the ISO week with the most leads active, and its busiest province."""
    with engine.connect() as conn:
        rows = conn.execute(select(lead.c.first_seen, lead.c.last_seen, lead.c.province_code))
        weeks: dict[datetime.date, int] = {}
        spans = []
        for first, last, province in rows:
            first_monday = first.date() - datetime.timedelta(days=first.weekday())
            last_monday = last.date() - datetime.timedelta(days=last.weekday())
            spans.append((first_monday, last_monday, province))
            monday = first_monday
            while monday <= last_monday:
                weeks[monday] = weeks.get(monday, 0) + 1
                monday += datetime.timedelta(days=7)
    week = max(weeks, key=lambda m: (weeks[m], m))
    per_province: dict[str, int] = {}
    for first_monday, last_monday, province in spans:
        if province and first_monday <= week <= last_monday:
            per_province[province] = per_province.get(province, 0) + 1
    province = max(per_province, key=lambda p: (per_province[p], p))
    return week, province, per_province[province]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of `repeat` runs after a warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def baseline(engine: Engine, provinces: tuple[str, ...], start: Any, end: Any) -> int:
    query = text(
        "SELECT id, lat, lon, score, known_files FROM lead WHERE province_code IN :provinces "
        "AND last_seen >= :start AND first_seen < :end ORDER BY score DESC"
    ).bindparams(bindparam("provinces", expanding=True))
    with engine.connect() as conn:
        return len(conn.execute(query, {"provinces": provinces, "start": start, "end": end}).all())


def scenario(
    engine: Engine, name: str, provinces: tuple[str, ...], week: datetime.date, repeat: int
) -> dict[str, Any]:
    """Time the four contenders for a unit covering `provinces`."""
    now = datetime.datetime.now(datetime.UTC)
    username = f"bench-{name}"
    with engine.begin() as conn:
        unit = add_unit(conn, f"Bench {name}", provinces, "bench desk", now)
        add_user(conn, username, unit.name, "analyst", PASSWORD, now, POLICY)
    flt = Filters(
        since=week,
        until=week + datetime.timedelta(days=6),
        provinces=provinces if len(provinces) == 1 else (),
    )
    out: dict[str, Any] = {"name": name, "provinces": len(provinces), "week": week.isoformat()}
    out["baseline_s"], out["baseline_rows"] = timed(
        lambda: baseline(engine, provinces, flt.start, flt.end), repeat
    )

    def query() -> int:
        with engine.connect() as conn:
            return len(
                select_leads(
                    conn,
                    flt,
                    visible=visible_lead_ids_clause(unit.id),
                    now=now,
                    conflicts=conflict_clause(unit.id),
                )
            )

    out["select_s"], out["select_rows"] = timed(query, repeat)
    app = create_app(engine, WebSettings.load(policy=POLICY))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        login = client.get("/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', login)
        assert token is not None
        signed = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf": token[1]},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        params = flt.query(page=False)

        def map_api() -> Any:
            answer = client.get(f"/api/map?{params}")
            assert answer.status_code == 200, answer.text
            return answer

        def list_page() -> Any:
            answer = client.get(f"/?{params}")
            assert answer.status_code == 200, answer.text
            return answer

        out["map_s"], answer = timed(map_api, repeat)
        body = answer.content
        out["map_leads"] = answer.json()["count"]
        out["map_bytes"] = len(body)
        out["map_gzip_bytes"] = len(gzip.compress(body, 6))
        out["list_s"], page = timed(list_page, repeat)
        out["list_bytes"] = len(page.content)

        changed = Filters(**{**flt.__dict__, "min_score": 20.0}).query(page=False)

        def filter_change() -> int:
            leads = client.get(f"/api/leads?{changed}")
            points = client.get(f"/api/map?{changed}")
            assert leads.status_code == points.status_code == 200, leads.text
            return int(points.json()["count"])

        def next_page() -> Any:
            answer = client.get(f"/api/leads?{params}&page=2")
            assert answer.status_code == 200, answer.text
            return answer

        out["filter_s"], out["filter_leads"] = timed(filter_change, repeat)
        out["page_s"], _ = timed(next_page, repeat)
        for kind, value in search_samples(engine, flt, unit.id, now).items():

            def search(value: str = value) -> int:
                answer = client.get("/api/search", params={"q": value})
                assert answer.status_code == 200, answer.text
                return int(answer.json()["total"])

            out[f"search_{kind}_s"], out[f"search_{kind}_leads"] = timed(search, repeat)
    if not out["baseline_rows"] == out["select_rows"] == out["map_leads"]:
        raise SystemExit(f"{name}: the baseline, select_leads and /api/map disagree: {out}")
    return out


def search_samples(
    engine: Engine, flt: Filters, unit_id: int, now: datetime.datetime
) -> dict[str, str]:
    """What an analyst would paste: the top lead's address, its /16, an
    info-hash it offered, and the generator's client prefix."""
    with engine.connect() as conn:
        rows = select_leads(
            conn, flt, visible=visible_lead_ids_clause(unit_id), now=now, conflicts=None
        )
        top = rows[0].id
        ip = conn.scalar(select(lead_presence.c.ip).where(lead_presence.c.lead_id == top))
        value = conn.scalar(
            select(lead_presence_item.c.value)
            .join(lead_presence, lead_presence.c.id == lead_presence_item.c.presence_id)
            .where(lead_presence.c.lead_id == top)
            .limit(1)
        )
    assert ip is not None and value is not None
    octets = str(ip).split(".")
    prefix = f"{octets[0]}.{octets[1]}.0.0/16" if len(octets) == 4 else f"{ip}/48"
    return {"ip": str(ip), "prefix": prefix, "hash": str(value), "peer": "-LT2100-"}


def worker(args: argparse.Namespace) -> None:
    w = gen.make_workload(args.sightings, args.addresses, args.seed)
    now = (
        (gen.EPOCH + np.timedelta64(gen.DAYS + 1, "D"))
        .astype(datetime.datetime)
        .replace(tzinfo=datetime.UTC)
    )
    result: dict[str, Any] = {"engine": args.worker, "sightings": len(w)}
    with (
        tempfile.TemporaryDirectory(prefix="bench_web-") as tmp,
        gen.database(args.worker, Path(tmp)) as url,
    ):
        engine = create_store_engine(url)
        upgrade(engine)
        print(f"{args.worker}: loading {len(w):,} sightings …", file=sys.stderr, flush=True)
        result["load_s"] = gen.load(engine, w, 0, len(w), bulk=True)
        print(f"{args.worker}: building leads …", file=sys.stderr, flush=True)
        report = build_leads(engine, MappingFacts(w.facts, version="bench"), LeadsConfig(), now=now)
        result["build_s"] = report.seconds
        result["leads"] = report.leads_total
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
        week, province, in_province = busiest_week_and_province(engine)
        result["province"], result["province_leads"] = province, in_province
        print(f"{args.worker}: timing the web …", file=sys.stderr, flush=True)
        all_provinces = tuple(f"{n:02d}" for n in range(1, gen.PROVINCES + 1))
        result["scenarios"] = [
            scenario(engine, "province", (province,), week, args.repeat),
            scenario(engine, "spain", all_provinces, week, args.repeat),
        ]
        with engine.connect() as conn:
            result["sighting_rows"] = conn.scalar(text("SELECT count(*) FROM sighting"))
            result["lead_rows"] = conn.scalar(select(func.count()).select_from(lead))
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
        "--repeat",
        str(args.repeat),
        "--seed",
        str(args.seed),
    ]
    return run_child(cmd, f"engine {name}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    first = results[0]
    lines = [
        START,
        "## Map and list response times (`bench/bench_web.py`)",
        "",
        f"{first['sightings']:,} synthetic sightings over {args.addresses:,} addresses "
        f"(bench/bench_leads.py's generator, seed {args.seed}, {gen.DAYS} days, "
        f"{gen.PROVINCES} made-up provinces) grouped into {first['leads']:,} leads. "
        "Filter: one ISO week (the one with the most active leads) and one province (the "
        "one with the most leads that week), for a unit covering that province; then the "
        "same week for a unit covering every province. Each time is the median of "
        f"{args.repeat} runs after a warm-up.",
        "",
        "| engine | selection | leads | bare SQL (baseline) | `select_leads` "
        "| `GET /api/map` | `GET /` (list page) | map JSON (gzip) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for s in r["scenarios"]:
            what = (
                f"week of {s['week']}, province {r['province']}"
                if s["name"] == "province"
                else f"week of {s['week']}, all {s['provinces']} provinces"
            )
            lines.append(
                f"| {gen.ENGINES[r['engine']]} | {what} | {s['map_leads']:,} | "
                f"{_ms(s['baseline_s'])} | {_ms(s['select_s'])} | {_ms(s['map_s'])} | "
                f"{_ms(s['list_s'])} | {human_bytes(s['map_bytes'])} "
                f"({human_bytes(s['map_gzip_bytes'])}) |"
            )
    lines += [
        "",
        "Without reloading the page: a filter change (map and list), the next page of the "
        "list alone, and search from one box (leads found in brackets).",
        "",
        "| engine | selection | filter change | next page | search: address "
        "| search: /16 | search: info-hash | search: peer id prefix |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for s in r["scenarios"]:
            what = "one province" if s["name"] == "province" else f"all {s['provinces']} provinces"
            cells = [
                f"{_ms(s[f'search_{k}_s'])} ({s[f'search_{k}_leads']:,})"
                for k in ("ip", "prefix", "hash", "peer")
            ]
            lines.append(
                f"| {gen.ENGINES[r['engine']]} | {what} | {_ms(s['filter_s'])} | "
                f"{_ms(s['page_s'])} | " + " | ".join(cells) + " |"
            )
    lines += [
        "",
        "- The baseline reads only the five columns a map needs for the unit's provinces, "
        "with no claims and no analyst overrides; `select_leads` adds the unit's visibility "
        "(jurisdiction and claims), the score in force (latest override) and every column "
        "the list shows.",
        "- `GET /api/map` and `GET /` run through the whole application in-process "
        "(Starlette's TestClient, no network): session check, the query, JSON or HTML, gzip, "
        "and one audit record per request; the list page renders 100 leads and counts the "
        "rest, the map gets every lead as `[id, lat, lon, score, known_files]`.",
        "- Set-up, not timed above: "
        + "; ".join(
            f"{r['engine']} loaded the sightings in {r['load_s']:.0f} s and built the leads "
            f"in {r['build_s']:.0f} s"
            for r in results
        )
        + ".",
        "",
        *footer(
            {
                "SQLite": sqlite3.sqlite_version,
                "PostgreSQL": gen.postgres_version(),
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
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--engines",
        default=",".join(gen.ENGINES),
        help=f"comma-separated, from {', '.join(gen.ENGINES)}",
    )
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="Markdown file to update")
    parser.add_argument("--no-docs", action="store_true", help="print only, write no file")
    parser.add_argument("--worker", choices=list(gen.ENGINES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sightings < 10 or args.addresses < gen.CGNAT_POOL * 2:
        parser.error(
            f"--sightings must be at least 10 and --addresses at least {gen.CGNAT_POOL * 2}"
        )
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.engine_list = pick(parser, args.engines, gen.ENGINES, "engines")
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
    section = render(args, results)
    print(section)
    if not args.no_docs:
        update_docs(args.docs, section)
        print(f"updated {args.docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
