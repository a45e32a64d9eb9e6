"""bench/bench_web.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.conftest import web_settings

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_web.py"


@pytest.mark.slow
def test_tiny_run_agrees_with_its_baseline_and_writes_its_section(tmp_path: Path) -> None:
    web_settings()  # skips (or fails under CI) without the installed assets
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n")
    args = ["--sightings", "20000", "--addresses", "2000", "--repeat", "1", "--seed", "5"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--engines", "sqlite", "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [f["engine"] for f in figures] == ["sqlite"]
    found = figures[0]
    assert found["sightings"] == found["sighting_rows"] == 20000
    assert found["leads"] == found["lead_rows"] > 0
    province, spain = found["scenarios"]
    # The script itself stops when baseline, select_leads and /api/map disagree.
    assert province["map_leads"] == province["baseline_rows"] == found["province_leads"] > 0
    assert spain["map_leads"] >= province["map_leads"]
    assert province["map_bytes"] > 0 and province["list_bytes"] > 0
    # A filter change narrows; each search finds at least the lead it came from.
    assert 0 <= province["filter_leads"] <= province["map_leads"]
    for kind in ("ip", "prefix", "hash", "peer"):
        assert province[f"search_{kind}_leads"] >= 1, kind

    text = docs.read_text()
    assert "<!-- other:start -->\nanother benchmark\n<!-- other:end -->" in text
    section = text[text.index("<!-- bench_web:start -->") : text.index("<!-- bench_web:end -->")]
    assert "20,000 synthetic sightings" in section
    assert f"province {found['province']}" in section
    assert "search: peer id prefix" in section
