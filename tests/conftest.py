"""Fixtures shared by the whole suite.

Every test that takes `db_url` or `engine` runs twice: on SQLite and on a
real PostgreSQL server started for the session (or the one named by
ATALAYA_TEST_POSTGRES_URL). Without PostgreSQL binaries those runs are
skipped locally, and fail under CI, where the server is required.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from atalaya.store import create_store_engine, upgrade
from tests.support.postgres import find_bindir, postgres_server

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("ATALAYA_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if find_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required under CI: scripts/setup.sh installs it")
        pytest.skip("no PostgreSQL binaries here; run scripts/setup.sh")
    with postgres_server() as server_url:
        yield server_url


def _fresh_postgres_database(admin_url: str) -> str:
    name = f"atalaya_test_{os.getpid()}_{next(_db_counter)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, once per engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'atalaya.db'}"
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    return _fresh_postgres_database(admin_url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database with the current schema."""
    eng = create_store_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()
