"""bench/bench_hashsets.py runs end to end at a tiny size on SQLite (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_hashsets.py"


@pytest.mark.slow
def test_tiny_run_compares_old_and_new_and_writes_its_section(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n")
    args = ["--lines", "2000", "--queries", "3000", "--engines", "sqlite", "--old-ref", "HEAD"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(f["engine"], f["code"]) for f in figures] == [("sqlite", "old"), ("sqlite", "new")]
    for f in figures:
        assert f["matches"] == 30
        assert f["bytes_per_hash"] > 20
        assert f["import_s"] > 0 and f["remove_s"] > 0
    text = docs.read_text()
    assert "<!-- other:start -->\nkept\n<!-- other:end -->" in text
    section = text[text.index("<!-- bench_hashsets:start -->") :]
    assert "2,000 synthetic SHA-1 lines" in section
    assert "python bench/bench_hashsets.py --lines 2000" in section
