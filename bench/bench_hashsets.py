"""Hash set import, `atalaya match` and remove: the code of a base commit against this one.

    python bench/bench_hashsets.py [--lines N] [--engines sqlite,postgresql] [--old-ref REF]

Writes N synthetic SHA-1 lines (numpy random bytes, never real hashes) and,
for each engine and for each code (the `src/` of `--old-ref`, exported with
`git archive`, and this checkout's), in a fresh database: times
`atalaya hashsets import FILE --category abuse`, measures the store's size
per hash (the SQLite file; on PostgreSQL `pg_total_relation_size` of the
hash set tables, reference_digest and reference_label included where they
exist), times `atalaya match --using index --count` over N query
lines (1 % hits) on SQLite, then times `atalaya hashsets remove --yes`.
Every step is the real command in a child process, timed from outside, so
start-up (about a second) is in every figure. CPU seconds are counted too:
the command's own, and on PostgreSQL the server's (its processes' CPU, the
backends that ended included), since this machine is shared and wall times
swing with the other work on it. Results go to stdout and to
the `bench_hashsets` section of docs/benchmarks.md (or `--docs`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, text

from benchdocs import ROOT, add_docs_options, footer, human_bytes, markers, pick, publish

START, END = markers("bench_hashsets")
ENGINES = ("sqlite", "postgresql")
DEFAULT_OLD_REF = "bf95c4f"  # main before compact rows for plain lists (reference_digest)
TABLES = ("hash_set", "reference_file", "reference_hash", "reference_digest", "reference_label")


def write_lines(path: Path, digests: np.ndarray) -> None:
    text_ = digests.tobytes().hex()
    width = 2 * digests.shape[1]
    with path.open("w") as f:
        for start in range(0, len(text_), width * 100_000):
            piece = text_[start : start + width * 100_000]
            f.write("\n".join(piece[i : i + width] for i in range(0, len(piece), width)) + "\n")


def export_old(ref: str, into: Path) -> Path:
    into.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def atalaya(src: Path, url: str, *args: str, stdin: Path | None = None) -> tuple[float, float, str]:
    """(wall seconds, the child's own CPU seconds, its stdout)."""
    env = {**os.environ, "PYTHONPATH": str(src), "ATALAYA_DATABASE_URL": url}
    cpu = _children_cpu()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        feed = stack.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
        done = subprocess.run(
            [sys.executable, "-m", "atalaya", *args],
            stdin=feed,
            capture_output=True,
            env=env,
            check=False,
        )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"atalaya {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
    return elapsed, _children_cpu() - cpu, done.stdout.decode()


@contextlib.contextmanager
def databases(engine: str, workdir: Path) -> Iterator[Any]:
    """A function giving a fresh, empty database URL each call."""
    if engine == "sqlite":
        count = iter(range(1000))
        yield lambda: f"sqlite:///{workdir / f'bench-{next(count)}.db'}"
        return
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import postgres_server  # noqa: PLC0415

    with postgres_server() as admin_url:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        count = iter(range(1000))

        def fresh() -> str:
            name = f"bench_{next(count)}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            return admin_url.rsplit("/", 1)[0] + f"/{name}"

        try:
            yield fresh
        finally:
            admin.dispose()


def store_bytes(url: str) -> int:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        # The WAL too: what is not yet checkpointed is still on disk.
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    engine = create_engine(url)
    with engine.connect() as conn:
        size = sum(
            int(
                conn.execute(
                    text("SELECT coalesce(pg_total_relation_size(to_regclass(:t)), 0)"), {"t": t}
                ).scalar_one()
            )
            for t in TABLES
        )
    engine.dispose()
    return size


def _proc_cpu(pid: int, *, reaped: bool) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime (and cutime, cstime: children that ended) in clock ticks.
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu(url: str) -> float | None:
    """CPU seconds the PostgreSQL server has used so far (None for SQLite)."""
    if url.startswith("sqlite:///"):
        return None
    engine = create_engine(url)
    with engine.connect() as conn:
        backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    engine.dispose()
    stat = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
    postmaster = int(stat[1])
    total = _proc_cpu(postmaster, reaped=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    total += _proc_cpu(int(entry.name), reaped=False)
    return total


def timed(src: Path, url: str, *args: str, stdin: Path | None = None) -> tuple[float, float, str]:
    """`atalaya`, with the server's CPU added to the command's own on PostgreSQL."""
    before = server_cpu(url)
    wall, cpu, out = atalaya(src, url, *args, stdin=stdin)
    after = server_cpu(url)
    if before is not None and after is not None:
        cpu += after - before
    return wall, cpu, out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    refs = rng.integers(0, 256, size=(args.lines, 20), dtype=np.uint8)
    hits = round(args.queries * args.hit_rate)
    picked = refs[rng.integers(0, args.lines, size=hits)]
    misses = rng.integers(0, 256, size=(args.queries - hits, 20), dtype=np.uint8)
    queries = np.concatenate([picked, misses])[rng.permutation(args.queries)]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_hashsets-") as tmp:
        workdir = Path(tmp)
        reference, query_file = workdir / "reference.txt", workdir / "queries.txt"
        write_lines(reference, refs)
        write_lines(query_file, queries)
        codes = {"old": export_old(args.old_ref, workdir / "old"), "new": ROOT / "src"}
        for engine in args.engine_list:
            with databases(engine, workdir) as fresh:
                for code, src in codes.items():
                    url = fresh()
                    atalaya(src, url, "init")
                    print(f"{engine} {code}: import …", file=sys.stderr, flush=True)
                    import_s, import_cpu_s, _ = timed(
                        src, url, "hashsets", "import", str(reference), "--category", "abuse"
                    )
                    result: dict[str, Any] = {
                        "engine": engine,
                        "code": code,
                        "import_s": import_s,
                        "import_cpu_s": import_cpu_s,
                        "bytes_per_hash": store_bytes(url) / args.lines,
                    }
                    if engine == "sqlite":
                        print(f"{engine} {code}: match …", file=sys.stderr, flush=True)
                        match_s, match_cpu_s, found = atalaya(
                            src, url, "match", "--using", "index", "--count", stdin=query_file
                        )
                        result["match_s"] = match_s
                        result["match_cpu_s"] = match_cpu_s
                        result["matches"] = int(found.strip())
                    print(f"{engine} {code}: remove …", file=sys.stderr, flush=True)
                    result["remove_s"], result["remove_cpu_s"], _ = timed(
                        src, url, "hashsets", "remove", reference.stem, "--yes"
                    )
                    print(json.dumps(result), flush=True)
                    results.append(result)
    return results


def render(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    n = args.lines
    lines = [
        START,
        "## Hash set import, match and remove (`bench/bench_hashsets.py`)",
        "",
        f"{n:,} synthetic SHA-1 lines ({human_bytes(n * 41)}), imported as one "
        f"plain list; `atalaya match --using index --count` over {args.queries:,} "
        f"lines ({args.hit_rate:.2%} of them hits, on SQLite); then the set removed. "
        "Old: the code of "
        f"`{args.old_ref}`; new: this checkout. Each figure is the whole command, "
        "start-up (about 1 s) and the index build of `match` included.",
        "",
        "| engine | code | import | lines / s | (per CPU s) | bytes per hash "
        "| match | lines / s | (per CPU s) | remove | (CPU s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        q = args.queries
        match = (
            f"{r['match_s']:.1f} s | {q / r['match_s']:,.0f} | {q / r['match_cpu_s']:,.0f}"
            if "match_s" in r
            else "n/a | n/a | n/a"
        )
        lines.append(
            f"| {r['engine']} | {r['code']} | {r['import_s']:.1f} s | {n / r['import_s']:,.0f} | "
            f"{n / r['import_cpu_s']:,.0f} | {r['bytes_per_hash']:.0f} | {match} | "
            f"{r['remove_s']:.1f} s | {r['remove_cpu_s']:.1f} |"
        )
    lines += [
        "",
        "- Old keeps every line as a reference_file row and a reference_hash row "
        "(two secondary indexes); new keeps a plain list's line as one "
        "reference_digest row (set, algorithm code, raw digest, label number; "
        "WITHOUT ROWID on SQLite), its file key derived, and writes a batch "
        "without a Python call per row (SQLite: one blob cut by a recursive CTE; "
        "PostgreSQL: COPY text built with numpy, one sorted INSERT … SELECT).",
        "- Bytes per hash: the SQLite file (and its WAL), or on PostgreSQL "
        "`pg_total_relation_size` of hash_set, reference_file, reference_hash, "
        "reference_digest and reference_label, over the lines imported.",
        "- Per CPU s: over CPU time (user + system) rather than wall time, less "
        "sensitive to the other work on this machine: the command's own, plus on "
        "PostgreSQL the server's (the backend's work is most of it there).",
        "- Match: the whole command, so start-up and the index build (reading "
        "every stored hash) are in it; each hit then costs a look-up of its "
        "details in the store (`fetch_details`).",
        "",
        *footer({"numpy": np.__version__}),
        END,
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, help="lines given to match (default 5 x --lines)")
    parser.add_argument("--hit-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--old-ref", default=DEFAULT_OLD_REF)
    parser.add_argument("--engines", default=",".join(ENGINES))
    add_docs_options(parser)
    args = parser.parse_args(argv)
    if args.lines < 100:
        parser.error("--lines must be at least 100")
    args.engine_list = pick(parser, args.engines, ENGINES, "engines")
    if args.queries is None:
        args.queries = 5 * args.lines
    if not 0 <= args.hit_rate <= 1:
        parser.error("--hit-rate must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    matches = {r["matches"] for r in results if "matches" in r}
    if len(matches) > 1:
        print(f"old and new match disagree: {matches}", file=sys.stderr)
        return 1
    publish(render(args, results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
