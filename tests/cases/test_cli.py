"""`atalaya cases …` and `atalaya deadlines` run as an operator would, every command audited."""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from atalaya.store.tables import audit_record
from tests.cases.helpers import world
from tests.support.cli import run_atalaya


def _run(db_url: str, *args: str) -> tuple[int, str, str]:
    done = run_atalaya(*args, env={"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"})
    return done.returncode, done.stdout, done.stderr


def _audit(engine: Engine) -> list[tuple[str | None, str, str | None, str | None, str]]:
    with engine.connect() as conn:
        return [
            (r.username, r.action, r.object_type, r.object_id, r.outcome)
            for r in conn.execute(
                select(audit_record).where(
                    audit_record.c.action.like("case%") | (audit_record.c.action == "deadlines")
                )
            )
        ]


def test_a_case_from_opening_to_the_court_on_the_command_line(engine: Engine, db_url: str) -> None:
    w = world(engine)
    code, out, err = _run(db_url, "cases", "open", str(w.madrid), "--as", "ana", "--reason", "r1")
    assert (code, err) == (0, "")
    assert out == "case 1 opened on lead 1: 3 sightings pinned, state triage, assigned to ana\n"

    code, out, _ = _run(db_url, "cases", "move", "1", "request-drafted", "--as", "ana",
                        "--reason", "draft ready")  # fmt: skip
    assert (code, out) == (0, "case 1: now request_drafted\n")
    assert _run(db_url, "cases", "note", "1", "phoned the court", "--as", "ana")[0] == 0
    assert _run(db_url, "cases", "assign", "1", "luis", "--as", "ana")[0] == 0

    code, out, _ = _run(db_url, "cases", "show", "1", "--as", "luis", "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["lead_id"], shown["state"], shown["assignee"]) == (1, "request_drafted", "luis")
    assert len(shown["pinned_sightings"]) == 3
    assert shown["next_states"] == ["sent_to_court", "archived", "referred"]
    assert [e["kind"] for e in shown["events"]] == ["open", "move", "note", "assign"]
    assert shown["retention"]["days_left"] is not None or shown["retention"]["all_expired"]

    code, out, _ = _run(db_url, "cases", "show", "1", "--as", "ana")
    assert code == 0
    assert "case 1: lead 1, Madrid, state request_drafted (Solicitud redactada)" in out
    assert "triage → request_drafted: draft ready" in out
    assert "retention: " in out

    code, out, err = _run(db_url, "cases", "list", "--as", "ana", "--json")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [1]

    # Out of order: one error, exit 2, nothing changed.
    code, _, err = _run(db_url, "cases", "move", "1", "charged", "--as", "ana", "--reason", "x")
    assert code == 2
    assert "a case cannot go from request_drafted to charged" in err
    assert (
        json.loads(_run(db_url, "cases", "show", "1", "--as", "ana", "--json")[1])["state"]
        == "request_drafted"
    )

    audit = _audit(engine)
    assert audit == [
        ("ana", "case_open", "lead", "1", "ok"),
        ("ana", "case_move", "case", "1", "ok"),
        ("ana", "case_note", "case", "1", "ok"),
        ("ana", "case_assign", "case", "1", "ok"),
        ("luis", "case_view", "case", "1", "ok"),
        ("ana", "case_view", "case", "1", "ok"),
        ("ana", "case_list", "cases", None, "ok"),
        ("ana", "case_move", "case", "1", "denied"),
        ("ana", "case_view", "case", "1", "ok"),
    ]


def test_another_unit_gets_no_such_case_and_the_attempt_is_audited(
    engine: Engine, db_url: str
) -> None:
    w = world(engine)
    assert _run(db_url, "cases", "open", str(w.madrid), "--as", "ana")[0] == 0
    foreign = _run(db_url, "cases", "show", "1", "--as", "sara")
    missing = _run(db_url, "cases", "show", "99", "--as", "sara")
    assert foreign[0] == missing[0] == 2
    assert foreign[2].replace(" 1:", " N:") == missing[2].replace(" 99:", " N:")
    assert "no case 1: 'atalaya cases list' shows your unit's cases" in foreign[2]
    code, _, err = _run(db_url, "cases", "open", str(w.madrid), "--as", "sara")
    assert code == 2 and f"no lead {w.madrid}:" in err
    code, out, err = _run(db_url, "cases", "list", "--as", "sara")
    assert code == 0 and "0 cases" in err
    assert ("sara", "case_view", "case", "1", "denied") in _audit(engine)
    assert ("sara", "case_open", "lead", "1", "denied") in _audit(engine)
    # Opening several leads is all or nothing.
    code, _, err = _run(db_url, "cases", "open", str(w.other_madrid), str(w.sevilla), "--as", "ana")
    assert code == 2 and f"no lead {w.sevilla}:" in err
    code, out, _ = _run(db_url, "cases", "list", "--as", "ana", "--json")
    assert [json.loads(line)["lead_id"] for line in out.splitlines()] == [w.madrid]


def test_a_read_is_filed_only_under_a_case_of_the_users_unit(engine: Engine, db_url: str) -> None:
    w = world(engine)
    assert _run(db_url, "cases", "open", str(w.madrid), "--as", "ana")[0] == 0
    code, out, err = _run(db_url, "cases", "list", "--as", "ana", "--purpose", "case:1")
    assert (code, err.strip()) == (0, "1 cases") and "triage" in out
    for args in (("cases", "list"), ("deadlines",)):
        code, out, err = _run(db_url, *args, "--as", "sara", "--purpose", "case:1")
        assert (code, out) == (2, "")
        assert err.strip() == "error: the purpose names case 1, which your unit does not hold"
    code, _, err = _run(db_url, "cases", "list", "--as", "sara", "--purpose", "case:2")
    assert code == 2 and "names case 2, which does not exist" in err
    with engine.connect() as conn:
        refused = conn.execute(
            select(audit_record.c.username, audit_record.c.object_id, audit_record.c.outcome)
            .where(audit_record.c.action == "view")
            .order_by(audit_record.c.seq)
        ).all()
    assert [tuple(r) for r in refused] == [("sara", "1", "denied"), ("sara", "1", "denied")]
    # Nothing was listed for sara under either purpose.
    assert not any(u == "sara" and a == "case_list" for u, a, *_ in _audit(engine))


def test_deadlines_and_the_lead_page_show_days_left(engine: Engine, db_url: str) -> None:
    w = world(engine)
    # Lead 1 expires at 2027-09-30 00:00 UTC, lead 4 a day later, Sevilla's 2027-10-03.
    code, out, err = _run(
        db_url, "deadlines", "--as", "ana", "--within", "10", "--at", "2027-09-20", "--json"
    )
    assert code == 0 and "1 leads" in err
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["lead_id"], row["days_left"], row["expires_at"]) == (
        w.madrid,
        10,
        "2027-09-30T00:00:00+00:00",
    )
    code, out, err = _run(
        db_url, "deadlines", "--as", "sara", "--within", "30", "--at", "2027-09-20"
    )
    assert code == 0
    rows = [[cell.strip() for cell in line.split("│")] for line in out.splitlines()[2:]]
    assert [row[:3] for row in rows] == [["13", "2027-10-03 00:00", str(w.sevilla)]]
    assert "expiring within 30 days" in err
    code, out, _ = _run(db_url, "leads", "show", str(w.madrid), "--json")
    assert code == 0
    retention = json.loads(out)["retention"]
    assert retention["last_expiry"] == "2027-09-30T00:00:00+00:00"
    code, out, _ = _run(db_url, "leads", "show", str(w.madrid))
    assert "retention: " in out
    assert ("ana", "deadlines", "leads", None, "ok") in _audit(engine)
