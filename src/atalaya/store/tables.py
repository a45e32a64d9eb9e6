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
    Date,
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
    false,
    text,
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

# Bare records (plain lists: one digest, no name, no attributes), one compact
# row each: the algorithm is a small code (atalaya.hashsets.algorithms.CODES),
# the label a number within the set (reference_label), and the record's
# file_key ("algorithm:hex") is derived, never stored. The primary key leads
# with the set, so removing a set is one range; a digest is looked up with one
# probe per set. On SQLite the table is WITHOUT ROWID: the key is the row.
reference_digest = Table(
    "reference_digest",
    metadata,
    Column(
        "hash_set_id",
        Integer,
        ForeignKey("hash_set.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("algorithm", SmallInteger, primary_key=True),
    Column("value", LargeBinary(64), primary_key=True),
    Column("label", SmallInteger, nullable=False),
    sqlite_with_rowid=False,
)

# The category labels of a set's bare records, numbered within the set: one
# per label text and the internal category it was mapped onto at import.
reference_label = Table(
    "reference_label",
    metadata,
    Column(
        "hash_set_id",
        Integer,
        ForeignKey("hash_set.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("label", SmallInteger, primary_key=True),
    # Internal severity scale (atalaya.hashsets.categories.Category).
    Column("category", SmallInteger, nullable=False),
    # The label exactly as the source gave it.
    Column("category_label", String(100), nullable=False),
    UniqueConstraint(
        "hash_set_id", "category", "category_label", name="uq_reference_label_category"
    ),
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

# A fleet of observers on one PostgreSQL (atalaya.observe.leases): each
# running observer, by its run id, with the DHT node id it took and its last
# heartbeat; and which observer holds each watch target until when.
fleet_observer = Table(
    "fleet_observer",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("network", String(20), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("node_id", String(40), nullable=True),  # hex of the 20-byte DHT node id
    Column("lease_seconds", Float, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True), nullable=True),
)

watch_lease = Table(
    "watch_lease",
    metadata,
    Column("network", String(20), primary_key=True),
    Column("target", String(64), primary_key=True),  # the target's value, lowercase hex
    Column("holder", String(36), nullable=True),  # fleet_observer.run_id; None: free
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Index("ix_watch_lease_holder", "holder"),
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
    # The watched item, network-neutral: its kind ("btih", "btih2", …, the
    # names of atalaya.hashsets.algorithms) and its value in lowercase hex.
    Column("item_kind", String(20), nullable=False),
    Column("item_value", String(64), nullable=False),
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
    # reference_file.file_key matched ("algorithm:hex")
    Column("file_key", String(80), nullable=True),
    Column("category", SmallInteger, nullable=True),
    Column("hash_set", String(200), nullable=True),
    # The reference data: hash_set.file_sha256 at the time of the match.
    Column("hash_set_sha256", String(64), nullable=True),
    Column("local_ip", String(45), nullable=True),
    Column("local_port", Integer, nullable=True),
    Column("observer", String(60), nullable=False),  # "atalaya/<version>"
    Column("run_id", String(36), nullable=False),
    Column("clock_offset_s", Float, nullable=True),
    Column("details", JSON, nullable=True),  # protocol facts: reserved bits, yourip, error…
    # Which proof was reached: "pieces" (pieces verified against the metadata)
    # or "full_file" (the known file's own hash recomputed); None: no proof.
    Column("proof_kind", String(20), nullable=True),
    Index("ix_sighting_seen_at", "seen_at"),
    Index("ix_sighting_ip_seen_at", "ip", "seen_at"),
    Index("ix_sighting_item", "network", "item_kind", "item_value"),
)

# Per sighting, what was exchanged with the peer and checked, never content:
# canonical JSON (UTF-8) of version `version`, and its SHA-256. Append-only.
proof_transcript = Table(
    "proof_transcript",
    metadata,
    Column("sighting_id", BigInteger, ForeignKey("sighting.id"), primary_key=True),
    Column("version", SmallInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
)

# -- enrichment (atalaya.enrich) ------------------------------------------------

# One combination of reference data that enrichment results were computed
# from: location and ASN databases with their metadata, atlases with their
# package versions, range lists with their digests, and the settings that
# change a result. `data_version` is a digest of `sources`.
enrichment_data = Table(
    "enrichment_data",
    metadata,
    Column("data_version", String(64), primary_key=True),
    Column("sources", JSON, nullable=False),
    # The data's licence attribution, shown wherever its results appear.
    Column("attribution", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# What the data of one `data_version` says about one IP address. Derived, so
# recomputable: a new data version adds rows, `enrich --refresh` rewrites them.
enrichment = Table(
    "enrichment",
    metadata,
    Column("ip", String(45), primary_key=True),
    Column(
        "data_version",
        String(64),
        ForeignKey("enrichment_data.data_version", ondelete="CASCADE"),
        primary_key=True,
    ),
    # Jurisdiction: ISO 3166-1 alpha-2 of the country containing the point,
    # else the database's; `db_country` is what the location database said.
    Column("country", String(2), nullable=True),
    Column("db_country", String(2), nullable=True),
    Column("region", String(200), nullable=True),
    Column("city", String(200), nullable=True),
    # INE codes: 2-digit province, 5-digit municipality.
    Column("province_code", String(2), nullable=True),
    Column("province_name", String(200), nullable=True),
    Column("municipality_code", String(5), nullable=True),
    Column("municipality_name", String(200), nullable=True),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("accuracy_km", Float, nullable=True),
    Column("asn", BigInteger, nullable=True),
    Column("isp", String(300), nullable=True),
    Column("org", String(300), nullable=True),
    Column("time_zone", String(64), nullable=True),  # IANA name
    Column("flags", JSON, nullable=False),  # sorted list of flag names
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Index("ix_enrichment_version_country", "data_version", "country"),
    Index("ix_enrichment_version_province", "data_version", "province_code"),
)

# --- Leads (atalaya.leads): derived from sightings, rebuilt at will. ---------
# Ids are the smallest sighting id in the lead or presence, so a rebuild gives
# every lead back its id and analyst overrides keep pointing at it.
_LEAD_ID = BigInteger().with_variant(Integer, "sqlite")

# One lead: sightings believed to come from one device or subscriber.
lead = Table(
    "lead",
    metadata,
    Column("id", _LEAD_ID, primary_key=True, autoincrement=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("sightings", BigInteger, nullable=False),
    Column("presences", Integer, nullable=False),
    Column("addresses", Integer, nullable=False),
    Column("items", Integer, nullable=False),
    Column("known_files", Integer, nullable=False),
    Column("verified_items", Integer, nullable=False),
    Column("highest_category", SmallInteger, nullable=True),
    Column("networks", JSON, nullable=False),
    # Where and who: the facts of the address with the most sightings.
    Column("ip", String(45), nullable=False),
    Column("client", String(200), nullable=True),
    Column("country", String(2), nullable=True),
    Column("province_code", String(10), nullable=True),
    Column("province_name", String(200), nullable=True),
    Column("municipality_code", String(10), nullable=True),
    Column("municipality_name", String(200), nullable=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("accuracy_km", Float, nullable=True),
    Column("asn", BigInteger, nullable=True),
    Column("isp", String(300), nullable=True),
    Column("time_zone", String(64), nullable=True),
    Column("flags", JSON, nullable=False),  # union over its presences
    Column("facts_version", String(64), nullable=True),
    Column("score", Float, nullable=False),
    Column("weights_version", String(40), nullable=False),
    Column("scored_at", DateTime(timezone=True), nullable=False),
    Index("ix_lead_score", "score"),
    Index("ix_lead_last_seen", "last_seen"),
    Index("ix_lead_province_code", "province_code"),
)

# The stretches of one address's sightings (of one address and port, where
# the address is shared) believed to be one device; leads are linked groups.
lead_presence = Table(
    "lead_presence",
    metadata,
    Column("id", _LEAD_ID, primary_key=True, autoincrement=False),
    Column("lead_id", _LEAD_ID, nullable=False),
    Column("ip", String(45), nullable=False),
    Column("port", Integer, nullable=True),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("sightings", BigInteger, nullable=False),
    Column("opened_by", String(20), nullable=False),  # window | device_change
    Column("days", JSON, nullable=False),  # UTC days since the epoch with sightings
    Column("client", String(200), nullable=True),
    Column("ports", JSON, nullable=False),
    Column("country", String(2), nullable=True),
    Column("province_code", String(10), nullable=True),
    Column("province_name", String(200), nullable=True),
    Column("municipality_code", String(10), nullable=True),
    Column("municipality_name", String(200), nullable=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("accuracy_km", Float, nullable=True),
    Column("asn", BigInteger, nullable=True),
    Column("isp", String(300), nullable=True),
    Column("time_zone", String(64), nullable=True),
    Column("flags", JSON, nullable=False),
    Column("facts_version", String(64), nullable=True),
    Column("block", String(300), nullable=True),  # network|area for collection links
    Index("ix_lead_presence_lead_id", "lead_id"),
    Index("ix_lead_presence_ip_first_seen", "ip", "first_seen"),
    # The charts' sums read a lead's presences with their province only: on
    # SQLite this index holds all they need, and the wide rows stay unread.
    Index("ix_lead_presence_lead_id_province", "lead_id", "province_name", "province_code"),
)

# The watched items a presence offered; `in_prefix` marks those indexed for
# collection-link candidates (see atalaya.leads.linking).
lead_presence_item = Table(
    "lead_presence_item",
    metadata,
    Column(
        "presence_id",
        _LEAD_ID,
        ForeignKey("lead_presence.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("network", String(20), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("value", String(64), primary_key=True),  # hex, as sighting.item_value
    Column("file_key", String(80), nullable=True),
    Column("category", SmallInteger, nullable=True),
    Column("proof", Boolean, nullable=False),
    Column("sightings", BigInteger, nullable=False),
    Column("in_prefix", Boolean, nullable=False),
    Index("ix_lead_presence_item_item", "network", "kind", "value"),
    # Search by file hash (atalaya.leads.search); added by migration 0017.
    Index("ix_lead_presence_item_file_key", "file_key"),
)

# Sightings per presence and UTC day, written with the presence by every
# build, so that the charts add up counts instead of finding sightings again.
# `week` is the Monday of the day's ISO week: the charts group by it.
lead_presence_day = Table(
    "lead_presence_day",
    metadata,
    Column(
        "presence_id",
        _LEAD_ID,
        ForeignKey("lead_presence.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("day", Date, primary_key=True),
    Column("week", Date, nullable=False),
    Column("sightings", Integer, nullable=False),
)

# The same counts per ISO week (its Monday): what the weekly charts add up,
# a third of the rows of the daily ones; days serve only a week the
# selection cuts.
lead_presence_week = Table(
    "lead_presence_week",
    metadata,
    Column(
        "presence_id",
        _LEAD_ID,
        ForeignKey("lead_presence.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("week", Date, primary_key=True),
    Column("sightings", Integer, nullable=False),
)

# Peer ids a presence reported that look randomly drawn (usable as links).
lead_presence_peer = Table(
    "lead_presence_peer",
    metadata,
    Column(
        "presence_id",
        _LEAD_ID,
        ForeignKey("lead_presence.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("peer_id", String(40), primary_key=True),
    Index("ix_lead_presence_peer_peer_id", "peer_id"),
)

# Why two presences are one lead: reason ("peer_id", "collection") and the
# values that made it (evidence).
lead_link = Table(
    "lead_link",
    metadata,
    Column(
        "presence_a",
        _LEAD_ID,
        ForeignKey("lead_presence.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "presence_b",
        _LEAD_ID,
        ForeignKey("lead_presence.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("reason", String(20), primary_key=True),
    Column("lead_id", _LEAD_ID, nullable=False),
    Column("evidence", JSON, nullable=False),
    Index("ix_lead_link_lead_id", "lead_id"),
    Index("ix_lead_link_presence_b", "presence_b"),
)

# The score's factors: raw value, scaled value (0..1), weight, contribution.
lead_factor = Table(
    "lead_factor",
    metadata,
    Column("lead_id", _LEAD_ID, ForeignKey("lead.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(40), primary_key=True),
    Column("raw", Float, nullable=False),
    Column("value", Float, nullable=False),
    Column("weight", Float, nullable=False),
    Column("contribution", Float, nullable=False),
)

# Analyst overrides, append-only (triggers refuse UPDATE and DELETE): the
# latest for a lead applies; the computed score stays on the lead.
lead_override = Table(
    "lead_override",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("lead_id", _LEAD_ID, nullable=False),
    Column("score", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("analyst", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # What the lead's computed score and weights were when it was overridden.
    Column("computed_score", Float, nullable=True),
    Column("weights_version", String(40), nullable=True),
    # The unit of the analyst, whose threshold decided `pending`.
    Column("unit_id", Integer, nullable=True),
    # Raised the lead from below its unit's urgency threshold to at or above
    # it: in force only once a supervisor of that unit approves it.
    Column("pending", Boolean, nullable=False, server_default=false()),
    Index("ix_lead_override_lead_id", "lead_id"),
)

# A supervisor's approval or refusal of a pending override, append-only; at
# most one per override.
override_decision = Table(
    "override_decision",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("override_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("approved", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("supervisor", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("override_id", name="uq_override_decision_override_id"),
)

# The provinces a lead's presences lie in: a unit holds every lead with a
# presence in its jurisdiction (atalaya.accounts.visibility), so a lead
# shared by two units shows as a conflict to both and vanishes from neither.
lead_province = Table(
    "lead_province",
    metadata,
    Column("lead_id", _LEAD_ID, ForeignKey("lead.id", ondelete="CASCADE"), primary_key=True),
    Column("province_code", String(10), primary_key=True),
    Index("ix_lead_province_province_code", "province_code"),
)

# Every watched item seen in a lead: its place in the order of the
# collection-link prefix filter, and how many leads offer it (rarity).
lead_item = Table(
    "lead_item",
    metadata,
    Column("network", String(20), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("value", String(64), primary_key=True),
    Column("rank", BigInteger, nullable=False),
    Column("leads", Integer, nullable=False),
)

# Build bookkeeping: last sighting id processed, settings digests, …
lead_state = Table(
    "lead_state",
    metadata,
    Column("key", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)

# --- Lead history: kept by every build, rebuilds included (see leads.lineage).

# One run of `build_leads`: lineage and history name the build that recorded them.
lead_build = Table(
    "lead_build",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),  # the build's `now`
    Column("mode", String(20), nullable=False),  # full | incremental
    Column("reason", Text, nullable=False),  # why full, "" otherwise
    Column("algorithm", String(20), nullable=False),
    Column("last_sighting_id", BigInteger, nullable=False),
)

# Merges (old_id merged into new_id) and splits (new_id split from old_id).
lead_lineage = Table(
    "lead_lineage",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("build_id", Integer, ForeignKey("lead_build.id"), nullable=False),
    Column("old_id", _LEAD_ID, nullable=False),
    Column("new_id", _LEAD_ID, nullable=False),
    Column("kind", String(10), nullable=False),  # merge | split
    Index("ix_lead_lineage_old_id", "old_id"),
    Index("ix_lead_lineage_new_id", "new_id"),
)

# Other events in a lead's life; today "jurisdiction": the provinces of its
# presences changed (details: before, after).
lead_history = Table(
    "lead_history",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("build_id", Integer, ForeignKey("lead_build.id"), nullable=False),
    Column("lead_id", _LEAD_ID, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_lead_history_lead_id", "lead_id"),
)

# Every id that was a lead and was merged away, with the lead its records
# (claims, overrides, …, all keyed by the id they were made on) belong to
# now: the lineage's merges followed to their end.
lead_alias = Table(
    "lead_alias",
    metadata,
    Column("id", _LEAD_ID, primary_key=True, autoincrement=False),
    Column("lead_id", _LEAD_ID, nullable=False),
    Index("ix_lead_alias_lead_id", "lead_id"),
)

# --- Accounts and audit (atalaya.accounts, atalaya.audit) ----------------------

# A unit (agency): it holds the leads with a presence in its jurisdiction,
# plus those it claims. `contact` is what another unit in conflict is shown.
unit = Table(
    "unit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("contact", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # A lead is urgent for this unit when its score in force is at least this.
    Column("urgent_score", Float, nullable=False, server_default=text("60")),
)

# A unit's jurisdiction, one row per province code (matched against
# lead.province_code): a table rather than a list so lead queries can join it.
unit_province = Table(
    "unit_province",
    metadata,
    Column("unit_id", Integer, ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True),
    Column("province_code", String(10), primary_key=True),
    Index("ix_unit_province_province_code", "province_code"),
)

app_user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("unit_id", Integer, ForeignKey("unit.id"), nullable=False),
    Column("role", String(20), nullable=False),  # analyst|supervisor|auditor|administrator
    Column("password_hash", String(300), nullable=False),  # Argon2id, PHC string
    Column("disabled", Boolean, nullable=False),
    Column("failed_logins", Integer, nullable=False),  # consecutive, reset on success
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True), nullable=False),
)

# Server-side sessions. Only the SHA-256 of the bearer token is kept, so a
# copy of the database does not hand out live sessions.
user_session = Table(
    "user_session",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),  # absolute
    Column("idle_timeout_s", Integer, nullable=False),
    Column("client_address", String(45), nullable=True),
    Column("csrf_secret", String(64), nullable=False),  # hex, key of the CSRF HMAC
    Index("ix_user_session_user_id", "user_id"),
)

# Failed logins per client address: the rate limit shared by every app process.
login_attempt = Table(
    "login_attempt",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_address", String(45), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_login_attempt_client_address_at", "client_address", "at"),
)

# Logins refused by the rate limit, counted per client (an IPv4 address or
# an IPv6 /64) and window: the first refusal of a window is an audit record,
# the others are counted here and written as one record once the window ends,
# so that anyone without an account cannot grow the audit log without bound.
login_refusal = Table(
    "login_refusal",
    metadata,
    Column("client_key", String(45), primary_key=True),
    Column("client_address", String(45), nullable=False),  # the last one refused
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("refused", Integer, nullable=False),  # after the first, not yet in the audit log
    Index("ix_login_refusal_window_end", "window_end"),
)

# A unit's explicit claim on a lead outside its jurisdiction (or inside it,
# to be on record). No foreign key to lead: leads are rebuilt, ids are stable,
# and a claim on a lead merged away counts for the lead it went into
# (lead_alias). A build copies claims to a lead split off a claimed one,
# naming the lead it was carried from.
lead_claim = Table(
    "lead_claim",
    metadata,
    Column("lead_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("unit_id", Integer, ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True),
    Column("claimed_by", String(200), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("carried_from", BigInteger().with_variant(Integer, "sqlite"), nullable=True),
    Index("ix_lead_claim_unit_id", "unit_id"),
)

# A user's saved views of the map: a name and the filters' query string
# (atalaya.web.filters parses it again when it is opened).
saved_search = Table(
    "saved_search",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("query", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("user_id", "name", name="uq_saved_search_user_id_name"),
    Index("ix_saved_search_user_id", "user_id"),
)

# When a user last looked at the leads, for "new since my last visit":
# `since` is where the visit now under way began to count from (the end of
# the one before); it moves on only after a pause (atalaya.accounts.saved).
user_visit = Table(
    "user_visit",
    metadata,
    Column("user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("since", DateTime(timezone=True), nullable=True),
)

# The audit log: append-only (triggers refuse UPDATE and DELETE), each record
# chained to the previous one by `prev_hash` (see atalaya.audit.encoding).
audit_record = Table(
    "audit_record",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("user_id", Integer, nullable=True),  # no foreign key: the log outlives users
    Column("username", String(100), nullable=True),
    Column("unit", String(200), nullable=True),
    Column("client_address", String(45), nullable=True),
    Column("action", String(40), nullable=False),
    Column("object_type", String(40), nullable=True),
    Column("object_id", String(200), nullable=True),
    Column("outcome", String(10), nullable=False),  # ok | denied | error
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_record_at", "at"),
    Index("ix_audit_record_username", "username"),
)

# The chain's head, one row (id 1): the last record's seq and hash. Writers
# lock it to serialise appends; `verify` compares it with the chain's tail,
# which is how a removed tail shows.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# --- Cases (atalaya.cases) -------------------------------------------------------

# A lead taken up by a unit. Named `case_file` (an "expediente") because CASE
# is a reserved word in SQL. `lead_id` has no foreign key: leads are rebuilt
# and a case follows merges of its lead through lead_alias (KEYED_BY_LEAD).
# `state` is the current one; case_event holds every transition.
case_file = Table(
    "case_file",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("lead_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("unit_id", Integer, ForeignKey("unit.id"), nullable=False),
    Column("state", String(30), nullable=False),  # atalaya.cases.states.State
    Column("assignee", String(100), nullable=True),  # app_user.username
    Column("opened_by", String(100), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The unit's own due date for the next step, when it set one.
    Column("deadline", DateTime(timezone=True), nullable=True),
    Index("ix_case_file_lead_id", "lead_id"),
    Index("ix_case_file_unit_id", "unit_id"),
)

# The exact sightings a case relies on, pinned when it is opened: what is
# asked of a judge never changes when leads are rebuilt. Triggers refuse
# UPDATE and DELETE.
case_sighting = Table(
    "case_sighting",
    metadata,
    Column("case_id", Integer, ForeignKey("case_file.id"), primary_key=True),
    Column(
        "sighting_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("sighting.id"),
        primary_key=True,
    ),
    Index("ix_case_sighting_sighting_id", "sighting_id"),
)

# A case's life, append-only (triggers refuse UPDATE and DELETE): opening,
# each state transition, notes and assignments, with who, when and why.
case_event = Table(
    "case_event",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("case_id", Integer, ForeignKey("case_file.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),  # app_user.username
    Column("kind", String(20), nullable=False),  # open | move | note | assign
    Column("from_state", String(30), nullable=True),
    Column("to_state", String(30), nullable=True),
    Column("text", Text, nullable=False),  # the reason, the note, or ""
    Column("details", JSON, nullable=False),
    Index("ix_case_event_case_id", "case_id"),
)

# --- Retention (LED art. 5) and purposes (LED art. 25): atalaya.cases.retention_rules

# Each version of the retention rules (append-only: triggers refuse UPDATE
# and DELETE); the newest applies. `rules` as atalaya.cases.retention_rules
# reads them, `sha256` of their canonical JSON.
retention_rules = Table(
    "retention_rules",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("rules", JSON, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("set_by", String(100), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
)

# A legal hold: while it is not released, nothing it covers is blocked or
# erased. object_type "case" (case_file.id) or "lead" (a lead id, followed
# through merges by lead_alias).
retention_hold = Table(
    "retention_hold",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("object_type", String(10), nullable=False),
    Column("object_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("placed_by", String(100), nullable=False),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("released_by", String(100), nullable=True),
    Column("released_at", DateTime(timezone=True), nullable=True),
    Column("release_reason", Text, nullable=True),
    Index("ix_retention_hold_object_type", "object_type", "object_id"),
)

# Closed cases the rules blocked: no longer shown to anyone until erased.
retention_block = Table(
    "retention_block",
    metadata,
    Column("case_id", Integer, primary_key=True, autoincrement=False),
    Column("blocked_at", DateTime(timezone=True), nullable=False),
    Column("rule_version", Integer, nullable=False),
)

# Empty outside a retention run. Inside its transaction: what may be erased
# (scope "case": case_file.id, "sighting": sighting.id); the append-only
# tables' DELETE triggers let through only rows named here.
retention_permit = Table(
    "retention_permit",
    metadata,
    Column("scope", String(10), primary_key=True),
    Column(
        "object_id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
)

# The purpose a web session declared for what it reads: "triage" or "case:N".
session_purpose = Table(
    "session_purpose",
    metadata,
    Column(
        "session_id",
        Integer,
        ForeignKey("user_session.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("purpose", String(40), nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
)

# The ISP's answer to a case (atalaya.cases.answers): who the subscriber is,
# kept apart from traffic data (the CJEU's "watertight separation") and read
# only by the case's unit, in a case role (atalaya.cases.identity). The data
# subject is a subscriber ("abonado"), not a suspect. A corrected answer is a
# new row (the newest applies); no trigger, so retention can erase it.
subscriber_identity = Table(
    "subscriber_identity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("case_file.id"), nullable=False),
    Column("outcome", String(20), nullable=False),  # identified | no_data
    Column("subject_category", String(20), nullable=False),  # abonado
    Column("name", String(300), nullable=True),
    Column("id_number", String(40), nullable=True),  # DNI/NIE/passport as given
    Column("address", Text, nullable=True),  # installation address
    Column("line", String(200), nullable=True),  # line or contract the operator names
    Column("addressing", String(10), nullable=True),  # static | dynamic
    Column("notes", Text, nullable=False),
    Column("operator_reference", String(200), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(100), nullable=False),  # app_user.username
    Index("ix_subscriber_identity_case_id", "case_id"),
)

# Documents generated for a case (atalaya.cases.documents): a judicial or a
# preservation request, as PDF or DOCX, with its SHA-256, who made it and
# whether the unit's key signed it. `details` holds what the document asked
# (sightings, court, operators, atestado; for preservation, its period).
# Append-only (triggers refuse UPDATE and DELETE): what went out stays.
case_document = Table(
    "case_document",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("case_id", Integer, ForeignKey("case_file.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # judicial | preservation
    Column("format", String(10), nullable=False),  # pdf | docx
    Column("body", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(100), nullable=False),  # app_user.username
    Column("signed", Boolean, nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_case_document_case_id", "case_id"),
)

# RFC 3161 time stamps (atalaya.evidence): append-only (triggers refuse UPDATE
# and DELETE). kind "sightings": sightings first_id..last_id, `root` the merkle
# root over their canonical encodings, `leaves` per leaf its id and hash;
# kind "audit_head": audit records 1..last_id, `root` the hash of record
# last_id. `token` is the TSA's whole DER TimeStampResp.
timestamp_token = Table(
    "timestamp_token",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("kind", String(20), nullable=False),  # sightings | audit_head
    Column("first_id", BigInteger, nullable=False),
    Column("last_id", BigInteger, nullable=False),
    Column("leaf_count", Integer, nullable=False),
    Column("root", String(64), nullable=False),
    Column("leaves", LargeBinary, nullable=True),
    Column("token", LargeBinary, nullable=False),
    Column("tsa_url", String(2000), nullable=False),
    Column("gen_time", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_timestamp_token_kind_last_id", "kind", "last_id"),
)
