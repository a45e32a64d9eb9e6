"""Proof kept per sighting: the transcript of the exchange, and which proof was reached.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atalaya.store import append_only

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proof_transcript",
        sa.Column("sighting_id", sa.BigInteger, nullable=False),
        sa.Column("version", sa.SmallInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("sighting_id", name="pk_proof_transcript"),
        sa.ForeignKeyConstraint(
            ["sighting_id"], ["sighting.id"], name="fk_proof_transcript_sighting_id_sighting"
        ),
    )
    with op.batch_alter_table("sighting") as batch:
        batch.add_column(sa.Column("proof_kind", sa.String(20), nullable=True))
    append_only.create("proof_transcript", "proof transcripts are evidence and cannot be changed")


def downgrade() -> None:
    append_only.drop("proof_transcript")
    with op.batch_alter_table("sighting") as batch:
        batch.drop_column("proof_kind")
    op.drop_table("proof_transcript")
