"""Watched items stored network-neutral: (network, kind, value) instead of an infohash.

Sightings keep every row, id and value: `infohash` becomes `item_value` (the
same hex text) beside a new `item_kind` read off its length; `file_hash`
(an `algorithm:hex` file key) becomes `file_key` and `hash_set_version` (the
hash set file's SHA-256) becomes `hash_set_sha256`. The derived lead tables
follow. The append-only trigger on `sighting` is lifted only while the new
column is filled, inside the migration's transaction.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# As 0002 wrote it: the trigger must refuse exactly as before.
IMMUTABLE_MESSAGE = "sightings are evidence and cannot be changed"

# Everything stored before this revision is BitTorrent: a v1 info-hash is 40
# hex digits, a v2 one 64 (the names of atalaya.hashsets.algorithms, written
# out here because a migration must not change when the application does).
# Nothing else was ever written; "unknown" keeps any other row rather than
# failing or dropping it.
UNKNOWN_KIND = "unknown"


def _fill_kind(table: str, kind: str, **also: str) -> None:
    t = sa.table(table, sa.column("infohash"), sa.column(kind), *map(sa.column, also))
    length = sa.func.length(t.c.infohash)
    by_length = sa.case((length == 40, "btih"), (length == 64, "btih2"), else_=UNKNOWN_KIND)
    op.execute(t.update().values({kind: by_length, **also}))


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _drop_sighting_trigger() -> None:
    if _sqlite():
        op.execute("DROP TRIGGER sighting_immutable")
    else:
        op.execute("DROP TRIGGER sighting_immutable ON sighting")


def _create_sighting_trigger() -> None:
    if _sqlite():
        op.execute(
            "CREATE TRIGGER sighting_immutable BEFORE UPDATE ON sighting "
            f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE}'); END"
        )
    else:  # the function from 0002 stays; only the trigger was dropped
        op.execute(
            "CREATE TRIGGER sighting_immutable BEFORE UPDATE ON sighting "
            "FOR EACH ROW EXECUTE FUNCTION atalaya_sighting_immutable()"
        )


def _rename(batch: BatchOperations, old: str, new: str, type_: sa.String, null: bool) -> None:
    batch.alter_column(old, new_column_name=new, existing_type=type_, existing_nullable=null)


def _replace_primary_key(table: str, columns: list[str]) -> None:
    # A batch of its own: SQLite's copy names the columns by their new names
    # only once the renames of the batch before have been applied.
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(f"pk_{table}", type_="primary")
        batch.create_primary_key(f"pk_{table}", columns)


def upgrade() -> None:
    _drop_sighting_trigger()
    op.drop_index("ix_sighting_infohash", table_name="sighting")
    op.add_column("sighting", sa.Column("item_kind", sa.String(20), nullable=True))
    _fill_kind("sighting", "item_kind")
    with op.batch_alter_table("sighting") as batch:
        _rename(batch, "infohash", "item_value", sa.String(64), False)
        _rename(batch, "file_hash", "file_key", sa.String(80), True)
        _rename(batch, "hash_set_version", "hash_set_sha256", sa.String(64), True)
        batch.alter_column("item_kind", existing_type=sa.String(20), nullable=False)
    op.create_index("ix_sighting_item", "sighting", ["network", "item_kind", "item_value"])
    _create_sighting_trigger()

    op.drop_index("ix_lead_presence_item_infohash", table_name="lead_presence_item")
    op.add_column("lead_presence_item", sa.Column("kind", sa.String(20), nullable=True))
    _fill_kind("lead_presence_item", "kind")
    with op.batch_alter_table("lead_presence_item") as batch:
        _rename(batch, "infohash", "value", sa.String(64), False)
        _rename(batch, "file_hash", "file_key", sa.String(80), True)
        batch.alter_column("kind", existing_type=sa.String(20), nullable=False)
    _replace_primary_key("lead_presence_item", ["presence_id", "network", "kind", "value"])
    op.create_index(
        "ix_lead_presence_item_item", "lead_presence_item", ["network", "kind", "value"]
    )

    op.add_column("lead_item", sa.Column("network", sa.String(20), nullable=True))
    op.add_column("lead_item", sa.Column("kind", sa.String(20), nullable=True))
    _fill_kind("lead_item", "kind", network="bittorrent")
    with op.batch_alter_table("lead_item") as batch:
        _rename(batch, "infohash", "value", sa.String(64), False)
        batch.alter_column("network", existing_type=sa.String(20), nullable=False)
        batch.alter_column("kind", existing_type=sa.String(20), nullable=False)
    _replace_primary_key("lead_item", ["network", "kind", "value"])


def downgrade() -> None:
    # Lead tables are derived (a build rewrites them): items of other
    # networks, which the old shape cannot hold apart, are left to the next build.
    op.execute("DELETE FROM lead_item WHERE network <> 'bittorrent'")
    _replace_primary_key("lead_item", ["value"])
    with op.batch_alter_table("lead_item") as batch:
        _rename(batch, "value", "infohash", sa.String(64), False)
        batch.drop_column("network")
        batch.drop_column("kind")

    op.execute("DELETE FROM lead_presence_item WHERE network <> 'bittorrent'")
    op.drop_index("ix_lead_presence_item_item", table_name="lead_presence_item")
    _replace_primary_key("lead_presence_item", ["presence_id", "value"])
    with op.batch_alter_table("lead_presence_item") as batch:
        _rename(batch, "value", "infohash", sa.String(64), False)
        _rename(batch, "file_key", "file_hash", sa.String(80), True)
        batch.drop_column("kind")
    op.create_index("ix_lead_presence_item_infohash", "lead_presence_item", ["infohash"])

    # Sightings are evidence: every row goes back, only the kind is dropped
    # (the old shape reads it off the value's length again).
    _drop_sighting_trigger()
    op.drop_index("ix_sighting_item", table_name="sighting")
    with op.batch_alter_table("sighting") as batch:
        _rename(batch, "item_value", "infohash", sa.String(64), False)
        _rename(batch, "file_key", "file_hash", sa.String(80), True)
        _rename(batch, "hash_set_sha256", "hash_set_version", sa.String(64), True)
        batch.drop_column("item_kind")
    op.create_index("ix_sighting_infohash", "sighting", ["infohash"])
    _create_sighting_trigger()
