"""Leads that keep their identity: builds, lineage, history, aliases, provinces per lead.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

Upgrade fills `lead_province` from the presences already built, so units
hold the leads of a populated store at once by any presence in their
provinces. Records left pointing at a lead merged away before lineage
existed are re-attached by the next build (see atalaya.leads.history).

Downgrade drops the history with the tables: claims carried to split-off
leads stay as plain claims, and records on merged-away ids point at
nothing again, as they did before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "lead lineage and history are a record and cannot be changed or deleted"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_HISTORY_TABLES = ("lead_lineage", "lead_history")


def upgrade() -> None:
    op.create_table(
        "lead_province",
        sa.Column("lead_id", _ID, autoincrement=False, nullable=False),
        sa.Column("province_code", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", "province_code", name="pk_lead_province"),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["lead.id"], name="fk_lead_province_lead_id_lead", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_lead_province_province_code", "lead_province", ["province_code"])
    op.execute(
        "INSERT INTO lead_province (lead_id, province_code) "
        "SELECT DISTINCT lead_id, province_code FROM lead_presence "
        "WHERE province_code IS NOT NULL"
    )
    op.create_table(
        "lead_build",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("algorithm", sa.String(20), nullable=False),
        sa.Column("last_sighting_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lead_build"),
    )
    op.create_table(
        "lead_lineage",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("build_id", sa.Integer, nullable=False),
        sa.Column("old_id", _ID, nullable=False),
        sa.Column("new_id", _ID, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lead_lineage"),
        sa.ForeignKeyConstraint(
            ["build_id"], ["lead_build.id"], name="fk_lead_lineage_build_id_lead_build"
        ),
    )
    op.create_index("ix_lead_lineage_old_id", "lead_lineage", ["old_id"])
    op.create_index("ix_lead_lineage_new_id", "lead_lineage", ["new_id"])
    op.create_table(
        "lead_history",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("build_id", sa.Integer, nullable=False),
        sa.Column("lead_id", _ID, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lead_history"),
        sa.ForeignKeyConstraint(
            ["build_id"], ["lead_build.id"], name="fk_lead_history_build_id_lead_build"
        ),
    )
    op.create_index("ix_lead_history_lead_id", "lead_history", ["lead_id"])
    op.create_table(
        "lead_alias",
        sa.Column("id", _ID, autoincrement=False, nullable=False),
        sa.Column("lead_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lead_alias"),
    )
    op.create_index("ix_lead_alias_lead_id", "lead_alias", ["lead_id"])
    op.add_column("lead_claim", sa.Column("carried_from", _ID, nullable=True))

    # Lineage says where records went: it is added to, never rewritten.
    if op.get_bind().dialect.name == "sqlite":
        for table in _HISTORY_TABLES:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_append_only_{event.lower()} "
                    f"BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
    else:
        op.execute(
            "CREATE FUNCTION atalaya_lead_history_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
        for table in _HISTORY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION atalaya_lead_history_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION atalaya_lead_history_append_only()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _HISTORY_TABLES:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{event}")
    else:
        for table in _HISTORY_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS atalaya_lead_history_append_only()")
    with op.batch_alter_table("lead_claim") as batch:
        batch.drop_column("carried_from")
    for table in ("lead_alias", "lead_history", "lead_lineage", "lead_build", "lead_province"):
        op.drop_table(table)
