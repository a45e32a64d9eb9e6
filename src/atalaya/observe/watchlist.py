"""The watch list: which identifiers a network's observer looks for, and why.

It is derived, not stored twice: the hash set rows that the network says it
watches (`Network.sources`, turned into a kind and a value by
`Network.derive`), plus `watch_item` rows of that network added by an
operator or by discovery. Each target keeps the file, category and hash set
(name and file digest) it stands for, so that a sighting records the
reference data it was matched on. Nothing here knows any one network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from atalaya.hashsets import lookup
from atalaya.store import begin_write
from atalaya.store.tables import hash_set, watch_item

if TYPE_CHECKING:
    from atalaya.observe.registry import Network

OPERATOR_REASON = "named by the operator"


@dataclass(frozen=True)
class WatchTarget:
    network: str
    kind: str  # a hash set algorithm name: btih, btih2, ed2k, sha256, …
    value: bytes
    reason: str
    file_key: str | None = None  # `algorithm:hex` of the file in its hash set
    category: int | None = None
    hash_set: str | None = None
    hash_set_sha256: str | None = None  # digest of the hash set file the target came from

    @property
    def hex(self) -> str:
        return self.value.hex()


def load_targets(
    engine: Engine, network: Network, extra: Iterable[tuple[str, bytes]] = ()
) -> list[WatchTarget]:
    """Every item `network` watches, one target each (the first reason found wins).

    `extra` are (kind, value) pairs named for this run only.
    """
    targets: dict[tuple[str, bytes], WatchTarget] = {}
    added = (
        select(
            watch_item.c.kind,
            watch_item.c.value,
            watch_item.c.file_key,
            watch_item.c.category,
            watch_item.c.reason,
            hash_set.c.name,
            hash_set.c.file_sha256,
        )
        .outerjoin(hash_set, hash_set.c.id == watch_item.c.hash_set_id)
        .where(watch_item.c.network == network.name)
        .order_by(watch_item.c.id)
    )
    with engine.connect() as conn:
        from_sets = lookup.watch_rows(conn, network.sources)
        for algorithm, value, file_key, category, name, digest in from_sets:
            derived = network.derive(algorithm, value)
            if derived is None:
                continue
            kind, item = derived
            targets.setdefault(
                (kind, item),
                WatchTarget(
                    network.name,
                    kind,
                    item,
                    f"{kind} in hash set {name}",
                    file_key,
                    category,
                    name,
                    digest,
                ),
            )
        for kind, value, file_key, category, reason, name, digest in conn.execute(added):
            item = bytes(value)
            targets.setdefault(
                (kind, item),
                WatchTarget(network.name, kind, item, reason, file_key, category, name, digest),
            )
    for kind, item in extra:
        targets.setdefault((kind, item), WatchTarget(network.name, kind, item, OPERATOR_REASON))
    return list(targets.values())


def add_watch_item(
    engine: Engine,
    network: str,
    kind: str,
    value: bytes,
    *,
    origin: str,
    reason: str,
    hash_set_name: str | None = None,
    file_key: str | None = None,
    category: int | None = None,
) -> bool:
    """Put an item on `network`'s watch list; False if it was already there."""
    with engine.connect() as conn:
        hash_set_id = (
            conn.execute(select(hash_set.c.id).where(hash_set.c.name == hash_set_name)).scalar()
            if hash_set_name is not None
            else None
        )
    values = {
        "network": network,
        "kind": kind,
        "value": value,
        "origin": origin,
        "reason": reason,
        "hash_set_id": hash_set_id,
        "file_key": file_key,
        "category": category,
        "added_at": datetime.now(UTC),
    }
    with begin_write(engine) as conn:
        dialect = conn.dialect.name
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(watch_item)
        # RETURNING rather than rowcount: on PostgreSQL (psycopg) the row
        # count said 1 for an item that was already there.
        inserted = conn.execute(
            stmt.values(values).on_conflict_do_nothing().returning(watch_item.c.id)
        ).first()
        return inserted is not None
