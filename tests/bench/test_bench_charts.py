"""bench/bench_charts.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import web_settings

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_charts.py"


@pytest.mark.slow
def test_tiny_run_agrees_with_the_old_count_and_writes_its_section(tmp_path: Path) -> None:
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
    # The script itself stops when the stored counts and the old count disagree.
    assert result.returncode == 0, result.stderr
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [f["engine"] for f in figures] == ["sqlite"]
    found = figures[0]
    assert found["sightings"] == 20000
    assert found["day_rows"] >= found["week_rows"] >= found["presences"] > 0
    province, spain, history = found["scenarios"]
    assert 0 < province["leads"] <= spain["leads"] <= history["leads"]
    assert 0 < spain["sightings"] < history["sightings"] <= 20000
    assert all(s["page_bytes"] > 0 for s in found["scenarios"])

    text = docs.read_text()
    assert "<!-- other:start -->\nanother benchmark\n<!-- other:end -->" in text
    section = text[
        text.index("<!-- bench_charts:start -->") : text.index("<!-- bench_charts:end -->")
    ]
    assert "20,000 synthetic sightings" in section
    assert "| SQLite (WAL, file on local disk) | 20,000 |" in section
    assert "`GET /charts` before" in section and "`GET /charts` now" in section


def test_sizes_and_addresses_pair_up() -> None:
    parse_args = _bench().parse_args
    one = parse_args(["--sightings", "500000,2000000", "--addresses", "10000"])
    assert one.stores == [(500_000, 10_000), (2_000_000, 10_000)]
    two = parse_args(["--sightings", "500000,2000000", "--addresses", "10000,20000"])
    assert two.stores == [(500_000, 10_000), (2_000_000, 20_000)]
    with pytest.raises(SystemExit):
        parse_args(["--sightings", "500000,2000000", "--addresses", "1,2,3"])
    with pytest.raises(SystemExit):
        parse_args(["--sightings", "5e5"])


def _bench() -> Any:
    """bench/bench_charts.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_charts", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
