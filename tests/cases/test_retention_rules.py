"""Retention rules: the TOML they come in, their bounds, versions and legal holds."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from atalaya.audit import verify
from atalaya.audit.log import AuditQuery, read_records
from atalaya.cases.retention_rules import (
    MAX_DAYS,
    RetentionRules,
    RetentionRulesError,
    active_holds,
    current_rules,
    cutoff,
    parse_rules,
    parse_target,
    place_hold,
    release_hold,
    set_rules,
)
from atalaya.store.tables import retention_rules

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
GOOD = b"""
[observations]
erase_after_days = 90
[leads]
review_after_days = 30
[cases]
block_after_days = 365
erase_after_days = 1825
"""


def test_a_rules_file_reads_into_the_four_limits() -> None:
    assert parse_rules(GOOD) == RetentionRules(90, 30, 365, 1825)
    assert parse_rules(GOOD).as_dict()["cases"] == {
        "block_after_days": 365,
        "erase_after_days": 1825,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD.replace(b"= 90", b"= 0"), "from 1 to"),
        (GOOD.replace(b"= 90", b"= -3"), "from 1 to"),
        (GOOD.replace(b"= 90", b"= true"), "whole number"),
        (GOOD.replace(b"= 90", b"= 9.5"), "whole number"),
        (GOOD.replace(b"= 90", f"= {MAX_DAYS + 1}".encode()), "from 1 to"),
        (GOOD.replace(b"= 1825", b"= 364"), "not be shorter"),
        (GOOD.replace(b"= 30", b"= 90"), "review before"),
        (GOOD.replace(b"review_after_days", b"reveiw_after_days"), "unknown key leads.reveiw"),
        (GOOD + b"[extra]\nx = 1\n", "unknown section [extra]"),
        (GOOD.replace(b"[leads]\nreview_after_days = 30\n", b""), "[leads] section"),
        (GOOD.replace(b"erase_after_days = 90\n", b""), "observations.erase_after_days"),
        (b"[observations\n", "not valid TOML"),
        (b"\xff\xfe", "not valid TOML"),
        (b"#" * 70_000, "at most"),
    ],
)
def test_bad_rules_are_refused_with_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(RetentionRulesError, match=message.replace("[", r"\[")):
        parse_rules(data)


@given(st.binary(max_size=300))
def test_any_bytes_give_rules_or_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(RetentionRulesError):
        parse_rules(data)


def test_a_day_is_24_hours_of_utc_time_whatever_the_zone_and_across_a_leap_day() -> None:
    madrid_winter = timezone(timedelta(hours=1))
    same_instant = NOW.astimezone(madrid_winter)
    assert cutoff(same_instant, 30) == cutoff(NOW, 30) == NOW - timedelta(days=30)
    assert cutoff(same_instant, 30).tzinfo == UTC
    # 2028 is a leap year: 365 days before 2029-02-28 is 2028-02-29, not 02-28.
    assert cutoff(datetime(2029, 2, 28, tzinfo=UTC), 365) == datetime(2028, 2, 29, tzinfo=UTC)
    assert cutoff(datetime(2028, 3, 1, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
    # A clock change does not move it: Madrid's last Sunday of October 2026.
    after_change = datetime(2026, 10, 26, 0, 30, tzinfo=UTC)
    assert cutoff(after_change, 1) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    with pytest.raises(RetentionRulesError, match="timezone-aware"):
        cutoff(datetime(2026, 12, 2, 12, 0), 30)


def test_targets_are_case_or_lead_with_an_id() -> None:
    assert parse_target("case:12") == ("case", 12)
    assert parse_target(" LEAD:7 ") == ("lead", 7)
    for bad in ("case:0", "case:", "12", "sighting:3", "case:-1", "lead:99999999999999999999"):
        with pytest.raises(RetentionRulesError, match="case:N or lead:N"):
            parse_target(bad)


def test_each_change_of_the_rules_is_a_new_audited_version(engine: Engine) -> None:
    first, new = set_rules(engine, parse_rules(GOOD), reason="unit policy 2026", now=NOW)
    assert (first.version, new) == (1, True)
    again, new = set_rules(engine, parse_rules(GOOD), reason="again", now=NOW)
    assert (again.version, new) == (1, False)
    changed = RetentionRules(60, 30, 365, 1825)
    second, new = set_rules(engine, changed, reason="DPO advice", now=NOW + timedelta(days=1))
    assert (second.version, new) == (2, True)
    with engine.connect() as conn:
        stored = current_rules(conn)
        assert stored is not None
        assert (stored.version, stored.rules, stored.reason) == (2, changed, "DPO advice")
        records = read_records(conn, AuditQuery(action="retention_rules"))
    assert [r.fields.details["version"] for r in records] == [1, 2]
    assert records[1].fields.details["previous_version"] == 1
    assert records[1].fields.details["rules"]["observations"] == {"erase_after_days": 60}
    assert records[1].fields.details["sha256"] == changed.digest()
    assert verify(engine).ok
    with pytest.raises(RetentionRulesError, match="reason"):
        set_rules(engine, RetentionRules(2, 1, 1, 1), reason="  ", now=NOW)


def test_rule_versions_cannot_be_edited_or_removed(engine: Engine) -> None:
    set_rules(engine, parse_rules(GOOD), reason="policy", now=NOW)
    for statement in (
        "UPDATE retention_rules SET reason = 'x'",
        "DELETE FROM retention_rules",
    ):
        with pytest.raises(DBAPIError, match="cannot change"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(retention_rules)) == 1


def test_holds_are_placed_once_released_once_and_audited(engine: Engine) -> None:
    hold = place_hold(engine, "case:3", reason="appeal pending", now=NOW)
    assert (hold.object_type, hold.object_id, hold.reason) == ("case", 3, "appeal pending")
    with pytest.raises(RetentionRulesError, match="already under a hold"):
        place_hold(engine, "case:3", reason="twice", now=NOW)
    place_hold(engine, "lead:3", reason="other proceedings", now=NOW)
    with engine.connect() as conn:
        assert [(h.object_type, h.object_id) for h in active_holds(conn)] == [
            ("case", 3),
            ("lead", 3),
        ]
    release_hold(engine, "case:3", reason="appeal decided", now=NOW + timedelta(days=2))
    with pytest.raises(RetentionRulesError, match="not under a hold"):
        release_hold(engine, "case:3", reason="again", now=NOW)
    with engine.connect() as conn:
        assert [(h.object_type, h.object_id) for h in active_holds(conn)] == [("lead", 3)]
        actions = [
            (r.fields.action, r.fields.object_type, r.fields.object_id, r.fields.details["reason"])
            for r in read_records(conn)
        ]
    assert actions == [
        ("retention_hold", "case", "3", "appeal pending"),
        ("retention_hold", "lead", "3", "other proceedings"),
        ("retention_release", "case", "3", "appeal decided"),
    ]
    # A released hold can be placed again.
    place_hold(engine, "case:3", reason="new appeal", now=NOW + timedelta(days=3))
