"""A fleet of observers: the observers that run, and who holds which watch target.

Revision ID: 0020f
Revises: 0017
Create Date: 2026-12-02

`fleet_observer` has one row per observer run taking part in a fleet
(`atalaya watch bittorrent --fleet`), with its heartbeat; `watch_lease` one
row per watch target of a network, naming the run that holds it and until
when (atalaya.observe.leases). Neither is evidence: both are rewritten all
the time, so neither is append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020f"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_observer",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("network", sa.String(20), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("node_id", sa.String(40), nullable=True),
        sa.Column("lease_seconds", sa.Float, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_fleet_observer"),
    )
    op.create_table(
        "watch_lease",
        sa.Column("network", sa.String(20), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(36), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("network", "target", name="pk_watch_lease"),
    )
    op.create_index("ix_watch_lease_holder", "watch_lease", ["holder"])


def downgrade() -> None:
    op.drop_index("ix_watch_lease_holder", table_name="watch_lease")
    op.drop_table("watch_lease")
    op.drop_table("fleet_observer")
