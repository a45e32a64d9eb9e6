"""Documents generated for a case: judicial and preservation requests, PDF and DOCX.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atalaya.store import append_only

revision = "0013"
down_revision = "0014"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "case_document",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("signed", sa.Boolean, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_document"),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name="fk_case_document_case_id_case_file"
        ),
    )
    op.create_index("ix_case_document_case_id", "case_document", ["case_id"])
    # A retention run erases a closed case whole, its documents included (0015).
    append_only.create(
        "case_document",
        "documents sent for a case are a record and cannot be changed",
        erasable_by=("case", "case_id"),
    )


def downgrade() -> None:
    append_only.drop("case_document")
    op.drop_table("case_document")
