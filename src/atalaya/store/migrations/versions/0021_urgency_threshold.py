"""Each unit's urgency threshold, and a supervisor's approval of overrides that cross it.

Revision ID: 0021
Revises: 0020f
Create Date: 2026-12-03

`unit.urgent_score`: a lead is urgent for a unit when its score in force is
at least this (60 until the unit sets its own). `lead_override` gains the
unit of the analyst who made it and `pending`: an override that raises a
lead from below that unit's threshold to at or above it waits for a
supervisor of the unit. `override_decision` holds the supervisor's
approval or refusal, append-only like the overrides themselves: a pending
override is in force only once approved.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atalaya.store import append_only

revision = "0021"
down_revision = "0020f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "unit", sa.Column("urgent_score", sa.Float, nullable=False, server_default=sa.text("60"))
    )
    # Plain ADD COLUMN: lead_override's append-only triggers stay as they are.
    op.add_column("lead_override", sa.Column("unit_id", sa.Integer, nullable=True))
    op.add_column(
        "lead_override",
        sa.Column("pending", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "override_decision",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
        sa.Column(
            "override_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False
        ),
        sa.Column("approved", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("supervisor", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_override_decision"),
        sa.UniqueConstraint("override_id", name="uq_override_decision_override_id"),
    )
    append_only.create(
        "override_decision", "override decisions are append-only: record a new override instead"
    )


def downgrade() -> None:
    append_only.drop("override_decision")
    op.drop_table("override_decision")
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of lead_override would
    # drop its append-only triggers with the old table.
    for table, column in (
        ("lead_override", "pending"),
        ("lead_override", "unit_id"),
        ("unit", "urgent_score"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
