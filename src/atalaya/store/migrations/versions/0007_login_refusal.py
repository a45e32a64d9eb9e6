"""Refused logins counted per client and window instead of one audit record each.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_refusal",
        sa.Column("client_key", sa.String(45), nullable=False),
        sa.Column("client_address", sa.String(45), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refused", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("client_key", name="pk_login_refusal"),
    )
    op.create_index("ix_login_refusal_window_end", "login_refusal", ["window_end"])


def downgrade() -> None:
    op.drop_index("ix_login_refusal_window_end", table_name="login_refusal")
    op.drop_table("login_refusal")
