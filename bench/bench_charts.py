"""Chart response times: stored daily counts against counting sightings at each request.

    python bench/bench_charts.py [--sightings N] [--addresses N] [--repeat R] [--seed S]

Uses bench/bench_leads.py's synthetic history (made-up addresses, items and
places; the same generator and seed), loads it into a fresh store for each
engine (in its own subprocess) and builds the leads, which also writes the
sightings per presence and UTC day (`lead_presence_day`). Then, for three
selections (the busiest ISO week and its busiest province, for a unit
covering that province; the same week for a unit covering every province;
the whole history for that unit), it times side by side:

- the request-time computation the application used before
  (`tests/support/charts_reference.py`: every sighting of the selected leads'
  presences found again by the presences' bounds and counted per day);
- `atalaya.leads.charts.chart_data`, which sums the stored daily counts;
- `GET /charts` through the real Starlette application in-process (session,
  query, HTML, the audit record), on the stored counts.

The run stops unless both computations give exactly the same charts. Each
time is the median of `--repeat` runs after one warm-up (`--old-repeat` for
the request-time computation, which takes seconds). Results go to stdout
and to the `bench_charts` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import re
import sqlite3
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
from sqlalchemy import Engine, func, select, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # tests.support: the reference computation

from tests.support.charts_reference import charts_from_sightings  # noqa: E402

import bench_leads as gen  # noqa: E402
from atalaya.accounts import add_unit, add_user  # noqa: E402
from atalaya.accounts.visibility import conflict_clause, visible_lead_ids_clause  # noqa: E402
from atalaya.leads.build import build_leads  # noqa: E402
from atalaya.leads.charts import chart_data  # noqa: E402
from atalaya.leads.config import LeadsConfig  # noqa: E402
from atalaya.leads.facts import MappingFacts  # noqa: E402
from atalaya.store import create_store_engine, upgrade  # noqa: E402
from atalaya.store.tables import lead, lead_presence, lead_presence_day  # noqa: E402
from atalaya.web.app import create_app  # noqa: E402
from atalaya.web.filters import Filters  # noqa: E402
from atalaya.web.settings import WebSettings  # noqa: E402
from bench_web import PASSWORD, POLICY, busiest_week_and_province, timed  # noqa: E402
from benchdocs import (  # noqa: E402
    add_docs_options,
    footer,
    markers,
    pick,
    publish,
    run_child,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about its HTTP client
    from starlette.testclient import TestClient

START, END = markers("bench_charts")


def scenario(
    engine: Engine,
    app_engine: Engine,
    name: str,
    provinces: tuple[str, ...],
    flt: Filters,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Time the old and new computation, and the page, for a unit covering `provinces`."""
    now = datetime.datetime.now(datetime.UTC)
    username = f"bench-{name}"
    with engine.begin() as conn:
        unit = add_unit(conn, f"Bench {name}", provinces, "bench desk", now)
        add_user(conn, username, unit.name, "analyst", PASSWORD, now, POLICY)
    out: dict[str, Any] = {
        "name": name,
        "provinces": len(provinces),
        "since": flt.since.isoformat(),
        "until": flt.until.isoformat(),
    }

    def old() -> Any:
        with engine.connect() as conn:
            return charts_from_sightings(
                conn,
                flt,
                visible=visible_lead_ids_clause(unit.id),
                now=now,
                conflicts=conflict_clause(unit.id),
            )

    def new() -> Any:
        with engine.connect() as conn:
            return chart_data(
                conn,
                flt,
                visible=visible_lead_ids_clause(unit.id),
                now=now,
                conflicts=conflict_clause(unit.id),
            )

    print(f"  {name}: stored counts …", file=sys.stderr, flush=True)
    out["new_s"], new_data = timed(new, args.repeat)
    print(f"  {name}: counting sightings …", file=sys.stderr, flush=True)
    out["old_s"], old_data = timed(old, args.old_repeat)
    # The old count predates the province codes and the partial week.
    if dataclasses.replace(new_data, province_codes=[], partial_week=None) != old_data:
        raise SystemExit(f"{name}: the stored counts and the sightings disagree")
    out["leads"] = new_data.leads
    out["sightings"] = sum(new_data.sightings_per_week)

    app = create_app(app_engine, WebSettings.load(policy=POLICY))
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

        def page() -> Any:
            answer = client.get(f"/charts?{params}")
            assert answer.status_code == 200, answer.text[:500]
            return answer

        out["page_s"], answer = timed(page, args.repeat)
        out["page_bytes"] = len(answer.content)
    return out


def worker(args: argparse.Namespace) -> None:
    w = gen.make_workload(args.sightings, args.addresses, args.seed)
    now = (
        (gen.EPOCH + np.timedelta64(gen.DAYS + 1, "D"))
        .astype(datetime.datetime)
        .replace(tzinfo=datetime.UTC)
    )
    result: dict[str, Any] = {"engine": args.worker, "sightings": len(w)}
    with (
        tempfile.TemporaryDirectory(prefix="bench_charts-") as tmp,
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
        with engine.connect() as conn:
            result["presences"] = conn.scalar(select(func.count()).select_from(lead_presence))
            result["day_rows"] = conn.scalar(select(func.count()).select_from(lead_presence_day))
            result["lead_rows"] = conn.scalar(select(func.count()).select_from(lead))
        week, province, _ = busiest_week_and_province(engine)
        result["province"] = province
        first_day = gen.EPOCH.astype(datetime.datetime).date()
        last_day = first_day + datetime.timedelta(days=gen.DAYS)
        one_week = {"since": week, "until": week + datetime.timedelta(days=6)}
        everything = tuple(f"{n:02d}" for n in range(1, gen.PROVINCES + 1))
        # The application's engine gets the web's time limit on statements; the
        # request-time computation would run into it.
        app_engine = create_store_engine(url)
        print(f"{args.worker}: timing the charts …", file=sys.stderr, flush=True)
        result["scenarios"] = [
            scenario(
                engine,
                app_engine,
                "province",
                (province,),
                Filters(**one_week, provinces=(province,)),
                args,
            ),
            scenario(engine, app_engine, "spain", everything, Filters(**one_week), args),
            scenario(
                engine,
                app_engine,
                "history",
                everything,
                Filters(since=first_day, until=last_day),
                args,
            ),
        ]
        app_engine.dispose()
        engine.dispose()
    print(json.dumps(result, default=str), flush=True)


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
        "--old-repeat",
        str(args.old_repeat),
        "--seed",
        str(args.seed),
    ]
    return run_child(cmd, f"engine {name}")


def _ms(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:,.1f} s"
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    first = results[0]
    lines = [
        START,
        "## Chart response times (`bench/bench_charts.py`)",
        "",
        f"{first['sightings']:,} synthetic sightings over {args.addresses:,} addresses "
        f"(bench/bench_leads.py's generator, seed {args.seed}, {gen.DAYS} days, "
        f"{gen.PROVINCES} made-up provinces) grouped into {first['leads']:,} leads of "
        f"{first['presences']:,} presences, whose sightings per UTC day make "
        f"{first['day_rows']:,} rows of `lead_presence_day`. Selections: the ISO week with "
        "the most active leads and the province with the most leads that week, for a unit "
        "covering that province; the same week for a unit covering every province; the "
        "whole history for that unit (the chart then spans its 26 weeks). Each time is the "
        f"median of {args.repeat} runs after a warm-up ({args.old_repeat} for the "
        "request-time count).",
        "",
        "| engine | selection | leads | sightings | counting sightings (before) "
        "| stored daily counts | faster | `GET /charts` |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for s in r["scenarios"]:
            what = {
                "province": f"week from {s['since']}, province {r['province']}",
                "spain": f"week from {s['since']}, all {s['provinces']} provinces",
                "history": f"{s['since']} to {s['until']}, all {s['provinces']} provinces",
            }[s["name"]]
            lines.append(
                f"| {gen.ENGINES[r['engine']]} | {what} | {s['leads']:,} | {s['sightings']:,} | "
                f"{_ms(s['old_s'])} | {_ms(s['new_s'])} | {s['old_s'] / s['new_s']:,.0f} x | "
                f"{_ms(s['page_s'])} |"
            )
    lines += [
        "",
        "- Counting sightings is the computation `/charts` ran at each request before: the "
        "selected leads' presences read in chunks, then one query per 100 presences that "
        "finds their sightings by address, port and time bounds and counts them per UTC day "
        "(kept in `tests/support/charts_reference.py` as the reference). The stored daily "
        "counts are summed per lead, province and ISO week in one query per 2,000 leads; "
        "the run checks that both give exactly the same charts.",
        "- Both include `select_leads` (the selection with the unit's visibility), which the "
        "charts share with the map and the list.",
        "- `GET /charts` runs through the whole application in-process (Starlette's "
        "TestClient, no network): session check, the query, the HTML page with its data, "
        "and one audit record per request.",
        "- Set-up, not timed above: "
        + "; ".join(
            f"{r['engine']} loaded the sightings in {r['load_s']:.0f} s and built the leads "
            f"(daily counts included) in {r['build_s']:.0f} s"
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
    parser.add_argument("--sightings", type=int, default=1_000_000)
    parser.add_argument("--addresses", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--old-repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--engines",
        default=",".join(gen.ENGINES),
        help=f"comma-separated, from {', '.join(gen.ENGINES)}",
    )
    add_docs_options(parser)
    parser.add_argument("--worker", choices=list(gen.ENGINES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sightings < 10 or args.addresses < gen.CGNAT_POOL * 2:
        parser.error(
            f"--sightings must be at least 10 and --addresses at least {gen.CGNAT_POOL * 2}"
        )
    if args.repeat < 1 or args.old_repeat < 1:
        parser.error("--repeat and --old-repeat must be at least 1")
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
    publish(render(args, results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
