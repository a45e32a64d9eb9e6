"""Triggers that make a table append-only, for migrations.

Evidence (audit records, time stamps, proof transcripts) must never be edited
or removed through the application's own database role; the triggers say so
with one message that names what the table holds.
"""

from __future__ import annotations

from alembic import op


def _function(table: str) -> str:
    return f"atalaya_{table}_append_only"


# What a refused DELETE adds when a retention run may erase the row (0015).
ERASE_SUFFIX = " (only a retention run may erase it)"


def create(table: str, message: str, *, erasable_by: tuple[str, str] | None = None) -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on ``table``.

    ``erasable_by`` = (scope, column): a DELETE goes through while a
    `retention_permit` row of that scope names the row's ``column`` (only
    inside a retention run, see atalaya.cases.retention_run); needs 0015.
    """
    if "'" in message:
        raise ValueError("the message is written into SQL and must not hold a quote")
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute(
            f"CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )
        if erasable_by is None:
            op.execute(
                f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        else:
            scope, column = erasable_by
            op.execute(
                f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "  # noqa: S608
                "WHEN NOT EXISTS (SELECT 1 FROM retention_permit "
                f"WHERE scope = '{scope}' AND object_id = OLD.{column}) "
                f"BEGIN SELECT RAISE(ABORT, '{message}{ERASE_SUFFIX}'); END"
            )
        return
    op.execute(
        f"CREATE FUNCTION {_function(table)}() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql"
    )
    events = "UPDATE OR DELETE" if erasable_by is None else "UPDATE"
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE {events} ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {_function(table)}()"
    )
    if erasable_by is not None:
        scope, column = erasable_by
        op.execute(
            f"CREATE TRIGGER {table}_erase_only_by_retention BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION "
            f"atalaya_retention_erase_only('{scope}', '{column}', '{message}{ERASE_SUFFIX}')"
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
    op.execute(f"DROP TRIGGER IF EXISTS {table}_erase_only_by_retention ON {table}")
    op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {_function(table)}()")
