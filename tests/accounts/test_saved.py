"""Saved searches and "new since my last visit", on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from atalaya.accounts import AccountPolicy, add_unit, add_user
from atalaya.accounts.saved import (
    MAX_SAVED,
    VISIT_GAP,
    SavedSearchError,
    delete_search,
    save_search,
    saved_searches,
    visit,
)

T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
FAST = AccountPolicy(argon2_time_cost=1, argon2_memory_cost_kib=1024, argon2_parallelism=1)


def _users(engine: Engine) -> tuple[int, int]:
    with engine.begin() as conn:
        add_unit(conn, "Madrid", ["28"], "desk 1", T0)
        ana = add_user(conn, "ana", "Madrid", "analyst", "a long made-up password", T0, FAST)
        bea = add_user(conn, "bea", "Madrid", "analyst", "another made-up password", T0, FAST)
    return ana.id, bea.id


def test_saved_searches_are_the_users_own(engine: Engine) -> None:
    ana, bea = _users(engine)
    with engine.begin() as conn:
        first = save_search(conn, ana, "  Madrid   week ", "province=28&week=2026-W46", T0)
        save_search(conn, ana, "All", "from=2026-11-01&to=2026-11-30", T0)
        again = save_search(conn, ana, "Madrid week", "province=28", T0 + timedelta(hours=1))
    assert first.name == "Madrid week" and again.id == first.id  # replaced by name
    with engine.connect() as conn:
        mine = saved_searches(conn, ana)
        assert [(s.name, s.query) for s in mine] == [
            ("All", "from=2026-11-01&to=2026-11-30"),
            ("Madrid week", "province=28"),
        ]
        assert saved_searches(conn, bea) == []
    with engine.begin() as conn:
        assert not delete_search(conn, bea, first.id)  # not hers
        assert delete_search(conn, ana, first.id)
        assert not delete_search(conn, ana, first.id)
    with engine.connect() as conn:
        assert [s.name for s in saved_searches(conn, ana)] == ["All"]


@pytest.mark.parametrize(
    ("name", "query", "message"),
    [
        ("", "a=1", "give the search a name"),
        ("   ", "a=1", "give the search a name"),
        ("x" * 101, "a=1", "at most 100"),
        ("tab\u0007bell", "a=1", "printable"),
        ("long", "q" * 8_001, "too long"),
    ],
)
def test_bad_names_and_queries(engine: Engine, name: str, query: str, message: str) -> None:
    ana, _ = _users(engine)
    with engine.begin() as conn, pytest.raises(SavedSearchError, match=message):
        save_search(conn, ana, name, query, T0)


def test_a_user_has_at_most_max_saved(engine: Engine) -> None:
    ana, _ = _users(engine)
    with engine.begin() as conn:
        for n in range(MAX_SAVED):
            save_search(conn, ana, f"view {n}", "a=1", T0)
        with pytest.raises(SavedSearchError, match="at most"):
            save_search(conn, ana, "one more", "a=1", T0)
        save_search(conn, ana, "view 3", "a=2", T0)  # replacing is still allowed


def test_a_visit_counts_from_the_end_of_the_one_before(engine: Engine) -> None:
    ana, bea = _users(engine)

    def look(user: int, at: datetime) -> datetime | None:
        with engine.begin() as conn:
            return visit(conn, user, at)

    assert look(ana, T0) is None  # a first visit marks nothing
    assert look(ana, T0 + timedelta(minutes=10)) is None  # the same visit
    # A pause: the new visit counts from the last look of the one before,
    # and keeps that instant while it lasts.
    back = T0 + timedelta(minutes=10) + VISIT_GAP + timedelta(seconds=1)
    assert look(ana, back) == T0 + timedelta(minutes=10)
    assert look(ana, back + timedelta(minutes=20)) == T0 + timedelta(minutes=10)
    later = back + timedelta(minutes=20) + VISIT_GAP * 3
    assert look(ana, later) == back + timedelta(minutes=20)
    assert look(bea, later) is None  # per user
