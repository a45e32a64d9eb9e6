"""What an attacker found in logins (issue 10), on both engines.

The attacker's own tests (enumeration by work done, parallel guesses) are in
tests/security/test_logins.py.

The checks count Argon2 verifications with a spy on argon2-cffi's
`PasswordHasher.verify` that calls the real one: which path a login took is
asserted by the work it did, not by how long it took.
"""

from __future__ import annotations

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
)
from atalaya.audit import AuditQuery, read_records, verify
from atalaya.store.tables import app_user
from tests.accounts.helpers import FAST, PASSWORD, T0, unit_with_user
from tests.support.parallel import in_parallel
from tests.support.verify_spy import VerifySpy, spy_on_verify

IP = "127.0.0.20"


@pytest.fixture
def verify_spy(monkeypatch: pytest.MonkeyPatch) -> VerifySpy:
    return spy_on_verify(monkeypatch)


def test_argon2_runs_are_capped_per_process(engine: Engine, verify_spy: VerifySpy) -> None:
    unit_with_user(engine)
    verify_spy.delay = 0.05
    policy = replace(FAST, max_concurrent_hashes=2)

    def attempt(n: int) -> None:
        login(engine, f"guess{n}", "some password or other", f"127.0.3.{n + 1}", T0, policy)

    outcomes = in_parallel(30, attempt)
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

    outcomes = in_parallel(4, attempt)
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
