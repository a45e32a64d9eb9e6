"""Account commands wait for other writers: two operators at once both succeed."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from atalaya.accounts import list_units
from atalaya.audit import verify
from tests.audit.helpers import atalaya_process
from tests.support.parallel import in_parallel
from tests.support.writers import while_another_writes

# Real processes, so that each command has its own connection and interpreter.
pytestmark = pytest.mark.slow


def test_unit_commands_from_two_operators_at_once(db_url: str, engine: Engine) -> None:
    results: dict[int, int] = {}

    def add(n: int) -> None:
        done = atalaya_process(
            db_url, "units", "add", f"Unit {n}", "--province", f"{n + 1:02d}", "--contact", "desk"
        )
        assert done.returncode == 0, done.stderr
        results[n] = done.returncode

    # Both start while a third writer holds the lock long enough for them to
    # reach their transactions (an interpreter starts in one to two seconds).
    def both() -> None:
        failures = in_parallel(2, add)
        assert not failures, failures

    while_another_writes(engine, both, hold_s=4.0)
    assert results == {0: 0, 1: 0}
    with engine.connect() as conn:
        assert sorted(u.name for u in list_units(conn)) == ["Unit 0", "Unit 1"]
    assert verify(engine).ok
