"""Checking the audit chain end to end.

What `verify` detects: a record whose contents were edited (its hash no
longer matches), a record removed from the middle (a gap in seq, or a
prev_hash that no longer matches), records reordered or inserted (their
seq and prev_hash are inside the hash), records removed from or added at
the end without moving the head row (the tail no longer matches
`audit_head`), and, given anchors (seq and hash written down outside the
database, e.g. by `atalaya audit head` in a scheduled job), a chain
rewritten from some point on by someone who recomputed every later hash.

With the key file (ATALAYA_AUDIT_KEY_FILE, see atalaya.audit.keys) it also
detects any record made without the key: a record appended with direct
database access, an `audit_key` record naming a key the file does not hold
or going back to an older one, and a chain rewritten unkeyed from the start
(a keyed log must end under a key). What no key can detect: records cut
from the end together with the head moved back by someone who drops the
triggers. Anchors kept outside the database (`atalaya audit head`, e.g.
from a scheduled job) close that gap up to the last anchor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, select

from atalaya.audit.encoding import GENESIS_HASH, AuditEncodingError, record_hash
from atalaya.audit.keys import AUDIT_KEY_FILE_ENV, AuditKey, Keyring, configured_keyring
from atalaya.audit.log import Action, entry_from_row
from atalaya.store.tables import audit_head, audit_record

BATCH = 2000


@dataclass(frozen=True)
class VerifyResult:
    """`records` counts those checked good before the first bad one (all when ok)."""

    ok: bool
    records: int
    first_bad_seq: int | None
    reason: str | None
    head_seq: int
    head_hash: str
    key_id: str | None = None  # the key the last record checked was signed with


def parse_anchor(text: str) -> tuple[int, str]:
    """`SEQ:HASH` as printed by `atalaya audit head`; ValueError otherwise."""
    seq_text, sep, digest = text.strip().partition(":")
    if not sep or not seq_text.isdigit() or len(digest) != 64:
        raise ValueError(f"anchor {text!r} is not SEQ:HASH (64 hex digits)")
    try:
        int(digest, 16)
    except ValueError as exc:
        raise ValueError(f"anchor {text!r} is not SEQ:HASH (64 hex digits)") from exc
    return int(seq_text), digest.lower()


def verify(
    engine: Engine,
    anchors: Iterable[tuple[int, str]] = (),
    keyring: Keyring | Literal["configured"] | None = "configured",
) -> VerifyResult:
    """Walk the whole chain in one snapshot and say whether it is intact.

    Takes an engine, not a connection: the head and every record must be
    read in one snapshot (REPEATABLE READ on PostgreSQL, a read transaction
    on SQLite) so appends made meanwhile cannot look like damage. `keyring`
    is the key file's keys, by default those ATALAYA_AUDIT_KEY_FILE names.
    """
    keys = configured_keyring() if keyring == "configured" else keyring
    wanted = dict(anchors)
    options = {} if engine.dialect.name == "sqlite" else {"isolation_level": "REPEATABLE READ"}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one_or_none()
        if head is None:
            return VerifyResult(False, 0, None, "the audit head row is missing", 0, GENESIS_HASH)
        head_seq, head_hash = int(head.seq), str(head.hash)

        key: AuditKey | None = None
        key_index = -1

        def bad(count: int, seq: int, reason: str) -> VerifyResult:
            return VerifyResult(
                False, count, seq, reason, head_seq, head_hash, None if key is None else key.id
            )

        prev_seq, prev_hash, count = 0, GENESIS_HASH, 0
        seen_anchors: dict[int, str] = {}
        rows = conn.execution_options(yield_per=BATCH).execute(
            select(audit_record).order_by(audit_record.c.seq)
        )
        for row in rows.mappings():
            entry = entry_from_row(row)
            seq = entry.fields.seq
            if seq != prev_seq + 1:
                missing = f"{prev_seq + 1}" if seq == prev_seq + 2 else f"{prev_seq + 1}-{seq - 1}"
                return bad(count, prev_seq + 1, f"record {missing} missing: removed from the log")
            if entry.fields.prev_hash != prev_hash:
                return bad(
                    count,
                    seq,
                    f"record {seq} does not follow record {prev_seq} (prev_hash differs): "
                    "a record was removed, replaced or inserted here",
                )
            if entry.fields.action == Action.AUDIT_KEY:
                key_id = entry.fields.details.get("key_id")
                index = keys.index(key_id) if keys is not None and isinstance(key_id, str) else None
                if index is None:
                    return bad(
                        count,
                        seq,
                        f"record {seq} signs the log from here on with key {str(key_id)[:16]}: "
                        + (
                            f"set {AUDIT_KEY_FILE_ENV} to the key file to check it"
                            if keys is None
                            else "the key file does not hold it (forged, or an old key file)"
                        ),
                    )
                if index <= key_index:
                    return bad(count, seq, f"record {seq} goes back to an older key: forged")
                assert keys is not None
                key, key_index = keys.keys[index], index
            try:
                digest = record_hash(entry.fields, None if key is None else key.secret)
            except AuditEncodingError as exc:
                return bad(count, seq, f"record {seq} has invalid contents: {exc}")
            if digest != entry.hash:
                return bad(
                    count,
                    seq,
                    f"record {seq} does not match its hash: it was altered"
                    + ("" if key is None else ", or made without the key"),
                )
            if seq in wanted:
                seen_anchors[seq] = digest
            prev_seq, prev_hash = seq, entry.hash
            count += 1

        if head_seq > prev_seq:
            return bad(
                count,
                prev_seq + 1,
                f"the log ends at record {prev_seq} but its head says {head_seq}: "
                "records were removed from the end",
            )
        if head_seq < prev_seq:
            return bad(
                count,
                head_seq + 1,
                f"records after {head_seq} are not in the head: added outside the application",
            )
        if head_hash != prev_hash:
            return bad(count, prev_seq, f"record {prev_seq} is not the one the head names")
        if keys is not None and key is None and count:
            return bad(
                count,
                prev_seq,
                f"the log is not signed although {AUDIT_KEY_FILE_ENV} names a key file: run "
                "'atalaya audit rotate-key' once, or the log was rewritten without the key",
            )
        for seq in sorted(wanted):
            if seen_anchors.get(seq) != wanted[seq]:
                what = "is missing" if seq not in seen_anchors else "has another hash"
                return bad(
                    min(count, seq - 1),
                    seq,
                    f"anchored record {seq} {what}: the log was rewritten from there on",
                )
        return VerifyResult(
            True, count, None, None, head_seq, head_hash, None if key is None else key.id
        )
