"""Judicial requests in batches: N synthetic leads drafted, filed by court and operator.

    python bench/bench_requests.py [--leads N] [--engines sqlite,postgresql]

For each engine, in its own subprocess: a store with one unit (province 28)
and `--leads` made-up leads, each one address (10.x.y.z, private space) that
offered three made-up infohashes on three days, spread over 8 municipalities
(one made-up court each) and 4 private-use AS numbers (one made-up operator
each). Then, side by side on two such stores:

- old: what `atalaya requests draft` did before: per lead one audited
  transaction that opens the case, renders the PDF/A (Typst) and the DOCX
  (docxtpl) inside it, stores both and moves the case (`old_batch` below,
  the former loop kept here);
- new: `atalaya.cases.requests.batch.draft_batch`, exactly as
  `atalaya requests draft --province 28 --out DIR` runs it now: one read of
  every lead, the documents rendered in one worker process per CPU outside
  any transaction, then one audited transaction that writes them all.

Both write the files into court/operator folders with the index (CSV and
PDF). Timed: the batch alone (store set-up and lead building are not). The
run fails unless every lead got its request and the folders hold 2 files
per lead. `--old-leads 0` skips the old way.

PostgreSQL is a throw-away server started the way the tests start it
(tests/support/postgres.py: fsync off). The results go to stdout and to the
`bench_requests` section of docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docxtpl
import sqlalchemy
import typst
from sqlalchemy import Connection

from atalaya.cases.documents import document_body
from atalaya.cases.records import list_cases, open_case
from atalaya.cases.requests.batch import BatchItem, slug, write_index
from atalaya.cases.requests.draft import Drafted, draft_request
from atalaya.cases.states import State
from atalaya.errors import AtalayaError
from benchdocs import ROOT, add_docs_options, footer, human_bytes, markers, pick, publish, run_child

sys.path.insert(0, str(ROOT))  # tests.support.postgres: the tests' throw-away server

from tests.support.postgres import postgres_server

from atalaya.accounts import add_unit, add_user, get_user
from atalaya.accounts.policy import AccountPolicy
from atalaya.cases.courts import parse_config
from atalaya.cases.requests import batch
from atalaya.cases.requests.batch import draft_batch, selected_leads
from atalaya.cases.requests.draft import Renderer
from atalaya.cases.requests_cli import RequestAction
from atalaya.cases.service import audited
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.facts import IpFacts, MappingFacts
from atalaya.observe.sightings import Sighting, SightingWriter
from atalaya.store import create_store_engine, upgrade

START, END = markers("bench_requests")
ENGINES = {"sqlite": "SQLite (WAL, file on local disk)", "postgresql": "PostgreSQL (fsync off)"}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
MUNICIPALITIES = [f"28{n:03d}" for n in range(1, 9)]
ASNS = [64500, 64501, 64502, 64503]
PASSWORD = "bench-requests-password-0"


def config_text() -> str:
    lines = ['[officers]\nana = "TIP 000001 (EJEMPLO)"\n']
    for i, code in enumerate(MUNICIPALITIES, start=1):
        lines.append(
            f'[[court]]\nplace = "{code}"\nname = "Juzgado de ejemplo n.º {i} (inventado)"\n'
            'address = "Dirección de ejemplo"\n'
        )
    for asn in ASNS:
        lines.append(
            f'[[operator]]\nasn = {asn}\nlegal_name = "Operador de ejemplo AS{asn}, S.A."\n'
            'address = "Domicilio de ejemplo"\n'
        )
    return "\n".join(lines)


def make_store(url: str, leads: int) -> None:
    engine = create_store_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        add_unit(conn, "Madrid", ("28",), "bench desk (made up)", NOW)
        fast = AccountPolicy(argon2_time_cost=1, argon2_memory_cost_kib=1024, argon2_parallelism=1)
        add_user(conn, "ana", "Madrid", "analyst", PASSWORD, NOW, fast)
    facts: dict[str, IpFacts] = {}
    sightings = []
    for n in range(leads):
        ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        code = MUNICIPALITIES[n % len(MUNICIPALITIES)]
        asn = ASNS[(n // len(MUNICIPALITIES)) % len(ASNS)]
        facts[ip] = IpFacts(
            country="ES", province_code="28", province_name="Madrid", municipality_code=code,
            municipality_name=f"Municipio {code} (inventado)", lat=40.4, lon=-3.7,
            accuracy_km=20.0, asn=asn, isp=f"Operador AS{asn}", time_zone="Europe/Madrid",
            version="bench",
        )  # fmt: skip
        # A random-looking peer id tail: the one device's three sightings link.
        peer = (b"-LT2010-" + hashlib.sha256(n.to_bytes(8, "big")).digest()[:12]).hex()
        for k in range(3):
            sightings.append(
                Sighting(
                    network="bittorrent", item_kind="btih", item_value=f"{n * 3 + k + 1:040x}",
                    ip=ip, port=6881, seen_at=T0 + timedelta(days=k, microseconds=n),
                    found_by="dht", run_id="00000000-0000-4000-8000-000000000000",
                    peer_id=peer, client="libtorrent/2.1.1",
                )
            )  # fmt: skip
    SightingWriter(engine).write(sightings)
    build_leads(engine, MappingFacts(facts, version="bench"), LeadsConfig(), now=NOW)
    engine.dispose()


def _cpu_s(who: int) -> float:
    """CPU time, all threads (Typst compiles on several): this process's, or its
    ended children's."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def database(name: str, workdir: Path) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{workdir / 'bench_requests.sqlite'}"
        return
    with postgres_server() as url:
        yield url


def old_batch(
    engine: sqlalchemy.Engine, user: Any, lead_ids: list[int], renderer: Renderer, out: Path
) -> list[BatchItem]:
    """The batch as it was drafted before: one audited transaction per lead, rendering
    inside it (kept here to measure against)."""
    items = []
    for lead_id in lead_ids:

        def work(conn: Connection, lead_id: int = lead_id) -> tuple[Any, dict[str, Any]]:
            existing = list_cases(conn, user, lead_id=lead_id, open_only=True)
            if existing:
                if existing[0].state is not State.TRIAGE:
                    raise AtalayaError(f"case {existing[0].id} is already {existing[0].state}")
                case_id = existing[0].id
            else:
                case_id = open_case(conn, user, lead_id, NOW, reason="solicitud en lote").id
            drafted = draft_request(conn, user, case_id, NOW, renderer)
            bodies = document_body(conn, drafted.pdf.id), document_body(conn, drafted.docx.id)
            return (drafted, bodies), {"case": case_id, "lead": lead_id,
                                       "documents": [drafted.pdf.id, drafted.docx.id]}  # fmt: skip

        try:
            made: tuple[Drafted, tuple[bytes, bytes]] = audited(
                engine, user, RequestAction.DRAFT, work, object_type="lead", object_id=lead_id,
                details={"batch": True},
            )  # fmt: skip
        except AtalayaError as exc:
            items.append(BatchItem(lead_id, None, "", "", "", 0, "", "", f"no: {exc}"))
            continue
        drafted, (pdf, docx) = made
        folder = Path(slug(drafted.court or "")) / slug(drafted.operators[0])
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / folder / drafted.pdf.name).write_bytes(pdf)
        (out / folder / drafted.docx.name).write_bytes(docx)
        items.append(
            BatchItem(lead_id, drafted.case.id, drafted.model.atestado, drafted.court or "",
                      "; ".join(drafted.operators), len(drafted.model.observations),
                      str(folder), drafted.pdf.sha256, "redactada")
        )  # fmt: skip
    write_index(out, items, NOW)
    return items


def _measure(way: str, url: str, leads: int, workdir: Path) -> dict[str, Any]:
    """One way on a fresh store of `leads` leads: time, CPU and what it wrote."""
    result: dict[str, Any] = {"leads": leads}
    started = time.perf_counter()
    make_store(url, leads)
    result["setup_s"] = time.perf_counter() - started
    engine = create_store_engine(url)
    with engine.connect() as conn:
        user = get_user(conn, "ana")
        ids = selected_leads(conn, user, NOW, province="28", min_score=None)
    renderer = Renderer(parse_config(config_text(), "bench"))
    out = workdir / f"solicitudes-{way}"
    started = time.perf_counter()
    cpu, children = _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
    if way == "old":
        items = old_batch(engine, user, ids, renderer, out)
    else:
        # How long the one write transaction (which holds the audit chain's lock) lasts.
        write, held = batch._write, [0.0]

        def timed_write(*args: Any, **kw: Any) -> Any:
            began = time.perf_counter()
            try:
                return write(*args, **kw)
            finally:
                held[0] += time.perf_counter() - began

        batch._write = timed_write  # type: ignore[assignment]
        try:
            items = draft_batch(engine, user, ids, NOW, renderer, out,
                                action=RequestAction.DRAFT, details={"batch": True})  # fmt: skip
        finally:
            batch._write = write  # type: ignore[assignment]
        result["write_s"] = held[0]
    result["batch_s"] = time.perf_counter() - started
    result["batch_cpu_s"] = _cpu_s(resource.RUSAGE_SELF) - cpu
    # The rendering workers' CPU (counted once they have ended, as they have here).
    result["workers_cpu_s"] = _cpu_s(resource.RUSAGE_CHILDREN) - children
    result["selected"] = len(ids)
    result["drafted"] = sum(1 for i in items if i.status == "redactada")
    folders = {p.parent.relative_to(out) for p in out.rglob("*.pdf") if p.parent != out}
    result["folders"] = len(folders)
    result["courts"] = len({f.parts[0] for f in folders})
    result["files"] = sum(1 for p in out.rglob("*") if p.is_file() and p.parent != out)
    result["bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    engine.dispose()
    return result


def worker(args: argparse.Namespace) -> None:
    result: dict[str, Any] = {"engine": args.worker, "leads": args.leads}
    for way, leads in (("old", args.old_leads), ("new", args.leads)):
        if not leads:
            continue
        with (
            tempfile.TemporaryDirectory(prefix="bench_requests-") as tmp,
            database(args.worker, Path(tmp)) as url,
        ):
            print(f"{args.worker}: {way} way, {leads} leads", file=sys.stderr, flush=True)
            result[way] = _measure(way, url, leads, Path(tmp))
    print(json.dumps(result), flush=True)


# The batch as it was before the read / render / write split and the faster
# rendering (the previous run of this benchmark, same store and machine).
BASELINE = {
    "date": "2026-12-02 16:52 UTC",
    "sqlite": "422.1 s for 500 requests (66.3 s of CPU, 133 ms per request)",
    "postgresql": "325.5 s (78.8 s of CPU, 158 ms per request)",
}
WAYS = {
    "old": "old: one transaction per lead, rendering inside it",
    "new": "new: one read, rendering in worker processes, one write",
}


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    lines = [
        START,
        "## Judicial requests in batches (`bench/bench_requests.py`)",
        "",
        "Synthetic leads in one province (8 made-up municipalities, each its own "
        "made-up court; 4 private-use AS numbers, each its own made-up operator), each one "
        "address offering 3 made-up infohashes on 3 days. Timed: the batch that "
        "`atalaya requests draft --province 28 --out DIR` runs, the old way and the new, each "
        "on a fresh store: open the cases, render the PDF/A with Typst and the DOCX with "
        "docxtpl, store both, move the cases, one audit record per lead, the files written "
        "into court/operator folders, then the index (CSV and PDF). Not signed (signing "
        "adds one PAdES signature per PDF, made in the main process).",
        "",
        "| engine | way | leads | requests drafted | folders (court/operator) | files | output "
        "| batch time | of which in write transactions | requests / s "
        "| CPU time (main + workers) | CPU per request | peak RSS |",
        "| --- | --- |" + " ---: |" * 11,
    ]
    met = []
    for r in results:
        for way in ("old", "new"):
            w = r.get(way)
            if w is None:
                continue
            cpu = w["batch_cpu_s"] + w["workers_cpu_s"]
            lines.append(
                f"| {ENGINES[r['engine']]} | {WAYS[way]} | {w['leads']} | {w['drafted']} | "
                f"{w['folders']} ({w['courts']} courts) | {w['files']} | "
                f"{human_bytes(w['bytes'])} | {w['batch_s']:.1f} s | "
                + (f"{w['write_s']:.1f} s (one)" if "write_s" in w else "nearly all (one per lead)")
                + f" | {w['drafted'] / w['batch_s']:.1f} | {w['batch_cpu_s']:.1f} s + "
                f"{w['workers_cpu_s']:.1f} s | {cpu / max(w['drafted'], 1) * 1000:.0f} ms | "
                f"{human_bytes(r['peak_rss_bytes'])} |"
            )
        met.append(r["new"]["batch_s"] < 60 and r["new"]["leads"] >= 500)
    lines += [
        "",
        "Target: 500 requests in under a minute on each engine, the new way: "
        + ("met in this run." if all(met) else "not met in this run.")
        + " The old way here already renders as fast as the new one does in one process (the "
        "Typst compiler reused, the DOCX's unchanging parts deflated once). Before any of "
        f"this, on {BASELINE['date']}: {BASELINE['sqlite']} on SQLite and "
        f"{BASELINE['postgresql']} on PostgreSQL, on the machine then more loaded."
        + " A write transaction holds the audit chain's lock: every other audited operation "
        "of the store waits while it lasts."
        + " CPU time is the benchmark process's own (user and system, all threads) plus its "
        "rendering workers', without the PostgreSQL server's; on a machine shared with other "
        "work it says what the batch costs better than the wall-clock time does. Peak RSS is "
        "the engine's benchmark process over both ways (the workers' not included).",
        "",
        *footer(
            {
                "typst": typst.__version__,
                "docxtpl": docxtpl.__version__,
                "SQLite": sqlite3.sqlite_version,
                "SQLAlchemy": sqlalchemy.__version__,
            }
        ),
        END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=500)
    parser.add_argument(
        "--old-leads", type=int, default=None, help="leads for the old way (default --leads)"
    )
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated, from {', '.join(ENGINES)}"
    )
    add_docs_options(parser)
    parser.add_argument("--worker", choices=list(ENGINES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.leads <= 100_000:
        parser.error("--leads must be 1 to 100000")
    if args.old_leads is None:
        args.old_leads = args.leads
    if not 0 <= args.old_leads <= 100_000:
        parser.error("--old-leads must be 0 to 100000")
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
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
               "--leads", str(args.leads), "--old-leads", str(args.old_leads)]  # fmt: skip
        result = run_child(cmd, f"engine {name}")
        print(json.dumps(result), flush=True)
        results.append(result)
    bad = [
        f"{r['engine']} ({way})"
        for r in results
        for way in ("old", "new")
        if way in r
        and (r[way]["drafted"] != r[way]["leads"] or r[way]["files"] != 2 * r[way]["leads"])
    ]
    if bad:
        print(f"not every lead got its request on {bad}", file=sys.stderr)
        return 1
    publish(render(args, results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
