"""Saved searches per user, each user's last visit ("new since my last visit"),
and an index for search by file hash (lead_presence_item.file_key).

Revision ID: 0017
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_lead_presence_item_file_key", "lead_presence_item", ["file_key"])
    op.create_table(
        "saved_search",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_saved_search"),
        sa.UniqueConstraint("user_id", "name", name="uq_saved_search_user_id_name"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name="fk_saved_search_user_id_app_user",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_saved_search_user_id", "saved_search", ["user_id"])
    op.create_table(
        "user_visit",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_visit"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name="fk_user_visit_user_id_app_user",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_lead_presence_item_file_key", table_name="lead_presence_item")
    op.drop_table("user_visit")
    op.drop_index("ix_saved_search_user_id", table_name="saved_search")
    op.drop_table("saved_search")
