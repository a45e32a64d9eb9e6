"""`atalaya audit verify|head|show` run as an operator would.

Commands run in this process; the verify that finds the edit runs as a real
process, proving its exit status through the entry point.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, update

from atalaya.audit import Action, Actor, log_event
from atalaya.store.tables import audit_record
from tests.audit.helpers import atalaya, atalaya_process, drop_audit_triggers

# Passwords hashed at the production cost (_users) and one real process: seconds.
pytestmark = pytest.mark.slow


def _users(db_url: str) -> None:
    assert (
        atalaya(
            db_url, "units", "add", "Madrid", "--province", "28", "--contact", "ext 1"
        ).returncode
        == 0
    )
    for name, role in (("ana", "analyst"), ("eva", "national_auditor")):
        done = atalaya(
            db_url,
            "users",
            "add",
            name,
            "--unit",
            "Madrid",
            "--role",
            role,
            "--password-stdin",
            stdin="a long enough password\n",
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_verify_passes_then_fails_after_an_edit(db_url: str, engine: Engine) -> None:
    for i in range(3):
        log_event(engine, Action.VIEW, actor=Actor(username="ana"), object_type="lead", object_id=i)
    done = atalaya(db_url, "audit", "verify")
    assert done.returncode == 0, done.stderr
    assert "intact: 3 records" in done.stderr
    head = atalaya(db_url, "audit", "head")
    assert head.returncode == 0 and head.stdout.startswith("3:")

    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(update(audit_record).where(audit_record.c.seq == 2).values(object_id="7"))
    done = atalaya_process(db_url, "audit", "verify", "--json")
    assert done.returncode == 1
    assert "broken at record 2" in done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is False and result["first_bad_seq"] == 2
    assert atalaya(db_url, "audit", "head").returncode == 1


def test_anchor_option(db_url: str, engine: Engine) -> None:
    log_event(engine, Action.VIEW, actor=Actor(username="ana"))
    head = atalaya(db_url, "audit", "head").stdout.strip()
    assert atalaya(db_url, "audit", "verify", "--anchor", head).returncode == 0
    wrong = head[:-1] + ("0" if head[-1] != "0" else "1")
    assert atalaya(db_url, "audit", "verify", "--anchor", wrong).returncode == 1
    bad = atalaya(db_url, "audit", "verify", "--anchor", "nonsense")
    assert bad.returncode == 2 and "SEQ:HASH" in bad.stderr


def test_show_is_for_auditors_and_is_logged(db_url: str, engine: Engine) -> None:
    _users(db_url)
    refused = atalaya(db_url, "audit", "show", "--as", "ana")
    assert refused.returncode == 2 and "only auditors" in refused.stderr
    assert atalaya(db_url, "audit", "show", "--as", "nobody").returncode == 2
    shown = atalaya(db_url, "audit", "show", "--as", "eva", "--json")
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["action"] for r in records] == ["unit_add", "user_add", "user_add", "audit_read"]
    assert records[-1]["username"] == "ana" and records[-1]["outcome"] == "denied"
    again = atalaya(db_url, "audit", "show", "--as", "eva", "--json", "--action", "audit_read")
    reads = [json.loads(line) for line in again.stdout.splitlines()]
    assert [(r["username"], r["outcome"]) for r in reads] == [("ana", "denied"), ("eva", "ok")]
    assert reads[1]["details"]["records"] == 4 and reads[1]["details"]["via"] == "cli"
    table = atalaya(db_url, "audit", "show", "--as", "eva", "--user", "ana")
    assert table.returncode == 0 and "audit_read" in table.stdout
    assert atalaya(db_url, "audit", "verify").returncode == 0
