"""Chart response times: one SQL statement against the chunked sums, and counting sightings.

    python bench/bench_charts.py [--sightings N[,N…]] [--addresses N[,N…]] [--repeat R] [--seed S]

Uses bench/bench_leads.py's synthetic history (made-up addresses, items and
places; the same generator and seed), loads it into a fresh store for each
engine (in its own subprocess) and builds the leads, which also writes the
sightings per presence and UTC day (`lead_presence_day`). Then, for three
selections (the busiest ISO week and its busiest province, for a unit
covering that province; the same week for a unit covering every province;
the whole history for that unit), it times side by side:

- `atalaya.leads.charts.chart_data`, which sums the stored weekly counts
  (daily ones for the weeks a selection cuts) in one statement nesting the
  selection, per week, per province and in all;
- the path it replaced, kept as the in-run baseline
  (`tests/support/charts_reference.py`, `charts_by_lead_chunks`): the
  selection read into Python, the stored counts summed per lead, province
  and week in one query per 2,000 leads, leads counted in Python sets;
- `GET /charts` through the real Starlette application in-process
  (session, query, HTML, the audit record), on each of the two;
- once, the request-time count used before the daily counts were stored
  (`charts_from_sightings`; `--old-repeat 0` leaves it out, for large stores).

`--sightings 500000,2000000` (with `--addresses 10000,20000`, or one value
for every size) times each size in turn, each in fresh stores: the
generator makes 2 M sightings in seconds, and loading and building take
a few minutes on two cores, so larger stores need no other mode.

The run stops unless all computations give exactly the same charts. Each
time is given as the median and the 95th percentile (nearest rank) of
`--repeat` runs after one warm-up. Results go to stdout and to the
`bench_charts` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
from sqlalchemy import Engine, func, select, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))  # tests.support: the reference computation

from tests.support.charts_reference import (  # noqa: E402
    charts_by_lead_chunks,
    charts_from_sightings,
)

import atalaya.web.app as web_app  # noqa: E402
import bench_leads as gen  # noqa: E402
from atalaya.accounts import add_unit, add_user  # noqa: E402
from atalaya.accounts.visibility import conflict_clause, visible_lead_ids_clause  # noqa: E402
from atalaya.leads.build import build_leads  # noqa: E402
from atalaya.leads.charts import chart_data  # noqa: E402
from atalaya.leads.config import LeadsConfig  # noqa: E402
from atalaya.leads.facts import MappingFacts  # noqa: E402
from atalaya.store import create_store_engine, upgrade  # noqa: E402
from atalaya.store.tables import (  # noqa: E402
    lead,
    lead_presence,
    lead_presence_day,
    lead_presence_week,
)
from atalaya.web.app import create_app  # noqa: E402
from atalaya.web.filters import Filters  # noqa: E402
from atalaya.web.settings import WebSettings  # noqa: E402
from bench_web import PASSWORD, POLICY, busiest_week_and_province  # noqa: E402
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


def timed(fn: Callable[[], Any], repeat: int) -> tuple[dict[str, float], Any]:
    """Median and 95th percentile (nearest rank) seconds of `repeat` runs
    after a warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    ranked = sorted(times)
    p95 = ranked[max(0, math.ceil(0.95 * len(ranked)) - 1)]
    return {"p50": statistics.median(times), "p95": p95}, result


@contextmanager
def app_charts(compute: Callable[..., Any]) -> Iterator[None]:
    """The application's charts computed by `compute` for the time being."""
    kept = web_app.chart_data
    web_app.chart_data = compute
    try:
        yield
    finally:
        web_app.chart_data = kept


def scenario(
    engine: Engine,
    app_engine: Engine,
    name: str,
    provinces: tuple[str, ...],
    flt: Filters,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Time the new and old computations, and the page on each, for a unit covering `provinces`."""
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

    def run(compute: Callable[..., Any]) -> Callable[[], Any]:
        def call() -> Any:
            with engine.connect() as conn:
                return compute(
                    conn,
                    flt,
                    visible=visible_lead_ids_clause(unit.id),
                    now=now,
                    conflicts=conflict_clause(unit.id),
                )

        return call

    print(f"  {name}: one statement …", file=sys.stderr, flush=True)
    out["new_s"], new_data = timed(run(chart_data), args.repeat)
    print(f"  {name}: chunked sums (before) …", file=sys.stderr, flush=True)
    out["chunked_s"], chunked_data = timed(run(charts_by_lead_chunks), args.repeat)
    if new_data != chunked_data:
        raise SystemExit(f"{name}: the statement and the chunked sums disagree")
    out["sightings_s"] = None
    if args.old_repeat:
        print(f"  {name}: counting sightings …", file=sys.stderr, flush=True)
        out["sightings_s"], old_data = timed(run(charts_from_sightings), args.old_repeat)
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

        print(f"  {name}: GET /charts …", file=sys.stderr, flush=True)
        out["page_s"], answer = timed(page, args.repeat)
        with app_charts(charts_by_lead_chunks):
            out["page_chunked_s"], before = timed(page, args.repeat)
        if _data_of(before) != _data_of(answer):
            raise SystemExit(f"{name}: the pages' chart data differ")
        out["page_bytes"] = len(answer.content)
    return out


def _data_of(answer: Any) -> str:
    """The page's chart data (the rest holds a fresh CSRF token)."""
    page = str(answer.text)
    start = page.index('id="chart-data"')
    return page[start : page.index("</script>", start)]


def worker(args: argparse.Namespace) -> None:
    w = gen.make_workload(args.sightings, args.addresses, args.seed)
    now = (
        (gen.EPOCH + np.timedelta64(gen.DAYS + 1, "D"))
        .astype(datetime.datetime)
        .replace(tzinfo=datetime.UTC)
    )
    result: dict[str, Any] = {
        "engine": args.worker,
        "sightings": len(w),
        "addresses": args.addresses,
    }
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
            result["week_rows"] = conn.scalar(select(func.count()).select_from(lead_presence_week))
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


def run_engine(
    name: str, sightings: int, addresses: int, args: argparse.Namespace
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--sightings",
        str(sightings),
        "--addresses",
        str(addresses),
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


def _pair(t: dict[str, float]) -> str:
    return f"{_ms(t['p50'])} / {_ms(t['p95'])}"


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    sizes = list(dict.fromkeys((r["sightings"], r["addresses"]) for r in results))
    stores = " and ".join(f"{n:,} synthetic sightings over {a:,} addresses" for n, a in sizes)
    lines = [
        START,
        "## Chart response times (`bench/bench_charts.py`)",
        "",
        f"Stores of {stores} (bench/bench_leads.py's generator, seed {args.seed}, "
        f"{gen.DAYS} days, {gen.PROVINCES} made-up provinces), each loaded into a fresh "
        "store per engine and built into leads, which store their sightings per presence "
        "and UTC day (`lead_presence_day`) and ISO week (`lead_presence_week`):",
        "",
        "| engine | sightings | leads | presences | daily rows | weekly rows | load | build |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {gen.ENGINES[r['engine']]} | {r['sightings']:,} | {r['leads']:,} | "
            f"{r['presences']:,} | {r['day_rows']:,} | {r['week_rows']:,} | "
            f"{r['load_s']:.0f} s | {r['build_s']:.0f} s |"
            for r in results
        ),
        "",
        "Selections: the ISO week with the most active leads and the province with the most "
        "leads that week, for a unit covering that province; the same week for a unit "
        "covering every province; the whole history for that unit (the chart then spans its "
        "26 weeks). Each time is median / 95th percentile (nearest rank) of "
        f"{args.repeat} runs after a warm-up.",
        "",
        "| engine | store | selection | leads | sightings | `chart_data` before (chunked sums) "
        "| `chart_data` now (one statement) | `GET /charts` before | `GET /charts` now |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for s in r["scenarios"]:
            lines.append(
                f"| {gen.ENGINES[r['engine']]} | {r['sightings']:,} | {_what(r, s)} | "
                f"{s['leads']:,} | "
                f"{s['sightings']:,} | {_pair(s['chunked_s'])} | {_pair(s['new_s'])} | "
                f"{_pair(s['page_chunked_s'])} | {_pair(s['page_s'])} |"
            )
    counted = [(r, s) for r in results for s in r["scenarios"] if s["sightings_s"]]
    if counted:
        lines += [
            "",
            "The request-time count used before the daily counts were stored (median of "
            f"{args.old_repeat} after a warm-up), which the run also checks the charts against:",
            "",
            "| engine | store | selection | counting sightings |",
            "| --- | ---: | --- | ---: |",
            *(
                f"| {gen.ENGINES[r['engine']]} | {r['sightings']:,} | {_what(r, s)} | "
                f"{_ms(s['sightings_s']['p50'])} |"
                for r, s in counted
            ),
        ]
    lines += [
        "",
        "- Now: `chart_data` sums the stored counts in one statement that nests the "
        "selection (the same conditions as `select_leads`, as a subquery) and the selected "
        "leads' presences: their weekly counts over the chart's weeks, and their daily counts "
        "only for the selected days of the (at most two) weeks the selection cuts; the "
        "database adds them up per week, per province and in all, counting distinct leads, "
        "and Python receives about a hundred rows. A drawn area still goes through "
        "`select_leads` (its exact polygon test is made in Python) and its ids in chunks "
        "of 2,000.",
        "- Before: the selection read into Python, the stored counts summed per lead, "
        "province and ISO week in one query per 2,000 leads, and the weeks' and provinces' "
        "leads counted in Python sets (`charts_by_lead_chunks` in "
        "`tests/support/charts_reference.py`, timed in the same run on the same store, whose "
        "index on a lead's presences with their province serves it too). The run checks that "
        "both give exactly the same charts and pages the same chart data.",
        "- `GET /charts` runs through the whole application in-process (Starlette's "
        "TestClient, no network): session check, the query, the HTML page with its data, "
        'and one audit record per request; "before" is the same application with the '
        "chunked sums swapped in.",
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


def _what(r: dict[str, Any], s: dict[str, Any]) -> str:
    return {
        "province": f"week from {s['since']}, province {r['province']}",
        "spain": f"week from {s['since']}, all {s['provinces']} provinces",
        "history": f"{s['since']} to {s['until']}, all {s['provinces']} provinces",
    }[str(s["name"])]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--sightings", default="1000000", help="sightings per store; comma-separated for several"
    )
    parser.add_argument(
        "--addresses",
        default="20000",
        help="addresses per store: one value, or one per --sightings value",
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--old-repeat",
        type=int,
        default=1,
        help="runs of the request-time count of sightings (slow); 0 leaves it out",
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--engines",
        default=",".join(gen.ENGINES),
        help=f"comma-separated, from {', '.join(gen.ENGINES)}",
    )
    add_docs_options(parser)
    parser.add_argument("--worker", choices=list(gen.ENGINES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in str(args.sightings).split(",")]
        addresses = [int(n) for n in str(args.addresses).split(",")]
    except ValueError:
        parser.error("--sightings and --addresses take whole numbers, comma-separated")
    if len(addresses) == 1:
        addresses *= len(sizes)
    if len(addresses) != len(sizes):
        parser.error("--addresses takes one value, or one per --sightings value")
    if min(sizes) < 10 or min(addresses) < gen.CGNAT_POOL * 2:
        parser.error(
            f"--sightings must be at least 10 and --addresses at least {gen.CGNAT_POOL * 2}"
        )
    args.stores = list(zip(sizes, addresses, strict=True))
    # A worker runs one store; these are its sizes.
    args.sightings, args.addresses = sizes[0], addresses[0]
    if args.repeat < 1 or args.old_repeat < 0:
        parser.error("--repeat must be at least 1 and --old-repeat at least 0")
    args.engine_list = pick(parser, args.engines, gen.ENGINES, "engines")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    results = []
    for sightings, addresses in args.stores:
        for name in args.engine_list:
            print(f"running {name}, {sightings:,} sightings …", file=sys.stderr, flush=True)
            result = run_engine(name, sightings, addresses, args)
            print(json.dumps(result), flush=True)
            results.append(result)
    publish(render(args, results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
