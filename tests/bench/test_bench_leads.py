"""bench/bench_leads.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.support.postgres import find_bindir

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_leads.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_leads", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_leads"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.postgres
@pytest.mark.slow
def test_tiny_run_on_both_engines_writes_its_section(tmp_path: Path) -> None:
    if find_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required under CI: scripts/setup.sh installs it")
        pytest.skip("no PostgreSQL binaries here; run scripts/setup.sh")
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\nIntro stays.\n\n"
        "<!-- bench_leads:start -->\nstale figures\n<!-- bench_leads:end -->\n\n"
        "<!-- other:start -->\nanother benchmark\n<!-- other:end -->\n"
    )
    args = ["--sightings", "20000", "--addresses", "1500", "--seed", "5"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--docs", str(docs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [f["engine"] for f in figures] == ["sqlite", "postgresql"]
    for f in figures:
        assert f["sightings"] == 20000 and f["base"] == 19800
        assert f["same_as_rebuild"] is True
        assert f["incremental"]["mode"] == "incremental"
        assert f["incremental"]["sightings"] == 200
        assert f["state"]["leads"] > 0 and f["state"]["multi_address_leads"] > 0
        assert f["peak_rss_bytes"] > 0
    # Both engines build the very same leads.
    assert figures[0]["state"] == figures[1]["state"]

    text = docs.read_text()
    assert "stale figures" not in text
    assert text.startswith("# Benchmarks\n\nIntro stays.\n")
    assert "<!-- other:start -->\nanother benchmark\n<!-- other:end -->" in text
    section = text[
        text.index("<!-- bench_leads:start -->") : text.index("<!-- bench_leads:end -->")
    ]
    assert "20,000 synthetic sightings" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3 and "SQLite" in rows[1] and "PostgreSQL" in rows[2]
    assert "python bench/bench_leads.py --sightings 20000" in section


def test_workload_is_reproducible_and_shaped() -> None:
    bench = load_bench()
    one = bench.make_workload(5000, 1000, seed=3)
    two = bench.make_workload(5000, 1000, seed=3)
    assert len(one) == 5000
    assert np.array_equal(one.at_us, two.at_us) and np.array_equal(one.ip, two.ip)
    assert np.all(np.diff(one.at_us) >= 0)  # sorted by time
    assert len(one.addresses) == 1000 == len(set(one.addresses))
    shared = [a for a in one.addresses if a.startswith("100.")]
    assert len(shared) == bench.CGNAT_POOL
    assert all("cgnat" in one.facts[a].flags for a in shared)
    # Made-up public-looking addresses only outside the shared pool.
    assert not any(a.split(".")[0] in {"10", "127", "192"} for a in one.addresses)
    assert set(np.unique(one.ip)) <= set(range(1000))
