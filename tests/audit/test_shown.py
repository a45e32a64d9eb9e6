"""Which leads a record showed, written compactly and read back (atalaya.audit.shown)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from atalaya.audit import Action, AuditQuery, log_event, read_records
from atalaya.audit import log as audit_log
from atalaya.audit.shown import (
    MAX_PLAIN,
    PACKED_KEY,
    SHOWN_KEY,
    id_ranges,
    parse_id_ranges,
    shown_details,
    shown_ranges,
    shows,
)

lead_ids = st.sets(st.integers(1, 2**63 - 1), max_size=200) | st.sets(
    st.integers(1, 500), max_size=200
)


def test_runs_become_ranges() -> None:
    assert id_ranges([9, 1, 2, 3, 7, 10, 3]) == "1-3,7,9-10"
    assert id_ranges([]) == ""
    assert shown_details([5]) == {SHOWN_KEY: "5"}
    assert parse_id_ranges("1-3,7,9-10") == [(1, 3), (7, 7), (9, 10)]


@given(lead_ids)
def test_every_id_shown_and_no_other(ids: set[int]) -> None:
    details = shown_details(ids)
    ranges = shown_ranges(details)
    assert ranges is not None
    # Ranges cover runs of the set only: expanding them costs len(ids).
    assert {i for low, high in ranges for i in range(low, high + 1)} == ids
    for probe in [*list(ids)[:20], 0, 2**63]:
        assert shows(details, probe) == (probe in ids)


def test_a_wide_scattered_export_is_packed_and_still_answers() -> None:
    ids = set(random.Random(7).sample(range(1, 10**9), 20_000))
    details = shown_details(ids)
    assert set(details) == {PACKED_KEY} and len(details[PACKED_KEY]) < 200_000
    assert len(id_ranges(ids)) > MAX_PLAIN
    probe = sorted(ids)[12_345]
    assert shows(details, probe) and not shows(details, probe + 1 if probe + 1 not in ids else 0)


@given(st.dictionaries(st.sampled_from([SHOWN_KEY, PACKED_KEY, "other"]), st.text(max_size=50)))
def test_bad_details_answer_false_and_never_raise(details: dict[str, str]) -> None:
    assert shows(details, 1) in (True, False)


def test_bad_ranges_are_refused() -> None:
    for text in ("1-", "-1", "3-1", "1,,2", "a", "1 2", "²"):
        assert shown_ranges({SHOWN_KEY: text}) is None
    assert shown_ranges({PACKED_KEY: "not base64!"}) is None
    assert shown_ranges({}) is None


@pytest.mark.parametrize("newest_first", [False, True])
def test_who_saw_a_lead_reads_the_log_page_by_page(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, newest_first: bool
) -> None:
    monkeypatch.setattr(audit_log, "READ_BATCH", 2)
    at = datetime(2026, 11, 23, tzinfo=UTC)
    for n in range(7):
        shown = [5] if n % 2 == 0 else [6]
        log_event(engine, Action.SEARCH, object_type="leads", details=shown_details(shown), at=at)
    log_event(engine, Action.VIEW, object_type="lead", object_id=5, at=at)
    log_event(engine, Action.LOGIN, details={SHOWN_KEY: "5"}, at=at)  # not an action that shows
    with engine.connect() as conn:
        seqs = [
            e.fields.seq
            for e in read_records(conn, AuditQuery(lead_id=5, newest_first=newest_first))
        ]
        first_two = read_records(conn, AuditQuery(lead_id=5, newest_first=newest_first, limit=2))
    assert seqs == ([8, 7, 5, 3, 1] if newest_first else [1, 3, 5, 7, 8])
    assert [e.fields.seq for e in first_two] == seqs[:2]
