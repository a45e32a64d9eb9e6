"""The PostgreSQL role docs/security.md gives the application: enough to work, no DDL.

The statements are read from the document itself, so the documentation
and what was tested cannot drift apart.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from atalaya.accounts import add_unit, add_user, login
from atalaya.audit import Action, Actor, AuditQuery, log_event, read_audit, verify
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.enrichment import EnrichmentFacts
from atalaya.store import create_store_engine, upgrade
from tests.accounts.helpers import FAST, PASSWORD
from tests.conftest import _create_database
from tests.leads.helpers import item, write
from tests.leads.helpers import sighting as s

pytestmark = pytest.mark.postgres

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def documented_statements(database: str, role: str) -> list[str]:
    block = re.search(r"<!-- app-role-sql -->\n```sql\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/security.md lost its app-role-sql block"
    sql = "\n".join(line for line in block[1].splitlines() if not line.startswith("--"))
    sql = sql.replace("DATABASE atalaya ", f'DATABASE "{database}" ').replace("atalaya_app", role)
    return [part.strip() for part in sql.split(";") if part.strip()]


@pytest.fixture
def owner_and_app(
    postgres_admin_url: str, postgres_admin: Engine
) -> Iterator[tuple[Engine, Engine]]:
    url = _create_database(postgres_admin, f"atalaya_role_{secrets.token_hex(6)}")
    database = make_url(url).database
    assert database
    role = f"app_{database}"[:60]
    owner = create_store_engine(url)
    upgrade(owner)
    with owner.begin() as conn:
        for statement in documented_statements(database, role):
            conn.execute(text(statement))
    app = create_store_engine(make_url(url).set(username=role, password="change me"))
    try:
        yield owner, app
    finally:
        app.dispose()
        owner.dispose()
        admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_the_application_works_under_the_documented_role(
    owner_and_app: tuple[Engine, Engine],
) -> None:
    _owner, app = owner_and_app
    with app.begin() as conn:
        add_unit(conn, "Madrid", ["28"], "desk", NOW)
        add_user(conn, "ana", "Madrid", "analyst", PASSWORD, NOW, FAST)
        add_user(conn, "nina", "Madrid", "national_auditor", PASSWORD, NOW, FAST)
    session, _token = login(app, "ana", PASSWORD, "127.0.0.1", NOW, FAST)
    write(app, [s("127.0.0.5", item(1), 0), s("127.0.0.5", item(2), 1)])
    report = build_leads(app, EnrichmentFacts(app), LeadsConfig(), now=NOW)
    assert report.leads_total == 1
    log_event(app, Action.VIEW, actor=session.actor(), object_type="lead", object_id=1, at=NOW)
    nina = Actor(user_id=2, username="nina", unit="Madrid", role="national_auditor")
    seen = read_audit(app, nina, AuditQuery(), at=NOW)
    assert [e.fields.action for e in seen] == ["login", "view"]
    assert verify(app).ok


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("UPDATE audit_record SET object_id = '2'", "permission denied"),
        ("DELETE FROM audit_record", "permission denied"),
        ("TRUNCATE audit_record", "permission denied"),
        ("DELETE FROM audit_head", "permission denied"),
        ("ALTER TABLE audit_record DISABLE TRIGGER USER", "must be owner"),
        ("DROP TRIGGER audit_record_append_only ON audit_record", "must be owner"),
        ("DROP TABLE audit_record", "must be owner"),
        ("CREATE TABLE planted (id integer)", "permission denied"),
        ("UPDATE alembic_version SET version_num = 'x'", "permission denied"),
    ],
)
def test_the_documented_role_cannot_rewrite_the_log_or_the_schema(
    owner_and_app: tuple[Engine, Engine], statement: str, error: str
) -> None:
    _owner, app = owner_and_app
    log_event(app, Action.VIEW, actor=Actor(username="ana"), at=NOW)
    with pytest.raises(DBAPIError, match=error), app.begin() as conn:
        conn.execute(text(statement))
