"""Table definitions (SQLAlchemy Core).

Core rather than the ORM: imports stream tens of millions of rows and the
observers append sightings in batches; both want plain executemany.
Migrations in `migrations/versions` are the source of truth for the schema;
these definitions must match them (a test compares the two).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One imported reference list. `name` is how operators refer to it.
hash_set = Table(
    "hash_set",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("format", String(20), nullable=False),
    # The version the source gave, when it gave one (VICS odata context, file name…).
    Column("version", String(200), nullable=True),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # SHA-256 of the last imported file: the reference data version that
    # derived results (matches, sightings, leads) record.
    Column("file_sha256", String(64), nullable=False),
    Column("file_count", BigInteger, nullable=False, default=0),
    Column("hash_count", BigInteger, nullable=False, default=0),
)

# One known file of a hash set. `file_key` ("algorithm:hex" of the record's
# strongest hash) is deterministic, so re-importing the same record is a no-op.
reference_file = Table(
    "reference_file",
    metadata,
    Column(
        "hash_set_id",
        Integer,
        ForeignKey("hash_set.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("file_key", String(80), primary_key=True),
    # Internal severity scale (atalaya.hashsets.categories.Category).
    Column("category", SmallInteger, nullable=False),
    # The label exactly as the source gave it.
    Column("category_label", String(100), nullable=False),
    Column("name", Text, nullable=True),
    # Fields of the source record kept but not used (VICS extras).
    Column("attributes", JSON, nullable=True),
)

# Every hash of every known file; `value` is the raw digest.
reference_hash = Table(
    "reference_hash",
    metadata,
    Column(
        "hash_set_id",
        Integer,
        ForeignKey("hash_set.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("algorithm", String(20), primary_key=True),
    Column("value", LargeBinary(64), primary_key=True),
    Column("file_key", String(80), nullable=False),
    Index("ix_reference_hash_lookup", "algorithm", "value"),
    Index("ix_reference_hash_file", "hash_set_id", "file_key"),
)
