"""`atalaya cases answer|step`, `cases show --identity` and `atalaya funnel`, run as an operator."""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import subscriber_identity
from tests.cases.helpers import world
from tests.support.cli import run_atalaya


def _run(db_url: str, *args: str) -> tuple[int, str, str]:
    done = run_atalaya(*args, env={"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"})
    return done.returncode, done.stdout, done.stderr


def _to_the_isp(db_url: str, lead_id: int) -> None:
    assert _run(db_url, "cases", "open", str(lead_id), "--as", "ana")[0] == 0
    for state in ("request_drafted", "sent_to_court", "authorised", "sent_to_isp"):
        code, _, err = _run(db_url, "cases", "move", "1", state, "--as", "ana", "--reason", "r")
        assert code == 0, err


ANSWER = (
    *("--name", "Abonado Ficticio", "--id-number", "00000000T", "--address", "Calle Falsa 0"),
    *("--addressing", "dinámica", "--reference", "R-1"),
)


def _answers(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(subscriber_identity)) or 0)


def test_answer_then_identity_only_with_a_purpose_and_a_case_role(
    engine: Engine, db_url: str
) -> None:
    w = world(engine)
    _to_the_isp(db_url, w.madrid)
    # Bad input: one clear error, nothing written.
    code, _, err = _run(db_url, "cases", "answer", "1", "--as", "ana", "--name", "X")
    assert code == 2 and "needs the id number, address" in err
    code, _, err = _run(db_url, "cases", "answer", "1", "--as", "ana", *ANSWER, "--addressing", "x")
    assert code == 2 and "unknown addressing 'x': use static or dynamic" in err
    code, _, err = _run(db_url, "cases", "answer", "1", "--as", "olga", *ANSWER)
    assert code == 2 and "may not change leads" in err
    assert _answers(engine) == 0

    code, out, err = _run(db_url, "cases", "answer", "1", "--as", "ana", *ANSWER)
    assert (code, err) == (0, "")
    assert out == "case 1: answer 1 recorded, now isp_answered\n"

    # The plain view names nobody; --identity needs a purpose.
    code, out, _ = _run(db_url, "cases", "show", "1", "--as", "luis")
    assert code == 0 and "answer" in out and "Ficticio" not in out
    code, _, err = _run(db_url, "cases", "show", "1", "--as", "luis", "--identity")
    assert code == 2 and "the purpose is required" in err
    code, out, _ = _run(db_url, "cases", "show", "1", "--as", "luis", "--identity",
                        "--purpose", "case:1")  # fmt: skip
    assert code == 0
    assert "name: Abonado Ficticio" in out and "data subject: abonado" in out
    assert "addressing: dynamic" in out and "10.1.0.1 port 6881" in out
    code, out, _ = _run(db_url, "cases", "show", "1", "--as", "ana", "--identity",
                        "--purpose", "case:1", "--json")  # fmt: skip
    shown = json.loads(out)["identity"]
    assert shown["identities"][0]["id_number"] == "00000000T"
    assert shown["traffic_total"] == 3
    for who in ("olga", "sara"):
        code, out, err = _run(db_url, "cases", "show", "1", "--as", who, "--identity",
                              "--purpose", "case:1")  # fmt: skip
        assert code == 2 and "Ficticio" not in out + err
    with engine.connect() as conn:
        combos = read_records(conn, AuditQuery(action="identity_combination"))
        answers = read_records(conn, AuditQuery(action="case_answer"))
    assert [(r.fields.username, r.fields.outcome) for r in combos] == [
        ("luis", "ok"),
        ("ana", "ok"),
        ("olga", "denied"),
        ("sara", "denied"),
    ]
    assert combos[0].fields.details["purpose"] == "case:1"
    # Refused by the store (missing fields, the auditor's role), then recorded.
    assert [r.fields.outcome for r in answers] == ["denied", "denied", "ok"]
    assert "Ficticio" not in repr([r.fields.details for r in combos + answers])


def test_steps_and_the_funnel_on_the_command_line(engine: Engine, db_url: str) -> None:
    w = world(engine)
    _to_the_isp(db_url, w.madrid)
    code, _, err = _run(db_url, "cases", "step", "1", "charges", "CP 189.1.b", "--as", "ana")
    assert code == 2 and "a charges is recorded on a case in isp_answered or search_done" in err
    assert _run(db_url, "cases", "answer", "1", "--as", "ana", *ANSWER)[0] == 0
    code, _, err = _run(db_url, "cases", "step", "1", "arrest", "x", "--as", "ana")
    assert code == 2 and "unknown step 'arrest'" in err
    code, out, err = _run(db_url, "cases", "step", "1", "charges", "CP 189.1.b", "--as", "ana",
                          "--on", "2026-11-19")  # fmt: skip
    assert (code, out) == (0, "case 1: charges recorded, now charged\n"), err

    since, until = "2026-09-28", "2027-01-01"
    code, out, err = _run(db_url, "funnel", "--as", "ana", "--since", since, "--until", until,
                          "--json")  # fmt: skip
    assert code == 0, err
    figures = json.loads(out)
    counts = {s["name"]: s["count"] for s in figures["steps"]}
    assert figures["unit"] == "Madrid"
    # The open above happened now, after `until`: only events dated in the
    # period count, so the case's own steps (dated now) are outside it too.
    assert counts["leads"] == 2 and counts["addresses"] == 2
    code, out, _ = _run(db_url, "funnel", "--as", "ana", "--unit", "all", "--csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["row", "name", "count", "base", "conversion", "median_days", "change",
                       "partial"]  # fmt: skip
    by_name = {r[1]: r for r in rows if r[0] == "step"}
    assert by_name["cases_opened"][2] == "1" and by_name["charged"][2] == "1"
    assert by_name["charged"][4] == "1"  # one charged of one answered
    code, out, _ = _run(db_url, "funnel", "--as", "ana", "--province", "41")
    assert code == 0 and "Addresses detected" in out and "province 41" in out
    code, _, err = _run(db_url, "funnel", "--as", "ana", "--unit", "Nowhere")
    assert code == 2 and "no unit named 'Nowhere'" in err
    code, _, err = _run(db_url, "funnel", "--as", "ana", "--since", "2027-01-01", "--until",
                        "2026-01-01")  # fmt: skip
    assert code == 2 and "--since must come before --until" in err
    code, _, err = _run(db_url, "funnel", "--as", "olga")
    assert code == 2 and "may not view leads" in err
