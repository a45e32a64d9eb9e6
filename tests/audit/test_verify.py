"""`verify` finds every kind of tampering done with the triggers out of the way."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, insert, update

from atalaya.audit import Action, Actor, AuditEntry, log_event, verify
from atalaya.audit.encoding import GENESIS_HASH, record_hash
from atalaya.audit.verify import parse_anchor
from atalaya.store.tables import audit_head, audit_record
from tests.audit.helpers import drop_audit_triggers

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ANA = Actor(user_id=1, username="ana", unit="Madrid", client_address="127.0.0.1")


def _log(engine: Engine, n: int = 6) -> list[AuditEntry]:
    return [
        log_event(
            engine,
            Action.VIEW,
            actor=ANA,
            object_type="lead",
            object_id=100 + i,
            details={"i": i},
            at=AT + timedelta(minutes=i),
        )
        for i in range(n)
    ]


def _row(entry: AuditEntry) -> dict[str, object]:
    f = entry.fields
    return {
        "seq": f.seq,
        "at": f.at,
        "user_id": f.user_id,
        "username": f.username,
        "unit": f.unit,
        "client_address": f.client_address,
        "action": f.action,
        "object_type": f.object_type,
        "object_id": f.object_id,
        "outcome": f.outcome,
        "details": f.details,
        "prev_hash": f.prev_hash,
        "hash": entry.hash,
    }


def test_intact(engine: Engine) -> None:
    entries = _log(engine)
    result = verify(engine)
    assert result.ok and result.records == 6 and result.first_bad_seq is None
    assert (result.head_seq, result.head_hash) == (6, entries[-1].hash)


def test_empty_log_is_intact(engine: Engine) -> None:
    result = verify(engine)
    assert result.ok and result.records == 0 and result.head_hash == GENESIS_HASH


@pytest.mark.parametrize(
    "column,value",
    [
        ("username", "mallory"),
        ("object_id", "999"),
        ("outcome", "denied"),
        ("details", {"i": 99}),
        ("at", AT + timedelta(days=1)),
    ],
)
def test_edited_record(engine: Engine, column: str, value: object) -> None:
    _log(engine)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(update(audit_record).where(audit_record.c.seq == 3).values({column: value}))
    result = verify(engine)
    assert not result.ok
    assert result.first_bad_seq == 3 and result.records == 2
    assert "altered" in (result.reason or "")


def test_edit_with_recomputed_hash_breaks_the_next_link(engine: Engine) -> None:
    entries = _log(engine)
    forged = replace(entries[2].fields, username="mallory")
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(
            update(audit_record)
            .where(audit_record.c.seq == 3)
            .values(username="mallory", hash=record_hash(forged))
        )
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 4
    assert "prev_hash" in (result.reason or "")


def test_removed_record(engine: Engine) -> None:
    _log(engine)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record).where(audit_record.c.seq == 4))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 4 and result.records == 3
    assert "missing" in (result.reason or "")


def test_removed_first_record(engine: Engine) -> None:
    _log(engine)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record).where(audit_record.c.seq == 1))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 1


def test_removed_and_renumbered(engine: Engine) -> None:
    """Delete record 3, then shift 4..6 down so seq has no gap."""
    _log(engine)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record).where(audit_record.c.seq == 3))
        for seq in (4, 5, 6):
            conn.execute(update(audit_record).where(audit_record.c.seq == seq).values(seq=seq - 1))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 3


def test_removed_tail(engine: Engine) -> None:
    _log(engine)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record).where(audit_record.c.seq >= 5))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 5 and result.records == 4
    assert "removed from the end" in (result.reason or "")


def test_removed_tail_with_head_rolled_back_is_caught_by_an_anchor(engine: Engine) -> None:
    entries = _log(engine)
    anchor = parse_anchor(f"6:{entries[5].hash}")
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record).where(audit_record.c.seq >= 5))
        conn.execute(update(audit_head).values(seq=4, hash=entries[3].hash))
    # Without an anchor a clean cut with the head moved back is consistent…
    assert verify(engine).ok
    # …the anchor kept outside the database shows it.
    result = verify(engine, [anchor])
    assert not result.ok and result.first_bad_seq == 6
    assert "anchored record 6 is missing" in (result.reason or "")


def test_full_rewrite_is_caught_by_an_anchor(engine: Engine) -> None:
    entries = _log(engine)
    anchor = (4, entries[3].hash)
    assert verify(engine, [anchor]).ok
    # Rewrite record 2 onwards with consistent hashes: only an anchor can tell.
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        prev = entries[0].hash
        for entry in entries[1:]:
            fields = replace(entry.fields, prev_hash=prev, username="mallory")
            digest = record_hash(fields)
            conn.execute(
                update(audit_record)
                .where(audit_record.c.seq == fields.seq)
                .values(username="mallory", prev_hash=prev, hash=digest)
            )
            prev = digest
        conn.execute(update(audit_head).values(hash=prev))
    assert verify(engine).ok
    result = verify(engine, [anchor])
    assert not result.ok and result.first_bad_seq == 4 and "rewritten" in (result.reason or "")


def test_reordered_records(engine: Engine) -> None:
    """Swap the contents of records 2 and 3, keeping their seq."""
    entries = _log(engine)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        for target, source in ((2, entries[2]), (3, entries[1])):
            values = _row(source)
            values.pop("seq")
            conn.execute(update(audit_record).where(audit_record.c.seq == target).values(values))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 2


def test_forged_record_appended_without_the_head(engine: Engine) -> None:
    entries = _log(engine)
    forged = replace(entries[-1].fields, seq=7, prev_hash=entries[-1].hash, object_id="7")
    # The insert trigger lets a well-chained record in; the head still says 6.
    with engine.begin() as conn:
        conn.execute(insert(audit_record).values(_row(AuditEntry(forged, record_hash(forged)))))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 7
    assert "not in the head" in (result.reason or "")


def test_forged_record_in_place_of_a_removed_one(engine: Engine) -> None:
    entries = _log(engine)
    forged = replace(entries[2].fields, username="mallory")
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record).where(audit_record.c.seq == 3))
        conn.execute(insert(audit_record).values(_row(AuditEntry(forged, record_hash(forged)))))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 4


def test_forged_record_with_a_made_up_hash(engine: Engine) -> None:
    entries = _log(engine)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record).where(audit_record.c.seq == 6))
        row = _row(entries[5])
        row["username"] = "mallory"
        conn.execute(insert(audit_record).values(row))
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == 6


@pytest.mark.parametrize("text", ["", "3", "x:" + "0" * 64, "3:" + "0" * 63, "3:" + "g" * 64])
def test_bad_anchor_text(text: str) -> None:
    with pytest.raises(ValueError, match="SEQ:HASH"):
        parse_anchor(text)
