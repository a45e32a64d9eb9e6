"""Sightings per presence and UTC day, for the charts (`lead_presence_day`).

The table starts empty: the next `atalaya leads build` fills it, as a full
build, because the lead building code's version changed with it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0013"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "lead_presence_day",
        sa.Column("presence_id", _ID, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("week", sa.Date, nullable=False),
        sa.Column("sightings", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("presence_id", "day", name="pk_lead_presence_day"),
        sa.ForeignKeyConstraint(
            ["presence_id"],
            ["lead_presence.id"],
            name="fk_lead_presence_day_presence_id_lead_presence",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("lead_presence_day")
