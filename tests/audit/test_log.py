"""Appending to the audit log, reading it, and what the triggers refuse."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from atalaya.audit import (
    Action,
    Actor,
    AuditAccessDeniedError,
    AuditEncodingError,
    AuditQuery,
    Outcome,
    log_event,
    read_audit,
    read_records,
    record,
    verify,
)
from atalaya.audit.encoding import GENESIS_HASH, record_hash
from atalaya.store import create_store_engine
from atalaya.store.tables import audit_head, audit_record

AT = datetime(2026, 11, 23, 10, 0, 0, 250000, tzinfo=UTC)
ANA = Actor(user_id=1, username="ana", unit="Madrid", client_address="127.0.0.1", role="analyst")
EVA = Actor(user_id=2, username="eva", unit="Madrid", client_address="127.0.0.2", role="auditor")


def test_records_chain_and_read_back(engine: Engine) -> None:
    first = log_event(engine, Action.LOGIN, actor=ANA, object_type="session", object_id=9, at=AT)
    second = log_event(
        engine,
        Action.VIEW,
        actor=ANA,
        object_type="lead",
        object_id="42",
        details={"filters": {"province": "28"}, "count": 3},
        at=AT + timedelta(seconds=1),
    )
    assert first.fields.seq == 1 and first.fields.prev_hash == GENESIS_HASH
    assert second.fields.seq == 2 and second.fields.prev_hash == first.hash
    assert second.hash == record_hash(second.fields)
    with engine.connect() as conn:
        stored = read_records(conn)
        head = conn.execute(select(audit_head)).one()
    assert stored == [first, second]
    assert stored[1].fields.at == AT + timedelta(seconds=1)  # microseconds kept, UTC
    assert stored[0].fields.object_id == "9"
    assert (head.seq, head.hash) == (2, second.hash)
    assert verify(engine).ok


def test_record_joins_the_callers_transaction(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        record(conn, Action.CHANGE, actor=ANA, at=AT)
        raise RuntimeError("the change failed")
    with engine.connect() as conn:
        assert read_records(conn) == []
    entry = log_event(engine, Action.CHANGE, actor=ANA, outcome=Outcome.ERROR, at=AT)
    assert entry.fields.seq == 1
    assert verify(engine).ok


def test_fields_that_do_not_fit_are_refused_before_writing(engine: Engine) -> None:
    with pytest.raises(AuditEncodingError):
        log_event(engine, "Not An Action", actor=ANA)
    with pytest.raises(AuditEncodingError):
        log_event(engine, Action.VIEW, actor=ANA, outcome="perhaps")
    with pytest.raises(AuditEncodingError):
        log_event(engine, Action.VIEW, actor=ANA, object_id="x" * 201)
    with pytest.raises(AuditEncodingError):
        log_event(engine, Action.VIEW, actor=ANA, details={"bad": {1, 2}})
    with engine.connect() as conn:
        assert read_records(conn) == []


def test_filters(engine: Engine) -> None:
    for i in range(6):
        log_event(
            engine,
            Action.SEARCH if i % 2 else Action.MAP_QUERY,
            actor=ANA if i < 3 else EVA,
            at=AT + timedelta(hours=i),
        )
    with engine.connect() as conn:
        by_user = read_records(conn, AuditQuery(username="eva"))
        by_time = read_records(
            conn, AuditQuery(since=AT + timedelta(hours=2), until=AT + timedelta(hours=4))
        )
        by_action = read_records(conn, AuditQuery(action="search", newest_first=True))
        paged = read_records(conn, AuditQuery(after_seq=4, limit=1))
    assert [e.fields.seq for e in by_user] == [4, 5, 6]
    assert [e.fields.seq for e in by_time] == [3, 4]
    assert [e.fields.seq for e in by_action] == [6, 4, 2]
    assert [e.fields.seq for e in paged] == [5]


def test_only_auditors_read_and_every_read_is_logged(engine: Engine) -> None:
    log_event(engine, Action.EXPORT, actor=ANA, object_type="leads", at=AT)
    with pytest.raises(AuditAccessDeniedError):
        read_audit(engine, ANA, at=AT)
    entries = read_audit(engine, EVA, AuditQuery(username="ana"), at=AT)
    # Ana's export and her refused read; Eva's read is appended after the query ran.
    assert [(e.fields.action, e.fields.outcome) for e in entries] == [
        ("export", "ok"),
        ("audit_read", "denied"),
    ]
    with engine.connect() as conn:
        last = read_records(conn, AuditQuery(newest_first=True, limit=1))[0]
    assert last.fields.action == "audit_read"
    assert last.fields.username == "eva" and last.fields.outcome == "ok"
    assert last.fields.details == {
        "filters": {"username": "ana", "limit": 1000},
        "scope": "unit",
        "records": 2,
    }
    assert verify(engine).ok


def _refused(engine: Engine, statement: object) -> None:
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(statement)  # type: ignore[call-overload]


def test_triggers_refuse_changes(engine: Engine) -> None:
    entry = log_event(engine, Action.VIEW, actor=ANA, at=AT)
    _refused(engine, update(audit_record).values(username="mallory"))
    _refused(engine, delete(audit_record))
    # Out of order, or not chained to the head.
    forged = {
        "at": AT,
        "action": "view",
        "outcome": "ok",
        "details": {},
        "hash": "f" * 64,
    }
    _refused(engine, insert(audit_record).values(seq=5, prev_hash=entry.hash, **forged))
    _refused(engine, insert(audit_record).values(seq=2, prev_hash=GENESIS_HASH, **forged))
    # The head moves only forward, to the last record.
    _refused(engine, update(audit_head).values(seq=0, hash=GENESIS_HASH))
    _refused(engine, update(audit_head).values(seq=2, hash="f" * 64))
    _refused(engine, delete(audit_head))
    if engine.dialect.name == "postgresql":
        _refused(engine, text("TRUNCATE audit_record"))
    assert verify(engine).ok


def test_concurrent_writers_keep_the_chain(db_url: str, engine: Engine) -> None:
    threads, per_thread = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        # Each thread its own engine: as separate processes would be.
        own = create_store_engine(db_url)
        try:
            start.wait(timeout=30)
            for i in range(per_thread):
                log_event(
                    own,
                    Action.VIEW,
                    actor=Actor(user_id=n, username=f"user{n}", client_address="127.0.0.1"),
                    object_type="lead",
                    object_id=i,
                )
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            own.dispose()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers)
    assert errors == []
    result = verify(engine)
    assert result.ok, result.reason
    assert result.records == threads * per_thread
    with engine.connect() as conn:
        seqs = conn.execute(select(audit_record.c.seq).order_by(audit_record.c.seq)).scalars()
        assert list(seqs) == list(range(1, threads * per_thread + 1))
        per_user = conn.execute(
            text("SELECT username, count(*) FROM audit_record GROUP BY username")
        ).all()
    assert sorted(per_user) == [(f"user{n}", per_thread) for n in range(threads)]
