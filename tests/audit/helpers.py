"""Running the CLI, and what an attacker with database access would do: drop the triggers."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import Connection

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


def atalaya(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"}
    env.pop("ATALAYA_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "atalaya", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )
