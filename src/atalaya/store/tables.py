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
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
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

# What the observers look for beyond the identifiers in hash sets: infohashes
# an operator named, or that discovery matched to a known file. `reason` says
# why, in words an analyst can put in a report.
watch_item = Table(
    "watch_item",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("network", String(20), nullable=False),
    # Identifier kind and value, e.g. ("btih", 20 bytes) or ("btih2", 32 bytes).
    Column("kind", String(20), nullable=False),
    Column("value", LargeBinary(64), nullable=False),
    Column("origin", String(20), nullable=False),  # operator | discovery
    Column("reason", Text, nullable=False),
    Column("hash_set_id", Integer, ForeignKey("hash_set.id", ondelete="SET NULL"), nullable=True),
    Column("file_key", String(80), nullable=True),
    Column("category", SmallInteger, nullable=True),
    Column("added_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("network", "kind", "value", name="uq_watch_item_identifier"),
)

# Info dictionaries fetched from peers (BEP 9) or given by operators: the
# observer needs piece hashes to verify what a peer sends.
torrent_metadata = Table(
    "torrent_metadata",
    metadata,
    Column("infohash", String(64), primary_key=True),  # v1 hex, or v2 hex when v2-only
    Column("infohash_v2", String(64), nullable=True),
    Column("name", Text, nullable=True),
    Column("info", LargeBinary, nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),
    Column("fetched_from", String(60), nullable=True),  # ip:port of the peer
)

# One peer seen offering one watched item, at one instant, by one probe.
# Written once, never updated (a trigger refuses UPDATE on both engines).
sighting = Table(
    "sighting",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("network", String(20), nullable=False),
    Column("infohash", String(64), nullable=False),
    Column("ip", String(45), nullable=False),
    Column("port", Integer, nullable=False),
    # UTC with microseconds, taken when the peer's first answer arrived.
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("found_by", String(20), nullable=False),  # dht | tracker | pex | operator
    Column("client", String(200), nullable=True),
    Column("peer_id", String(40), nullable=True),  # hex of the 20-byte peer id
    Column("advertised_name", Text, nullable=True),
    Column("have_fraction", Float, nullable=True),
    Column("pieces_verified", Integer, nullable=False),
    Column("pieces_failed", Integer, nullable=False),
    Column("bytes_downloaded", BigInteger, nullable=False),
    # True only when at least one piece verified and none failed.
    Column("proof", Boolean, nullable=False),
    Column("file_hash", String(80), nullable=True),  # reference_file.file_key matched
    Column("category", SmallInteger, nullable=True),
    Column("hash_set", String(200), nullable=True),
    # reference data version: hash_set.file_sha256 at the time of the match
    Column("hash_set_version", String(64), nullable=True),
    Column("local_ip", String(45), nullable=True),
    Column("local_port", Integer, nullable=True),
    Column("observer", String(60), nullable=False),  # "atalaya/<version>"
    Column("run_id", String(36), nullable=False),
    Column("clock_offset_s", Float, nullable=True),
    Column("details", JSON, nullable=True),  # protocol facts: reserved bits, yourip, error…
    Index("ix_sighting_seen_at", "seen_at"),
    Index("ix_sighting_ip_seen_at", "ip", "seen_at"),
    Index("ix_sighting_infohash", "infohash"),
)
