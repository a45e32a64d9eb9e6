"""Watch list additions, fetched torrent metadata and immutable sightings.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

IMMUTABLE_MESSAGE = "sightings are evidence and cannot be changed"


def upgrade() -> None:
    op.create_table(
        "watch_item",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("network", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("value", sa.LargeBinary(64), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("hash_set_id", sa.Integer, nullable=True),
        sa.Column("file_key", sa.String(80), nullable=True),
        sa.Column("category", sa.SmallInteger, nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_watch_item"),
        sa.UniqueConstraint("network", "kind", "value", name="uq_watch_item_identifier"),
        sa.ForeignKeyConstraint(
            ["hash_set_id"],
            ["hash_set.id"],
            name="fk_watch_item_hash_set_id_hash_set",
            ondelete="SET NULL",
        ),
    )
    op.create_table(
        "torrent_metadata",
        sa.Column("infohash", sa.String(64), nullable=False),
        sa.Column("infohash_v2", sa.String(64), nullable=True),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("info", sa.LargeBinary, nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fetched_from", sa.String(60), nullable=True),
        sa.PrimaryKeyConstraint("infohash", name="pk_torrent_metadata"),
    )
    op.create_table(
        "sighting",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("network", sa.String(20), nullable=False),
        sa.Column("infohash", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("found_by", sa.String(20), nullable=False),
        sa.Column("client", sa.String(200), nullable=True),
        sa.Column("peer_id", sa.String(40), nullable=True),
        sa.Column("advertised_name", sa.Text, nullable=True),
        sa.Column("have_fraction", sa.Float, nullable=True),
        sa.Column("pieces_verified", sa.Integer, nullable=False),
        sa.Column("pieces_failed", sa.Integer, nullable=False),
        sa.Column("bytes_downloaded", sa.BigInteger, nullable=False),
        sa.Column("proof", sa.Boolean, nullable=False),
        sa.Column("file_hash", sa.String(80), nullable=True),
        sa.Column("category", sa.SmallInteger, nullable=True),
        sa.Column("hash_set", sa.String(200), nullable=True),
        sa.Column("hash_set_version", sa.String(64), nullable=True),
        sa.Column("local_ip", sa.String(45), nullable=True),
        sa.Column("local_port", sa.Integer, nullable=True),
        sa.Column("observer", sa.String(60), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("clock_offset_s", sa.Float, nullable=True),
        sa.Column("details", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sighting"),
    )
    op.create_index("ix_sighting_seen_at", "sighting", ["seen_at"])
    op.create_index("ix_sighting_ip_seen_at", "sighting", ["ip", "seen_at"])
    op.create_index("ix_sighting_infohash", "sighting", ["infohash"])

    # Evidence first: a sighting is written once. Retention purges may delete.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER sighting_immutable BEFORE UPDATE ON sighting "
            f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE}'); END"
        )
    else:
        op.execute(
            "CREATE FUNCTION atalaya_sighting_immutable() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{IMMUTABLE_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER sighting_immutable BEFORE UPDATE ON sighting "
            "FOR EACH ROW EXECUTE FUNCTION atalaya_sighting_immutable()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS sighting_immutable ON sighting")
        op.execute("DROP FUNCTION IF EXISTS atalaya_sighting_immutable()")
    op.drop_table("sighting")
    op.drop_table("torrent_metadata")
    op.drop_table("watch_item")
