"""The funnel page: the funnel's figures for the unit, audited; auditors get none."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from atalaya.accounts.units import get_unit
from atalaya.audit.log import AuditQuery, read_records
from atalaya.cases.funnel import Scope, funnel
from tests.web.seed import NOW


def test_the_page_shows_the_units_funnel_and_is_audited(client_for: Any, world: Engine) -> None:
    ana = client_for("ana")
    page = ana.get("/funnel", params={"since": "2026-10-26", "until": "2026-11-16"})
    assert page.status_code == 200
    assert 'id="nav-funnel"' in page.text
    shown = dict(re.findall(r'data-step="(\w+)" data-count="(\d+)"', page.text))
    with world.connect() as conn:
        unit_id = get_unit(conn, "Madrid").id
        since, until = datetime(2026, 10, 26, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
        expected = funnel(conn, Scope(since, until, None, unit_id), NOW)
    assert shown == {s.name: str(s.count) for s in expected.steps}
    assert int(shown["addresses"]) > 0 and int(shown["leads"]) > 0
    weeks = re.findall(r'data-week="([\d-]+)" data-addresses="(\d+)"', page.text)
    assert weeks == [(w.start.date().isoformat(), str(w.addresses)) for w in expected.weeks]
    assert [w for w, _ in weeks] == ["2026-10-26", "2026-11-02", "2026-11-09"]
    every = ana.get("/funnel", params={"unit": "all", "province": "08"})
    assert every.status_code == 200 and "province 08" in every.text
    with world.connect() as conn:
        records = read_records(conn, AuditQuery(action="funnel"))
    assert [(r.fields.username, r.fields.details["unit"]) for r in records] == [
        ("ana", "Madrid"),
        ("ana", None),
    ]


def test_bad_filters_and_roles_without_leads_are_refused(client_for: Any) -> None:
    ana, carla = client_for("ana"), client_for("carla")
    bad = ana.get("/funnel", params={"since": "yesterday"})
    assert bad.status_code == 400 and "is not a date like 2026-11-23" in bad.text
    backwards = ana.get("/funnel", params={"since": "2026-11-10", "until": "2026-11-01"})
    assert backwards.status_code == 400 and "--since must come before --until" in backwards.text
    assert ana.get("/funnel", params={"unit": "Nowhere"}).status_code == 400
    assert carla.get("/funnel").status_code == 403
