"""`atalaya retention …` as an operator runs it: rules, holds, a dry run, a run."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, func, select

from atalaya.audit.log import AuditQuery, read_records
from atalaya.store.tables import sighting
from tests.cases.helpers import world
from tests.support.cli import run_atalaya

RULES = """
[observations]
erase_after_days = 30
[leads]
review_after_days = 10
[cases]
block_after_days = 30
erase_after_days = 60
"""
AT = "2026-11-20T12:00:00+01:00"


def _run(db_url: str, *args: str) -> tuple[int, str, str]:
    done = run_atalaya(*args, env={"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "200"})
    return done.returncode, done.stdout, done.stderr


def _sightings(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(sighting)) or 0)


def test_rules_holds_and_runs_on_the_command_line(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    w = world(engine)
    assert _run(db_url, "retention", "run", "--dry-run")[2].strip() == (
        "error: no retention rules are set: 'atalaya retention rules set FILE --reason …' first"
    )
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    code, _, err = _run(db_url, "retention", "rules", "set", str(rules), "--reason", "policy")
    assert code == 0 and err.startswith("retention rules version 1 now in force")
    code, out, _ = _run(db_url, "retention", "rules", "show", "--json")
    shown = json.loads(out)
    assert (shown["version"], shown["rules"]["cases"]["erase_after_days"]) == (1, 60)
    assert shown["set_by"].startswith("cli")

    rules.write_text(RULES.replace("= 30\n[leads]", "= 0\n[leads]"))
    code, _, err = _run(db_url, "retention", "rules", "set", str(rules), "--reason", "typo")
    assert code == 2 and "from 1 to" in err

    code, _, err = _run(db_url, "retention", "hold", f"lead:{w.sevilla}", "--reason", "appeal")
    assert (code, err.strip()) == (0, f"lead:{w.sevilla} is under a legal hold (hold 1)")
    code, out, _ = _run(db_url, "retention", "holds", "--json")
    assert [h["target"] for h in json.loads(out)["holds"]] == [f"lead:{w.sevilla}"]

    code, out, _ = _run(db_url, "retention", "run", "--dry-run", "--json", "--now", AT)
    dry = json.loads(out)
    assert (code, dry["dry_run"], dry["sightings_erased"], dry["sightings_held"]) == (
        0,
        True,
        6,
        2,
    )
    assert _sightings(engine) == 8
    code, out, _ = _run(db_url, "retention", "run", "--now", AT)
    assert code == 0 and "6 sightings were erased" in out
    assert "kept by a legal hold: 0 cases, 2 sightings" in out
    assert _sightings(engine) == 2
    with engine.connect() as conn:
        (erase,) = read_records(conn, AuditQuery(action="retention_erase"))
    assert erase.fields.details["via"] == "cli" and erase.fields.details["count"] == 6

    code, _, err = _run(db_url, "retention", "release", f"lead:{w.sevilla}", "--reason", "done")
    assert (code, err.strip()) == (0, f"the hold on lead:{w.sevilla} is released")
    code, _, err = _run(db_url, "retention", "hold", "sighting:3", "--reason", "x")
    assert code == 2 and "is not case:N or lead:N" in err
