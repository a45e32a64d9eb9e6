"""A store written by a newer Atalaya: every command says so and leaves it alone."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from atalaya.store.migrate import head_revision
from tests.support.cli import run_atalaya

# A revision no release of this program has: what a newer one would leave.
FUTURE = "9999_from_the_future"


@pytest.mark.parametrize("command", [("init",), ("hashsets", "list"), ("leads", "list")])
def test_a_newer_schema_is_named_and_left_alone(
    engine: Engine, db_url: str, command: tuple[str, ...]
) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    done = run_atalaya(*command, env={"ATALAYA_DATABASE_URL": db_url})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: this store is at schema {FUTURE}, newer than this program "
        f"({head_revision(engine)}): upgrade Atalaya"
    ]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == FUTURE
