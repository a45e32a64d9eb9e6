"""Triggers that make a table append-only, for migrations.

Evidence (audit records, time stamps, proof transcripts) must never be edited
or removed through the application's own database role; the triggers say so
with one message that names what the table holds.
"""

from __future__ import annotations

from alembic import op


def _function(table: str) -> str:
    return f"atalaya_{table}_append_only"


def create(table: str, message: str) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on ``table``."""
    if "'" in message:
        raise ValueError("the message is written into SQL and must not hold a quote")
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only_{event.lower()} "
                f"BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        return
    op.execute(
        f"CREATE FUNCTION {_function(table)}() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql"
    )
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {_function(table)}()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {_function(table)}()"
    )


def drop(table: str) -> None:
    """Undo :func:`create` (downgrades only)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_delete")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {_function(table)}()")
