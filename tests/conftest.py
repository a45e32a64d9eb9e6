"""Fixtures shared by the whole suite.

Every test that takes `db_url` or `engine` runs twice: on SQLite and on a
real PostgreSQL server started for the session (or the one named by
ATALAYA_TEST_POSTGRES_URL). Without PostgreSQL binaries those runs are
skipped locally, and fail under CI, where the server is required.

Running the migrations costs about a second per database, more on
PostgreSQL; a test that wants the current schema gets a copy of one
database migrated once per session instead (a file copy on SQLite, `CREATE
DATABASE … TEMPLATE` on PostgreSQL). Tests of the migrations themselves
take `db_url` alone and run them for real. Each PostgreSQL database is
dropped after its test.

A folder whose tests share a costly starting store (the web tests' seeded
world) overrides `db_seed`: the store is then built once per engine and
session and copied for each test in the same way.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text

from atalaya.lab.pki import Pki, make_pki, make_softhsm_token, softhsm_available
from atalaya.signing import Pkcs11Key
from atalaya.store import create_store_engine, upgrade
from tests.support.postgres import find_bindir, postgres_server
from tests.support.seeds import Seed

_db_counter = itertools.count()

# On several workers (pytest-xdist, scripts/test.sh) the tests share the
# cores: how long Hypothesis takes to make an input or run one example says
# how loaded the machine is, not whether the code is right. Drop the two
# timing checks there, as Hypothesis's own "ci" profile does under CI; the
# example database stays (it is safe to share between processes).
settings.register_profile(
    "parallel",
    settings.get_profile(settings.get_current_profile_name()),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
if os.environ.get("PYTEST_XDIST_WORKER"):
    settings.load_profile("parallel")

# Databases that `db_url` made as copies of the migrated template: `engine`
# need not migrate them again.
_migrated: set[str] = set()


@pytest.fixture
def db_seed() -> Seed | None:
    """The seed of the tests here: None (the bare schema) unless a conftest says."""
    return None


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


@pytest.fixture(scope="session")
def postgres_admin(postgres_admin_url: str) -> Iterator[Engine]:
    """The server's superuser, outside transactions (CREATE/DROP DATABASE)."""
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    yield admin
    admin.dispose()


def _create_database(admin: Engine, name: str, template: str | None = None) -> str:
    copy = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    return admin.url.set(database=name).render_as_string(hide_password=False)


def _migrate(url: str) -> None:
    eng = create_store_engine(url)
    try:
        upgrade(eng)
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin: Engine) -> str:
    """The name of a PostgreSQL database at the current schema, to copy from.

    Nothing may stay connected to it: PostgreSQL copies only a database
    without other sessions.
    """
    name = f"atalaya_template_{os.getpid()}"
    _migrate(_create_database(postgres_admin, name))
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the current schema, to copy from."""
    path = tmp_path_factory.mktemp("template") / "atalaya.db"
    _migrate(f"sqlite:///{path}")
    _check_closed(path)
    return path


def _check_closed(path: Path) -> None:
    # Closing the last connection checkpoints the WAL into the file itself:
    # a copy of the file alone is then the whole database.
    for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert not leftover.exists(), f"{leftover} outlived the engine that wrote it"


def _seed(url: str, seed: Seed, folder: Path) -> None:
    eng = create_store_engine(url)
    try:
        seed.build(eng, folder)
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def seeded_templates() -> dict[tuple[str, str], str]:
    """(engine, seed name) -> the template built for them so far (a path or a name)."""
    return {}


def _sqlite_template_for(request: pytest.FixtureRequest, seed: Seed | None) -> Path:
    template: Path = request.getfixturevalue("sqlite_template")
    if seed is None:
        return template
    built: dict[tuple[str, str], str] = request.getfixturevalue("seeded_templates")
    if ("sqlite", seed.name) not in built:
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        folder = factory.mktemp("seed")
        path = folder / "atalaya.db"
        shutil.copyfile(template, path)
        _seed(f"sqlite:///{path}", seed, folder)
        _check_closed(path)
        built["sqlite", seed.name] = str(path)
    return Path(built["sqlite", seed.name])


def _postgres_template_for(request: pytest.FixtureRequest, seed: Seed | None) -> str:
    template: str = request.getfixturevalue("postgres_template")
    if seed is None:
        return template
    built: dict[tuple[str, str], str] = request.getfixturevalue("seeded_templates")
    if ("postgresql", seed.name) not in built:
        admin: Engine = request.getfixturevalue("postgres_admin")
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        name = f"atalaya_seed_{os.getpid()}_{len(built)}"
        _seed(_create_database(admin, name, template), seed, factory.mktemp("seed"))
        built["postgresql", seed.name] = name
    return built["postgresql", seed.name]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, once per engine.

    In a test that also uses `engine`, it is that engine's database: then it
    starts as a copy of the migrated template (and `db_seed`'s store, if
    any) rather than empty.
    """
    migrated = "engine" in request.fixturenames
    seed: Seed | None = request.getfixturevalue("db_seed") if migrated else None
    if request.param == "sqlite":
        path = tmp_path / "atalaya.db"
        url = f"sqlite:///{path}"
        if migrated:
            shutil.copyfile(_sqlite_template_for(request, seed), path)
            _migrated.add(url)
        yield url
        _migrated.discard(url)
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    template = _postgres_template_for(request, seed) if migrated else None
    name = f"atalaya_test_{os.getpid()}_{next(_db_counter)}"
    url = _create_database(admin, name, template)
    if migrated:
        _migrated.add(url)
    yield url
    _migrated.discard(url)
    # FORCE: a test may leave an engine of its own connected.
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database with the current schema (and `db_seed`'s store)."""
    eng = create_store_engine(db_url)
    if db_url not in _migrated:
        # Asked for by name at run time (getfixturevalue): migrate as before.
        upgrade(eng)
    yield eng
    eng.dispose()


# Marks of the tests that take longest: seconds to minutes each.
_LONG_MARKS = ("lab", "web", "slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a pytest-xdist worker, hand out the long tests first.

    Workers take tests in this order; a long test started last keeps one
    worker busy while the others have finished. The order is a stable sort
    of the collected one, the same on every worker (xdist checks that), and
    no test depends on what ran before it. A run on one process keeps the
    order of the files.
    """
    if not hasattr(config, "workerinput"):
        return
    items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in _LONG_MARKS))


@pytest.fixture(scope="session")
def unit_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One self-made CA and unit certificate for the whole session (atalaya.lab.pki)."""
    return make_pki(tmp_path_factory.mktemp("unit-pki"))


@pytest.fixture(scope="session")
def unit_token(tmp_path_factory: pytest.TempPathFactory, unit_pki: Pki) -> Pkcs11Key:
    """The unit's key on a SoftHSM2 token, made once per process: SoftHSM2 reads
    its token folder when first initialised and sees no token made after."""
    if not softhsm_available():
        pytest.skip("SoftHSM2 is not installed (scripts/setup.sh installs softhsm2)")
    return make_softhsm_token(tmp_path_factory.mktemp("softhsm"), unit_pki)
