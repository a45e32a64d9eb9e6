"""Running the CLI, and what an attacker with database access would do: drop the triggers."""

from __future__ import annotations

import subprocess

from sqlalchemy import Connection

from tests.support.cli import run_atalaya, spawn_atalaya

SQLITE_TRIGGERS = (
    "audit_record_append_only_update",
    "audit_record_append_only_delete",
    "audit_record_extends_chain",
    "audit_head_forward_only",
    "audit_head_no_delete",
)


def drop_audit_triggers(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
    else:
        conn.exec_driver_sql("ALTER TABLE audit_record DISABLE TRIGGER USER")
        conn.exec_driver_sql("ALTER TABLE audit_head DISABLE TRIGGER USER")


def _env(db_url: str) -> dict[str, str | None]:
    return {"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"}


def atalaya(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command, run in this process (tests/support/cli.py)."""
    return run_atalaya(*args, stdin=stdin, env=_env(db_url))


def atalaya_process(
    db_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as a real process: for the few calls that prove the entry point."""
    return spawn_atalaya(*args, stdin=stdin, env=_env(db_url))
