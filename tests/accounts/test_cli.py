"""`atalaya users …` and `atalaya units …` run as an operator would.

Commands run in this process; the first `users add` runs as a real process,
its password arriving through a pipe.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from atalaya.audit import AuditQuery, read_records
from tests.accounts.helpers import insert_lead
from tests.audit.helpers import atalaya, atalaya_process

PASSWORD = "a long enough password\n"

# Real password hashing at the production cost, and one real process: seconds.
pytestmark = pytest.mark.slow


def test_units_users_and_claims(db_url: str, engine: Engine) -> None:
    done = atalaya(db_url, "units", "add", "Madrid", "--province", "28", "--contact", "Madrid desk")
    assert done.returncode == 0, done.stderr
    done = atalaya(
        db_url,
        "units",
        "add",
        "Cataluña",
        "--province",
        "08",
        "--province",
        "17",
        "--contact",
        "BCN desk",
    )
    assert done.returncode == 0, done.stderr
    assert atalaya(db_url, "units", "add", "Madrid", "--contact", "again").returncode == 2
    units = [
        json.loads(line) for line in atalaya(db_url, "units", "list", "--json").stdout.splitlines()
    ]
    assert [(u["name"], u["jurisdiction"], u["contact"]) for u in units] == [
        ("Cataluña", ["08", "17"], "BCN desk"),
        ("Madrid", ["28"], "Madrid desk"),
    ]

    added = atalaya_process(
        db_url,
        "users",
        "add",
        "ana",
        "--unit",
        "Madrid",
        "--role",
        "analyst",
        "--password-stdin",
        stdin=PASSWORD,
    )
    assert added.returncode == 0, added.stderr
    short = atalaya(
        db_url,
        "users",
        "add",
        "bob",
        "--unit",
        "Madrid",
        "--role",
        "analyst",
        "--password-stdin",
        stdin="short\n",
    )
    assert short.returncode == 2 and "at least 12" in short.stderr
    empty = atalaya(
        db_url,
        "users",
        "add",
        "bob",
        "--unit",
        "Madrid",
        "--role",
        "analyst",
        "--password-stdin",
        stdin="",
    )
    assert empty.returncode == 2
    assert atalaya(db_url, "users", "disable", "ana").returncode == 0
    users = [
        json.loads(line) for line in atalaya(db_url, "users", "list", "--json").stdout.splitlines()
    ]
    assert [(u["username"], u["unit"], u["role"], u["disabled"]) for u in users] == [
        ("ana", "Madrid", "analyst", True)
    ]
    assert "password" not in json.dumps(users)
    assert atalaya(db_url, "users", "enable", "ana").returncode == 0
    assert atalaya(db_url, "users", "unlock", "ana").returncode == 0
    assert atalaya(db_url, "users", "disable", "nobody").returncode == 2
    table = atalaya(db_url, "users", "list")
    assert table.returncode == 0 and "active" in table.stdout

    with engine.begin() as conn:
        insert_lead(conn, 7, "08")
    claim = atalaya(db_url, "units", "claim", "7", "--unit", "Madrid", "--by", "ana")
    assert claim.returncode == 0 and "also held by Cataluña" in claim.stderr
    assert atalaya(db_url, "units", "claim", "8", "--unit", "Madrid").returncode == 2
    assert atalaya(db_url, "units", "release", "7", "--unit", "Madrid").returncode == 0
    assert atalaya(db_url, "units", "release", "7", "--unit", "Madrid").returncode == 2

    with engine.connect() as conn:
        actions = [
            (e.fields.action, e.fields.object_type, e.fields.object_id)
            for e in read_records(conn, AuditQuery())
        ]
    assert actions == [
        ("unit_add", "unit", "1"),
        ("unit_add", "unit", "2"),
        ("user_add", "user", "1"),
        ("user_disable", "user", "1"),
        ("change", "user", "1"),
        ("change", "user", "1"),
        ("lead_claim", "lead", "7"),
        ("lead_release", "lead", "7"),
    ]
    assert atalaya(db_url, "audit", "verify").returncode == 0
