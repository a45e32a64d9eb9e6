"""Logins as an attacker tries them: guessing in parallel, telling users apart.

Both checks count Argon2 verifications with a spy on argon2-cffi's
`PasswordHasher.verify` that calls the real one (tests/support/verify_spy.py).
"No timing difference between existing and unknown users" is asserted as
"the same work on every path": tests never assert on wall-clock time, which
a loaded machine would make flaky; equal Argon2 work is what makes equal
time, since one verification costs far more than everything else a login does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from atalaya.accounts import LoginError, LoginThrottledError, login, set_disabled
from atalaya.audit import verify
from atalaya.store.tables import app_user, login_attempt
from tests.accounts.helpers import FAST, PASSWORD, T0, unit_with_user
from tests.support.parallel import in_parallel
from tests.support.verify_spy import VerifySpy, spy_on_verify

IP = "127.0.0.20"


@pytest.fixture
def verify_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[VerifySpy]:
    yield spy_on_verify(monkeypatch)


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

    outcomes = in_parallel(30, attempt)
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

    outcomes = in_parallel(30, attempt)
    throttled = [e for e in outcomes if isinstance(e, LoginThrottledError)]
    assert len(outcomes) == 30 and len(throttled) == 10
    assert verify_spy.count() == 20
    with engine.connect() as conn:
        counted = conn.execute(select(login_attempt.c.client_address)).scalars().all()
    assert counted == [IP] * 20
