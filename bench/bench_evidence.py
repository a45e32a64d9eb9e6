"""Evidence packages: export and offline check of a large case, against plain ZIP and hashing.

    python bench/bench_evidence.py [--sightings N] [--engines sqlite,postgresql] [--seed S]

Builds a store with one case of `--sightings` sightings through the same
real parts as the tests (tests/evidence/package_world.py): libtorrent's v1,
v2 and hybrid torrents of random bytes, a hash set imported from a made-up
list, sightings from the observer's writer each with a proof transcript of
real piece hashes (v2 with merkle proof paths), leads built, a case opened
on the lead, every sighting and the audit head stamped by the lab TSA
(real `openssl ts`), and a self-made CA with the unit's PKCS#12 key. Then,
timed:

1. `export_case`: gathers the case from the store, computes every
   inclusion proof, signs the manifest (detached CMS), writes the ZIP,
   records the export in the audit log;
2. `verify_package`: reads the ZIP as hostile, checks the manifest, the
   signature against the CA, every token against the TSA's CA, every
   sighting against its stamped root, every piece against the metadata.

Baselines, on the same members: writing them as a ZIP with their SHA-256
manifest (`write_package` alone: no store, no proofs, no signature), and
reading them back with every member's SHA-256 checked (`read_package` and
the digests alone). Targets: under 30 s each (issue 12). The results go to
stdout and to the `bench_evidence` section of docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy

from benchdocs import ROOT, add_docs_options, footer, human_bytes, markers, pick, publish

sys.path.insert(0, str(ROOT))  # tests.*: the tests' world, PKI and PostgreSQL server
sys.path.insert(0, str(ROOT / "src"))  # this checkout's package before an installed one

from tests.evidence.package_world import RECIPIENT, make_case_world
from tests.support.pki import make_pki
from tests.support.postgres import find_bindir, postgres_server

from atalaya.evidence.package import export_case
from atalaya.evidence.package_manifest import MANIFEST_NAME, parse_manifest
from atalaya.evidence.package_zip import read_package, write_package
from atalaya.evidence.tsp import load_ca_file
from atalaya.evidence.verify_package import verify_package
from atalaya.lab.tsa import LabTsa
from atalaya.store import create_store_engine, upgrade

START, END = markers("bench_evidence")
ENGINES = {"sqlite": "SQLite (WAL, file on local disk)", "postgresql": "PostgreSQL (fsync off)"}
TARGET_S = 30.0
BASE_SIGHTINGS = 7  # what the tests' world writes before `extra_sightings`


@contextmanager
def store_url(engine_name: str, folder: Path) -> Iterator[str]:
    if engine_name == "sqlite":
        yield f"sqlite:///{folder / 'atalaya.db'}"
        return
    with postgres_server() as url:
        yield url


def run_engine(engine_name: str, args: argparse.Namespace, tsa: LabTsa) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="atalaya-bench-evidence-") as tmp,
        store_url(engine_name, Path(tmp)) as url,
    ):
        folder = Path(tmp)
        engine = create_store_engine(url)
        try:
            upgrade(engine)
            started = time.perf_counter()
            world = make_case_world(
                engine,
                folder / "world",
                tsa,
                extra_sightings=args.sightings - BASE_SIGHTINGS,
                seed=args.seed,
            )
            setup_s = time.perf_counter() - started
            pki = make_pki(folder / "pki")
            out = folder / "case.zip"
            started = time.perf_counter()
            done = export_case(
                engine,
                world.user,
                world.case_id,
                out,
                key=pki.p12,
                recipient=RECIPIENT,
                now=datetime.now(UTC),
            )
            export_s = time.perf_counter() - started
        finally:
            engine.dispose()
        data = out.read_bytes()
        roots = load_ca_file(tsa.ca_file.read_bytes(), "tsa")
        started = time.perf_counter()
        report = verify_package(data, ca=[pki.cert], tsa_ca=roots)
        verify_s = time.perf_counter() - started
        if not report.ok:
            raise SystemExit("the exported package does not verify:\n" + "\n".join(report.lines()))

        files = read_package(data)
        started = time.perf_counter()
        write_package(folder / "baseline.zip", files, datetime.now(UTC))
        zip_s = time.perf_counter() - started
        baseline = (folder / "baseline.zip").read_bytes()
        started = time.perf_counter()
        again = read_package(baseline)
        digests = parse_manifest(again[MANIFEST_NAME])
        assert all(hashlib.sha256(again[n]).hexdigest() == d for n, d in digests.items())
        unzip_s = time.perf_counter() - started
    return {
        "engine": engine_name,
        "sightings": len(done.package.sighting_ids),
        "transcripts": done.package.transcripts,
        "stamps": done.package.stamps,
        "members": done.members,
        "size": done.size,
        "setup_s": setup_s,
        "export_s": export_s,
        "verify_s": verify_s,
        "zip_s": zip_s,
        "unzip_s": unzip_s,
        "holds": len(report.holds),
    }


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    lines = [
        START,
        "## Evidence packages (`bench/bench_evidence.py`)",
        "",
        f"One case of {args.sightings:,} sightings (seed {args.seed}), each with a proof "
        "transcript of real piece hashes (libtorrent's v1, v2 and hybrid torrents of random "
        "bytes), stamped by the lab TSA (`openssl ts`) in batches of 4,096, signed with a "
        "self-made CA's PKCS#12 key. Target: under 30 s each for export and verify.",
        "",
        "| engine | sightings | files | package | `export_case` | `verify_package` | "
        "baseline: ZIP + manifest | baseline: unzip + SHA-256 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {ENGINES[r['engine']]} | {r['sightings']:,} | {r['members']:,} | "
            f"{human_bytes(r['size'])} | {r['export_s']:.2f} s | {r['verify_s']:.2f} s | "
            f"{r['zip_s']:.2f} s | {r['unzip_s']:.2f} s |"
        )
    lines += [
        "",
        "- `export_case` reads the case's sightings, transcripts, metadata, stamps, hash-set "
        "and enrichment extracts and audit records from the store, computes every inclusion "
        "proof, signs the manifest (detached CMS), writes the ZIP and the audit record; "
        "`verify_package` reads the ZIP as hostile and checks the manifest, the signature "
        "and its chain, every token and its chain, every sighting against its stamped root "
        "and every piece hash against the metadata.",
        "- The baselines do only the container's part on the same members: writing them as a "
        "ZIP, and reading them back with every member's SHA-256 checked.",
        "- Set-up, not timed above: "
        + "; ".join(f"{r['engine']} built the store in {r['setup_s']:.0f} s" for r in results)
        + ".",
        "",
        *footer({"SQLite": sqlite3.sqlite_version, "SQLAlchemy": sqlalchemy.__version__}),
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sightings", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--engines", default="sqlite,postgresql")
    add_docs_options(parser)
    args = parser.parse_args()
    if args.sightings < BASE_SIGHTINGS:
        parser.error(f"--sightings must be at least {BASE_SIGHTINGS}")
    engines = pick(parser, args.engines, ENGINES, "engines")
    if "postgresql" in engines and find_bindir() is None:
        print("no PostgreSQL binaries: SQLite only", file=sys.stderr)
        engines = [e for e in engines if e != "postgresql"]
    results = []
    with LabTsa() as tsa:
        for name in engines:
            print(f"{name}: building a case of {args.sightings} sightings…", file=sys.stderr)
            results.append(run_engine(name, args, tsa))
    publish(render(args, results), args)
    slow = [r for r in results if max(r["export_s"], r["verify_s"]) > TARGET_S]
    if slow:
        raise SystemExit(f"over the {TARGET_S:.0f} s target: {[r['engine'] for r in slow]}")


if __name__ == "__main__":
    main()
