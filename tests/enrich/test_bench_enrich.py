"""bench/bench_enrich.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_enrich.py"

pytestmark = pytest.mark.slow


def test_tiny_run_writes_its_section_and_keeps_the_rest(tmp_path: Path, geo_data: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\nIntro stays.\n\n"
        "<!-- bench_enrich:start -->\nstale figures\n<!-- bench_enrich:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    args = ["--addresses", "1500", "--sightings", "6000", "--seed", "5", "--batch", "500"]
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *args,
            "--contenders",
            "maxminddb,enricher,sqlite",
            "--docs",
            str(docs),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [f["contender"] for f in figures] == ["maxminddb", "enricher", "sqlite"]
    assert len({f["found"] for f in figures}) == 1
    assert 0 < figures[0]["found"] <= 1500
    assert figures[2]["stored"] == 1500 and figures[2]["sightings"] == 6000
    # Half the addresses come from Spanish access networks.
    assert 600 <= figures[1]["in_municipality"] <= 900
    for f in figures:
        assert f["addresses"] == 1500
        assert f["per_s"] > 0 and f["peak_rss_bytes"] > 0

    text = docs.read_text()
    assert "stale figures" not in text
    assert text.startswith("# Benchmarks\n\nIntro stays.\n")
    assert "<!-- other:start -->\nanother benchmark\n<!-- other:end -->" in text
    section = text[
        text.index("<!-- bench_enrich:start -->") : text.index("<!-- bench_enrich:end -->")
    ]
    assert "1,500 distinct synthetic IPv4 addresses from seed 5" in section
    assert "`es-atlas@0.6.0`" in section
    assert "x slower" in section
    assert "a sighting table of 6,000 rows" in section


def test_bad_arguments_are_refused() -> None:
    for bad in (
        ["--addresses", "0"],
        ["--sightings", "-1"],
        ["--spain-share", "2"],
        ["--contenders", "nope"],
    ):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *bad, "--no-docs"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, bad
