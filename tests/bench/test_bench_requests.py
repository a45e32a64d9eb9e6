"""bench/bench_requests.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_requests.py"


@pytest.mark.slow
def test_tiny_run_measures_both_ways_and_writes_its_section(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\n"
        "<!-- bench_requests:start -->\nstale figures\n<!-- bench_requests:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    # 20 leads: enough for the new way to render in two worker processes.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--leads", "20", "--old-leads", "3", "--engines",
         "sqlite", "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = docs.read_text()
    assert "stale figures" not in text and "another benchmark" in text
    rows = [line for line in text.splitlines() if line.startswith("| SQLite")]
    assert len(rows) == 2
    assert "| old:" in rows[0] and "| 3 | 3 |" in rows[0]
    assert "| new:" in rows[1] and "| 20 | 20 |" in rows[1]
    assert "bench_requests.py --leads 20 --old-leads 3 --engines sqlite" in text
