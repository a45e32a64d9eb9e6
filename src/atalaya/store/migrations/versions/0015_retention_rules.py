"""Retention (LED art. 5) and purposes (LED art. 25): rules, holds, blocks, erasure permits.

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-02

`retention_rules` is append-only: each row is one version of the rules.
`retention_hold` is a legal hold on a case or a lead; `retention_block` the
closed cases the rules have blocked. `retention_permit` is empty outside a
retention run: inside its transaction it names what may be erased, and the
append-only tables (case_sighting, case_event, proof_transcript) let a
DELETE through only for a row it names (see docs/retention.md).
`session_purpose` is the purpose a web session declared for its reads.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from atalaya.store import append_only

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
# Appended to each table's own message: what it said stays true outside a run.
ERASE_SUFFIX = " (only a retention run may erase it)"
CASE_MESSAGE = "case sightings and events are a record and cannot be changed or deleted"
PROOF_MESSAGE = "proof transcripts are evidence and cannot be changed"
# table -> (column naming the permit, permit scope, the UPDATE function 0009/0011 made)
_GUARDED = {
    "case_sighting": ("case_id", "case", "atalaya_case_append_only", CASE_MESSAGE),
    "case_event": ("case_id", "case", "atalaya_case_append_only", CASE_MESSAGE),
    "proof_transcript": (
        "sighting_id",
        "sighting",
        "atalaya_proof_transcript_append_only",
        PROOF_MESSAGE,
    ),
}


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def upgrade() -> None:
    op.create_table(
        "retention_rules",
        sa.Column("version", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("set_by", sa.String(100), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_retention_rules"),
    )
    append_only.create("retention_rules", "retention rule versions are a record and cannot change")
    op.create_table(
        "retention_hold",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("object_type", sa.String(10), nullable=False),
        sa.Column("object_id", _ID, autoincrement=False, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("placed_by", sa.String(100), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_by", sa.String(100), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_retention_hold"),
    )
    op.create_index("ix_retention_hold_object_type", "retention_hold", ["object_type", "object_id"])
    op.create_table(
        "retention_block",
        sa.Column("case_id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("blocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("case_id", name="pk_retention_block"),
    )
    op.create_table(
        "retention_permit",
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("object_id", _ID, autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("scope", "object_id", name="pk_retention_permit"),
    )
    op.create_table(
        "session_purpose",
        sa.Column("session_id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_session_purpose"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["user_session.id"],
            name="fk_session_purpose_session_id_user_session",
            ondelete="CASCADE",
        ),
    )
    if _sqlite():
        for table, (column, scope, _function, message) in _GUARDED.items():
            op.execute(f"DROP TRIGGER {table}_append_only_delete")
            # Table, column and scope are the constants above, never input.
            op.execute(
                f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "  # noqa: S608
                "WHEN NOT EXISTS (SELECT 1 FROM retention_permit "
                f"WHERE scope = '{scope}' AND object_id = OLD.{column}) "
                f"BEGIN SELECT RAISE(ABORT, '{message}{ERASE_SUFFIX}'); END"
            )
        return
    # The permit's key is the column the trigger names (TG_ARGV[1]), read
    # through to_jsonb so one function serves every table; TG_ARGV[2] is the
    # table's message.
    op.execute(
        "CREATE FUNCTION atalaya_retention_erase_only() RETURNS trigger AS $$ "
        "BEGIN IF EXISTS (SELECT 1 FROM retention_permit WHERE scope = TG_ARGV[0] "
        "AND object_id = (to_jsonb(OLD) ->> TG_ARGV[1])::bigint) THEN RETURN OLD; END IF; "
        "RAISE EXCEPTION '%', TG_ARGV[2]; END; $$ LANGUAGE plpgsql"
    )
    for table, (column, scope, function, message) in _GUARDED.items():
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_erase_only_by_retention BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION "
            f"atalaya_retention_erase_only('{scope}', '{column}', '{message}{ERASE_SUFFIX}')"
        )


def downgrade() -> None:
    if _sqlite():
        for table, (_column, _scope, _function, message) in _GUARDED.items():
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_delete")
            op.execute(
                f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
    else:
        for table, (_column, _scope, function, _message) in _GUARDED.items():
            op.execute(f"DROP TRIGGER IF EXISTS {table}_erase_only_by_retention ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {function}()"
            )
        op.execute("DROP FUNCTION IF EXISTS atalaya_retention_erase_only()")
    append_only.drop("retention_rules")
    for table in (
        "session_purpose",
        "retention_permit",
        "retention_block",
        "retention_hold",
        "retention_rules",
    ):
        op.drop_table(table)
