"""Cases: a lead taken up by a unit, the sightings it pins, its append-only events.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02

The table is `case_file`: CASE is a reserved word in SQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "case sightings and events are a record and cannot be changed or deleted"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_RECORD_TABLES = ("case_sighting", "case_event")


def upgrade() -> None:
    op.create_table(
        "case_file",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("lead_id", _ID, autoincrement=False, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("assignee", sa.String(100), nullable=True),
        sa.Column("opened_by", sa.String(100), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_case_file"),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], name="fk_case_file_unit_id_unit"),
    )
    op.create_index("ix_case_file_lead_id", "case_file", ["lead_id"])
    op.create_index("ix_case_file_unit_id", "case_file", ["unit_id"])
    op.create_table(
        "case_sighting",
        sa.Column("case_id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("sighting_id", _ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("case_id", "sighting_id", name="pk_case_sighting"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name="fk_case_sighting_case_id_case_file"
        ),
        sa.ForeignKeyConstraint(
            ["sighting_id"], ["sighting.id"], name="fk_case_sighting_sighting_id_sighting"
        ),
    )
    op.create_index("ix_case_sighting_sighting_id", "case_sighting", ["sighting_id"])
    op.create_table(
        "case_event",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("from_state", sa.String(30), nullable=True),
        sa.Column("to_state", sa.String(30), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_event"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name="fk_case_event_case_id_case_file"
        ),
    )
    op.create_index("ix_case_event_case_id", "case_event", ["case_id"])

    # What a case was opened on, and what happened to it, is added to only.
    if op.get_bind().dialect.name == "sqlite":
        for table in _RECORD_TABLES:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_append_only_{event.lower()} "
                    f"BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
    else:
        op.execute(
            "CREATE FUNCTION atalaya_case_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
        for table in _RECORD_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION atalaya_case_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION atalaya_case_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _RECORD_TABLES:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{event}")
    else:
        for table in _RECORD_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS atalaya_case_append_only()")
    for table in ("case_event", "case_sighting", "case_file"):
        op.drop_table(table)
