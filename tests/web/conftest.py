"""Fixtures for the web tests: the seeded world on both engines, signed-in clients."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from atalaya.errors import AtalayaError
from atalaya.store.tables import lead
from atalaya.web.app import create_app
from atalaya.web.places import Places
from atalaya.web.settings import WebSettings
from tests.support.seeds import Seed
from tests.web.seed import FAST, NOW, PASSWORD, build_world

with warnings.catch_warnings():
    # Starlette suggests another HTTP client for its TestClient; httpx (a
    # pinned dependency) still works, and the warning says nothing about us.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1"


def web_settings() -> WebSettings:
    settings = WebSettings.load(policy=FAST)
    try:
        settings.check()
    except AtalayaError as exc:  # the message names the missing install step
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return settings


WORLD = Seed("web world", build_world)


@pytest.fixture
def db_seed(request: pytest.FixtureRequest) -> Seed | None:
    # The world is built once per engine and copied for each test that takes
    # it; other tests here (test_dossier's own world) start from the schema.
    return WORLD if "world" in request.fixturenames else None


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Engine:
    """The seeded store (sightings, enrichment, leads, units, users)."""
    with engine.connect() as conn:
        seeded = conn.execute(select(func.count()).select_from(lead)).scalar_one() > 0
    if not seeded:  # `world` asked for by name at run time: no copy was made
        build_world(engine, tmp_path)
    return engine


_places: dict[Path, Places] = {}


@pytest.fixture(autouse=True)
def places_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every app of the session reads its provinces and municipalities once.

    `atalaya serve` builds its app once per process; the tests build one per
    test, and reading the atlas is most of that. The same atlas file gives
    the same places, so each file is read once and its places shared.
    """
    read = Places.load

    def read_once(atlas: Path) -> Places:
        key = Path(atlas).resolve()
        if key not in _places:
            _places[key] = read(atlas)
        return _places[key]

    monkeypatch.setattr(Places, "load", read_once)


@pytest.fixture
def app(world: Engine) -> Any:
    return create_app(world, web_settings(), clock=lambda: NOW)


def login_csrf(client: TestClient) -> str:
    page = client.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    return match[1]


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf": login_csrf(client)},
        follow_redirects=False,
    )


@pytest.fixture
def client_for(app: Any) -> Iterator[Callable[[str], TestClient]]:
    """A signed-in client for a username of the seed (one per call)."""
    clients: list[TestClient] = []

    def make(username: str) -> TestClient:
        client = TestClient(app, base_url=BASE)
        clients.append(client)
        response = sign_in(client, username)
        assert response.status_code == 303, response.text
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def anonymous(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE) as client:
        yield client


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no session CSRF token in the page"
    return match[1]
