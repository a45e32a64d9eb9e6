"""`run_retention`: purges with and without a hold, dry runs, the audit trail, the edges."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from atalaya.audit import verify
from atalaya.audit.log import AuditQuery, read_records
from atalaya.cases.records import CaseNotFoundError, get_case, list_cases, move_case, open_case
from atalaya.cases.retention_rules import (
    RetentionRules,
    RetentionRulesError,
    place_hold,
    release_hold,
    set_rules,
)
from atalaya.cases.retention_run import plan, run_retention
from atalaya.cases.states import State
from atalaya.store.tables import (
    audit_head,
    case_event,
    case_file,
    case_sighting,
    lead,
    lead_claim,
    lead_state,
    metadata,
    proof_transcript,
    retention_block,
    retention_permit,
    sighting,
)
from tests.cases.helpers import user, world
from tests.leads.helpers import NOW, T0, item, write
from tests.leads.helpers import sighting as s

# Sightings of the world are on 2026-10-01..03; NOW is 2026-11-20.
RULES = RetentionRules(
    observation_erase_days=30, lead_review_days=10, case_block_days=30, case_erase_days=60
)


def _rules(engine: Engine, rules: RetentionRules = RULES) -> None:
    set_rules(engine, rules, reason="unit policy", now=T0)


def _ids(engine: Engine, ip: str | None = None) -> list[int]:
    query = select(sighting.c.id).order_by(sighting.c.id)
    if ip is not None:
        query = query.where(sighting.c.ip == ip)
    with engine.connect() as conn:
        return list(conn.scalars(query))


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _proof(engine: Engine, sighting_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(proof_transcript).values(
                sighting_id=sighting_id, version=1, body=b"{}", sha256="0" * 64
            )
        )


def _erasures(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            {"object_type": e.fields.object_type, "object_id": e.fields.object_id}
            | e.fields.details
            for e in read_records(conn, AuditQuery(action="retention_erase"))
        ]


def test_without_a_hold_old_sightings_their_proofs_and_leads_are_erased(engine: Engine) -> None:
    world(engine)
    _rules(engine)
    _proof(engine, 2)
    all_ids = _ids(engine)
    assert len(all_ids) == 8 and _count(engine, lead) == 3

    done = run_retention(engine, NOW)

    assert done.sightings_to_erase == all_ids
    assert (_ids(engine), _count(engine, lead), _count(engine, proof_transcript)) == ([], 0, 0)
    assert _count(engine, retention_permit) == 0
    with engine.connect() as conn:
        # The next lead build regroups every remaining sighting.
        assert (
            conn.scalar(select(lead_state.c.value).where(lead_state.c.key == "last_sighting_id"))
            is None
        )
    (erasure,) = _erasures(engine)
    assert erasure["object_type"] == "sighting"
    assert erasure["rule"] == "observations.erase_after_days"
    assert (erasure["rule_version"], erasure["days"], erasure["count"]) == (1, 30, 8)
    assert erasure["sighting_ids"] == f"{all_ids[0]}-{all_ids[-1]}"
    assert (erasure["proof_transcripts"], erasure["leads"]) == (1, 3)
    with engine.connect() as conn:
        (summary,) = read_records(conn, AuditQuery(action="retention_run"))
    assert summary.fields.details["sightings_erased"] == 8
    assert verify(engine).ok


def test_a_hold_on_a_lead_keeps_its_sightings_until_released(engine: Engine) -> None:
    w = world(engine)
    _rules(engine)
    place_hold(engine, f"lead:{w.other_madrid}", reason="asked by the prosecutor", now=NOW)
    kept = _ids(engine, "10.1.0.2")

    done = run_retention(engine, NOW)

    assert done.sightings_held == len(kept) == 3
    assert _ids(engine) == kept
    with engine.connect() as conn:
        assert list(conn.scalars(select(lead.c.id))) == [w.other_madrid]
    assert [e["count"] for e in _erasures(engine)] == [5]

    release_hold(engine, f"lead:{w.other_madrid}", reason="proceedings closed", now=NOW)
    again = run_retention(engine, NOW + timedelta(days=1))
    assert (again.sightings_to_erase, again.sightings_held) == (kept, 0)
    assert _ids(engine) == []
    assert [e["count"] for e in _erasures(engine)] == [5, 3]
    assert verify(engine).ok


def _closed_case(engine: Engine) -> tuple[int, int]:
    w = world(engine)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        case = open_case(conn, ana, w.madrid, NOW, reason="three files")
        move_case(conn, ana, case.id, State.ARCHIVED, "no prospects", NOW + timedelta(hours=1))
    return case.id, w.madrid


def test_a_closed_case_is_blocked_then_erased_and_a_hold_stops_both(engine: Engine) -> None:
    case_id, lead_id = _closed_case(engine)
    _rules(engine)
    pinned = _ids(engine, "10.1.0.1")
    closed = NOW + timedelta(hours=1)

    # Ten days on: the case's lead and pins are kept, the other leads' sightings go.
    run_retention(engine, closed + timedelta(days=10))
    assert _ids(engine) == pinned
    ana = user(engine, "ana")
    with engine.connect() as conn:
        assert get_case(conn, ana, case_id).id == case_id

    # Exactly 30 days after closing: not yet older than 30 days.
    assert run_retention(engine, closed + timedelta(days=30)).cases_to_block == []
    done = run_retention(engine, closed + timedelta(days=30, microseconds=1))
    assert done.cases_to_block == [case_id]
    with engine.connect() as conn:
        assert conn.scalar(select(retention_block.c.rule_version)) == 1
        assert list_cases(conn, ana) == []
        with pytest.raises(CaseNotFoundError):
            get_case(conn, ana, case_id)
        (blocked,) = read_records(conn, AuditQuery(action="retention_block"))
    assert (blocked.fields.details["count"], blocked.fields.details["case_ids"]) == (
        1,
        str(case_id),
    )
    assert run_retention(engine, closed + timedelta(days=31)).cases_to_block == []

    # A hold on the case stops the erasure.
    place_hold(engine, f"case:{case_id}", reason="appeal", now=closed + timedelta(days=50))
    held = run_retention(engine, closed + timedelta(days=61))
    assert (held.cases_to_erase, held.cases_held, held.sightings_held) == ([], [case_id], 3)
    assert _ids(engine) == pinned and _count(engine, case_file) == 1

    release_hold(
        engine, f"case:{case_id}", reason="appeal decided", now=closed + timedelta(days=62)
    )
    erased = run_retention(engine, closed + timedelta(days=62))
    assert erased.cases_to_erase == [case_id]
    assert erased.claims_released == [(1, lead_id)]
    # The case, its events and pins, its claim, then its sightings: all gone.
    for table in (case_file, case_event, case_sighting, retention_block, lead_claim):
        assert _count(engine, table) == 0, table.name
    assert _ids(engine) == []
    by_type = {e["object_type"]: e for e in _erasures(engine)}
    assert by_type["case"]["object_id"] == str(case_id)
    assert (by_type["case"]["pinned_sightings"], by_type["case"]["events"]) == (3, 2)
    assert by_type["case"]["rule"] == "cases.erase_after_days"
    assert verify(engine).ok


def test_a_hold_on_the_lead_of_a_closed_case_also_keeps_the_case(engine: Engine) -> None:
    case_id, lead_id = _closed_case(engine)
    _rules(engine)
    place_hold(engine, f"lead:{lead_id}", reason="related inquiry", now=NOW)
    done = run_retention(engine, NOW + timedelta(days=100))
    assert (done.cases_to_erase, done.cases_to_block, done.cases_held) == ([], [], [case_id])
    assert done.sightings_held == 3
    assert _ids(engine) == _ids(engine, "10.1.0.1") != []


def _snapshot(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        counts = {
            t.name: conn.scalar(select(func.count()).select_from(t)) for t in metadata.sorted_tables
        }
        head = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    return {"counts": counts, "head": tuple(head)}


def test_a_dry_run_writes_nothing_and_plans_what_the_run_does(engine: Engine) -> None:
    case_id, _lead_id = _closed_case(engine)
    _rules(engine)
    _proof(engine, 1)
    at = NOW + timedelta(days=70)
    before = _snapshot(engine)

    dry = run_retention(engine, at, dry_run=True)

    assert _snapshot(engine) == before
    assert dry.cases_to_erase == [case_id] and len(dry.sightings_to_erase) == 8
    real = run_retention(engine, at)
    assert real == dry
    assert _snapshot(engine) != before


def test_leads_nobody_acted_on_come_up_for_review_before_their_sightings_go(
    engine: Engine,
) -> None:
    w = world(engine)
    rules = RetentionRules(90, 10, 30, 60)
    _rules(engine, rules)
    ana = user(engine, "ana")
    with engine.begin() as conn:
        open_case(conn, ana, w.madrid, NOW)
    done = run_retention(engine, NOW)
    assert done.leads_for_review == [w.other_madrid, w.sevilla]
    assert done.sightings_to_erase == []
    with engine.connect() as conn:
        (review,) = read_records(conn, AuditQuery(action="retention_review"))
    assert review.fields.details["lead_ids"] == f"{w.other_madrid},{w.sevilla}"
    assert review.fields.details["rule_version"] == 1


@pytest.mark.parametrize(
    "zone", [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
def test_the_observation_limit_is_exact_to_the_microsecond_in_any_zone_across_a_leap_day(
    engine: Engine, zone: timezone
) -> None:
    _rules(engine, RetentionRules(365, 30, 30, 60))
    leap = datetime(2028, 2, 29, 23, 30, tzinfo=UTC)
    write(engine, [replace(s("10.9.0.1", item(1), 0), seen_at=leap)])
    limit = datetime(2029, 2, 28, 23, 30, tzinfo=UTC)  # 365 days of 24 h after it
    with engine.connect() as conn:
        assert plan(conn, limit.astimezone(zone)).sightings_to_erase == []
        assert (
            plan(conn, (limit - timedelta(microseconds=1)).astimezone(zone)).sightings_to_erase
            == []
        )
        assert (
            len(plan(conn, (limit + timedelta(microseconds=1)).astimezone(zone)).sightings_to_erase)
            == 1
        )
    run_retention(engine, (limit + timedelta(microseconds=1)).astimezone(zone))
    assert _ids(engine) == []


def test_without_rules_a_run_says_what_to_do(engine: Engine) -> None:
    with pytest.raises(RetentionRulesError, match="no retention rules are set"):
        run_retention(engine, NOW, dry_run=True)


def test_outside_a_run_pins_events_and_proofs_still_cannot_be_deleted(engine: Engine) -> None:
    case_id, _lead_id = _closed_case(engine)
    _proof(engine, 1)
    for statement in (
        "DELETE FROM case_sighting",
        "DELETE FROM case_event",
        "DELETE FROM proof_transcript",
    ):
        with pytest.raises(DBAPIError, match="only a retention run"), engine.begin() as conn:
            conn.execute(text(statement))
    for statement in (
        "UPDATE case_sighting SET case_id = case_id",
        "UPDATE case_event SET text = 'x'",
        "UPDATE proof_transcript SET version = 2",
    ):
        with pytest.raises(DBAPIError, match="cannot be changed"), engine.begin() as conn:
            conn.execute(text(statement))
    # A permit for another case lets nothing through either.
    with pytest.raises(DBAPIError, match="only a retention run"), engine.begin() as conn:
        conn.execute(insert(retention_permit).values(scope="case", object_id=case_id + 1))
        conn.execute(text("DELETE FROM case_event"))
    assert _count(engine, case_event) == 2 and _count(engine, proof_transcript) == 1
