"""bench/bench_match.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_match.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_match", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_match"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_run_writes_its_section_and_keeps_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\nIntro stays.\n\n"
        "<!-- bench_match:start -->\nstale figures\n<!-- bench_match:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    args = ["--references", "20000", "--queries", "5000", "--seed", "3", "--batch", "2000"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [f["contender"] for f in figures] == [
        "matchindex",
        "matchindex_numpy",
        "matchindex_old",
        "pyset",
        "sqlite",
    ]
    # 1% of 5,000 queries are drawn from the references; all of them find them.
    assert {f["found"] for f in figures} == {50}
    for f in figures:
        assert f["peak_rss_bytes"] > 0
        assert f["build_s"] >= 0
        assert f["lookups_per_s"] > 0
    for f in figures[:3]:
        assert 20000 * 20 < f["structure_bytes"] <= 1.1 * 20000 * 20
        assert f["lookups_per_cpu_s"] > 0
    assert figures[1]["kernel"] == figures[2]["kernel"] == "numpy"

    text = docs.read_text()
    assert "stale figures" not in text
    assert text.startswith("# Benchmarks\n\nIntro stays.\n")
    assert "<!-- other:start -->\nanother benchmark\n<!-- other:end -->" in text
    assert text.count("<!-- bench_match:start -->") == text.count("<!-- bench_match:end -->") == 1
    section = text[
        text.index("<!-- bench_match:start -->") : text.index("<!-- bench_match:end -->")
    ]
    assert "20,000 reference SHA-1s" in section
    assert "5,000 queries of which 50 are hits" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 6  # header and five contenders
    assert all("MatchIndex" in row for row in rows[1:4])
    assert "`set`" in rows[4] and "SQLite" in rows[5]
    assert "python bench/bench_match.py --references 20000 --queries 5000" in section
    assert "Machine:" in section and "Python 3." in section and "Date:" in section


def test_workload_has_the_asked_hits() -> None:
    bench = load_bench()
    load = bench.make_workload(1000, 400, 0.05, seed=1)
    assert load.references.shape == (1000, 20)
    assert load.queries.shape == (400, 20)
    assert load.expected_hits == 20
    known = {bytes(r) for r in load.references}
    assert sum(bytes(q) in known for q in load.queries) == 20
    again = bench.make_workload(1000, 400, 0.05, seed=1)
    assert np.array_equal(again.queries, load.queries)
