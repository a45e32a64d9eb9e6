"""A spy on Argon2 verifications: which hash each was made against, how many at once.

It calls argon2-cffi's real `PasswordHasher.verify`; tests assert which path
a login took by the work it did, not by how long it took.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from argon2 import PasswordHasher


@dataclass
class VerifySpy:
    """Every Argon2 verification made: the hash it was made against."""

    hashes: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Each verification also lasts this long, as Argon2 at production cost
    # would: parallel attempts then really overlap.
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    def count(self) -> int:
        with self.lock:
            return len(self.hashes)


def spy_on_verify(monkeypatch: pytest.MonkeyPatch) -> VerifySpy:
    """Count every verification until `monkeypatch` is undone."""
    spy = VerifySpy()
    real = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        with spy.lock:
            spy.hashes.append(hash if isinstance(hash, str) else hash.decode())
            spy.in_flight += 1
            spy.most_in_flight = max(spy.most_in_flight, spy.in_flight)
        try:
            time.sleep(spy.delay)
            return real(self, hash, password)
        finally:
            with spy.lock:
                spy.in_flight -= 1

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    return spy
