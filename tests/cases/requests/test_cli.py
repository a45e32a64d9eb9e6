"""`atalaya requests …` and the preservation order's clock, as an operator runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from docx import Document
from sqlalchemy import Engine, func, select

from atalaya.store.tables import audit_record, case_document
from tests.cases.requests.documents import pdf_text
from tests.cases.requests.helpers import leads
from tests.support.cli import run_atalaya

SIGNING_UNSET: dict[str, str | None] = {
    name: None
    for name in (
        "ATALAYA_SIGN_P12",
        "ATALAYA_SIGN_PKCS11_LIB",
        "ATALAYA_REQUESTS_CONFIG",
        "ATALAYA_REQUESTS_TEMPLATES",
    )
}


def _run(db_url: str, *args: str, **env: str) -> tuple[int, str, str]:
    done = run_atalaya(
        *args, env={**SIGNING_UNSET, "ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200", **env}
    )
    return done.returncode, done.stdout, done.stderr


def _documents(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(case_document)) or 0)


def test_draft_a_case_show_it_and_write_it_out(engine: Engine, db_url: str, tmp_path: Path) -> None:
    lead_id = leads(engine).madrid
    assert _run(db_url, "cases", "open", str(lead_id), "--as", "ana")[0] == 0
    code, out, err = _run(
        db_url, "requests", "draft-case", "1", "--as", "ana", "--out", str(tmp_path / "out")
    )
    assert code == 0, err
    assert out.startswith("case 1: caso-1-solicitud-judicial-1.pdf (not signed, sha256 ")
    assert "now request_drafted" in out
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["caso-1-solicitud-judicial-1.pdf", "caso-1-solicitud-judicial-2.docx"]
    assert "51413" in pdf_text((tmp_path / "out" / written[0]).read_bytes(), tmp_path)
    Document(str(tmp_path / "out" / written[1]))  # python-docx opens it

    code, out, _ = _run(db_url, "requests", "show", "1", "--as", "ana", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["state"] == "request_drafted"
    assert [(d["kind"], d["format"], d["sightings"]) for d in shown["documents"]] == [
        ("judicial", "pdf", 3),
        ("judicial", "docx", 3),
    ]
    # Again: one clear error, nothing written, and the refusal audited.
    code, _, err = _run(db_url, "requests", "draft-case", "1", "--as", "ana")
    assert code == 2 and "a judicial request is drafted from triage only" in err
    assert _documents(engine) == 2
    with engine.connect() as conn:
        outcomes = [
            r.outcome
            for r in conn.execute(
                select(audit_record.c.outcome).where(audit_record.c.action == "case_request_draft")
            )
        ]
    assert outcomes == ["ok", "denied"]


def test_a_missing_court_names_what_is_missing(engine: Engine, db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "unit.toml"
    config.write_text('[officers]\nana = "TIP 1"\n', "utf-8")
    assert _run(db_url, "cases", "open", str(leads(engine).madrid), "--as", "ana")[0] == 0
    code, _, err = _run(
        db_url, "requests", "draft-case", "1", "--as", "ana", ATALAYA_REQUESTS_CONFIG=str(config)
    )
    assert code == 2
    assert (
        f"no court configured for Madrid, Madrid (municipality 28079, province 28) in {config}"
        in (" ".join(err.split()))
    )
    assert _documents(engine) == 0


def test_preservation_90_days_one_extension_shown_in_deadlines(engine: Engine, db_url: str) -> None:
    assert _run(db_url, "cases", "open", str(leads(engine).cgnat), "--as", "ana")[0] == 0
    code, out, err = _run(db_url, "requests", "preserve", "1", "--as", "ana")
    assert code == 0, err
    first_until = out.rsplit("until ", 1)[1].strip()
    code, _, err = _run(db_url, "requests", "preserve", "1", "--as", "ana")
    assert code == 2 and "use --extend to extend it once" in err

    code, out, _ = _run(db_url, "deadlines", "--as", "ana", "--within", "120", "--json")
    due = [json.loads(line) for line in out.splitlines() if '"preservation"' in line]
    assert [(d["case_id"], d["until"][:10], d["extended"]) for d in due] == [
        (1, first_until, False)
    ]
    assert due[0]["days_left"] in (89, 90)

    code, out, err = _run(db_url, "requests", "preserve", "1", "--as", "ana", "--extend")
    assert code == 0, err
    code, _, err = _run(db_url, "requests", "preserve", "1", "--as", "ana", "--extend")
    assert code == 2 and "allows one extension only" in err
    code, out, _ = _run(db_url, "requests", "show", "1", "--as", "ana", "--json")
    kept = json.loads(out)["preservation"]
    assert kept["extended"] and kept["days_left"] in (179, 180)
    assert _documents(engine) == 4
    code, out, _ = _run(db_url, "deadlines", "--as", "ana", "--within", "200")
    assert "extended once, cannot be extended again" in out

    # The judicial request then cites the order.
    code, out, err = _run(db_url, "requests", "draft-case", "1", "--as", "ana")
    assert code == 0, err


def test_a_batch_files_requests_by_court_and_operator(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    out_dir = tmp_path / "lote"
    code, out, err = _run(
        db_url, "requests", "draft", "--province", "28", "--as", "ana", "--out", str(out_dir)
    )
    # Madrid holds four leads; the one seen over a year ago is not selected.
    assert code == 0, err
    assert "3 of 3 requests drafted" in out
    court = out_dir / "juzgado-de-instruccion-en-funciones-de-guardia-de-madrid-ejemplo"
    assert sorted(p.name for p in court.iterdir()) == [
        "example-fibra-s-a-ejemplo-inventado",
        "example-mobile-s-a-ejemplo-inventado",
    ]
    assert len(list((court / "example-fibra-s-a-ejemplo-inventado").glob("*.pdf"))) == 2
    with (out_dir / "indice.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["redactada"] * 3
    assert "Índice de solicitudes judiciales" in pdf_text(
        (out_dir / "indice.pdf").read_bytes(), tmp_path
    )
    assert _documents(engine) == 6
    # Again: every lead now has a case past triage, listed with the reason.
    code, out, err = _run(
        db_url, "requests", "draft", "--province", "28", "--as", "ana", "--out", str(out_dir)
    )
    assert code == 1 and "0 of 3 requests drafted" in out
    assert "is already request_drafted" in err
    assert _documents(engine) == 6
