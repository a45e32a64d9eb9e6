"""Overrides that would make a lead urgent wait for a supervisor of the analyst's unit."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, update

from atalaya.accounts import add_unit
from atalaya.accounts.units import get_unit, set_urgent_score
from atalaya.errors import AtalayaError
from atalaya.leads import DecisionError, decide_override, pending_overrides
from atalaya.leads.query import override_history, override_score
from atalaya.leads.selection import select_leads, urgent_counts
from atalaya.store.tables import override_decision
from tests.leads.test_selection import NOW, WEEK, _lead


def _units(engine: Engine) -> tuple[int, int]:
    with engine.begin() as conn:
        madrid = add_unit(conn, "Madrid", ["28"], "desk", NOW)
        other = add_unit(conn, "Sevilla", ["41"], "desk", NOW)
        set_urgent_score(conn, "Madrid", 70.0)
    return madrid.id, other.id


def _in_force(engine: Engine) -> dict[int, float]:
    with engine.connect() as conn:
        return {r.id: r.score for r in select_leads(conn, WEEK, visible=None, now=NOW)}


def test_a_unit_has_its_own_threshold_bounded_0_to_100(engine: Engine) -> None:
    _units(engine)
    with engine.begin() as conn:
        assert get_unit(conn, "Madrid").urgent_score == 70.0
        assert get_unit(conn, "Sevilla").urgent_score == 60.0  # the default
        for wrong in (-1.0, 100.5, float("nan")):
            with pytest.raises(AtalayaError, match="from 0 to 100"):
                set_urgent_score(conn, "Madrid", wrong)
    with engine.begin() as conn:
        _lead(conn, 1, 65.0)
        _lead(conn, 2, 75.0)
    with engine.connect() as conn:
        rows = select_leads(conn, WEEK, visible=None, now=NOW)
    assert urgent_counts(rows, 70.0) == {"28": 1}
    assert urgent_counts(rows, 60.0) == {"28": 2}


def test_raising_a_lead_over_the_threshold_waits_for_another_supervisor(engine: Engine) -> None:
    madrid, other = _units(engine)
    with engine.begin() as conn:
        _lead(conn, 1, 50.0)
    asked = override_score(
        engine, 1, 90.0, "shares daily", "ana", now=NOW, unit_id=madrid, urgent_score=70.0
    )
    assert asked["state"] == "pending"
    assert _in_force(engine)[1] == 50.0  # not in force yet
    with engine.connect() as conn:
        assert [o["id"] for o in pending_overrides(override_history(conn, 1))] == [asked["id"]]

    def decide(who: str, unit: int, approve: bool = True) -> dict[str, object]:
        return decide_override(
            engine, 1, asked["id"], approve=approve, reason="checked the sightings",
            supervisor=who, unit_id=unit, now=NOW,
        )  # fmt: skip

    with pytest.raises(DecisionError, match="other than its author"):
        decide("ana", madrid)
    with pytest.raises(DecisionError, match="another unit"):
        decide("sara", other)
    done = decide("marta", madrid)
    assert done["state"] == "approved" and done["decision"]["supervisor"] == "marta"  # type: ignore[index]
    assert _in_force(engine)[1] == 90.0
    with pytest.raises(DecisionError, match="already decided"):
        decide("marta", madrid, approve=False)
    # Decisions are append-only.
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(update(override_decision).values(approved=False))


def test_a_refused_override_stays_on_record_and_out_of_force(engine: Engine) -> None:
    madrid, _ = _units(engine)
    with engine.begin() as conn:
        _lead(conn, 1, 50.0)
    first = override_score(
        engine, 1, 55.0, "a bit more", "ana", now=NOW, unit_id=madrid, urgent_score=70.0
    )
    assert first["state"] == "no_approval_needed"
    assert _in_force(engine)[1] == 55.0
    asked = override_score(
        engine, 1, 95.0, "much more", "ana", now=NOW, unit_id=madrid, urgent_score=70.0
    )
    decide_override(
        engine, 1, asked["id"], approve=False, reason="one day only", supervisor="marta",
        unit_id=madrid, now=NOW,
    )  # fmt: skip
    assert _in_force(engine)[1] == 55.0  # the earlier one, still in force
    with engine.connect() as conn:
        states = [o["state"] for o in override_history(conn, 1)]
    assert states == ["no_approval_needed", "refused"]
    with pytest.raises(DecisionError, match="needed no approval"):
        decide_override(
            engine, 1, first["id"], approve=True, reason="x", supervisor="marta",
            unit_id=madrid, now=NOW,
        )  # fmt: skip


def test_lowering_or_staying_above_needs_no_approval(engine: Engine) -> None:
    madrid, _ = _units(engine)
    with engine.begin() as conn:
        _lead(conn, 1, 80.0)
        _lead(conn, 2, 50.0)
    down = override_score(
        engine, 1, 20.0, "a CGNAT range", "ana", now=NOW, unit_id=madrid, urgent_score=70.0
    )
    up = override_score(
        engine, 2, 69.0, "close, not urgent", "ana", now=NOW, unit_id=madrid, urgent_score=70.0
    )
    assert (down["state"], up["state"]) == ("no_approval_needed", "no_approval_needed")
    assert _in_force(engine) == {1: 20.0, 2: 69.0}
