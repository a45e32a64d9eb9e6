"""The audit chain signed with a key kept outside the database (issue 10), on both engines.

The attacker here has write access to the database and reads this code: he
can append a record extending the head (the triggers allow exactly that),
drop the triggers and rewrite, but he does not have the key file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, select, update

from atalaya.audit import Action, Actor, log_event, verify
from atalaya.audit.encoding import AuditFields, canonical_bytes, record_hash
from atalaya.audit.keys import (
    AUDIT_KEY_FILE_ENV,
    AuditKey,
    AuditKeyError,
    Keyring,
    append_new_key,
    load_keyring,
    parse_keyring,
)
from atalaya.audit.log import start_signing
from atalaya.store.tables import audit_head, audit_record
from tests.audit.helpers import drop_audit_triggers
from tests.support.cli import run_atalaya

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ANA = Actor(user_id=1, username="ana", unit="Madrid", client_address="127.0.0.1", role="analyst")


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "keys" / "audit.keys"
    path.parent.mkdir()
    append_new_key(path, AT)
    monkeypatch.setenv(AUDIT_KEY_FILE_ENV, str(path))
    return path


def atalaya(
    db_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full: dict[str, str | None] = {"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"}
    full.update(env if env is not None else {AUDIT_KEY_FILE_ENV: None})
    return run_atalaya(*args, env=full)


def _views(engine: Engine, count: int) -> None:
    for i in range(count):
        log_event(engine, Action.VIEW, actor=ANA, object_type="lead", object_id=i, at=AT)


def _head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    return int(row.seq), str(row.hash)


def _append_forged(engine: Engine, fields_of: dict[str, object], digest_key: bytes | None) -> int:
    """What an attacker appends with direct database access: a record and its hash."""
    with engine.begin() as conn:
        seq, prev = _head(conn)
        fields = AuditFields(
            seq=seq + 1,
            at=AT,
            action=str(fields_of.get("action", "view")),
            outcome="ok",
            prev_hash=prev,
            user_id=9,
            username="carla",
            unit="Madrid",
            client_address="10.0.0.99",
            object_type="lead",
            object_id="2",
            details=dict(fields_of.get("details", {})),  # type: ignore[call-overload]
        )
        digest = (
            hashlib.sha256(canonical_bytes(fields)).hexdigest()
            if digest_key is None
            else record_hash(fields, digest_key)
        )
        conn.execute(
            audit_record.insert().values(
                seq=fields.seq,
                at=fields.at,
                user_id=fields.user_id,
                username=fields.username,
                unit=fields.unit,
                client_address=fields.client_address,
                action=fields.action,
                object_type=fields.object_type,
                object_id=fields.object_id,
                outcome=fields.outcome,
                details=fields.details,
                prev_hash=fields.prev_hash,
                hash=digest,
            )
        )
        conn.execute(update(audit_head).values(seq=fields.seq, hash=digest))
    return fields.seq


def test_a_forged_change_of_key_is_detected(engine: Engine, key_file: Path) -> None:
    _views(engine, 2)
    made_up = AuditKey(os.urandom(32))
    forged = _append_forged(
        engine, {"action": "audit_key", "details": {"key_id": made_up.id}}, made_up.secret
    )
    result = verify(engine)
    assert not result.ok and result.first_bad_seq == forged
    assert "does not hold it" in (result.reason or "")


def test_the_first_record_names_the_key_and_later_ones_are_signed(
    engine: Engine, key_file: Path
) -> None:
    _views(engine, 3)
    keyring = load_keyring(key_file)
    with engine.connect() as conn:
        rows = conn.execute(select(audit_record).order_by(audit_record.c.seq)).mappings().all()
    assert [r["action"] for r in rows] == ["audit_key", "view", "view", "view"]
    assert rows[0]["details"] == {"key_id": keyring.current.id, "previous_key_id": None}
    result = verify(engine)
    assert result.ok and result.records == 4 and result.key_id == keyring.current.id
    # Without the key file the chain cannot be checked, and says why.
    unchecked = verify(engine, keyring=None)
    assert not unchecked.ok and unchecked.first_bad_seq == 1
    assert AUDIT_KEY_FILE_ENV in (unchecked.reason or "")


def test_an_unkeyed_log_is_signed_from_the_first_write_under_a_key(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _views(engine, 2)  # before any key
    path = tmp_path / "audit.keys"
    key = append_new_key(path, AT)
    monkeypatch.setenv(AUDIT_KEY_FILE_ENV, str(path))
    # A key file, but nothing signed yet: verify says what to do.
    pending = verify(engine)
    assert not pending.ok and "rotate-key" in (pending.reason or "")
    _views(engine, 1)
    result = verify(engine)
    assert result.ok and result.records == 4 and result.key_id == key.id


def test_rotation_keeps_old_records_verifiable_and_is_on_record(
    engine: Engine, key_file: Path
) -> None:
    _views(engine, 2)
    old = load_keyring(key_file).current
    new = append_new_key(key_file, AT)
    with engine.begin() as conn:
        entry = start_signing(conn, AT, {"via": "test"})
    assert entry is not None and entry.fields.details == {
        "via": "test",
        "key_id": new.id,
        "previous_key_id": old.id,
    }
    _views(engine, 2)
    result = verify(engine)
    assert result.ok and result.records == 6 and result.key_id == new.id
    # The retired key is still needed to check what it signed.
    without_old = verify(engine, keyring=Keyring((new,)))
    assert not without_old.ok and without_old.first_bad_seq == 1


def test_writers_refuse_to_extend_a_chain_they_cannot_sign(
    engine: Engine, key_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _views(engine, 1)
    # No key: an unkeyed record in a keyed chain would read as a forgery.
    monkeypatch.delenv(AUDIT_KEY_FILE_ENV)
    with pytest.raises(AuditKeyError, match=AUDIT_KEY_FILE_ENV):
        _views(engine, 1)
    # A key file without the key in force (another process rotated): refused too.
    stale = tmp_path / "stale.keys"
    append_new_key(stale, AT)
    monkeypatch.setenv(AUDIT_KEY_FILE_ENV, str(stale))
    with pytest.raises(AuditKeyError, match="out of date"):
        _views(engine, 1)
    monkeypatch.setenv(AUDIT_KEY_FILE_ENV, str(key_file))
    _views(engine, 1)
    assert verify(engine).ok


def test_going_back_to_an_older_key_is_refused_by_verify(
    engine: Engine, key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_keyring(key_file).current
    second = append_new_key(key_file, AT)
    _views(engine, 1)  # signed with the second
    # A key file with the two in the wrong order makes a writer go back to the first.
    reordered = tmp_path / "reordered.keys"
    reordered.write_text(f"{second.secret.hex()}\n{first.secret.hex()}\n")
    reordered.chmod(0o600)
    monkeypatch.setenv(AUDIT_KEY_FILE_ENV, str(reordered))
    _views(engine, 1)
    result = verify(engine, keyring=load_keyring(key_file))
    assert not result.ok and "older key" in (result.reason or "")


def test_a_chain_rewritten_without_the_key_is_detected(engine: Engine, key_file: Path) -> None:
    _views(engine, 3)
    with engine.begin() as conn:
        drop_audit_triggers(conn)
        conn.execute(delete(audit_record))
        conn.execute(update(audit_head).values(seq=0, hash="0" * 64))
    for _ in range(3):
        _append_forged(engine, {}, None)
    result = verify(engine)
    assert not result.ok and "not signed" in (result.reason or "")


def test_key_files_others_can_read_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.keys"
    append_new_key(path, AT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        load_keyring(path)
    path.chmod(0o600)
    assert len(load_keyring(path).keys) == 1


@given(st.text(max_size=300))
def test_any_key_file_text_gives_keys_or_a_key_error(text: str) -> None:
    try:
        keyring = parse_keyring(text)
    except AuditKeyError:
        return
    assert keyring.keys and all(len(k.secret) == 32 for k in keyring.keys)


def test_rotate_key_command(db_url: str, engine: Engine, tmp_path: Path) -> None:
    _views(engine, 1)
    path = tmp_path / "audit.keys"
    env = {AUDIT_KEY_FILE_ENV: str(path)}
    done = atalaya(db_url, "audit", "rotate-key", env=env)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_keyring(path).current
    assert f"signed with key {key.id} from record 2" in done.stderr
    checked = atalaya(db_url, "audit", "verify", env=env)
    assert checked.returncode == 0 and f"signed with key {key.id}" in checked.stderr
    assert atalaya(db_url, "audit", "verify").returncode == 1  # no key file: cannot check
    _append_forged(engine, {}, None)
    forged = atalaya(db_url, "audit", "verify", env=env)
    assert forged.returncode == 1 and "broken at record 3" in forged.stderr
