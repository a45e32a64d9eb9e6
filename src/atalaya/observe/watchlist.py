"""The watch list: which BitTorrent identifiers observers look for, and why.

It is derived, not stored twice: infohashes that hash sets carry (`btih`,
`btih2` in reference_hash), plus `watch_item` rows added by an operator or by
discovery. Each target keeps the file, category and hash set version it
stands for, so that a sighting records the reference data it was matched on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from atalaya.hashsets.algorithms import BTIH, BTIH2
from atalaya.store.tables import hash_set, reference_file, reference_hash, watch_item

NETWORK = "bittorrent"


@dataclass(frozen=True)
class WatchTarget:
    infohash: bytes  # 20 bytes (v1) or 32 bytes (v2)
    reason: str
    file_key: str | None = None
    category: int | None = None
    hash_set: str | None = None
    hash_set_sha256: str | None = None

    @property
    def hex(self) -> str:
        return self.infohash.hex()

    @property
    def dht_key(self) -> bytes:
        """The 20-byte key the DHT and trackers use (v2 hashes are truncated, BEP 52)."""
        return self.infohash[:20]


def load_targets(engine: Engine, extra: Iterable[bytes] = ()) -> list[WatchTarget]:
    """Every watched infohash, one target each (the first reason found wins)."""
    targets: dict[bytes, WatchTarget] = {}
    from_sets = (
        select(
            reference_hash.c.value,
            reference_hash.c.file_key,
            reference_file.c.category,
            hash_set.c.name,
            hash_set.c.file_sha256,
        )
        .join(hash_set, hash_set.c.id == reference_hash.c.hash_set_id)
        .join(
            reference_file,
            (reference_file.c.hash_set_id == reference_hash.c.hash_set_id)
            & (reference_file.c.file_key == reference_hash.c.file_key),
        )
        .where(reference_hash.c.algorithm.in_([BTIH, BTIH2]))
        .order_by(hash_set.c.name, reference_hash.c.value)
    )
    added = (
        select(
            watch_item.c.value,
            watch_item.c.file_key,
            watch_item.c.category,
            watch_item.c.reason,
            hash_set.c.name,
            hash_set.c.file_sha256,
        )
        .outerjoin(hash_set, hash_set.c.id == watch_item.c.hash_set_id)
        .where(watch_item.c.network == NETWORK)
        .order_by(watch_item.c.id)
    )
    with engine.connect() as conn:
        for value, file_key, category, name, version in conn.execute(from_sets):
            targets.setdefault(
                bytes(value),
                WatchTarget(
                    bytes(value), f"infohash in hash set {name}", file_key, category, name, version
                ),
            )
        for value, file_key, category, reason, name, version in conn.execute(added):
            targets.setdefault(
                bytes(value), WatchTarget(bytes(value), reason, file_key, category, name, version)
            )
    for infohash in extra:
        targets.setdefault(infohash, WatchTarget(infohash, "named by the operator"))
    return list(targets.values())


def add_watch_item(
    engine: Engine,
    infohash: bytes,
    *,
    origin: str,
    reason: str,
    hash_set_name: str | None = None,
    file_key: str | None = None,
    category: int | None = None,
) -> bool:
    """Put an infohash on the watch list; False if it was already there."""
    kind = BTIH if len(infohash) == 20 else BTIH2
    with engine.connect() as conn:
        hash_set_id = (
            conn.execute(select(hash_set.c.id).where(hash_set.c.name == hash_set_name)).scalar()
            if hash_set_name is not None
            else None
        )
    values = {
        "network": NETWORK,
        "kind": kind,
        "value": infohash,
        "origin": origin,
        "reason": reason,
        "hash_set_id": hash_set_id,
        "file_key": file_key,
        "category": category,
        "added_at": datetime.now(UTC),
    }
    with engine.begin() as conn:
        dialect = conn.dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(watch_item)
        result = conn.execute(stmt.values(values).on_conflict_do_nothing())
        return bool(result.rowcount)
