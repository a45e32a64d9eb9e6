"""Leads keep their identity: lineage rules, and records that follow merges and splits."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.exc import DBAPIError

from atalaya.accounts import add_unit, claim_lead, release_claim, unit_holds
from atalaya.errors import AtalayaError
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.facts import IpFacts
from atalaya.leads.history import LeadMovedError
from atalaya.leads.lineage import (
    MERGE,
    SPLIT,
    Change,
    PlaceChange,
    Spot,
    Stretch,
    changes,
    locate,
    place_changes,
)
from atalaya.leads.query import LeadFilter, iter_leads, lead_detail, override_score
from atalaya.store.tables import (
    lead,
    lead_alias,
    lead_claim,
    lead_history,
    lead_lineage,
    sighting,
)
from tests.leads.helpers import ELSEWHERE, HOME, NOW, dump, facts, item, peer_id, write
from tests.leads.helpers import sighting as make
from tests.leads.scenarios import merge_then_split
from tests.leads.test_incremental import CONFIG as SMALL
from tests.leads.test_incremental import _reset

DEFAULT = LeadsConfig()

# --- the rules, without a store -----------------------------------------------------


def test_locate_finds_the_stretch_of_the_address_port_and_time() -> None:
    stretches = [
        Stretch("10.0.0.1", None, 100, 200, 1),
        Stretch("10.0.0.1", None, 300, 400, 3),
        Stretch("100.64.0.1", 5000, 100, 900, 7),
        Stretch("100.64.0.1", 6000, 100, 900, 8),
    ]
    spots = [
        Spot(1, "10.0.0.1", 6881, 100),  # first instant
        Spot(2, "10.0.0.1", 1, 400),  # last instant, any port
        Spot(3, "10.0.0.1", 6881, 250),  # between stretches
        Spot(4, "100.64.0.1", 6000, 500),  # shared address: by port
        Spot(5, "100.64.0.1", 7000, 500),  # no stretch for that port
        Spot(6, "10.9.9.9", 6881, 150),  # unknown address
    ]
    assert locate(spots, stretches) == {1: 1, 2: 3, 4: 8}


def test_changes_name_merges_and_splits_by_first_sighting() -> None:
    # Old: leads 1, 4, 9. New: 1 (took 4), 6 (split from 9, which went into 1).
    found = changes(
        old_ids={1, 4, 9},
        new_ids={1, 6, 12},
        old_holder={6: 9, 12: 12},  # 12 was its own first sighting: no lineage
        new_holder={4: 1, 9: 1},
    )
    assert found == [Change(4, 1, MERGE), Change(9, 1, MERGE), Change(9, 6, SPLIT)]
    # A lead whose first sighting is nowhere now (a purge) has no lineage.
    assert changes({1, 2}, {1}, {}, {}) == []


def test_place_changes_compare_province_sets_of_kept_ids() -> None:
    old = {1: {"28"}, 2: {"28", "41"}, 3: set[str]()}
    new = {1: {"28", "41"}, 2: {"41", "28"}, 3: {"08"}, 4: {"41"}}
    assert place_changes(old, new) == [
        PlaceChange(1, ("28",), ("28", "41")),
        PlaceChange(3, (), ("08",)),
    ]


# --- claim + override + a merge + a split -------------------------------------------


def _lineage(engine: Engine) -> list[tuple[int, int, int, str]]:
    with engine.connect() as conn:
        return [
            (r.build_id, r.old_id, r.new_id, r.kind)
            for r in conn.execute(select(lead_lineage).order_by(lead_lineage.c.id))
        ]


def test_claims_and_overrides_follow_a_merge_and_a_split(engine: Engine) -> None:
    story = merge_then_split(engine)
    _, merge, join, split = story.reports
    assert (merge.merges, merge.splits) == (1, 0)
    assert (join.merges, join.splits) == (0, 0)
    assert (split.mode, split.merges, split.splits) == ("incremental", 0, 1)
    assert _lineage(engine) == [
        (merge.build_id, story.merged, story.kept, MERGE),
        (split.build_id, story.kept, story.split, SPLIT),
    ]
    with engine.connect() as conn:
        assert sorted(conn.scalars(select(lead.c.id))) == [story.kept, story.split]
        assert dict(conn.execute(select(lead_alias.c.id, lead_alias.c.lead_id)).all()) == {
            story.merged: story.kept
        }

    kept = lead_detail(engine, story.kept)
    # Both claims: Madrid's on the lead itself, Norte's made on the lead merged in.
    assert [(c["unit"], c["made_on"], c["carried_from"]) for c in kept["claims"]] == [
        ("Madrid", story.kept, None),
        ("Norte", story.merged, None),
    ]
    # Both overrides, the latest in force.
    assert [(o["lead_id"], o["score"]) for o in kept["overrides"]] == [
        (story.merged, 80.0),
        (story.kept, 60.0),
    ]
    assert kept["score"] == 60.0 and kept["override"]["made_on"] == story.kept
    assert [(h["kind"], h["old_id"], h["new_id"]) for h in kept["history"]] == [
        (MERGE, story.merged, story.kept),
        (SPLIT, story.kept, story.split),
    ]
    assert kept["history"][0]["text"] == f"lead {story.merged} merged into lead {story.kept}"

    # The part split off carries both claims, not the overrides.
    part = lead_detail(engine, story.split)
    assert [(c["unit"], c["carried_from"]) for c in part["claims"]] == [
        ("Madrid", story.kept),
        ("Norte", story.kept),
    ]
    assert part["overrides"] == [] and part["override"] is None
    assert part["province_code"] == "41"
    assert [h["text"] for h in part["history"]] == [
        f"lead {story.split} split from lead {story.kept}"
    ]

    # The merged id says where it went, everywhere it is asked for.
    message = f"lead {story.merged} was merged into lead {story.kept}"
    with pytest.raises(LeadMovedError, match=message) as moved:
        lead_detail(engine, story.merged)
    assert moved.value.current == story.kept and moved.value.build == merge.build_id
    with pytest.raises(LeadMovedError):
        override_score(engine, story.merged, 1.0, "stale page", "ana", now=NOW)
    with engine.begin() as conn, pytest.raises(LeadMovedError):
        claim_lead(conn, story.merged, story.units["Sevilla"], "sara", NOW)

    # Who holds what: Norte through its claim on the merged lead, Sevilla by
    # province only the part split off, which Madrid and Norte also claim.
    with engine.connect() as conn:
        holds = {
            (name, lead_id): unit_holds(conn, unit_id, lead_id)
            for name, unit_id in story.units.items()
            for lead_id in (story.kept, story.split)
        }
    assert holds == {
        ("Madrid", story.kept): True,
        ("Madrid", story.split): True,
        ("Norte", story.kept): True,
        ("Norte", story.split): True,
        ("Sevilla", story.kept): False,
        ("Sevilla", story.split): True,
    }
    listed = {r["id"]: r for r in iter_leads(engine, LeadFilter())}
    assert listed[story.kept]["score"] == 60.0 and listed[story.split]["override"] is None

    # A claim made on a merged lead is released through the lead it is part of.
    with engine.begin() as conn:
        with pytest.raises(LeadMovedError):
            release_claim(conn, story.merged, story.units["Norte"])
        assert release_claim(conn, story.kept, story.units["Norte"]) is True
        assert claim_lead(conn, story.kept, story.units["Madrid"], "ana", NOW) is False
        assert not unit_holds(conn, story.units["Norte"], story.kept)

    # A rebuild groups the same way: it records nothing and every record stays.
    before = (_lineage(engine), lead_detail(engine, story.kept), lead_detail(engine, story.split))
    later = NOW + timedelta(days=3)
    again = build_leads(engine, facts(_final_places()), DEFAULT, now=later, rebuild=True)
    assert (again.merges, again.splits, again.jurisdiction_changes) == (0, 0, 0)
    after = (_lineage(engine), lead_detail(engine, story.kept), lead_detail(engine, story.split))
    assert _without_scored_at(after) == _without_scored_at(before)


def _final_places() -> dict[str, IpFacts]:
    return {"10.1.0.1": HOME, "10.1.0.2": HOME, "10.1.0.3": HOME, "10.1.0.4": ELSEWHERE}


def _without_scored_at(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_scored_at(v) for k, v in value.items() if k != "scored_at"}
    if isinstance(value, list | tuple):
        return [_without_scored_at(v) for v in value]
    return value


def test_lineage_is_a_record_that_cannot_be_edited(engine: Engine) -> None:
    story = merge_then_split(engine)
    with engine.begin() as conn:
        assert conn.scalar(select(func.count()).select_from(lead_lineage)) == 2
    for statement in (
        "UPDATE lead_lineage SET new_id = 999",
        "DELETE FROM lead_lineage",
    ):
        with (
            pytest.raises(DBAPIError, match="lineage and history are a record"),
            engine.begin() as conn,
        ):
            conn.execute(text(statement))
    assert lead_detail(engine, story.kept)["history"]


def test_records_left_by_an_old_merge_are_reattached(engine: Engine) -> None:
    """A store from before lineage: a claim and an override on a lead merged away."""
    story = merge_then_split(engine)
    with engine.begin() as conn:
        # As if the merge of lead 4 had left no trace but its records.
        conn.execute(delete(lead_alias))
    with pytest.raises(AtalayaError, match="no lead 4"):
        lead_detail(engine, story.merged)
    report = build_leads(engine, facts(_final_places()), DEFAULT, now=NOW + timedelta(1))
    assert report.merges == 1
    assert _lineage(engine)[-1] == (report.build_id, story.merged, story.kept, MERGE)
    kept = lead_detail(engine, story.kept)
    assert ("Norte", story.merged) in [(c["unit"], c["made_on"]) for c in kept["claims"]]
    assert story.merged in [o["lead_id"] for o in kept["overrides"]]


@pytest.mark.parametrize("rebuild", [False, True], ids=["incremental", "full"])
def test_a_lead_merges_and_splits_in_one_build(engine: Engine, rebuild: bool) -> None:
    """The smallest case the property test below found (one item, one peer id).

    Lead 2 holds 10.0.0.1 and 10.0.0.3; then 10.0.0.1 moves to Sevilla,
    where lead 1 is: sighting 2 goes into lead 1 and sighting 3 is left on
    its own. Lead 2 is merged into 1 and lead 3 split from 2, in one build,
    and the claim on lead 2 follows both ways.
    """
    peer = peer_id(1)
    with engine.begin() as conn:
        unit_id = add_unit(conn, "Madrid", ["28"], "desk", NOW).id
    write(engine, [make("10.0.0.2", item(0), 10, peer=peer)])
    places = {"10.0.0.1": HOME, "10.0.0.2": HOME, "10.0.0.3": HOME}
    build_leads(engine, facts(places), SMALL, now=NOW)
    write(
        engine,
        [make(ip, item(0), hours, peer=peer) for ip, hours in (("10.0.0.1", 0), ("10.0.0.3", 20))],
    )
    places = {"10.0.0.1": HOME, "10.0.0.2": ELSEWHERE, "10.0.0.3": HOME}
    build_leads(engine, facts(places), SMALL, now=NOW + timedelta(days=1))
    with engine.begin() as conn:
        ids = dict(conn.execute(select(sighting.c.ip, sighting.c.id)).all())
        first, second, third = ids["10.0.0.2"], ids["10.0.0.1"], ids["10.0.0.3"]
        assert first < second < third
        assert sorted(conn.scalars(select(lead.c.id))) == [first, second]
        claim_lead(conn, second, unit_id, "ana", NOW + timedelta(days=1))

    places = {"10.0.0.1": ELSEWHERE, "10.0.0.2": ELSEWHERE, "10.0.0.3": HOME}
    later = NOW + timedelta(days=2)
    report = build_leads(engine, facts(places), SMALL, now=later, rebuild=rebuild)
    assert (report.merges, report.splits) == (1, 1)
    assert _lineage(engine)[-2:] == [
        (report.build_id, second, first, MERGE),
        (report.build_id, second, third, SPLIT),
    ]
    with engine.connect() as conn:
        assert sorted(conn.scalars(select(lead.c.id))) == [first, third]
        assert dict(conn.execute(select(lead_alias.c.id, lead_alias.c.lead_id)).all()) == {
            second: first
        }
    with pytest.raises(LeadMovedError, match=f"lead {second} was merged into lead {first}"):
        lead_detail(engine, second)
    kept = lead_detail(engine, first)
    assert [(c["made_on"], c["carried_from"]) for c in kept["claims"]] == [(second, None)]
    part = lead_detail(engine, third)
    assert [(c["made_on"], c["carried_from"]) for c in part["claims"]] == [(third, second)]
    assert [h["text"] for h in part["history"]] == [f"lead {third} split from lead {second}"]

    before = (_lineage(engine), dump(engine))
    again = build_leads(engine, facts(places), SMALL, now=later, rebuild=True)
    assert (again.merges, again.splits, again.jurisdiction_changes) == (0, 0, 0)
    assert (_lineage(engine), dump(engine)) == before


# --- every claim follows, whatever the builds do ---------------------------------------

# One peer id seen from three addresses, each in its own hours (never at
# once), whose places change from build to build: links come and go, so
# leads merge and split.
_ADDRESSES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
_PLACES = st.sampled_from([HOME, ELSEWHERE])
_STORY = st.lists(
    st.tuples(
        st.integers(0, 2),  # address
        st.integers(0, 5),  # 30-hour slot
        st.integers(0, 4),  # item
        st.sampled_from([peer_id(1), peer_id(1), peer_id(2)]),
    ),
    min_size=2,
    max_size=30,
)


@pytest.mark.slow
def test_claims_always_belong_to_a_lead_and_a_rebuild_adds_no_lineage(engine: Engine) -> None:
    """Sightings built in parts while places change, a claim put on every lead
    after each build: after every later build each claim belongs to a lead,
    each lead merged away points at one, each lead split off a claimed one
    is claimed, and a rebuild at the end groups as the builds did and
    records nothing."""
    examples = 40 if engine.dialect.name == "sqlite" else 8
    with engine.begin() as conn:
        unit_id = add_unit(conn, "Madrid", ["28"], "desk", NOW).id

    # No shrinking: an example is up to six builds on a real store, and
    # Hypothesis shrinks for up to 300 s, the suite's limit for a test, so a
    # failure would end as a timeout without its example. Unshrunk, it is
    # reported in seconds, with the seed to replay it; the smallest found so
    # far is the test above.
    @settings(
        max_examples=examples,
        deadline=None,
        phases=[phase for phase in Phase if phase is not Phase.shrink],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(rows=_STORY, cuts=st.lists(st.integers(1, 29), min_size=1, max_size=4), data=st.data())
    def check(rows: list[tuple[int, int, int, str]], cuts: list[int], data: st.DataObject) -> None:
        _reset(engine)
        with engine.begin() as conn:
            conn.execute(delete(lead_claim))
            conn.execute(delete(lead_alias))
        # Two last builds with no new sightings, only places changing.
        bounds = [*sorted({0, len(rows), *(c for c in cuts if c < len(rows))}), len(rows)]
        bounds.append(len(rows))
        now, places, leads_before = NOW, {}, set[int]()
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            now = NOW + timedelta(days=i)
            write(
                engine,
                [
                    make(_ADDRESSES[a], item(n), 30 * slot + 10 * a, peer=peer)
                    for a, slot, n, peer in rows[lo:hi]
                ],
            )
            places = {
                ip: data.draw(st.sampled_from([HOME, ELSEWHERE]), label=ip) for ip in _ADDRESSES
            }
            report = build_leads(engine, facts(places), SMALL, now=now)
            with engine.begin() as conn:
                current = set(conn.scalars(select(lead.c.id)))
                claimed = set(conn.scalars(select(lead_claim.c.lead_id)))
                owners = dict(conn.execute(select(lead_alias.c.id, lead_alias.c.lead_id)).all())
                assert set(owners.values()) <= current
                assert not set(owners) & current
                assert {owners.get(made_on, made_on) for made_on in claimed} <= current
                done = conn.execute(
                    select(lead_lineage.c.old_id, lead_lineage.c.new_id, lead_lineage.c.kind).where(
                        lead_lineage.c.build_id == report.build_id
                    )
                ).all()
                assert len(done) == report.merges + report.splits
                merged = {old_id for old_id, _, kind in done if kind == MERGE}
                for old_id, new_id, kind in done:
                    assert old_id in leads_before
                    if kind == MERGE:
                        assert old_id not in current and owners[old_id] == new_id in current
                    else:
                        # The lead split from keeps its id, unless its first
                        # sighting went into another lead in this same build.
                        assert new_id in current - leads_before
                        assert old_id in current or old_id in merged
                        assert new_id in {owners.get(m, m) for m in claimed}
                for lead_id in sorted(current):
                    claim_lead(conn, lead_id, unit_id, "ana", now)
                leads_before = current
        incremental = dump(engine)
        with engine.connect() as conn:
            counts = [
                conn.scalar(select(func.count()).select_from(t))
                for t in (lead_lineage, lead_history)
            ]
        report = build_leads(engine, facts(places), SMALL, now=now, rebuild=True)
        assert dump(engine) == incremental
        assert (report.merges, report.splits, report.jurisdiction_changes) == (0, 0, 0)
        with engine.connect() as conn:
            assert [
                conn.scalar(select(func.count()).select_from(t))
                for t in (lead_lineage, lead_history)
            ] == counts

    check()
