"""The application through Starlette's TestClient, on SQLite and PostgreSQL:
sign-in, access rules, the map and list agreeing with the database, the lead
page, exports, charts and the audit trail of all of it."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.audit.verify import verify
from atalaya.leads.query import override_score
from atalaya.observe.registry import registered
from atalaya.store.tables import audit_record, lead, lead_override
from tests.support.cli import run_atalaya
from tests.support.quiet_network import QuietNetwork
from tests.web.conftest import BASE, form_csrf, sign_in
from tests.web.seed import NOW, PREFIX, expected_ids, lead_ids_by_ip

W46 = "week=2026-W46"


def _ids_in_list(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-lead-id="(\d+)"', html)]


def _records(engine: Engine, **kwargs: Any) -> list[Any]:
    with engine.connect() as conn:
        return [e.fields for e in read_records(conn, AuditQuery(**kwargs))]


def test_pages_and_apis_need_a_session(anonymous: Any) -> None:
    page = anonymous.get(f"/?{W46}", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2F%3Fweek%3D2026-W46"
    for path in ("/api/map", "/api/leads", "/geo/spain.json", "/api/municipalities?province=28"):
        answer = anonymous.get(path)
        assert answer.status_code == 401, path
        assert answer.json() == {"error": "sign in first"}
    assert anonymous.get("/leads/1", follow_redirects=False).status_code == 303
    assert anonymous.get("/charts", follow_redirects=False).status_code == 303
    # The login page and the assets it needs are public.
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/app.css").status_code == 200


def test_security_headers_and_cookie_flags(anonymous: Any) -> None:
    page = anonymous.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert anonymous.get("/static/app.css").headers["cache-control"].startswith("public")
    # No inline script anywhere: data for scripts travels in JSON blocks.
    assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", page.text)

    answer = sign_in(anonymous, "ana")
    assert answer.status_code == 303
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "atalaya_session" in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/" in cookie


def test_login_needs_the_form_token_and_the_right_password(anonymous: Any, world: Engine) -> None:
    no_token = anonymous.post("/login", data={"username": "ana", "password": "x" * 20})
    assert no_token.status_code == 400
    assert "form expired" in no_token.text
    wrong = sign_in(anonymous, "ana", password="not the password at all")
    assert wrong.status_code == 401
    assert "wrong username or password" in wrong.text
    unknown = sign_in(anonymous, "nobody", password="not the password at all")
    assert unknown.status_code == 401
    assert unknown.text.count("wrong username or password") == 1
    assert sign_in(anonymous, "ana").status_code == 303
    assert anonymous.get("/login", follow_redirects=False).status_code == 303
    actions = [(r.action, r.outcome, r.username) for r in _records(world)]
    assert actions == [
        ("login_failed", "denied", "ana"),
        ("login_failed", "denied", None),
        ("login", "ok", "ana"),
    ]


def test_login_goes_back_where_it_was_asked_but_never_off_site(anonymous: Any) -> None:
    page = anonymous.get("/login?next=//evil.example/")
    assert 'name="next" value="/"' in page.text
    page = anonymous.get("/login?next=/charts%3Fweek%3D2026-W46")
    assert 'name="next" value="/charts?week=2026-W46"' in page.text


def test_list_and_map_show_the_units_selection(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    # Madrid unit (28 and 41), week 46: Madrid hosts 10, 26, 56 and Sevilla 13.
    want = expected_ids(world, [10, 26, 56, 13])
    listed = _ids_in_list(ana.get(f"/?{W46}").text)
    mapped = ana.get(f"/api/map?{W46}").json()
    assert set(listed) == want and len(listed) == len(want)
    assert {p[0] for p in mapped["points"]} == want
    assert mapped["count"] == mapped["placed"] == len(want)
    # Highest score in force first, as the database has them.
    with world.connect() as conn:
        scores = dict(conn.execute(select(lead.c.id, lead.c.score)).all())
    assert [scores[i] for i in listed] == sorted((scores[i] for i in listed), reverse=True)

    # Barcelona's unit sees Barcelona only (host 11 in week 46).
    bea = client_for("bea")
    assert set(_ids_in_list(bea.get(f"/?{W46}").text)) == expected_ids(world, [11])


def test_province_week_and_municipality_filters(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    madrid_46 = expected_ids(world, [10, 26, 56])
    assert set(_ids_in_list(ana.get(f"/?{W46}&province=28").text)) == madrid_46
    assert {p[0] for p in ana.get(f"/api/map?{W46}&province=28").json()["points"]} == madrid_46
    assert set(_ids_in_list(ana.get("/?week=2026-W45&province=28").text)) == expected_ids(
        world, [42]
    )
    # From/to spanning both weeks.
    both = ana.get("/?from=2026-11-02&to=2026-11-15&province=28").text
    assert set(_ids_in_list(both)) == expected_ids(world, [10, 26, 42, 56])
    # Municipality: Sevilla's INE code.
    assert set(_ids_in_list(ana.get(f"/?{W46}&municipality=41091").text)) == expected_ids(
        world, [13]
    )
    # A province the unit does not cover gives nothing, not Barcelona's leads.
    assert _ids_in_list(ana.get(f"/?{W46}&province=08").text) == []


def test_drawn_area_filters_list_and_map_alike(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    # A triangle around Sevilla only (37.39 N, 5.98 W).
    area = "-6.5 37.0,-5.5 37.0,-6.0 37.9"
    listed = set(_ids_in_list(ana.get(f"/?{W46}&area={area}").text))
    mapped = {p[0] for p in ana.get(f"/api/map?{W46}&area={area}").json()["points"]}
    assert listed == mapped == expected_ids(world, [13])
    # The bounding box of this triangle holds a point the triangle does not.
    narrow = "-6.5 37.0,-5.5 37.0,-5.5 37.5"
    assert _ids_in_list(ana.get(f"/?{W46}&area={narrow}").text) == []


def test_score_category_network_and_status_filters(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    with world.connect() as conn:
        scores = dict(conn.execute(select(lead.c.id, lead.c.score)).all())
    visible = expected_ids(world, [10, 26, 56, 13])
    threshold = sorted(scores[i] for i in visible)[2]
    high = set(_ids_in_list(ana.get(f"/?{W46}&min_score={threshold}").text))
    assert high == {i for i in visible if scores[i] >= threshold}
    assert set(_ids_in_list(ana.get(f"/?{W46}&category=severe_abuse").text)) == expected_ids(
        world, [10]
    )
    assert set(_ids_in_list(ana.get(f"/?{W46}&network=bittorrent").text)) == visible
    # A registered network with no sightings has no leads; an unregistered one is refused.
    with registered(QuietNetwork()):
        assert _ids_in_list(ana.get(f"/?{W46}&network=quiet").text) == []
    refused = ana.get(f"/?{W46}&network=quiet")
    assert refused.status_code == 400 and "network must be one of bittorrent" in refused.text
    # Guardia also covers Madrid: Madrid's leads are in conflict, Sevilla's not.
    assert set(_ids_in_list(ana.get(f"/?{W46}&status=conflict").text)) == expected_ids(
        world, [10, 26, 56]
    )
    # Seen within a week of "now" (2026-11-20): nothing of week 46 ended after the 13th.
    assert _ids_in_list(ana.get(f"/?{W46}&status=active").text) == []
    assert set(_ids_in_list(ana.get(f"/?{W46}&status=dormant").text)) == visible


def test_bad_filters_are_refused_with_a_message(client_for: Any) -> None:
    ana = client_for("ana")
    page = ana.get("/?week=2026-W99")
    assert page.status_code == 400 and "does not exist" in page.text
    api = ana.get("/api/map?area=1 2,3 4")
    assert api.status_code == 400 and "three vertices" in api.json()["error"]
    assert ana.get("/api/leads?province=Madrid").status_code == 400


def test_lead_page_shows_the_lead_and_its_conflict(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    page = ana.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    html = page.text
    assert f"Lead #{lead_id}" in html
    # Guardia also covers Madrid: who to contact, and nothing else about them.
    assert "Guardia central, desk +34 900 000 003" in html
    assert "Móvil Inventado (made up)" in html  # the lab's ISP of host 10
    assert "Madrid, Madrid" in html
    # UTC and local time (Madrid is UTC+1 in November), dd/mm/yyyy; sightings
    # to the microsecond.
    assert "10/11/2026 08:00:00 UTC" in html
    assert "10/11/2026 09:00:00 CET (+0100)" in html
    assert "10/11/2026 08:00:00.000000 UTC" in html
    for factor in ("known_files", "highest_category", "verified_downloads", "recency"):
        assert f'data-factor="{factor}"' in html
    assert html.count("data-sighting-id=") == 9  # 3 items x 3 days
    assert "2 pieces" in html
    sevilla = ana.get(f"/leads/{lead_ids_by_ip(world)[f'{PREFIX}.13']}").text
    assert "Another unit also holds this lead" not in sevilla


def test_another_units_lead_is_not_found_and_audited_denied(client_for: Any, world: Engine) -> None:
    bea = client_for("bea")
    madrid_lead = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    with world.connect() as conn:
        missing = (conn.scalar(select(func.max(lead.c.id))) or 0) + 1000
    foreign = bea.get(f"/leads/{madrid_lead}")
    absent = bea.get(f"/leads/{missing}")
    assert foreign.status_code == absent.status_code == 404
    assert foreign.text == absent.text  # nothing tells the two apart
    assert bea.get(f"/api/map?{W46}&province=28").json()["count"] == 0
    denied = _records(world, action="view", object_type="lead")
    assert [(r.object_id, r.outcome, r.username, r.details["reason"]) for r in denied] == [
        (str(madrid_lead), "denied", "bea", "held by another unit"),
        (str(missing), "denied", "bea", "no such lead"),
    ]


def test_csrf_is_required_on_every_post(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    refused = ana.post(
        f"/leads/{lead_id}/override",
        data={"score": "90", "reason": "seen by hand on the peer list"},
    )
    assert refused.status_code == 403
    forged = ana.post(
        f"/leads/{lead_id}/override",
        data={"score": "90", "reason": "seen by hand on the peer list", "csrf": "0" * 64},
    )
    assert forged.status_code == 403
    assert ana.post("/logout", data={}).status_code == 403
    with world.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(lead_override)) == 0

    token = form_csrf(ana.get(f"/leads/{lead_id}").text)
    done = ana.post(
        f"/leads/{lead_id}/override",
        data={"score": "45", "reason": "seen by hand on the peer list", "csrf": token},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with world.connect() as conn:
        row = conn.execute(select(lead_override)).one()
    assert (row.lead_id, row.score, row.reason, row.analyst) == (
        lead_id,
        45.0,
        "seen by hand on the peer list",
        "ana",
    )
    assert "45.0*" in ana.get(f"/?{W46}").text  # the list shows the score in force
    change = _records(world, action="change")
    assert [(r.outcome, r.object_id) for r in change] == [
        ("denied", str(lead_id)),
        ("denied", str(lead_id)),
        ("ok", str(lead_id)),
    ]

    out = ana.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    assert ana.get("/api/map").status_code == 401


def test_roles_without_leads_see_no_leads(client_for: Any, world: Engine) -> None:
    carla = client_for("carla")  # auditor of the Madrid unit
    home = carla.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/audit"
    assert carla.get(f"/api/map?{W46}").status_code == 403
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    assert carla.get(f"/leads/{lead_id}").status_code == 403
    audit = carla.get("/audit")
    assert audit.status_code == 200 and 'data-action="login"' in audit.text
    ana = client_for("ana")
    assert ana.get("/audit").status_code == 403
    reads = _records(world, action="audit_read")
    assert [(r.username, r.outcome) for r in reads] == [("carla", "ok"), ("ana", "denied")]


def test_every_consultation_is_in_the_audit_log(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.13"]
    ana.get(f"/?{W46}&province=41")
    ana.get(f"/api/map?{W46}&province=41")
    ana.get(f"/leads/{lead_id}")
    ana.get(f"/charts?{W46}")
    ana.get(f"/export?format=csv&{W46}")
    records = [r for r in _records(world) if r.username == "ana"]
    assert [(r.action, r.object_type) for r in records] == [
        ("login", "session"),
        ("search", "leads"),
        ("map_query", "leads"),
        ("view", "lead"),
        ("view", "charts"),
        ("export", "leads"),
    ]
    search, query = records[1], records[2]
    assert search.details["filters"]["province"] == "41"
    assert search.details["results"] == 1 and query.details["results"] == 1
    assert records[3].object_id == str(lead_id)
    assert all(r.client_address == "testclient" for r in records[1:])
    assert verify(world).ok


def test_export_is_the_selection(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    answer = ana.get(f"/export?format=csv&{W46}&province=28")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {int(r["id"]) for r in rows} == expected_ids(world, [10, 26, 56])
    geo = json.loads(ana.get(f"/export?format=geojson&{W46}&province=28").text)
    assert {f["id"] for f in geo["features"]} == expected_ids(world, [10, 26, 56])
    assert geo["attribution"] and "Lab locations" in geo["attribution"][0]


def test_web_csv_is_the_command_line_csv(client_for: Any, world: Engine) -> None:
    """One column list for every lead export: the web's CSV of a selection has
    the header of `atalaya leads export` and, lead for lead, the same cells."""
    overridden = min(expected_ids(world, [10, 26, 56]))
    override_score(world, overridden, 77.5, "=seen in case 2026/3", "ana", now=NOW)
    web = list(csv.reader(io.StringIO(client_for("ana").get(f"/export?format=csv&{W46}").text)))
    url = world.url.render_as_string(hide_password=False)
    cli = run_atalaya("leads", "export", "--format", "csv", env={"ATALAYA_DATABASE_URL": url})
    assert cli.returncode == 0, cli.stderr
    table = list(csv.reader(io.StringIO(cli.stdout)))
    assert web[0] == table[0]
    assert "override_reason" in web[0] and any(h.startswith("factor_") for h in web[0])
    by_id = {row[0]: row for row in table[1:]}
    assert len(web) > 2
    for row in web[1:]:
        assert row == by_id[row[0]]
    shown = next(
        dict(zip(web[0], row, strict=True)) for row in web[1:] if row[0] == str(overridden)
    )
    assert shown["score"] == "77.5" and shown["override_reason"] == "'=seen in case 2026/3"


def test_api_list_pages_and_conflicts(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    body = ana.get(f"/api/leads?{W46}").json()
    assert body["total"] == 4 and body["page"] == 1 and body["pages"] == 1
    by_ip = {r["ip"]: r for r in body["leads"]}
    assert by_ip[f"{PREFIX}.10"]["conflict"] == ["Guardia"]
    assert by_ip[f"{PREFIX}.13"]["conflict"] == []
    assert by_ip[f"{PREFIX}.13"]["province_code"] == "41"


def test_charts_count_the_selection(client_for: Any) -> None:
    ana = client_for("ana")
    html = ana.get(f"/charts?{W46}").text
    data = json.loads(re.search(r'id="chart-data">(.*?)</script>', html, re.S)[1])  # type: ignore[index]
    weeks = dict(zip(data["weeks"], data["sightings_per_week"], strict=True))
    leads_week = dict(zip(data["weeks"], data["leads_per_week"], strict=True))
    # Madrid unit: W46 hosts 10 (3 items), 26 (1), 56 (5), 13 (4); W45 host 42 (2);
    # three sightings per item.
    assert weeks["2026-W46"] == 3 * (3 + 1 + 5 + 4)
    assert weeks["2026-W45"] == 3 * 2
    assert leads_week["2026-W46"] == 4 and leads_week["2026-W45"] == 1
    assert len(data["weeks"]) == 12 and data["weeks"][-1] == "2026-W46"
    provinces = dict(zip(data["provinces"], data["leads_per_province"], strict=True))
    assert provinces == {"Madrid": 3, "Sevilla": 1}


def test_municipalities_and_geo_for_signed_in_users(client_for: Any) -> None:
    ana = client_for("ana")
    names = {m["code"]: m["name"] for m in ana.get("/api/municipalities?province=41").json()}
    assert names["41091"] == "Sevilla"
    assert all(code.startswith("41") for code in names)
    spain = ana.get("/geo/spain.json")
    assert spain.status_code == 200 and "municipalities" in spain.json()["objects"]
    assert ana.get("/geo/other.json").status_code == 404
    assert ana.get("/lib/leaflet/leaflet.js").status_code == 200
    assert ana.get("/lib/leaflet/../../package.json").status_code == 404
    assert BASE.startswith("http://127.0.0.1")


def test_audit_records_survive_and_verify(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    ana.get(f"/?{W46}")
    with world.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(audit_record))
    assert count == 2
    assert verify(world).ok
