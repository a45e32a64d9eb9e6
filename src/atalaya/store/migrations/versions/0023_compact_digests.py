"""Bare records of plain lists in one compact row each.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03

`reference_digest` holds a plain list's records (one digest, no name, no
attributes) as (set, algorithm code, raw digest, label number), keyed by set
first; `reference_label` numbers the set's category labels. The record's
file_key ("algorithm:hex") is derived, not stored. Rows already in
reference_file/reference_hash stay there and stay readable
(atalaya.hashsets.lookup reads both). Downgrade writes the compact rows back
as reference_file/reference_hash rows, so nothing imported is lost.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# A copy of atalaya.hashsets.algorithms.CODES as it was at this revision:
# a migration must not change when the code does.
_CODES = {
    "md5": 1,
    "sha1": 2,
    "sha256": 3,
    "ed2k": 4,
    "btih": 5,
    "btih2": 6,
    "btv2_root": 7,
    **{f"btv1_{1 << n}": 100 + n for n in range(14, 25)},
}


def upgrade() -> None:
    op.create_table(
        "reference_digest",
        sa.Column("hash_set_id", sa.Integer, nullable=False),
        sa.Column("algorithm", sa.SmallInteger, nullable=False),
        sa.Column("value", sa.LargeBinary(64), nullable=False),
        sa.Column("label", sa.SmallInteger, nullable=False),
        sa.PrimaryKeyConstraint("hash_set_id", "algorithm", "value", name="pk_reference_digest"),
        sa.ForeignKeyConstraint(
            ["hash_set_id"],
            ["hash_set.id"],
            name="fk_reference_digest_hash_set_id_hash_set",
            ondelete="CASCADE",
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "reference_label",
        sa.Column("hash_set_id", sa.Integer, nullable=False),
        sa.Column("label", sa.SmallInteger, nullable=False),
        sa.Column("category", sa.SmallInteger, nullable=False),
        sa.Column("category_label", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("hash_set_id", "label", name="pk_reference_label"),
        sa.UniqueConstraint(
            "hash_set_id", "category", "category_label", name="uq_reference_label_category"
        ),
        sa.ForeignKeyConstraint(
            ["hash_set_id"],
            ["hash_set.id"],
            name="fk_reference_label_hash_set_id_hash_set",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    cases = " ".join(f"WHEN {c} THEN '{n}'" for n, c in _CODES.items())
    name = f"CASE d.algorithm {cases} END"
    hex_ = "lower(hex(d.value))" if sqlite else "encode(d.value, 'hex')"
    key = f"{name} || ':' || {hex_}"
    insert = "INSERT OR IGNORE INTO" if sqlite else "INSERT INTO"
    tail = "" if sqlite else " ON CONFLICT DO NOTHING"
    source = (
        "FROM reference_digest d JOIN reference_label l "
        "ON l.hash_set_id = d.hash_set_id AND l.label = d.label"
    )
    op.execute(
        f"{insert} reference_file (hash_set_id, file_key, category, category_label) "
        f"SELECT d.hash_set_id, {key}, l.category, l.category_label {source}{tail}"
    )
    op.execute(
        f"{insert} reference_hash (hash_set_id, algorithm, value, file_key) "
        f"SELECT d.hash_set_id, {name}, d.value, {key} {source}{tail}"
    )
    op.drop_table("reference_label")
    op.drop_table("reference_digest")
