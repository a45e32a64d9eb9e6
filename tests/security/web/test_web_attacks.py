"""The web application as an attacker with an account sees it, on both engines.

Bad parameters must be a 400 that still carries the security headers, never
a 500; thirty wrong passwords sent at once must meet both the per-address
limit and the lockout. (The parsers' own tests stay in tests/web/test_hardening.py.)
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from atalaya.store.tables import app_user
from tests.support.verify_spy import spy_on_verify
from tests.web.conftest import BASE
from tests.web.seed import FAST
from tests.web.test_hardening import BAD_QUERIES, _has_security_headers


def test_bad_parameters_answer_400_with_security_headers(client_for: Any) -> None:
    ana = client_for("ana")
    for path in ("/", "/api/map", "/api/leads", "/charts", "/export"):
        for query in BAD_QUERIES:
            answer = ana.get(f"{path}?{query}", follow_redirects=False)
            assert answer.status_code == 400, (path, query, answer.status_code)
            assert _has_security_headers(answer), (path, query)
    # A lead id larger than any BIGINT is no lead: 404, like any other unknown id.
    for lead_id in ("9" * 19, "1" + "0" * 19, "18446744073709551616"):
        answer = ana.get(f"/leads/{lead_id}", follow_redirects=False)
        assert answer.status_code == 404, lead_id
        assert _has_security_headers(answer)
        assert ana.post(f"/leads/{lead_id}/override", data={}).status_code in (403, 404)
    answer = ana.get("/leads/" + "9" * 4_400)
    assert answer.status_code == 404 and _has_security_headers(answer)


def test_thirty_parallel_wrong_passwords_against_the_app(
    app: Any, world: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the application: the address limit and the lockout both hold."""
    spy = spy_on_verify(monkeypatch)
    spy.delay = 0.05
    with world.connect() as conn:
        real_hash = conn.execute(
            select(app_user.c.password_hash).where(app_user.c.username == "ana")
        ).scalar_one()

    async def attack() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.66", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            page = await client.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/login",
                        data={"username": "ana", "password": f"guess {n}", "csrf": token[1]},
                    )
                    for n in range(30)
                )
            )
        return sorted(a.status_code for a in answers)

    statuses = asyncio.run(attack())
    assert statuses == [401] * 20 + [429] * 10
    assert 1 <= sum(1 for h in spy.hashes if h == real_hash) <= FAST.max_failed_logins
    with world.connect() as conn:
        locked = conn.execute(
            select(app_user.c.locked_until).where(app_user.c.username == "ana")
        ).scalar_one()
    assert locked is not None
