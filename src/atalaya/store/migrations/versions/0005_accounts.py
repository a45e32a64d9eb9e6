"""Accounts and audit: units, users, sessions, lead claims, the hash-chained audit log.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

APPEND_ONLY_MESSAGE = "audit records are append-only and cannot be changed or deleted"
# Trigger texts spell these out: no SQL is built from variables.
CHAIN_MESSAGE = "audit records must extend the chain head"
HEAD_MESSAGE = "the audit head only moves to the last record"
GENESIS_HASH = "0" * 64

_LEAD_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "unit",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_unit"),
        sa.UniqueConstraint("name", name="uq_unit_name"),
    )
    op.create_table(
        "unit_province",
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("province_code", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "province_code", name="pk_unit_province"),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["unit.id"], name="fk_unit_province_unit_id_unit", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_unit_province_province_code", "unit_province", ["province_code"])
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_app_user"),
        sa.UniqueConstraint("username", name="uq_app_user_username"),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"], name="fk_app_user_unit_id_unit"),
    )
    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idle_timeout_s", sa.Integer, nullable=False),
        sa.Column("client_address", sa.String(45), nullable=True),
        sa.Column("csrf_secret", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_user_session"),
        sa.UniqueConstraint("token_hash", name="uq_user_session_token_hash"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name="fk_user_session_user_id_app_user",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_user_session_user_id", "user_session", ["user_id"])
    op.create_table(
        "login_attempt",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("client_address", sa.String(45), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_attempt"),
    )
    op.create_index("ix_login_attempt_client_address_at", "login_attempt", ["client_address", "at"])
    op.create_table(
        "lead_claim",
        sa.Column("lead_id", _LEAD_ID, autoincrement=False, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", "unit_id", name="pk_lead_claim"),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["unit.id"], name="fk_lead_claim_unit_id_unit", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_lead_claim_unit_id", "lead_claim", ["unit_id"])
    op.create_table(
        "audit_record",
        sa.Column("seq", _LEAD_ID, autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("username", sa.String(100), nullable=True),
        sa.Column("unit", sa.String(200), nullable=True),
        sa.Column("client_address", sa.String(45), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("object_type", sa.String(40), nullable=True),
        sa.Column("object_id", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_record"),
    )
    op.create_index("ix_audit_record_at", "audit_record", ["at"])
    op.create_index("ix_audit_record_username", "audit_record", ["username"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.SmallInteger, autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash")),
        [{"id": 1, "seq": 0, "hash": GENESIS_HASH}],
    )

    # The chain already shows an edit; the triggers make one take more than
    # a stray UPDATE, and keep appends in order even from outside the app.
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _sqlite_triggers() -> None:
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_record_append_only_{event.lower()} "
            f"BEFORE {event} ON audit_record "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        )
    op.execute(
        "CREATE TRIGGER audit_record_extends_chain BEFORE INSERT ON audit_record "
        "WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1) "
        "OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1) "
        "BEGIN SELECT RAISE(ABORT, 'audit records must extend the chain head'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
        "WHEN NOT (NEW.id = OLD.id AND ("
        "(NEW.seq = OLD.seq AND NEW.hash = OLD.hash) OR "
        "(NEW.seq = OLD.seq + 1 AND NEW.hash IS (SELECT hash FROM audit_record "
        "WHERE seq = NEW.seq)))) "
        "BEGIN SELECT RAISE(ABORT, 'the audit head only moves to the last record'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
        f"BEGIN SELECT RAISE(ABORT, '{HEAD_MESSAGE}'); END"
    )


def _postgresql_triggers() -> None:
    op.execute(
        "CREATE FUNCTION atalaya_audit_append_only() RETURNS trigger AS $$ "
        f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END; $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record "
        "FOR EACH ROW EXECUTE FUNCTION atalaya_audit_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_record_no_truncate BEFORE TRUNCATE ON audit_record "
        "FOR EACH STATEMENT EXECUTE FUNCTION atalaya_audit_append_only()"
    )
    op.execute(
        "CREATE FUNCTION atalaya_audit_extends_chain() RETURNS trigger AS $$ "
        "DECLARE head_seq bigint; head_hash varchar; "
        "BEGIN SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = 1; "
        "IF head_seq IS NULL OR NEW.seq IS DISTINCT FROM head_seq + 1 "
        "OR NEW.prev_hash IS DISTINCT FROM head_hash "
        "THEN RAISE EXCEPTION 'audit records must extend the chain head'; END IF; "
        "RETURN NEW; END; $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER audit_record_extends_chain BEFORE INSERT ON audit_record "
        "FOR EACH ROW EXECUTE FUNCTION atalaya_audit_extends_chain()"
    )
    op.execute(
        "CREATE FUNCTION atalaya_audit_head_forward_only() RETURNS trigger AS $$ "
        "BEGIN "
        "IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND ("
        "(NEW.seq = OLD.seq AND NEW.hash = OLD.hash) OR "
        "(NEW.seq = OLD.seq + 1 AND NEW.hash IS NOT DISTINCT FROM "
        "(SELECT hash FROM audit_record WHERE seq = NEW.seq))) "
        "THEN RETURN NEW; END IF; "
        "RAISE EXCEPTION 'the audit head only moves to the last record'; END; $$ LANGUAGE plpgsql"
    )
    op.execute(
        "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION atalaya_audit_head_forward_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
        "FOR EACH STATEMENT EXECUTE FUNCTION atalaya_audit_head_forward_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in (
            "audit_record_append_only_update",
            "audit_record_append_only_delete",
            "audit_record_extends_chain",
            "audit_head_forward_only",
            "audit_head_no_delete",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for name, table in (
            ("audit_record_append_only", "audit_record"),
            ("audit_record_no_truncate", "audit_record"),
            ("audit_record_extends_chain", "audit_record"),
            ("audit_head_forward_only", "audit_head"),
            ("audit_head_no_truncate", "audit_head"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in (
            "atalaya_audit_append_only",
            "atalaya_audit_extends_chain",
            "atalaya_audit_head_forward_only",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    for table in (
        "audit_head",
        "audit_record",
        "lead_claim",
        "login_attempt",
        "user_session",
        "app_user",
        "unit_province",
        "unit",
    ):
        op.drop_table(table)
