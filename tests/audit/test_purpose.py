"""Purposes of reads and recipients of disclosures (LED art. 25): parsing, the CLI's refusal,
and the records that carry them."""

from __future__ import annotations

import contextvars
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from atalaya.audit import log_event, verify
from atalaya.audit.log import AuditQuery, read_records
from atalaya.audit.purpose import (
    PURPOSE_ENV,
    PurposeError,
    check_recipient,
    current_purpose,
    parse_purpose,
    purpose_case,
    purpose_details,
    required_purpose,
    use_purpose,
)
from tests.support.cli import run_atalaya


def test_a_purpose_is_triage_or_a_case() -> None:
    assert parse_purpose("triage") == "triage"
    assert parse_purpose(" Case:12 ") == "case:12"
    assert purpose_case("case:12") == 12 and purpose_case("triage") is None
    for bad in ("", "case:", "case:0", "case:-1", "case:12x", "case:99999999999", "curiosity"):
        with pytest.raises(PurposeError, match="is not 'triage' or 'case:N'"):
            parse_purpose(bad)


@given(st.text(max_size=60))
def test_any_text_is_a_purpose_or_a_typed_error(text: str) -> None:
    try:
        value = parse_purpose(text)
    except PurposeError:
        return
    assert value == "triage" or purpose_case(value) is not None


def test_without_a_purpose_the_one_line_says_what_to_pass() -> None:
    with pytest.raises(PurposeError) as missing:
        required_purpose(None, environ={})
    assert str(missing.value) == (
        "reading personal data needs a purpose: pass --purpose case:N (the case it is for) "
        f"or --purpose triage (or set {PURPOSE_ENV})"
    )
    assert required_purpose(None, environ={PURPOSE_ENV: "case:4"}) == "case:4"
    assert required_purpose("triage", environ={PURPOSE_ENV: "case:4"}) == "triage"


def test_a_disclosure_names_one_line_of_recipient() -> None:
    assert purpose_details("case:3", " Juzgado de Instrucción n.º 4 ") == {
        "purpose": "case:3",
        "recipient": "Juzgado de Instrucción n.º 4",
    }
    for bad in ("", "  ", "a\nb", "x" * 201):
        with pytest.raises(PurposeError):
            check_recipient(bad)
    assert check_recipient(None, required=False) is None


def test_records_made_under_a_declared_purpose_carry_it(engine: Engine) -> None:
    def in_context() -> None:
        use_purpose("case:7")
        log_event(engine, "view", object_type="lead", object_id=1)
        log_event(engine, "view", object_type="lead", object_id=2, details={"purpose": "triage"})

    contextvars.copy_context().run(in_context)
    assert current_purpose() is None  # it stayed in that context
    log_event(engine, "view", object_type="lead", object_id=3)
    with engine.connect() as conn:
        details = [e.fields.details for e in read_records(conn, AuditQuery(action="view"))]
    assert details == [{"purpose": "case:7"}, {"purpose": "triage"}, {}]
    assert verify(engine).ok


@pytest.mark.parametrize(
    "args",
    [
        ("leads", "list"),
        ("leads", "show", "1"),
        ("leads", "export", "--recipient", "court"),
        ("sightings", "export", "--recipient", "court"),
        ("enrich", "referrals", "--country", "PT"),
        ("evidence", "proof", "1"),
    ],
)
def test_cli_reads_without_a_purpose_are_refused_before_reading(
    db_url: str, engine: Engine, args: tuple[str, ...]
) -> None:
    env = {"ATALAYA_DATABASE_URL": db_url, PURPOSE_ENV: None, "ATALAYA_RECIPIENT": None}
    done = run_atalaya(*args, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "error: reading personal data needs a purpose: pass --purpose case:N (the case it is "
        f"for) or --purpose triage (or set {PURPOSE_ENV})"
    )
    with engine.connect() as conn:
        assert read_records(conn) == []


def test_cli_exports_without_a_recipient_are_refused(db_url: str) -> None:
    env = {"ATALAYA_DATABASE_URL": db_url, PURPOSE_ENV: None, "ATALAYA_RECIPIENT": None}
    done = run_atalaya("sightings", "export", "--purpose", "triage", env=env)
    assert done.returncode == 2
    assert "a disclosure needs its recipient: pass --recipient" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("leads", "list"),
        ("sightings", "export", "--recipient", "court"),
        ("enrich", "referrals", "--country", "PT"),
        ("evidence", "proof", "1"),
    ],
)
def test_cli_reads_for_a_case_that_does_not_exist_are_refused(
    db_url: str, engine: Engine, args: tuple[str, ...]
) -> None:
    env = {"ATALAYA_DATABASE_URL": db_url, PURPOSE_ENV: "case:3", "ATALAYA_RECIPIENT": None}
    done = run_atalaya(*args, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (
        "error: the purpose names case 3, which does not exist: see 'atalaya cases list'"
    )
    with engine.connect() as conn:
        assert read_records(conn) == []


def test_cli_reads_and_exports_record_purpose_and_recipient(db_url: str, engine: Engine) -> None:
    env = {"ATALAYA_DATABASE_URL": db_url, PURPOSE_ENV: None, "ATALAYA_RECIPIENT": None}
    assert run_atalaya("leads", "list", "--purpose", "Triage", env=env).returncode == 0
    done = run_atalaya(
        "sightings", "export", "--purpose", "triage", "--recipient", "Juzgado n.º 4", env=env
    )
    assert done.returncode == 0, done.stderr
    env[PURPOSE_ENV] = "triage"
    assert (
        run_atalaya(
            "leads", "export", "--format", "jsonl", "--recipient", "Unit B", env=env
        ).returncode
        == 0
    )
    with engine.connect() as conn:
        records = [
            (e.fields.action, e.fields.object_type, e.fields.details) for e in read_records(conn)
        ]
    assert [(a, t, d["purpose"], d.get("recipient")) for a, t, d in records] == [
        ("search", "leads", "triage", None),
        ("export", "sightings", "triage", "Juzgado n.º 4"),
        ("export", "leads", "triage", "Unit B"),
    ]
    assert json.loads(json.dumps(records[1][2]))["sightings"] == 0
