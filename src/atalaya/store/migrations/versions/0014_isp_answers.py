"""The ISP's answer to a case: the subscriber's identity, kept apart from traffic data.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-02

Not append-only: identity is personal data that the retention rules must be
able to erase once a case is closed (LED art. 5). The application itself
only inserts: a corrected answer is a new row, the newest one applies.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriber_identity",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("subject_category", sa.String(20), nullable=False),
        sa.Column("name", sa.String(300), nullable=True),
        sa.Column("id_number", sa.String(40), nullable=True),
        sa.Column("address", sa.Text, nullable=True),
        sa.Column("line", sa.String(200), nullable=True),
        sa.Column("addressing", sa.String(10), nullable=True),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("operator_reference", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscriber_identity"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name="fk_subscriber_identity_case_id_case_file"
        ),
    )
    op.create_index("ix_subscriber_identity_case_id", "subscriber_identity", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_subscriber_identity_case_id", table_name="subscriber_identity")
    op.drop_table("subscriber_identity")
