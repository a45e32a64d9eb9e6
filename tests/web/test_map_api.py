"""The map page's APIs on both engines: several provinces, sorting, the
list's figures for the window, urgent counts for the map, and search from
one box (the unit's leads only, audited, bad input a 400)."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import lead, user_visit
from atalaya.store.times import utc
from atalaya.web.app import create_app
from tests.web.conftest import BASE, form_csrf, sign_in, web_settings
from tests.web.seed import NOW, PREFIX, expected_ids, item, lead_ids_by_ip

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note about its HTTP client
    from starlette.testclient import TestClient

W46 = "week=2026-W46"
BOTH = "from=2026-11-02&to=2026-11-15"


def _ids(answer: Any) -> list[int]:
    return [r["id"] for r in answer.json()["leads"]]


def test_several_provinces_in_map_and_list(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    both = expected_ids(world, [10, 26, 56, 13])
    for query in ("province=28&province=41", "province=28,41", "province=41&province=28"):
        assert set(_ids(ana.get(f"/api/leads?{W46}&{query}"))) == both
        points = ana.get(f"/api/map?{W46}&{query}").json()["points"]
        assert {p[0] for p in points} == both
    page = ana.get(f"/?{W46}&province=28&province=41").text
    assert page.count(" selected>") >= 2  # both provinces stay chosen in the form
    assert ana.get(f"/api/leads?{W46}&province=28&province=x").status_code == 400
    assert ana.get(f"/?{W46}&province=28&province=999").status_code == 400


def test_sorting_is_server_side_and_whitelisted(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    with world.connect() as conn:
        seen = dict(conn.execute(select(lead.c.id, lead.c.last_seen)).all())
    newest = _ids(ana.get(f"/api/leads?{BOTH}&sort=-last_seen"))
    assert [seen[i] for i in newest] == sorted((seen[i] for i in newest), reverse=True)
    oldest = _ids(ana.get(f"/api/leads?{BOTH}&sort=last_seen"))
    assert [seen[i] for i in oldest] == sorted(seen[i] for i in oldest)
    assert ana.get(f"/api/leads?{BOTH}&sort=password_hash").status_code == 400
    assert ana.get(f"/?{BOTH}&sort=-score;").status_code == 400


def test_list_figures_are_the_windows(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    sevilla = lead_ids_by_ip(world)[f"{PREFIX}.13"]
    # Host 13: 4 items, 3 sightings each, all in week 46.
    week = {r["id"]: r for r in ana.get(f"/api/leads?{W46}").json()["leads"]}[sevilla]
    assert (week["period_sightings"], week["sightings"]) == (12, 12)
    assert week["period_known_files"] == 4
    # A window holding only the first day: its four sightings.
    day = {r["id"]: r for r in ana.get("/api/leads?from=2026-11-10&to=2026-11-10").json()["leads"]}[
        sevilla
    ]
    assert (day["period_sightings"], day["sightings"]) == (4, 12)
    assert day["period_last_seen"].startswith("2026-11-10T08:03")


def test_map_counts_urgent_leads_per_province(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    answer = ana.get(f"/api/map?{BOTH}").json()
    with world.connect() as conn:
        rows = conn.execute(select(lead.c.id, lead.c.province_code, lead.c.score)).all()
    shown = {p[0] for p in answer["points"]}
    want: dict[str, int] = {}
    for lead_id, province, score in rows:
        if lead_id in shown and score >= answer["urgent_score"] and province:
            want[province] = want.get(province, 0) + 1
    assert answer["urgent_by_province"] == want
    assert answer["weeks"] == 2


def test_search_api_kinds_visibility_and_audit(client_for: Any, world: Engine) -> None:
    ana, bea = client_for("ana"), client_for("bea")
    sevilla = lead_ids_by_ip(world)[f"{PREFIX}.13"]
    answer = ana.get("/api/search", params={"q": item(13, 1)}).json()
    assert answer["kind"] == "hash"
    assert [r["id"] for r in answer["leads"]] == [sevilla]
    assert answer["leads"][0]["matched"] == ["item btih"]
    assert {
        r["id"] for r in ana.get("/api/search", params={"q": f"{PREFIX}.0/24"}).json()["leads"]
    } == expected_ids(world, [10, 26, 42, 56, 13])
    # Another unit's analyst: the same query finds only her own.
    assert bea.get("/api/search", params={"q": item(13, 1)}).json()["leads"] == []
    assert {
        r["id"] for r in bea.get("/api/search", params={"q": f"{PREFIX}.0/24"}).json()["leads"]
    } == expected_ids(world, [11, 27])
    bad = ana.get("/api/search", params={"q": "<script>"})
    assert bad.status_code == 400 and "not an IP address" in bad.json()["error"]
    page = ana.get("/search", params={"q": "<script>"})
    assert page.status_code == 400 and "<script>" not in page.text
    assert ana.get("/search").status_code == 200  # the empty box
    with world.connect() as conn:
        records = [
            r.fields
            for r in read_records(conn, AuditQuery(limit=1000))
            if r.fields.object_type == "search"
        ]
    assert [(r.username, r.outcome, r.details.get("results")) for r in records] == [
        ("ana", "ok", 1),
        ("ana", "ok", 5),
        ("bea", "ok", 0),
        ("bea", "ok", 2),
        ("ana", "denied", None),
        ("ana", "denied", None),
    ]
    assert records[0].details["query"] == item(13, 1)
    assert records[0].details["lead_ids"] == str(sevilla)


def test_saved_searches_from_the_map_page(client_for: Any, world: Engine) -> None:
    ana, bea = client_for("ana"), client_for("bea")
    page = ana.get(f"/?{W46}&province=28").text
    csrf = form_csrf(page)
    saved = ana.post(
        "/searches",
        data={"csrf": csrf, "name": "Madrid W46", "query": f"{W46}&province=28&page=3"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    # Saved as the filters give it back: days, not the week; no page.
    assert saved.headers["location"] == "/?from=2026-11-09&to=2026-11-15&province=28"
    home = ana.get("/").text
    found = re.search(r'data-saved-id="(\d+)"><a href="([^"]+)">Madrid W46</a>', home)
    assert found is not None
    assert found[2] == "/?from=2026-11-09&amp;to=2026-11-15&amp;province=28"
    assert "Madrid W46" not in bea.get("/").text  # hers only
    # Another user cannot remove it; a bad token is refused; a bad query is a 400.
    bea_csrf = form_csrf(bea.get("/").text)
    gone = bea.post(f"/searches/{found[1]}/delete", data={"csrf": bea_csrf, "query": ""})
    assert gone.status_code == 200 and "Madrid W46" in ana.get("/").text
    refused = ana.post("/searches", data={"csrf": "0" * 64, "name": "x", "query": W46})
    assert refused.status_code == 403
    bad = ana.post("/searches", data={"csrf": csrf, "name": "x", "query": "province=Madrid"})
    assert bad.status_code == 400 and "province must be" in bad.text
    assert (
        ana.post(
            f"/searches/{found[1]}/delete",
            data={"csrf": csrf, "query": W46},
            follow_redirects=False,
        ).headers["location"]
        == f"/?{W46}"
    )
    assert "Madrid W46" not in ana.get("/").text
    assert ana.post("/searches/99999999999999/delete", data={"csrf": csrf}).status_code == 200


def test_new_since_the_last_visit(world: Engine) -> None:
    now = [NOW]
    app = create_app(world, web_settings(), clock=lambda: now[0])
    with TestClient(app, base_url=BASE) as ana:
        assert sign_in(ana, "ana").status_code == 303
        answer = ana.get(f"/api/leads?{BOTH}")
        assert answer.status_code == 200, answer.text
        first = answer.json()["leads"]
        assert first and not any(r["new"] for r in first)  # a first visit marks nothing
        # Back after a pause: leads first seen after the last look are new.
        with world.connect() as conn:
            seen = dict(conn.execute(select(lead.c.id, lead.c.first_seen)).all())
        ids = [r["id"] for r in first]
        cut = sorted(utc(seen[i]) for i in ids)[len(ids) // 2]
        with world.begin() as conn:
            conn.execute(user_visit.update().values(last_seen_at=cut - timedelta(microseconds=1)))
        again = ana.get(f"/api/leads?{BOTH}").json()["leads"]
        assert {r["id"] for r in again if r["new"]} == {i for i in ids if utc(seen[i]) >= cut}
        page = ana.get(f"/?{BOTH}").text
        assert page.count('class="new-badge"') == 1 + sum(1 for r in again if r["new"])
