"""What an attacker found in logins (issue 10), on both engines.

The checks count Argon2 verifications with a spy on argon2-cffi's
`PasswordHasher.verify` that calls the real one: which path a login took is
asserted by the work it did, not by how long it took.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from atalaya.accounts import (
    AccountPolicy,
    LoginBusyError,
    LoginError,
    LoginThrottledError,
    login,
    set_disabled,
)
from atalaya.audit import AuditQuery, read_records, verify
from atalaya.store.tables import app_user, login_attempt
from tests.accounts.helpers import FAST, PASSWORD, T0, unit_with_user
from tests.support.verify_spy import VerifySpy, spy_on_verify

IP = "127.0.0.20"


@pytest.fixture
def verify_spy(monkeypatch: pytest.MonkeyPatch) -> VerifySpy:
    return spy_on_verify(monkeypatch)


def _refused(engine: Engine, username: str, password: str, at: timedelta = timedelta()) -> str:
    with pytest.raises(LoginError) as caught:
        login(engine, username, password, IP, T0 + at, FAST)
    return caught.value.reason


def test_every_refusal_does_the_work_of_one_verification(
    engine: Engine, verify_spy: VerifySpy
) -> None:
    """An over-long password answered at once for an existing user only (timing oracle)."""
    unit_with_user(engine)
    unit_with_user(engine, "Toledo", ("45",), "dora")
    with engine.begin() as conn:
        set_disabled(conn, "dora", True)
    too_long = "x" * (FAST.max_password_length + 1)
    cases = [
        ("ana", too_long, "bad_password"),
        ("nobody", too_long, "unknown_user"),
        ("ana", "wrong password!", "bad_password"),
        ("nobody", "wrong password!", "unknown_user"),
        ("dora", PASSWORD, "disabled"),
        ("dora", too_long, "disabled"),
    ]
    for username, password, reason in cases:
        before = verify_spy.count()
        assert _refused(engine, username, password) == reason
        assert verify_spy.count() - before == 1, (username, len(password))
    # Lock ana (two failures above), then a locked account costs the same.
    for i in range(FAST.max_failed_logins - 2):
        assert _refused(engine, "ana", f"wrong {i}", timedelta(seconds=i)) == "bad_password"
    for password in (PASSWORD, too_long):
        before = verify_spy.count()
        assert _refused(engine, "ana", password, timedelta(minutes=1)) == "locked"
        assert verify_spy.count() - before == 1


def _in_parallel(count: int, attempt: Callable[[int], None]) -> list[BaseException]:
    """Run attempt(0..count-1) in threads released together; what each raised."""
    start = threading.Barrier(count)
    outcomes: list[BaseException] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        try:
            start.wait(timeout=60)
            attempt(n)
        except BaseException as exc:  # collected for the test to judge
            with lock:
                outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def _stored_hash(engine: Engine, username: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(app_user.c.password_hash).where(app_user.c.username == username)
            ).scalar_one()
        )


def test_parallel_wrong_passwords_get_no_more_checks_than_the_lockout_allows(
    engine: Engine, verify_spy: VerifySpy
) -> None:
    """30 at once, each from its own address: 30 real checks before the fix, 5 after."""
    unit_with_user(engine)
    real_hash = _stored_hash(engine, "ana")
    verify_spy.delay = 0.05

    def attempt(n: int) -> None:
        login(engine, "ana", f"guess number {n}", f"127.0.1.{n + 1}", T0, FAST)

    outcomes = _in_parallel(30, attempt)
    assert len(outcomes) == 30 and all(isinstance(e, LoginError) for e in outcomes)
    real_checks = sum(1 for h in verify_spy.hashes if h == real_hash)
    assert 1 <= real_checks <= FAST.max_failed_logins
    # The refusals still cost a verification each, against a hash nobody has.
    assert len(verify_spy.hashes) == 30
    with engine.connect() as conn:
        locked_until = conn.execute(select(app_user.c.locked_until)).scalar_one()
    assert locked_until is not None
    # Locked: the right password is refused too, without touching the real hash.
    with pytest.raises(LoginError) as caught:
        login(engine, "ana", PASSWORD, "127.0.2.1", T0 + timedelta(minutes=1), FAST)
    assert caught.value.reason == "locked"
    assert sum(1 for h in verify_spy.hashes if h == real_hash) == real_checks
    assert verify(engine).ok


def test_parallel_attempts_from_one_address_stop_at_its_limit(
    engine: Engine, verify_spy: VerifySpy
) -> None:
    """30 at once from one address against a limit of 20: 10 refused before hashing."""
    unit_with_user(engine)
    verify_spy.delay = 0.05
    policy = replace(FAST, rate_limit_failures=20)

    def attempt(n: int) -> None:
        login(engine, f"guess{n}", "some password or other", IP, T0, policy)

    outcomes = _in_parallel(30, attempt)
    throttled = [e for e in outcomes if isinstance(e, LoginThrottledError)]
    assert len(outcomes) == 30 and len(throttled) == 10
    assert verify_spy.count() == 20
    with engine.connect() as conn:
        counted = conn.execute(select(login_attempt.c.client_address)).scalars().all()
    assert counted == [IP] * 20


def test_argon2_runs_are_capped_per_process(engine: Engine, verify_spy: VerifySpy) -> None:
    unit_with_user(engine)
    verify_spy.delay = 0.05
    policy = replace(FAST, max_concurrent_hashes=2)

    def attempt(n: int) -> None:
        login(engine, f"guess{n}", "some password or other", f"127.0.3.{n + 1}", T0, policy)

    outcomes = _in_parallel(30, attempt)
    assert len(outcomes) == 30 and verify_spy.count() == 30
    assert verify_spy.most_in_flight == 2


def test_a_login_that_waits_too_long_for_a_slot_is_refused_as_busy(
    engine: Engine, verify_spy: VerifySpy
) -> None:
    """Busy is not the user's failure: it does not count towards the lockout."""
    unit_with_user(engine)
    verify_spy.delay = 0.5
    policy: AccountPolicy = replace(
        FAST, max_concurrent_hashes=1, hash_wait=timedelta(milliseconds=50)
    )

    def attempt(n: int) -> None:
        login(engine, "ana", f"guess number {n}", f"127.0.4.{n + 1}", T0, policy)

    outcomes = _in_parallel(4, attempt)
    busy = [e for e in outcomes if isinstance(e, LoginBusyError)]
    assert len(outcomes) == 4 and len(busy) == 3 and verify_spy.count() == 1
    with engine.connect() as conn:
        failures = conn.execute(select(app_user.c.failed_logins)).scalar_one()
        reasons = [e.fields.details["reason"] for e in read_records(conn, AuditQuery())]
    assert failures == 1
    assert sorted(reasons) == ["bad_password", "busy", "busy", "busy"]


def _audit_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(read_records(conn, AuditQuery(limit=100_000)))


def test_refused_logins_are_counted_per_window_not_logged_one_by_one(engine: Engine) -> None:
    """Once throttled, 100 more attempts grew the audit log by 100 records."""
    unit_with_user(engine)
    policy = replace(FAST, rate_limit_failures=3)
    for i in range(3):
        assert _refused_with(engine, policy, f"guess{i}", at=timedelta(seconds=i)) == "unknown_user"
    before = _audit_count(engine)
    for i in range(100):
        at = timedelta(seconds=10, milliseconds=i)
        assert _refused_with(engine, policy, f"guess{i}", at=at) == "rate_limited"
    assert _audit_count(engine) == before + 1
    with engine.connect() as conn:
        first = read_records(conn, AuditQuery(newest_first=True, limit=1))[0].fields
    assert first.client_address == IP and first.details["reason"] == "rate_limited"
    assert (
        first.details["later_refusals_counted_until"]
        == (T0 + timedelta(seconds=10) + policy.rate_limit_window).isoformat()
    )

    # The window over, the next login (from anyone) writes what was counted.
    later = T0 + timedelta(seconds=11) + policy.rate_limit_window
    login(engine, "ana", PASSWORD, "127.0.0.99", later, policy)
    with engine.connect() as conn:
        signed_in, summary = read_records(conn, AuditQuery(newest_first=True, limit=2))
    assert signed_in.fields.action == "login"
    assert (summary.fields.action, summary.fields.client_address) == ("login_failed", IP)
    assert summary.fields.details == {
        "reason": "rate_limited",
        "client_key": IP,
        "refused": 99,
        "first_at": (T0 + timedelta(seconds=10)).isoformat(),
        "last_at": (T0 + timedelta(seconds=10, milliseconds=99)).isoformat(),
    }
    assert verify(engine).ok


def test_an_ipv6_client_is_limited_by_its_64(engine: Engine) -> None:
    """A /64 is one subscriber: a new address for each guess must not reset the count."""
    unit_with_user(engine)
    policy = replace(FAST, rate_limit_failures=3)
    for n in range(1, 4):
        with pytest.raises(LoginError) as caught:
            login(engine, f"guess{n}", "some password or other", f"fd00::{n}", T0, policy)
        assert caught.value.reason == "unknown_user"
    with pytest.raises(LoginThrottledError):
        login(engine, "ana", PASSWORD, "fd00::abcd:4", T0, policy)
    # Another /64 is another client.
    login(engine, "ana", PASSWORD, "fd00:0:0:1::1", T0, policy)


def _refused_with(
    engine: Engine, policy: AccountPolicy, username: str, at: timedelta = timedelta()
) -> str:
    with pytest.raises(LoginError) as caught:
        login(engine, username, "some password or other", IP, T0 + at, policy)
    return caught.value.reason
