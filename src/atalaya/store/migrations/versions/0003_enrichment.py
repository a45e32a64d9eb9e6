"""Enrichment of sighting addresses and the reference data that produced it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrichment_data",
        sa.Column("data_version", sa.String(64), nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("attribution", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("data_version", name="pk_enrichment_data"),
    )
    op.create_table(
        "enrichment",
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("data_version", sa.String(64), nullable=False),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("db_country", sa.String(2), nullable=True),
        sa.Column("region", sa.String(200), nullable=True),
        sa.Column("city", sa.String(200), nullable=True),
        sa.Column("province_code", sa.String(2), nullable=True),
        sa.Column("province_name", sa.String(200), nullable=True),
        sa.Column("municipality_code", sa.String(5), nullable=True),
        sa.Column("municipality_name", sa.String(200), nullable=True),
        sa.Column("latitude", sa.Float, nullable=True),
        sa.Column("longitude", sa.Float, nullable=True),
        sa.Column("accuracy_km", sa.Float, nullable=True),
        sa.Column("asn", sa.BigInteger, nullable=True),
        sa.Column("isp", sa.String(300), nullable=True),
        sa.Column("org", sa.String(300), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=True),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ip", "data_version", name="pk_enrichment"),
        sa.ForeignKeyConstraint(
            ["data_version"],
            ["enrichment_data.data_version"],
            name="fk_enrichment_data_version_enrichment_data",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_enrichment_version_country", "enrichment", ["data_version", "country"])
    op.create_index(
        "ix_enrichment_version_province", "enrichment", ["data_version", "province_code"]
    )


def downgrade() -> None:
    op.drop_table("enrichment")
    op.drop_table("enrichment_data")
