"""The lead page and its exports carry what a judicial request needs; an
override is bounded and needs a reason of substance; the audit view filters,
pages, links and exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import (
    hash_set,
    lead_override,
    proof_transcript,
    reference_file,
    sighting,
)
from atalaya.web.app import every_day, reason_lacks
from atalaya.web.audit_pages import object_link, parse_audit_filters, readable
from atalaya.web.filters import FilterError
from tests.web.conftest import form_csrf
from tests.web.seed import PREFIX, lead_ids_by_ip

W46 = "from=2026-11-09&to=2026-11-15"


def _annotate(world: Engine) -> str:
    """Give host 10's sightings a hash set, a proof transcript, a clock offset and a
    hostile client name, as an observer with a reference list would have."""
    with world.begin() as conn:
        conn.execute(
            insert(hash_set).values(
                name="screen test set",
                source="Unidad de prueba (inventada)",
                format="csv",
                version="1",
                imported_at=datetime(2026, 11, 1, tzinfo=UTC),
                updated_at=datetime(2026, 11, 1, tzinfo=UTC),
                file_sha256="ab" * 32,
                file_count=1,
                hash_count=1,
            )
        )
        set_id = conn.scalar(select(hash_set.c.id).where(hash_set.c.name == "screen test set"))
        key = "sha1:" + "12" * 20
        conn.execute(
            insert(reference_file).values(
                hash_set_id=set_id, file_key=key, category=4, category_label="A", name=None
            )
        )
        model = (
            conn.execute(
                select(sighting).where(sighting.c.ip == f"{PREFIX}.10").order_by(sighting.c.seen_at)
            )
            .mappings()
            .first()
        )
        assert model is not None
        # Sightings are evidence (no UPDATE): a new one, inside the same presence.
        values = {k: v for k, v in model.items() if k != "id"}
        values.update(
            seen_at=model["seen_at"] + timedelta(microseconds=123_456),
            hash_set="screen test set",
            file_key=key,
            clock_offset_s=-0.012345,
            client="=HYPERLINK(1)",
            proof=True,
            proof_kind="pieces",
            pieces_verified=2,
            pieces_failed=0,
        )
        new_id = conn.execute(insert(sighting).values(**values)).inserted_primary_key[0]
        body = json.dumps({"pieces": [{"index": 17}, {"index": 3}]}).encode()
        conn.execute(
            insert(proof_transcript).values(
                sighting_id=new_id, version=1, body=body, sha256=hashlib.sha256(body).hexdigest()
            )
        )
    return value_of(model)


def value_of(model: Any) -> str:
    return str(model["item_value"])


@pytest.fixture
def ana(client_for: Any) -> Any:
    return client_for("ana")


def test_the_lead_page_names_full_hashes_sources_and_clock_offsets(ana: Any, world: Engine) -> None:
    _annotate(world)
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    html = ana.get(f"/leads/{lead_id}").text
    with world.connect() as conn:
        values = set(
            conn.scalars(select(sighting.c.item_value).where(sighting.c.ip == f"{PREFIX}.10"))
        )
    for value in values:
        assert value in html and len(value) == 40  # whole, not cut to 16 characters
    assert "screen test set (Unidad de prueba (inventada)): «A»" in html
    assert "-0.012345 s" in html
    assert "2 pieces: indices 3, 17" in html
    assert "=HYPERLINK(1)" in html  # shown as text on the page, escaped by Jinja
    # The day chart's data: from the first day to the last, none skipped.
    data = re.search(r'id="per-day-data">(.*?)</script>', html, re.S)
    assert data is not None and '"10/11/2026"' in data[1]


def test_the_per_lead_exports_hold_every_sighting_with_neutralised_cells(
    ana: Any, client_for: Any, world: Engine
) -> None:
    _annotate(world)
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    answer = ana.get(f"/leads/{lead_id}/sightings.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    with world.connect() as conn:
        count = conn.scalar(
            select(func.count()).select_from(sighting).where(sighting.c.ip == f"{PREFIX}.10")
        )
    assert len(rows) == count == 10
    marked = [r for r in rows if r["hash_set"] == "screen test set"]
    assert len(marked) == 1
    assert marked[0]["client"] == "'=HYPERLINK(1)"  # neutralised for spreadsheets
    assert marked[0]["source_label"] == "A" and marked[0]["clock_offset_s"] == "-0.012345"
    assert marked[0]["piece_indices"] == "3 17"
    assert marked[0]["hash_set_source"] == "Unidad de prueba (inventada)"
    stamp = r"2026-11-1\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
    assert all(re.fullmatch(stamp, r["seen_at"]) for r in rows)
    assert marked[0]["seen_at"].endswith(".123456+00:00")
    assert all(r["local"].endswith("CET (+0100)") for r in rows)
    document = ana.get(f"/leads/{lead_id}/sightings.json").json()
    assert document["lead"]["id"] == lead_id and len(document["sightings"]) == 10
    clients = {s["client"] for s in document["sightings"]}
    assert "=HYPERLINK(1)" in clients  # JSON keeps it as it is
    assert [
        s["piece_indices"] for s in document["sightings"] if s["hash_set"] == "screen test set"
    ] == [[3, 17]]
    # Another unit's analyst gets the same 404 as for no lead; both audited.
    bea = client_for("bea")
    assert bea.get(f"/leads/{lead_id}/sightings.csv").status_code == 404
    with world.connect() as conn:
        records = read_records(conn, AuditQuery(action="export", object_type="lead"))
    assert [(r.fields.username, r.fields.outcome) for r in records] == [
        ("ana", "ok"),
        ("ana", "ok"),
        ("bea", "denied"),
    ]


@pytest.mark.parametrize(
    ("reason", "refused"),
    [
        ("", True),
        ("               ", True),
        ("ok", True),
        ("!!!!!!!!!!!!!!!!!!!!", True),
        ("a a a a a a a a", True),
        ("ab cd ef gh ij kl", True),
        ("checked by hand", False),
        ("seen by hand on the peer list", False),
    ],
)
def test_a_reason_needs_substance(reason: str, refused: bool) -> None:
    assert (reason_lacks(reason) is not None) is refused


@pytest.mark.parametrize("score", ["-1", "100.5", "nan", "inf", "ninety"])
def test_an_override_is_bounded_and_keeps_the_selection(
    ana: Any, world: Engine, score: str
) -> None:
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    token = form_csrf(ana.get(f"/leads/{lead_id}").text)
    good = "seen by hand on the peer list"
    out = ana.post(
        f"/leads/{lead_id}/override",
        data={"score": score, "reason": good, "csrf": token, "back": W46},
    )
    assert out.status_code == 400
    assert "0 to 100" in out.text
    assert f'href="/?{W46.replace("&", "&amp;")}" id="back"' in out.text
    thin = ana.post(
        f"/leads/{lead_id}/override",
        data={"score": "50", "reason": "   x   ", "csrf": token, "back": W46},
    )
    assert thin.status_code == 400 and "at least" in thin.text
    with world.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(lead_override)) == 0
    done = ana.post(
        f"/leads/{lead_id}/override",
        data={"score": "100", "reason": good, "csrf": token, "back": W46},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/leads/{lead_id}?back=from%3D2026-11-09%26to%3D2026-11-15"
    page = ana.get(done.headers["location"]).text
    assert f'href="/?{W46.replace("&", "&amp;")}" id="back"' in page


def test_the_day_chart_keeps_empty_days() -> None:
    days = every_day([("2026-11-08", 2), ("2026-11-11", 1)])
    assert days["iso"] == ["2026-11-08", "2026-11-09", "2026-11-10", "2026-11-11"]
    assert days["counts"] == [2, 0, 0, 1]
    assert days["days"][0] == "08/11/2026"
    assert every_day([]) == {"days": [], "counts": [], "iso": []}


def test_audit_filters_are_parsed_strictly() -> None:
    flt = parse_audit_filters({"user": " ana ", "object": "lead:12", "from": "2026-11-01"})
    query = flt.query(10)
    assert (query.username, query.object_type, query.object_id) == ("ana", "lead", "12")
    assert query.since == datetime(2026, 11, 1, tzinfo=UTC) and query.newest_first
    for bad in (
        {"from": "yesterday"},
        {"before": "-1"},
        {"action": "view' OR 1=1"},
        {"from": "2026-11-02", "to": "2026-11-01"},
    ):
        with pytest.raises(FilterError):
            parse_audit_filters(bad)
    assert object_link("lead", "12") == "/leads/12"
    assert object_link("case", "3") == "/cases/3"
    assert object_link("page", "/x") is None and object_link("lead", "1 or 2") is None
    assert (
        readable({"from": "2026-11-09", "to": "2026-11-15"}) == "from: 2026-11-09; to: 2026-11-15"
    )
    assert readable([1, 2]) == "1, 2"


def test_the_audit_view_filters_pages_links_and_exports(
    client_for: Any, world: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = client_for("ana")
    lead_id = lead_ids_by_ip(world)[f"{PREFIX}.10"]
    for _ in range(3):
        ana.get(f"/leads/{lead_id}")
    carla = client_for("carla")
    page = carla.get("/audit", params={"user": "ana", "action": "view"})
    assert page.status_code == 200
    rows = re.findall(r'<tr data-seq="(\d+)" data-action="(\w+)"', page.text)
    assert len(rows) == 3 and {a for _, a in rows} == {"view"}
    assert f'<a href="/leads/{lead_id}">lead {lead_id}</a>' in page.text
    assert "<dt>filters</dt>" not in page.text  # views have no filters
    search = carla.get("/audit", params={"user": "ana", "action": "search"}).text
    assert "<dt>filters</dt>" in search or "No record matches" in search

    # Paging newest first: two per page.
    monkeypatch.setattr("atalaya.web.audit_pages.PAGE_SIZE", 2)
    first = carla.get("/audit", params={"user": "ana", "action": "view"}).text
    seqs = [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', first)]
    assert len(seqs) == 2 and seqs[0] > seqs[1]
    older = re.search(r'href="/audit\?([^"]+)" id="audit-older"', first)
    assert older is not None
    second = carla.get("/audit?" + older[1].replace("&amp;", "&")).text
    rest = [int(s) for s in re.findall(r'<tr data-seq="(\d+)"', second)]
    assert rest and max(rest) < min(seqs) and 'id="audit-newest"' in second

    exported = carla.get("/audit/export", params={"format": "csv", "user": "ana", "action": "view"})
    assert exported.status_code == 200
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(table) == 3 and all(r["object_id"] == str(lead_id) for r in table)
    assert carla.get("/audit/export", params={"format": "json", "user": "ana"}).json()
    assert carla.get("/audit", params={"from": "nonsense"}).status_code == 400
    assert ana.get("/audit").status_code == 403
    assert ana.get("/audit/export").status_code == 403
    with world.connect() as conn:
        exports = read_records(conn, AuditQuery(action="export", object_type="audit"))
    assert [r.fields.username for r in exports] == ["carla", "carla"]
