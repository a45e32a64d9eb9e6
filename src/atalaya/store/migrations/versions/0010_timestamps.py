"""RFC 3161 time stamps of sighting batches and of the audit chain's head.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "time stamps are a record and cannot be changed or deleted"


def upgrade() -> None:
    op.create_table(
        "timestamp_token",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("first_id", sa.BigInteger, nullable=False),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("leaf_count", sa.Integer, nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("leaves", sa.LargeBinary, nullable=True),
        sa.Column("token", sa.LargeBinary, nullable=False),
        sa.Column("tsa_url", sa.String(2000), nullable=False),
        sa.Column("gen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_timestamp_token"),
    )
    op.create_index("ix_timestamp_token_kind_last_id", "timestamp_token", ["kind", "last_id"])
    # A stamp is evidence of when rows existed: it is never edited or removed.
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER timestamp_token_append_only_{event.lower()} "
                f"BEFORE {event} ON timestamp_token "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION atalaya_timestamp_token_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER timestamp_token_append_only BEFORE UPDATE OR DELETE "
            "ON timestamp_token "
            "FOR EACH ROW EXECUTE FUNCTION atalaya_timestamp_token_append_only()"
        )
        op.execute(
            "CREATE TRIGGER timestamp_token_no_truncate BEFORE TRUNCATE ON timestamp_token "
            "FOR EACH STATEMENT EXECUTE FUNCTION atalaya_timestamp_token_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS timestamp_token_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS timestamp_token_append_only_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS timestamp_token_append_only ON timestamp_token")
        op.execute("DROP TRIGGER IF EXISTS timestamp_token_no_truncate ON timestamp_token")
        op.execute("DROP FUNCTION IF EXISTS atalaya_timestamp_token_append_only()")
    op.drop_index("ix_timestamp_token_kind_last_id", table_name="timestamp_token")
    op.drop_table("timestamp_token")
