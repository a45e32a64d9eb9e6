"""Logins, lockout, rate limiting, sessions and CSRF on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text

from atalaya.accounts import (
    LoginError,
    LoginThrottledError,
    check_csrf,
    csrf_token,
    login,
    logout,
    session_user,
    set_disabled,
    token_hash,
)
from atalaya.audit import AuditQuery, read_records, verify
from atalaya.store import create_store_engine
from atalaya.store.tables import app_user, user_session
from tests.accounts.helpers import FAST, PASSWORD, T0, unit_with_user

IP = "127.0.0.10"


def _reason(
    engine: Engine, username: str, password: str, ip: str = IP, at: timedelta = timedelta()
) -> str:
    with pytest.raises(LoginError) as caught:
        login(engine, username, password, ip, T0 + at, FAST)
    return caught.value.reason


def test_login_opens_a_session_and_keeps_only_the_token_hash(engine: Engine) -> None:
    unit_with_user(engine)
    session, token = login(engine, "ANA", PASSWORD, IP, T0, FAST)
    assert session.user.username == "ana" and session.user.unit_name == "Madrid"
    assert session.expires_at == T0 + FAST.session_lifetime
    assert len(token) >= 43  # 32 random bytes
    with engine.connect() as conn:
        rows = conn.execute(select(user_session)).mappings().all()
    assert len(rows) == 1
    assert rows[0]["token_hash"] == token_hash(token)
    assert token not in {str(v) for v in rows[0].values()}
    found = session_user(engine, token, T0 + timedelta(seconds=1), FAST)
    assert found is not None and found.id == session.id and found.user.role == "analyst"


def test_failures_look_alike_whatever_the_reason(engine: Engine) -> None:
    unit_with_user(engine)
    unit_with_user(engine, "Toledo", ("45",), "dora")
    with engine.begin() as conn:
        set_disabled(conn, "dora", True)
    errors = []
    for username, password in (
        ("nobody", PASSWORD),
        ("ana", "wrong password!"),
        ("dora", PASSWORD),
        ("", ""),
    ):
        with pytest.raises(LoginError) as caught:
            login(engine, username, password, IP, T0, FAST)
        errors.append(caught.value)
    assert {str(e) for e in errors} == {LoginError.PUBLIC_MESSAGE}
    assert [e.reason for e in errors] == [
        "unknown_user",
        "bad_password",
        "disabled",
        "unknown_user",
    ]


def test_lockout_after_consecutive_failures(engine: Engine) -> None:
    unit_with_user(engine)
    policy = FAST
    for i in range(policy.max_failed_logins - 1):
        assert _reason(engine, "ana", f"wrong {i}", at=timedelta(seconds=i)) == "bad_password"
    # A success resets the count…
    login(engine, "ana", PASSWORD, IP, T0 + timedelta(seconds=10), FAST)
    for i in range(policy.max_failed_logins):
        assert _reason(engine, "ana", f"wrong {i}", at=timedelta(seconds=20 + i)) == "bad_password"
    # …and N in a row lock the account, even against the right password.
    assert _reason(engine, "ana", PASSWORD, at=timedelta(minutes=1)) == "locked"
    assert _reason(engine, "ana", PASSWORD, at=timedelta(minutes=15)) == "locked"
    session, _ = login(engine, "ana", PASSWORD, IP, T0 + timedelta(minutes=16), FAST)
    assert session.user.failed_logins == 0
    with engine.connect() as conn:
        row = conn.execute(select(app_user.c.failed_logins, app_user.c.locked_until)).one()
    assert row.failed_logins == 0 and row.locked_until is None


def test_rate_limit_per_client_address_across_processes(db_url: str, engine: Engine) -> None:
    unit_with_user(engine)
    policy = replace(FAST, rate_limit_failures=3, rate_limit_window=timedelta(minutes=5))
    # Another engine stands for another app process: the count is in the database.
    other = create_store_engine(db_url)
    try:
        for i, eng in enumerate((engine, other, engine)):
            with pytest.raises(LoginError) as caught:
                login(eng, f"guess{i}", "whatever password", IP, T0 + timedelta(seconds=i), policy)
            assert caught.value.reason == "unknown_user"
        with pytest.raises(LoginThrottledError) as throttled:
            login(other, "ana", PASSWORD, IP, T0 + timedelta(minutes=1), policy)
        assert throttled.value.reason == "rate_limited"
        assert timedelta(0) < throttled.value.retry_after <= timedelta(minutes=4)
        # Another address is not affected, nor the account.
        login(engine, "ana", PASSWORD, "127.0.0.11", T0 + timedelta(minutes=1), policy)
        # Once the window has passed the address may try again.
        login(other, "ana", PASSWORD, IP, T0 + timedelta(minutes=6), policy)
    finally:
        other.dispose()


def test_idle_timeout_ends_a_session(engine: Engine) -> None:
    unit_with_user(engine)
    _, token = login(engine, "ana", PASSWORD, IP, T0, FAST)
    step = FAST.idle_timeout - timedelta(seconds=1)
    assert session_user(engine, token, T0 + step, FAST) is not None
    # That request moved last_seen forward, so another idle stretch is fine…
    assert session_user(engine, token, T0 + 2 * step, FAST) is not None
    # …but a full idle timeout without a request ends it for good.
    assert session_user(engine, token, T0 + 3 * step + timedelta(seconds=2), FAST) is None
    assert session_user(engine, token, T0 + 3 * step + timedelta(seconds=3), FAST) is None
    with engine.connect() as conn:
        assert conn.execute(select(user_session)).all() == []


def test_last_seen_is_written_at_most_every_touch_interval(engine: Engine) -> None:
    unit_with_user(engine)
    _, token = login(engine, "ana", PASSWORD, IP, T0, FAST)
    early = session_user(engine, token, T0 + FAST.touch_interval / 2, FAST)
    assert early is not None and early.last_seen_at == T0
    later = session_user(engine, token, T0 + FAST.touch_interval, FAST)
    assert later is not None and later.last_seen_at == T0 + FAST.touch_interval


def test_absolute_expiry_ends_an_active_session(engine: Engine) -> None:
    unit_with_user(engine)
    _, token = login(engine, "ana", PASSWORD, IP, T0, FAST)
    at = T0
    while at + FAST.idle_timeout / 2 < T0 + FAST.session_lifetime:
        at += FAST.idle_timeout / 2
        assert session_user(engine, token, at, FAST) is not None
    assert session_user(engine, token, T0 + FAST.session_lifetime, FAST) is None


def test_disabling_a_user_ends_their_sessions(engine: Engine) -> None:
    unit_with_user(engine)
    _, token = login(engine, "ana", PASSWORD, IP, T0, FAST)
    with engine.begin() as conn:
        set_disabled(conn, "ana", True)
    assert session_user(engine, token, T0 + timedelta(seconds=1), FAST) is None


def test_disabled_flag_alone_ends_a_session(engine: Engine) -> None:
    """Even if the sessions were not deleted (e.g. flag set by hand), they stop working."""
    unit_with_user(engine)
    _, token = login(engine, "ana", PASSWORD, IP, T0, FAST)
    with engine.begin() as conn:
        conn.execute(text("UPDATE app_user SET disabled = :d"), {"d": True})
    assert session_user(engine, token, T0 + timedelta(seconds=1), FAST) is None


def test_logout_and_unknown_tokens(engine: Engine) -> None:
    unit_with_user(engine)
    _, token = login(engine, "ana", PASSWORD, IP, T0, FAST)
    assert session_user(engine, "not-a-token", T0, FAST) is None
    assert session_user(engine, None, T0, FAST) is None
    assert session_user(engine, "x" * 5000, T0, FAST) is None
    assert logout(engine, token, T0 + timedelta(minutes=1))
    assert not logout(engine, token, T0 + timedelta(minutes=1))
    assert session_user(engine, token, T0 + timedelta(minutes=1), FAST) is None


def test_csrf(engine: Engine) -> None:
    unit_with_user(engine)
    one, _ = login(engine, "ana", PASSWORD, IP, T0, FAST)
    two, _ = login(engine, "ana", PASSWORD, IP, T0, FAST)
    token = csrf_token(one)
    assert check_csrf(one, token)
    assert token == csrf_token(one)  # stable for the session
    assert not check_csrf(two, token)  # useless in another session
    assert not check_csrf(one, token[:-1] + ("0" if token[-1] != "0" else "1"))
    assert not check_csrf(one, None)
    assert not check_csrf(one, "")
    assert not check_csrf(one, "é" * 64)


def test_rehash_when_the_policy_costs_change(engine: Engine) -> None:
    unit_with_user(engine)
    stronger = replace(FAST, argon2_time_cost=2)
    login(engine, "ana", PASSWORD, IP, T0, stronger)
    with engine.connect() as conn:
        stored = conn.execute(select(app_user.c.password_hash)).scalar_one()
    assert ",t=2," in stored
    login(engine, "ana", PASSWORD, IP, T0, stronger)


def test_logins_are_in_the_audit_log(engine: Engine) -> None:
    unit_with_user(engine)
    _, token = login(engine, "ana", PASSWORD, IP, T0, FAST)
    with pytest.raises(LoginError):
        login(engine, "ana", "wrong password!", IP, T0, FAST)
    with pytest.raises(LoginError):
        login(engine, "hunter2-typed-as-username", PASSWORD, IP, T0, FAST)
    logout(engine, token, T0, IP)
    with engine.connect() as conn:
        entries = read_records(conn, AuditQuery())
    got = [
        (e.fields.action, e.fields.username, e.fields.outcome, e.fields.details.get("reason"))
        for e in entries
    ]
    assert got == [
        ("login", "ana", "ok", None),
        ("login_failed", "ana", "denied", "bad_password"),
        ("login_failed", None, "denied", "unknown_user"),
        ("logout", "ana", "ok", None),
    ]
    assert all(e.fields.client_address == IP for e in entries)
    assert entries[0].fields.unit == "Madrid"
    # What was typed as an unknown username is not kept anywhere.
    assert all("hunter2" not in str(e.as_dict()) for e in entries)
    assert verify(engine).ok
