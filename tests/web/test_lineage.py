"""Lead pages after merges, splits and a peer-id attack, on SQLite and PostgreSQL.

The stores come from `tests.leads.scenarios`, built through the real
pipeline; users of three units look at them through the application.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from atalaya.accounts import add_user
from atalaya.store.tables import lead_override
from atalaya.web.app import create_app
from tests.leads.helpers import NOW
from tests.leads.scenarios import (
    ATTACKER_IP,
    REAL_MOVE_IP,
    UNITS,
    VICTIM_IP,
    corroborated_move,
    merge_then_split,
    peer_id_attack,
)
from tests.web.conftest import BASE, TestClient, form_csrf, sign_in, web_settings
from tests.web.seed import FAST, PASSWORD

USERS = {"ana": "Madrid", "sara": "Sevilla", "nora": "Norte"}
# The stories' leads are from October 2026; NOW is in November.
WINDOW = "from=2026-09-01&to=2026-11-20"

Clients = Callable[[str], TestClient]


def _clients(engine: Engine) -> Iterator[Clients]:
    with engine.begin() as conn:
        for username, unit_name in USERS.items():
            add_user(conn, username, unit_name, "analyst", PASSWORD, NOW, FAST)
    app = create_app(engine, web_settings(), clock=lambda: NOW)
    made: list[TestClient] = []

    def make(username: str) -> TestClient:
        client = TestClient(app, base_url=BASE)
        made.append(client)
        assert sign_in(client, username).status_code == 303
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def merged(engine: Engine) -> Iterator[tuple[Any, Clients]]:
    story = merge_then_split(engine)
    for clients in _clients(engine):
        yield story, clients


@pytest.fixture
def attacked(engine: Engine) -> Iterator[tuple[Any, Clients]]:
    attack = peer_id_attack(engine)
    for clients in _clients(engine):
        yield attack, clients


@pytest.fixture
def moved_lead(engine: Engine) -> Iterator[tuple[Any, Clients]]:
    move = corroborated_move(engine)
    for clients in _clients(engine):
        yield move, clients


def _text(html: str) -> str:
    """The page's words, tags dropped, spaces folded."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _listed(client: TestClient) -> list[int]:
    return [r["id"] for r in client.get(f"/api/leads?{WINDOW}").json()["leads"]]


def test_a_merged_lead_redirects_and_its_records_show_on_the_lead(
    merged: tuple[Any, Clients], engine: Engine
) -> None:
    story, clients = merged
    ana = clients("ana")
    hop = ana.get(f"/leads/{story.merged}", follow_redirects=False)
    assert hop.status_code == 303
    assert hop.headers["location"].startswith(f"/leads/{story.kept}?merged_from={story.merged}")
    page = ana.get(hop.headers["location"])
    assert page.status_code == 200
    words = _text(page.text)
    assert f"Lead #{story.merged} was merged into this lead by build 2" in words
    # Madrid's own claim; Norte's (made on the merged lead) shows as a contact.
    assert "Claimed by Madrid (ana)" in words and "Claimed by Norte" not in words
    assert UNITS["Norte"][1] in words
    # Both overrides, the merged lead's marked as such.
    assert f"80 on lead #{story.merged} by nora" in words
    assert "60 by ana" in words
    assert f"lead {story.merged} merged into lead {story.kept}" in words
    assert f"lead {story.split} split from lead {story.kept}" in words

    # Norte sees its claim, made on the lead merged in.
    nora = clients("nora")
    norte = _text(nora.get(f"/leads/{story.kept}").text)
    assert "Claimed by Norte (nora)" in norte and f"on lead #{story.merged}" in norte
    # And on the part split off, carried there.
    part = _text(nora.get(f"/leads/{story.split}").text)
    assert f"carried from lead #{story.kept} when it split" in part
    assert sorted(_listed(nora)) == [story.kept, story.split]


def test_a_merged_lead_of_another_unit_is_not_found_like_any_other(
    merged: tuple[Any, Clients],
) -> None:
    story, clients = merged
    sara = clients("sara")
    foreign = sara.get(f"/leads/{story.merged}", follow_redirects=False)
    absent = sara.get("/leads/999999", follow_redirects=False)
    assert foreign.status_code == absent.status_code == 404
    assert foreign.text == absent.text
    # Sevilla holds the part split off, in its province, claimed by two units.
    part = sara.get(f"/leads/{story.split}")
    assert part.status_code == 200
    words = _text(part.text)
    assert "Another unit also holds this lead" in words
    assert UNITS["Madrid"][1] in words and UNITS["Norte"][1] in words
    assert "Your unit has no claim on this lead." in words
    assert _listed(sara) == [story.split]


def test_an_override_posted_on_a_lead_merged_since_is_not_recorded(
    merged: tuple[Any, Clients], engine: Engine
) -> None:
    story, clients = merged
    ana = clients("ana")
    csrf = form_csrf(ana.get(f"/leads/{story.kept}").text)
    with engine.connect() as conn:
        before = conn.scalar(select(func.count()).select_from(lead_override))
    stale = ana.post(
        f"/leads/{story.merged}/override",
        data={"csrf": csrf, "score": "10", "reason": "from an old tab"},
        follow_redirects=False,
    )
    assert stale.status_code == 409
    assert f"Lead {story.merged} was merged into this lead" in _text(stale.text)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(lead_override)) == before


def test_a_peer_id_from_another_province_takes_nothing_from_the_unit(
    attacked: tuple[Any, Clients],
) -> None:
    attack, clients = attacked
    ana, sara = clients("ana"), clients("sara")
    mine = ana.get(f"/leads/{attack.lead}")
    assert mine.status_code == 200
    assert VICTIM_IP in mine.text and "priority target" in mine.text
    assert "Another unit also holds this lead" not in mine.text
    assert _listed(ana) == [attack.lead]
    # Sevilla: the impostor's own sightings, nothing of Madrid's lead.
    assert sara.get(f"/leads/{attack.lead}").status_code == 404
    assert _listed(sara) == [attack.attacker]
    theirs = sara.get(f"/leads/{attack.attacker}")
    assert theirs.status_code == 200 and ATTACKER_IP in theirs.text
    for leaked in (VICTIM_IP, "priority target", f'/leads/{attack.lead}"'):
        assert leaked not in theirs.text
    points = sara.get(f"/api/map?{WINDOW}").json()
    assert VICTIM_IP not in str(points)


def test_a_lead_in_two_provinces_is_a_conflict_for_both_units(
    moved_lead: tuple[Any, Clients],
) -> None:
    move, clients = moved_lead
    for username, other in (("ana", "Sevilla"), ("sara", "Madrid")):
        page = clients(username).get(f"/leads/{move.lead}")
        assert page.status_code == 200, username
        words = _text(page.text)
        assert "Another unit also holds this lead" in words
        assert UNITS[other][1] in words
        assert REAL_MOVE_IP in words and VICTIM_IP in words
        assert f"lead {move.lead}: provinces 28 → 28, 41" in words
        listed = clients(username).get(f"/api/leads?{WINDOW}").json()["leads"]
        assert [(r["id"], r["conflict"]) for r in listed] == [(move.lead, [other])]
