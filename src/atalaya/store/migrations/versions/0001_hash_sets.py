"""Hash sets, their known files and every hash of those files.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hash_set",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("version", sa.String(200), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("file_count", sa.BigInteger, nullable=False),
        sa.Column("hash_count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hash_set"),
        sa.UniqueConstraint("name", name="uq_hash_set_name"),
    )
    op.create_table(
        "reference_file",
        sa.Column("hash_set_id", sa.Integer, nullable=False),
        sa.Column("file_key", sa.String(80), nullable=False),
        sa.Column("category", sa.SmallInteger, nullable=False),
        sa.Column("category_label", sa.String(100), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("attributes", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("hash_set_id", "file_key", name="pk_reference_file"),
        sa.ForeignKeyConstraint(
            ["hash_set_id"],
            ["hash_set.id"],
            name="fk_reference_file_hash_set_id_hash_set",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "reference_hash",
        sa.Column("hash_set_id", sa.Integer, nullable=False),
        sa.Column("algorithm", sa.String(20), nullable=False),
        sa.Column("value", sa.LargeBinary(64), nullable=False),
        sa.Column("file_key", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("hash_set_id", "algorithm", "value", name="pk_reference_hash"),
        sa.ForeignKeyConstraint(
            ["hash_set_id"],
            ["hash_set.id"],
            name="fk_reference_hash_hash_set_id_hash_set",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_reference_hash_lookup", "reference_hash", ["algorithm", "value"])
    op.create_index("ix_reference_hash_file", "reference_hash", ["hash_set_id", "file_key"])


def downgrade() -> None:
    op.drop_table("reference_hash")
    op.drop_table("reference_file")
    op.drop_table("hash_set")
