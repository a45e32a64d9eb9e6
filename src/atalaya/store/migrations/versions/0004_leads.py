"""Leads: presences, links, scored leads with their factors, analyst overrides.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "lead overrides are a record and cannot be changed or deleted"

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _place_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("province_code", sa.String(10), nullable=True),
        sa.Column("province_name", sa.String(200), nullable=True),
        sa.Column("municipality_code", sa.String(10), nullable=True),
        sa.Column("municipality_name", sa.String(200), nullable=True),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("accuracy_km", sa.Float, nullable=True),
        sa.Column("asn", sa.BigInteger, nullable=True),
        sa.Column("isp", sa.String(300), nullable=True),
        sa.Column("time_zone", sa.String(64), nullable=True),
        sa.Column("flags", sa.JSON, nullable=False),
        sa.Column("facts_version", sa.String(64), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "lead",
        sa.Column("id", _ID, autoincrement=False, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sightings", sa.BigInteger, nullable=False),
        sa.Column("presences", sa.Integer, nullable=False),
        sa.Column("addresses", sa.Integer, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("known_files", sa.Integer, nullable=False),
        sa.Column("verified_items", sa.Integer, nullable=False),
        sa.Column("highest_category", sa.SmallInteger, nullable=True),
        sa.Column("networks", sa.JSON, nullable=False),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("client", sa.String(200), nullable=True),
        *_place_columns(),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("weights_version", sa.String(40), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lead"),
    )
    op.create_index("ix_lead_score", "lead", ["score"])
    op.create_index("ix_lead_last_seen", "lead", ["last_seen"])
    op.create_index("ix_lead_province_code", "lead", ["province_code"])

    op.create_table(
        "lead_presence",
        sa.Column("id", _ID, autoincrement=False, nullable=False),
        sa.Column("lead_id", _ID, nullable=False),
        sa.Column("ip", sa.String(45), nullable=False),
        sa.Column("port", sa.Integer, nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sightings", sa.BigInteger, nullable=False),
        sa.Column("opened_by", sa.String(20), nullable=False),
        sa.Column("days", sa.JSON, nullable=False),
        sa.Column("client", sa.String(200), nullable=True),
        sa.Column("ports", sa.JSON, nullable=False),
        *_place_columns(),
        sa.Column("block", sa.String(300), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lead_presence"),
    )
    op.create_index("ix_lead_presence_lead_id", "lead_presence", ["lead_id"])
    op.create_index("ix_lead_presence_ip_first_seen", "lead_presence", ["ip", "first_seen"])

    op.create_table(
        "lead_presence_item",
        sa.Column("presence_id", _ID, nullable=False),
        sa.Column("infohash", sa.String(64), nullable=False),
        sa.Column("network", sa.String(20), nullable=False),
        sa.Column("file_hash", sa.String(80), nullable=True),
        sa.Column("category", sa.SmallInteger, nullable=True),
        sa.Column("proof", sa.Boolean, nullable=False),
        sa.Column("sightings", sa.BigInteger, nullable=False),
        sa.Column("in_prefix", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("presence_id", "infohash", name="pk_lead_presence_item"),
        sa.ForeignKeyConstraint(
            ["presence_id"],
            ["lead_presence.id"],
            name="fk_lead_presence_item_presence_id_lead_presence",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_lead_presence_item_infohash", "lead_presence_item", ["infohash"])

    op.create_table(
        "lead_presence_peer",
        sa.Column("presence_id", _ID, nullable=False),
        sa.Column("peer_id", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("presence_id", "peer_id", name="pk_lead_presence_peer"),
        sa.ForeignKeyConstraint(
            ["presence_id"],
            ["lead_presence.id"],
            name="fk_lead_presence_peer_presence_id_lead_presence",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_lead_presence_peer_peer_id", "lead_presence_peer", ["peer_id"])

    op.create_table(
        "lead_link",
        sa.Column("presence_a", _ID, nullable=False),
        sa.Column("presence_b", _ID, nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("lead_id", _ID, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("presence_a", "presence_b", "reason", name="pk_lead_link"),
        sa.ForeignKeyConstraint(
            ["presence_a"],
            ["lead_presence.id"],
            name="fk_lead_link_presence_a_lead_presence",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["presence_b"],
            ["lead_presence.id"],
            name="fk_lead_link_presence_b_lead_presence",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_lead_link_lead_id", "lead_link", ["lead_id"])
    op.create_index("ix_lead_link_presence_b", "lead_link", ["presence_b"])

    op.create_table(
        "lead_factor",
        sa.Column("lead_id", _ID, nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("raw", sa.Float, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("contribution", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("lead_id", "name", name="pk_lead_factor"),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["lead.id"], name="fk_lead_factor_lead_id_lead", ondelete="CASCADE"
        ),
    )

    op.create_table(
        "lead_override",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("lead_id", _ID, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("analyst", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_score", sa.Float, nullable=True),
        sa.Column("weights_version", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lead_override"),
    )
    op.create_index("ix_lead_override_lead_id", "lead_override", ["lead_id"])

    op.create_table(
        "lead_item",
        sa.Column("infohash", sa.String(64), nullable=False),
        sa.Column("rank", sa.BigInteger, nullable=False),
        sa.Column("leads", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("infohash", name="pk_lead_item"),
    )

    op.create_table(
        "lead_state",
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_lead_state"),
    )

    # An override is what an analyst decided and why: it is never rewritten.
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER lead_override_append_only_{event.lower()} "
                f"BEFORE {event} ON lead_override "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION atalaya_lead_override_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER lead_override_append_only BEFORE UPDATE OR DELETE ON lead_override "
            "FOR EACH ROW EXECUTE FUNCTION atalaya_lead_override_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS lead_override_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS lead_override_append_only_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS lead_override_append_only ON lead_override")
        op.execute("DROP FUNCTION IF EXISTS atalaya_lead_override_append_only()")
    for table in (
        "lead_state",
        "lead_item",
        "lead_override",
        "lead_factor",
        "lead_link",
        "lead_presence_peer",
        "lead_presence_item",
        "lead_presence",
        "lead",
    ):
        op.drop_table(table)
