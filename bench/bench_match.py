"""Exact matching: MatchIndex against a Python set and an SQLite index.

    python bench/bench_match.py [--references N] [--queries N] [--seed S]

Generates N synthetic SHA-1 digests (numpy random bytes, never real hashes)
and a batch of queries of which `--hit-rate` are drawn from the references,
then times each contender building its structure and answering the queries.
Every contender runs in its own subprocess, so each peak RSS (read by the
parent with wait4) is that contender's alone; all of them get the same data
from the same seed and must find the same hits. The results go to stdout and
to the `bench_match` section of docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atalaya.hashsets import index as index_module
from atalaya.hashsets.index import MatchIndex
from benchdocs import add_docs_options, footer, human_bytes, markers, pick, publish, run_child

START, END = markers("bench_match")

DIGEST_SIZE = 20  # SHA-1
# Digests per `IN (…)` for SQLite: under its 32,766-parameter limit, and in
# a trial at 2 M rows several times faster than one SELECT per digest.
SQLITE_IN_BATCH = 500

CONTENDERS = {
    "matchindex": "MatchIndex (compiled kernel where numba is installed)",
    "matchindex_numpy": "MatchIndex, numpy search (no kernel)",
    "matchindex_old": "MatchIndex as before: numpy search, buckets of 16",
    "pyset": "Python `set` of 20-byte `bytes`",
    "sqlite": "SQLite table, digest BLOB PRIMARY KEY, WITHOUT ROWID",
}


@dataclass(frozen=True)
class Workload:
    references: NDArray[np.uint8]
    queries: NDArray[np.uint8]
    expected_hits: int


def make_workload(references: int, queries: int, hit_rate: float, seed: int) -> Workload:
    """The same synthetic digests for every contender, from `seed`."""
    rng = np.random.default_rng(seed)
    refs = np.frombuffer(rng.bytes(references * DIGEST_SIZE), dtype=np.uint8)
    refs = refs.reshape(references, DIGEST_SIZE)
    hits = min(round(queries * hit_rate), queries) if references else 0
    picked = refs[rng.integers(0, references, size=hits)] if hits else None
    misses = np.frombuffer(rng.bytes((queries - hits) * DIGEST_SIZE), dtype=np.uint8)
    parts = [misses.reshape(-1, DIGEST_SIZE)] + ([picked] if picked is not None else [])
    mixed = np.concatenate(parts) if parts else np.empty((0, DIGEST_SIZE), np.uint8)
    # Random misses are misses: a 160-bit collision is not going to happen.
    return Workload(refs, mixed[rng.permutation(len(mixed))], hits)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def as_bytes_list(rows: NDArray[np.uint8]) -> list[bytes]:
    # A void view turns into `bytes` of the full width ("S" would drop
    # trailing zero bytes).
    values: list[bytes] = np.ascontiguousarray(rows).view(f"V{DIGEST_SIZE}").ravel().tolist()
    return values


def batches(queries: NDArray[np.uint8], size: int) -> list[NDArray[np.uint8]]:
    return [queries[i : i + size] for i in range(0, len(queries), size)]


# Each contender: build(references) -> (structure, extra facts), and
# count(structure, query batch) -> hits in that batch.


def build_matchindex(refs: NDArray[np.uint8], _workdir: Path) -> tuple[Any, dict[str, Any]]:
    index = MatchIndex.from_arrays({"sha1": refs})
    compiled = index_module.COMPILED and index_module._compiled_search() is not None
    return index, {"structure_bytes": index.nbytes, "kernel": _kernel_name(compiled)}


def _kernel_name(compiled: bool) -> str:
    if not compiled:
        return "numpy"
    numba: Any = importlib.import_module("numba")
    return f"numba {numba.__version__}"


def build_matchindex_numpy(refs: NDArray[np.uint8], workdir: Path) -> tuple[Any, dict[str, Any]]:
    index_module.COMPILED = False
    return build_matchindex(refs, workdir)


def build_matchindex_old(refs: NDArray[np.uint8], workdir: Path) -> tuple[Any, dict[str, Any]]:
    # The layout before the compiled kernel: 16 digests a bucket, on average.
    index_module._bucket_target = lambda _size: 16
    return build_matchindex_numpy(refs, workdir)


def count_matchindex(index: Any, batch: NDArray[np.uint8]) -> int:
    return int(index.lookup("sha1", batch).sum())


def build_pyset(refs: NDArray[np.uint8], _workdir: Path) -> tuple[Any, dict[str, Any]]:
    known = set(as_bytes_list(refs))
    return known, {"structure_bytes": sys.getsizeof(known) + len(known) * sys.getsizeof(b"x" * 20)}


def count_pyset(known: Any, batch: NDArray[np.uint8]) -> int:
    return sum(map(known.__contains__, as_bytes_list(batch)))


def build_sqlite(refs: NDArray[np.uint8], workdir: Path) -> tuple[Any, dict[str, Any]]:
    path = workdir / "bench_match.sqlite"
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE ref (digest BLOB NOT NULL PRIMARY KEY) WITHOUT ROWID")
    # Bulk load in key order: random-order inserts into the B-tree were over
    # twice as slow at 2 M rows and get worse as the tree outgrows the cache.
    ordered = np.unique(np.ascontiguousarray(refs).view(f"V{DIGEST_SIZE}").ravel())
    db.execute("BEGIN")
    step = 1_000_000
    for start in range(0, len(ordered), step):
        db.executemany(
            "INSERT INTO ref VALUES (?)", ((v,) for v in ordered[start : start + step].tolist())
        )
    db.execute("COMMIT")
    del ordered
    return db, {"file_bytes": path.stat().st_size}


def count_sqlite(db: Any, batch: NDArray[np.uint8]) -> int:
    values = as_bytes_list(batch)
    found = 0
    full = "SELECT count(*) FROM ref WHERE digest IN (" + ",".join("?" * SQLITE_IN_BATCH) + ")"
    for start in range(0, len(values), SQLITE_IN_BATCH):
        chunk = values[start : start + SQLITE_IN_BATCH]
        sql = (
            full
            if len(chunk) == SQLITE_IN_BATCH
            else full.replace(",".join("?" * SQLITE_IN_BATCH), ",".join("?" * len(chunk)))
        )
        found += db.execute(sql, chunk).fetchone()[0]
    return found


RUNNERS: dict[str, tuple[Callable[..., tuple[Any, dict[str, Any]]], Callable[..., int]]] = {
    "matchindex": (build_matchindex, count_matchindex),
    "matchindex_numpy": (build_matchindex_numpy, count_matchindex),
    "matchindex_old": (build_matchindex_old, count_matchindex),
    "pyset": (build_pyset, count_pyset),
    "sqlite": (build_sqlite, count_sqlite),
}


def worker(args: argparse.Namespace) -> None:
    """Run one contender and print its figures as one JSON line."""
    build, count = RUNNERS[args.worker]
    rss_start = rss_bytes()
    load = make_workload(args.references, args.queries, args.hit_rate, args.seed)
    refs, queries = load.references, load.queries
    rss_data = rss_bytes()
    started = time.perf_counter()
    structure, extra = build(refs, Path(args.workdir))
    build_s = time.perf_counter() - started
    del refs, load
    gc.collect()
    # The structure, without the reference array it was built from.
    held = rss_bytes() - rss_start - queries.nbytes
    found = 0
    if args.worker.startswith("matchindex"):
        count(structure, queries[:10])  # compiles the kernel, where there is one
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in batches(queries, args.batch):
        found += count(structure, batch)
    lookup_s = time.perf_counter() - started
    lookup_cpu_s = time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "contender": args.worker,
                "build_s": build_s,
                "lookup_s": lookup_s,
                "lookups_per_s": len(queries) / lookup_s if lookup_s else None,
                "lookups_per_cpu_s": len(queries) / lookup_cpu_s if lookup_cpu_s else None,
                "found": found,
                "data_bytes": rss_data - rss_start,
                "held_bytes": held,
                **extra,
            }
        ),
        flush=True,
    )


def run_contender(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--references",
        str(args.references),
        "--queries",
        str(args.queries),
        "--hit-rate",
        str(args.hit_rate),
        "--seed",
        str(args.seed),
        "--batch",
        str(args.batch),
        "--workdir",
        str(workdir),
    ]
    return run_child(cmd, f"contender {name}")


def render(args: argparse.Namespace, results: list[dict[str, Any]], expected: int) -> str:
    raw = args.references * DIGEST_SIZE
    lines = [
        START,
        "## Exact matching (`bench/bench_match.py`)",
        "",
        f"{args.references:,} reference SHA-1s ({human_bytes(raw)} raw), "
        f"{args.queries:,} queries of which {expected:,} are hits "
        f"({args.hit_rate:.0%}), looked up in batches of {args.batch:,}; "
        f"synthetic digests from seed {args.seed}. Every contender found "
        f"{results[0]['found']:,} hits.",
        "",
        "| contender | build | look-ups / s | per CPU second | look-up time | peak RSS "
        "| held after build |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        held = human_bytes(r["held_bytes"])
        if "structure_bytes" in r and r["contender"].startswith("matchindex") and raw:
            nbytes = r["structure_bytes"]
            held += f" (`nbytes` {human_bytes(nbytes)}, {nbytes / raw:.2f} x raw)"
        if "file_bytes" in r:
            held += f" + {human_bytes(r['file_bytes'])} file"
        name = CONTENDERS[r["contender"]]
        if "kernel" in r:
            name += f" [{r['kernel']}]"
        lines.append(
            f"| {name} | {r['build_s']:.1f} s | "
            f"{r['lookups_per_s']:,.0f} | {r['lookups_per_cpu_s']:,.0f} | {r['lookup_s']:.1f} s | "
            f"{human_bytes(r['peak_rss_bytes'])} | {held} |"
        )
    lines += [
        "",
        "- Each contender runs in its own process; peak RSS is that process's "
        "`ru_maxrss` and includes the generated data every contender holds "
        f"while building: {human_bytes(raw)} of references and "
        f"{human_bytes(args.queries * DIGEST_SIZE)} of queries.",
        "- Held after build: resident memory once the structure is built and the "
        "reference array freed, less the interpreter and the queries.",
        "- Build: MatchIndex sorts and de-duplicates the array; the set is built "
        "from a list of `bytes`; SQLite gets the digests sorted (numpy, timed) and "
        "inserted in key order in one transaction (journal off, synchronous off).",
        "- Look-ups: MatchIndex takes each batch as a numpy array; the set and "
        "SQLite first turn it into `bytes` objects (timed), and SQLite answers "
        f"`SELECT count(*) … WHERE digest IN (…)` with {SQLITE_IN_BATCH} digests each.",
        "- Per CPU second: look-ups over the process's own CPU time (one thread), "
        "the per-core rate with the other work on this machine left out.",
        "- The kernel used is in brackets. The compiled one needs numba, which is not "
        "(yet) a dependency: a run where it is importable uses it, otherwise numpy.",
        "",
        *footer({"numpy": np.__version__, "SQLite": sqlite3.sqlite_version}),
        END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--references", type=int, default=50_000_000)
    parser.add_argument("--queries", type=int, default=10_000_000)
    parser.add_argument("--hit-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--batch", type=int, default=1_000_000, help="queries per look-up call")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"comma-separated, from {', '.join(CONTENDERS)}",
    )
    add_docs_options(parser)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.references < 1 or args.queries < 1 or args.batch < 1:
        parser.error("--references, --queries and --batch must be at least 1")
    if not 0 <= args.hit_rate <= 1:
        parser.error("--hit-rate must be between 0 and 1")
    args.contender_list = pick(parser, args.contenders, CONTENDERS, "contenders")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    expected = min(round(args.queries * args.hit_rate), args.queries)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_match-") as workdir:
        for name in args.contender_list:
            print(f"running {name} …", file=sys.stderr, flush=True)
            result = run_contender(name, args, Path(workdir))
            print(json.dumps(result), flush=True)
            results.append(result)
    found = {r["contender"]: r["found"] for r in results}
    if len(set(found.values())) != 1 or expected not in found.values():
        print(f"contenders disagree (expected {expected:,} hits): {found}", file=sys.stderr)
        return 1
    publish(render(args, results, expected), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
