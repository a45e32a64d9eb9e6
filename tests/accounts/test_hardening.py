"""What an attacker found in logins (issue 10), on both engines.

The checks count Argon2 verifications with a spy on argon2-cffi's
`PasswordHasher.verify` that calls the real one: which path a login took is
asserted by the work it did, not by how long it took.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from atalaya.accounts import LoginError, login, set_disabled
from tests.accounts.helpers import FAST, PASSWORD, T0, unit_with_user

IP = "127.0.0.20"


@dataclass
class VerifySpy:
    """Every Argon2 verification made: the hash it was made against."""

    hashes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.hashes)


@pytest.fixture
def verify_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[VerifySpy]:
    spy = VerifySpy()
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        with spy.lock:
            spy.hashes.append(hash if isinstance(hash, str) else hash.decode())
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    yield spy


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
