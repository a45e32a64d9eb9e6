"""bench/bench_kad.py runs end to end at a tiny size without the aMule lab (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_kad.py"


@pytest.mark.slow  # two searches with the shipped 4 s results window
def test_tiny_run_writes_its_section_and_keeps_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\n"
        "<!-- bench_kad:start -->\nstale figures\n<!-- bench_kad:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    args = ["--parts", "codec,loopback", "--searches", "4", "--clients", "2", "--nodes", "8",
            "--ip-prefix", "127.0.95"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = docs.read_text()
    assert "stale figures" not in text and "another benchmark" in text
    section = text[text.index("<!-- bench_kad:start -->") : text.index("<!-- bench_kad:end -->")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 3  # the header and the three loopback rows
    # Every search found the made-up file's sources, one client or two at once.
    assert [row.rsplit("|", 2)[1].strip() for row in rows[1:]] == ["2/2", "4/4", "4/4"]
    assert "Codec alone, the client's side of one search" in section and "Lab:" not in section
    assert "bench_kad.py --parts codec,loopback --searches 4" in section
