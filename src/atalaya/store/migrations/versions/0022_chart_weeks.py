"""Sightings per presence and ISO week, for the charts (`lead_presence_week`).

The weekly counts are the sums of the daily ones (`lead_presence_day`), so
the migration fills the table from them, and a store keeps its charts
without a new build. Also an index on a lead's presences with their
province, which holds all that the charts' sums read of them.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "lead_presence_week",
        sa.Column("presence_id", _ID, nullable=False),
        sa.Column("week", sa.Date, nullable=False),
        sa.Column("sightings", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("presence_id", "week", name="pk_lead_presence_week"),
        sa.ForeignKeyConstraint(
            ["presence_id"],
            ["lead_presence.id"],
            name="fk_lead_presence_week_presence_id_lead_presence",
            ondelete="CASCADE",
        ),
    )
    op.execute(
        "INSERT INTO lead_presence_week (presence_id, week, sightings) "
        "SELECT presence_id, week, SUM(sightings) FROM lead_presence_day "
        "GROUP BY presence_id, week"
    )
    op.create_index(
        "ix_lead_presence_lead_id_province",
        "lead_presence",
        ["lead_id", "province_name", "province_code"],
    )


def downgrade() -> None:
    op.drop_index("ix_lead_presence_lead_id_province", table_name="lead_presence")
    op.drop_table("lead_presence_week")
