"""A time limit on every statement of the web application, on both engines (issue 10).

`/charts` took 11 s at a million sightings and 31 s for the widest window:
one analyst could hold a server thread and the database that long.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from atalaya.audit.log import Action, log_event
from atalaya.web import query_limit
from atalaya.web.app import create_app
from atalaya.web.query_limit import is_timeout, limit_statements
from tests.web.conftest import BASE, sign_in, web_settings
from tests.web.seed import NOW

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

# Seconds of work on either engine without the limit.
SLOW = {
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
    "WHERE x < 200000000) SELECT count(*) FROM c",
    "postgresql": "SELECT pg_sleep(30)",
}


def test_a_slow_statement_is_stopped_at_the_limit(engine: Engine) -> None:
    limit_statements(engine, 0.5)
    started = time.monotonic()
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text(SLOW[engine.dialect.name]))
    assert is_timeout(caught.value)
    assert time.monotonic() - started < 5
    # The engine goes on working, and a transaction whose statements were
    # each quick commits however long it stayed open.
    with engine.begin() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
        time.sleep(0.8)
    log_event(engine, Action.VIEW)
    # A later limit replaces the earlier one.
    limit_statements(engine, 30)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def test_is_timeout_tells_the_limit_from_other_errors(engine: Engine) -> None:
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    assert not is_timeout(caught.value)
    assert not is_timeout(ValueError("interrupted"))


def test_a_request_over_the_limit_answers_503(
    world: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if world.dialect.name != "sqlite":
        pytest.skip("a limit short enough to stop any query is deterministic on SQLite only")
    normal = create_app(world, web_settings(), clock=lambda: NOW)
    with TestClient(normal, base_url=BASE) as client:
        assert sign_in(client, "ana").status_code == 303
        cookies = dict(client.cookies)
    # Checked at every step and over at once: every statement is stopped.
    monkeypatch.setattr(query_limit, "PROGRESS_STEPS", 1)
    world.dispose()
    hurried = create_app(world, replace(web_settings(), query_timeout=1e-9), clock=lambda: NOW)
    with TestClient(hurried, base_url=BASE, cookies=cookies) as client:
        page: Any = client.get("/charts?from=2026-01-01&to=2026-11-20")
        api: Any = client.get("/api/map?from=2026-01-01&to=2026-11-20")
    assert page.status_code == 503 and "took longer than" in page.text
    assert "content-security-policy" in page.headers
    assert api.status_code == 503 and "took longer than" in api.json()["error"]
