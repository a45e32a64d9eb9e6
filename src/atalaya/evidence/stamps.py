"""Stamping sightings and the audit head with a TSA, storing the tokens, checking them later.

`stamp_sightings` covers every sighting with an id above the last one
stamped, in batches sorted by id; `stamp_audit_head` anchors the audit
chain's current head. `verify_stamps` re-checks every stored token offline
against the rows now in the store and names every sighting that no longer
matches the root it was stamped under.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from sqlalchemy import Connection, Engine, func, insert, select

from atalaya.audit import verify as verify_audit
from atalaya.evidence.merkle import root_of
from atalaya.evidence.stamping import (
    Batch,
    EncodingError,
    audit_head_message,
    batch_of,
    changed_ids,
    pack_leaves,
    unpack_leaves,
)
from atalaya.evidence.tsa_client import DEFAULT_TIMEOUT_S, stamp
from atalaya.evidence.tsp import StampReply, TsaError, check_reply
from atalaya.store.tables import audit_head, sighting, timestamp_token
from atalaya.store.times import utc

SIGHTINGS = "sightings"
AUDIT_HEAD = "audit_head"
DEFAULT_BATCH = 4096
MAX_BATCH = 65536
TSA_URL_ENV = "ATALAYA_TSA_URL"

# The stamping itself is the I/O: tests and callers may pass their own.
Stamper = Callable[[bytes], StampReply]


@dataclass(frozen=True)
class StoredStamp:
    id: int
    kind: str
    first_id: int
    last_id: int
    leaf_count: int
    root: str
    gen_time: datetime


def tsa_stamper(
    url: str, roots: Sequence[x509.Certificate] = (), timeout: float = DEFAULT_TIMEOUT_S
) -> Stamper:
    def run(message: bytes) -> StampReply:
        return stamp(url, message, roots=roots, timeout=timeout)

    return run


def last_stamped_sighting(conn: Connection) -> int:
    value = conn.execute(
        select(func.max(timestamp_token.c.last_id)).where(timestamp_token.c.kind == SIGHTINGS)
    ).scalar()
    return int(value) if value is not None else 0


def unstamped_count(engine: Engine) -> int:
    with engine.connect() as conn:
        after = last_stamped_sighting(conn)
        return int(
            conn.execute(
                select(func.count()).select_from(sighting).where(sighting.c.id > after)
            ).scalar()
            or 0
        )


def _next_batch(engine: Engine, size: int) -> Batch | None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # SHARE waits for every transaction that is inserting sightings and
            # keeps new ones out while we read: ids are taken from a sequence at
            # insert time, so a row committed later with a lower id than one
            # read here would otherwise fall inside a stamped range unseen.
            conn.exec_driver_sql("LOCK TABLE sighting IN SHARE MODE")
        after = last_stamped_sighting(conn)
        rows = (
            conn.execute(
                select(sighting).where(sighting.c.id > after).order_by(sighting.c.id).limit(size)
            )
            .mappings()
            .all()
        )
    return batch_of(rows) if rows else None


def _store(
    engine: Engine,
    kind: str,
    first_id: int,
    last_id: int,
    leaf_count: int,
    root: bytes,
    leaves: bytes | None,
    reply: StampReply,
    tsa_url: str,
    now: datetime,
) -> StoredStamp:
    with engine.begin() as conn:
        new_id = conn.execute(
            insert(timestamp_token)
            .values(
                kind=kind,
                first_id=first_id,
                last_id=last_id,
                leaf_count=leaf_count,
                root=root.hex(),
                leaves=leaves,
                token=reply.der,
                tsa_url=tsa_url,
                gen_time=reply.gen_time,
                created_at=now,
            )
            .returning(timestamp_token.c.id)
        ).scalar_one()
    return StoredStamp(int(new_id), kind, first_id, last_id, leaf_count, root.hex(), reply.gen_time)


def stamp_sightings(
    engine: Engine,
    stamper: Stamper,
    tsa_url: str,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    on_batch: Callable[[StoredStamp], None] | None = None,
) -> list[StoredStamp]:
    """Stamp every sighting not yet covered, `batch_size` at a time, oldest first.

    Stops at the first TSA error (raised; the batches stamped before it
    stay stored). `max_batches` bounds one run.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch size must be 1 to {MAX_BATCH}")
    done: list[StoredStamp] = []
    while max_batches is None or len(done) < max_batches:
        batch = _next_batch(engine, batch_size)
        if batch is None:
            break
        root = batch.root
        reply = stamper(root)
        stored = _store(
            engine,
            SIGHTINGS,
            batch.first_id,
            batch.last_id,
            len(batch.ids),
            root,
            pack_leaves(batch),
            reply,
            tsa_url,
            datetime.now(UTC),
        )
        done.append(stored)
        if on_batch is not None:
            on_batch(stored)
    return done


def stamp_audit_head(engine: Engine, stamper: Stamper, tsa_url: str) -> StoredStamp | None:
    """Stamp the audit chain's current head (None when the log is still empty)."""
    with engine.connect() as conn:
        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one_or_none()
    if head is None or int(head.seq) == 0:
        return None
    message = audit_head_message(str(head.hash))
    reply = stamper(message)
    seq = int(head.seq)
    return _store(engine, AUDIT_HEAD, 1, seq, seq, message, None, reply, tsa_url, datetime.now(UTC))


@dataclass
class StampCheck:
    """What `verify_stamps` found: every problem in words, and the sightings named."""

    stamps: int = 0
    sightings: int = 0
    audit_heads: int = 0
    problems: list[str] = field(default_factory=list)
    altered: list[int] = field(default_factory=list)  # changed or removed since stamped
    inserted: list[int] = field(default_factory=list)  # inside a stamped range, not stamped

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_sightings(
    conn: Connection, row: StoredStamp, leaves: bytes | None, result: StampCheck
) -> None:
    label = f"stamp {row.id} (sightings {row.first_id}-{row.last_id})"
    try:
        stamped = unpack_leaves(leaves or b"")
    except EncodingError as exc:
        result.problems.append(f"{label}: its leaf list is unreadable: {exc}")
        return
    if (
        root_of(stamped.leaves).hex() != row.root
        or len(stamped.ids) != row.leaf_count
        or (stamped.ids[0], stamped.ids[-1]) != (row.first_id, row.last_id)
    ):
        result.problems.append(
            f"{label}: its stored leaf list does not give its stamped root: the stamp row "
            "was altered"
        )
        return
    rows = (
        conn.execute(
            select(sighting)
            .where(sighting.c.id.between(row.first_id, row.last_id))
            .order_by(sighting.c.id)
        )
        .mappings()
        .all()
    )
    try:
        changed, added = changed_ids(stamped, rows)
    except EncodingError as exc:
        result.problems.append(f"{label}: a sighting has no canonical encoding: {exc}")
        return
    result.sightings += len(stamped.ids)
    if changed:
        result.altered.extend(changed)
        present = {int(r["id"]) for r in rows}
        edited = [i for i in changed if i in present]
        removed = [i for i in changed if i not in present]
        if edited:
            result.problems.append(
                f"{label}: {_ids(edited)} no longer "
                f"{'matches its' if len(edited) == 1 else 'match their'} stamped root: altered "
                "after stamping"
            )
        if removed:
            result.problems.append(
                f"{label}: {_ids(removed)} {'was' if len(removed) == 1 else 'were'} removed "
                "after stamping"
            )
    if added:
        result.inserted.extend(added)
        result.problems.append(
            f"{label}: {_ids(added)} {'lies' if len(added) == 1 else 'lie'} inside the stamped "
            "range but not in the stamp: inserted afterwards"
        )


def _ids(ids: Sequence[int], limit: int = 20) -> str:
    """`sighting 8` or `sightings 8, 12 and 3 more`."""
    shown = ", ".join(str(i) for i in ids[:limit])
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"sighting{'s' if len(ids) > 1 else ''} {shown}{more}"


def verify_stamps(
    engine: Engine,
    roots: Sequence[x509.Certificate],
    *,
    on_stamp: Callable[[StoredStamp], None] | None = None,
) -> StampCheck:
    """Check every stored token against `roots` and the rows now in the store.

    Offline: the token's signature and certificate chain, its imprint
    against SHA-256(root), its time against the stored one; for a batch of
    sightings the root recomputed from the rows; for an audit head the
    chain verified with the stamped heads as anchors (atalaya.audit.verify).
    """
    if not roots:
        raise ValueError("verifying stamps needs the TSA's CA certificates")
    result = StampCheck()
    anchors: list[tuple[int, str]] = []
    with engine.connect() as conn:
        # Ids only here: the tokens and leaf lists are read one stamp at a time.
        ids = conn.execute(select(timestamp_token.c.id).order_by(timestamp_token.c.id)).scalars()
        for stamp_id in list(ids):
            raw = (
                conn.execute(select(timestamp_token).where(timestamp_token.c.id == stamp_id))
                .mappings()
                .one()
            )
            row = StoredStamp(
                int(raw["id"]),
                str(raw["kind"]),
                int(raw["first_id"]),
                int(raw["last_id"]),
                int(raw["leaf_count"]),
                str(raw["root"]),
                utc(raw["gen_time"]),
            )
            result.stamps += 1
            label = f"stamp {row.id} ({row.kind} {row.first_id}-{row.last_id})"
            try:
                digest = hashlib.sha256(bytes.fromhex(row.root)).digest()
                reply = check_reply(bytes(raw["token"]), digest, None, roots)
            except ValueError:
                result.problems.append(f"{label}: its root is not hex")
                continue
            except TsaError as exc:
                result.problems.append(f"{label}: {exc}")
                continue
            if reply.gen_time != row.gen_time:
                result.problems.append(
                    f"{label}: stored time {row.gen_time.isoformat()} is not the token's "
                    f"{reply.gen_time.isoformat()}"
                )
            if row.kind == SIGHTINGS:
                _check_sightings(conn, row, raw["leaves"], result)
            elif row.kind == AUDIT_HEAD:
                result.audit_heads += 1
                anchors.append((row.last_id, row.root))
            else:
                result.problems.append(f"{label}: unknown kind")
            if on_stamp is not None:
                on_stamp(row)
    if anchors:
        audit = verify_audit(engine, anchors)
        if not audit.ok:
            result.problems.append(
                f"audit log against its stamped heads: broken at record {audit.first_bad_seq}: "
                f"{audit.reason}"
            )
    result.altered.sort()
    result.inserted.sort()
    return result
