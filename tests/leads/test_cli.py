"""`atalaya leads build|list|show|export|override` run as an operator would."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from atalaya.audit.verify import verify
from atalaya.enrich.record import Enrichment
from atalaya.enrich.store import save_enrichments
from atalaya.store import create_store_engine
from atalaya.store.tables import audit_record, enrichment_data
from tests.leads.helpers import item, peer_id, write
from tests.leads.helpers import sighting as s
from tests.support.cli import run_atalaya


def atalaya(
    db_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full: dict[str, str | None] = {"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"}
    full.update(env if env is not None else {"ATALAYA_LEADS_CONFIG": None})
    return run_atalaya(*args, env=full)


AT = datetime(2026, 11, 20, tzinfo=UTC)


def place(
    ip: str,
    province: tuple[str, str],
    municipality: tuple[str, str],
    lat: float,
    lon: float,
    asn: int,
    flags: tuple[str, ...] = (),
) -> Enrichment:
    return Enrichment(
        ip=ip,
        data_version="made-up-v1",
        computed_at=AT,
        country="ES",
        province_code=province[0],
        province_name=province[1],
        municipality_code=municipality[0],
        municipality_name=municipality[1],
        latitude=lat,
        longitude=lon,
        accuracy_km=5.0,
        asn=asn,
        isp=f"Example AS{asn}",
        time_zone="Europe/Madrid",
        flags=flags,
    )


@pytest.fixture
def db(db_url: str) -> str:
    done = atalaya(db_url, "init")
    assert done.returncode == 0, done.stderr
    engine = create_store_engine(db_url)
    pid = peer_id(4)
    # A device in Madrid moving between two addresses, with proof.
    write(
        engine,
        [
            s("10.20.0.1", item(i), i, peer=pid, proof=True, category=4, file_key=f"sha1:{i:040x}")
            for i in range(5)
        ],
    )
    write(engine, [s("10.20.0.2", item(i), 20 + i, peer=pid) for i in range(5)])
    # One weak lead in Sevilla, weeks later.
    write(engine, [s("10.30.0.1", item(40), 24 * 30)])
    # One with no place.
    write(engine, [s("10.40.0.1", item(41), 24 * 10)])
    with engine.begin() as conn:
        conn.execute(
            insert(enrichment_data).values(
                data_version="made-up-v1",
                sources={"made_up": True},
                attribution="Made-up places for tests",
                created_at=AT,
            )
        )
        save_enrichments(
            conn,
            [
                place("10.20.0.1", ("28", "Madrid"), ("28079", "Madrid"), 40.42, -3.70, 64500),
                place("10.20.0.2", ("28", "Madrid"), ("28079", "Madrid"), 40.42, -3.70, 64500),
                place("10.30.0.1", ("41", "Sevilla"), ("41091", "Sevilla"), 37.39, -5.98, 64501),
            ],
        )
    engine.dispose()
    return db_url


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_build_list_show_export_override(db: str, tmp_path: Path) -> None:
    built = atalaya(db, "leads", "build", "--json")
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert (report["mode"], report["sightings"], report["leads_total"]) == ("full", 12, 3)

    listed = atalaya(db, "leads", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    leads = lines(listed.stdout)
    assert [lead["id"] for lead in leads] == [1, 11, 12]  # highest score first
    top = leads[0]
    assert (top["addresses"], top["sightings"], top["verified_items"]) == (2, 10, 5)
    assert (top["province_name"], top["municipality_name"], top["highest_category"]) == (
        "Madrid",
        "Madrid",
        "severe_abuse",
    )
    assert top["attribution"] == "Made-up places for tests"
    assert top["override"] is None and top["score"] == top["computed_score"]

    madrid = lines(atalaya(db, "leads", "list", "--json", "--province", "madrid").stdout)
    assert [lead["id"] for lead in madrid] == [1]
    coded = lines(atalaya(db, "leads", "list", "--json", "--province", "41").stdout)
    assert [lead["id"] for lead in coded] == [11]
    late = lines(atalaya(db, "leads", "list", "--json", "--since", "2026-10-20").stdout)
    assert [lead["id"] for lead in late] == [11]
    early = lines(atalaya(db, "leads", "list", "--json", "--until", "2026-10-05").stdout)
    assert [lead["id"] for lead in early] == [1]
    strong = atalaya(db, "leads", "list", "--json", "--min-score", str(top["score"]))
    assert [lead["id"] for lead in lines(strong.stdout)] == [1]

    table = atalaya(db, "leads", "list")
    assert table.returncode == 0, table.stderr
    assert "Madrid" in table.stdout and "Example AS64500" in table.stdout
    assert "Made-up places for tests" in table.stderr
    assert "3 leads" in table.stderr and "overridden" not in table.stderr

    shown = atalaya(db, "leads", "show", "1", "--json")
    detail = json.loads(shown.stdout)
    assert {f["name"] for f in detail["factors"]} >= {"known_files", "recency", "flag_vpn"}
    assert [k["reason"] for k in detail["links"]] == ["collection", "peer_id"]
    assert len(detail["presences"]) == 2
    text = atalaya(db, "leads", "show", "1")
    assert "verified_downloads" in text.stdout and "peer_id" in text.stdout

    done = atalaya(
        db,
        "leads",
        "override",
        "11",
        "--score",
        "95",
        "--reason",
        "same user as case 2026/17",
        "--analyst",
        "agent-7",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    override = json.loads(done.stdout)
    assert (override["score"], override["analyst"]) == (95.0, "agent-7")
    relisted = lines(atalaya(db, "leads", "list", "--json").stdout)
    assert relisted[0]["id"] == 11 and relisted[0]["score"] == 95.0
    assert relisted[0]["computed_score"] == override["computed_score"]
    assert relisted[0]["override"]["reason"] == "same user as case 2026/17"
    retable = atalaya(db, "leads", "list")
    assert "95.0*" in retable.stdout and "* score overridden by an analyst" in retable.stderr

    geo = tmp_path / "leads.geojson"
    exported = atalaya(db, "leads", "export", "--format", "geojson", "--out", str(geo))
    assert exported.returncode == 0, exported.stderr
    collection = json.loads(geo.read_text())
    assert collection["type"] == "FeatureCollection"
    assert collection["attribution"] == ["Made-up places for tests"]
    features = {f["id"]: f for f in collection["features"]}
    assert features[1]["geometry"] == {"type": "Point", "coordinates": [-3.70, 40.42]}
    assert features[12]["geometry"] is None
    assert features[11]["properties"]["score"] == 95.0
    assert {f["name"] for f in features[1]["properties"]["factors"]} >= {"rare_items"}

    jsonl = atalaya(db, "leads", "export", "--format", "jsonl", "--province", "28")
    assert [r["id"] for r in lines(jsonl.stdout)] == [1]
    table_csv = atalaya(db, "leads", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(table_csv.stdout)))
    assert [r["id"] for r in rows] == ["11", "1", "12"]
    assert rows[0]["override_reason"] == "same user as case 2026/17"
    assert float(rows[1]["factor_verified_downloads"]) > 0

    # The override and every export are in the audit log, and the chain holds.
    engine = create_store_engine(db)
    with engine.connect() as conn:
        logged = conn.execute(
            select(audit_record.c.action, audit_record.c.object_id, audit_record.c.details)
            .where(audit_record.c.action.in_(["change", "export"]))
            .order_by(audit_record.c.seq)
        ).all()
    assert [(a, o) for a, o, _ in logged] == [
        ("change", "11"),
        ("export", None),
        ("export", None),
        ("export", None),
    ]
    assert logged[0].details["override"]["reason"] == "same user as case 2026/17"
    assert [d["format"] for _, _, d in logged[1:]] == ["geojson", "jsonl", "csv"]
    assert logged[2].details["filters"]["province"] == "28"
    assert logged[1].details["leads"] == 3 and logged[1].details["via"] == "cli"
    assert verify(engine).ok
    engine.dispose()


def test_incremental_build_and_errors(db: str, tmp_path: Path) -> None:
    assert atalaya(db, "leads", "build").returncode == 0
    again = atalaya(db, "leads", "build")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("incremental build: 0 sightings read")

    config = tmp_path / "leads.toml"
    config.write_text("[grouping]\nwindow_days = 2\n")
    changed = atalaya(db, "leads", "build", "--config", str(config))
    assert changed.returncode == 2
    assert "--rebuild" in changed.stderr and "Traceback" not in changed.stderr
    rebuilt = atalaya(db, "leads", "build", "--rebuild", "--config", str(config), "--json")
    assert json.loads(rebuilt.stdout)["reason"] == "asked (--rebuild)"

    missing = atalaya(db, "leads", "override", "999", "--score", "1", "--reason", "x")
    assert missing.returncode == 2 and "no lead 999" in missing.stderr
    blank = atalaya(db, "leads", "override", "1", "--score", "1", "--reason", "  ")
    assert blank.returncode == 2 and "--reason" in blank.stderr
    bad_date = atalaya(db, "leads", "list", "--since", "yesterday")
    assert bad_date.returncode == 2 and "--since" in bad_date.stderr
    bad_file = atalaya(db, "leads", "build", "--config", str(tmp_path / "none.toml"))
    assert bad_file.returncode == 2 and "cannot read" in bad_file.stderr
