"""bench/bench_evidence.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_evidence.py"


@pytest.mark.slow
def test_tiny_run_writes_its_section_and_keeps_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\n"
        "<!-- bench_evidence:start -->\nstale figures\n<!-- bench_evidence:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--sightings", "30", "--engines", "sqlite",
         "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = docs.read_text()
    assert "stale figures" not in text and "another benchmark" in text
    row = next(line for line in text.splitlines() if line.startswith("| SQLite"))
    assert "| 30 |" in row
    assert "bench_evidence.py --sightings 30 --engines sqlite" in text
