"""A lead's page data: timeline, files, proof, and other leads of the same unit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from atalaya.accounts import get_unit
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.leads.dossier import gather, local_time
from atalaya.observe.sightings import Sighting
from tests.web.seed import PREFIX, RUN, build_world, lead_ids_by_ip

SHARED = ("5a" * 20, "5b" * 20)  # made-up infohashes
PEER = (b"-LT2010-" + bytes((k * 73 + 19) % 256 for k in range(12))).hex()


def _offer(host: int, day: datetime, peer: str | None, items: tuple[str, ...]) -> list[Sighting]:
    return [
        Sighting(
            network="bittorrent",
            item_kind="btih",
            item_value=value,
            ip=f"{PREFIX}.{host}",
            port=51413,
            seen_at=day + timedelta(minutes=n),
            found_by="tracker",
            run_id=RUN,
            client="Transmission 4.0.6",
            peer_id=peer,
        )
        for n, value in enumerate(items)
    ]


@pytest.fixture
def related_world(engine: Engine, tmp_path: Path) -> Engine:
    # 72 and 88 are placed in Madrid, 73 in Barcelona. 72 and 88 offer the
    # same two items and report the same peer id, two weeks apart: too far
    # for a peer-id link and too few items for a collection link, so two
    # leads, each related to the other.
    extra = [
        *_offer(72, datetime(2026, 10, 26, 20, tzinfo=UTC), PEER, SHARED),
        *_offer(88, datetime(2026, 11, 9, 20, tzinfo=UTC), PEER, SHARED),
        *_offer(73, datetime(2026, 11, 10, 20, tzinfo=UTC), None, SHARED),
    ]
    build_world(engine, tmp_path, extra)
    return engine


def test_related_leads_say_why_and_stay_inside_the_unit(related_world: Engine) -> None:
    ids = lead_ids_by_ip(related_world)
    a, b, barcelona = ids[f"{PREFIX}.72"], ids[f"{PREFIX}.88"], ids[f"{PREFIX}.73"]
    assert len({a, b, barcelona}) == 3
    with related_world.connect() as conn:
        madrid_unit = get_unit(conn, "Madrid").id
        barcelona_unit = get_unit(conn, "Barcelona").id
    dossier = gather(related_world, a, visible=visible_lead_ids_clause(madrid_unit))
    assert dossier is not None
    assert [(r.id, r.reasons) for r in dossier.related] == [
        (
            b,
            [
                "offers 2 of the same 2 watched items",
                f"reported the same peer id {PEER[:16]}… at another time",
            ],
        )
    ]
    other = gather(related_world, barcelona, visible=visible_lead_ids_clause(barcelona_unit))
    assert other is not None and other.related == []
    assert gather(related_world, barcelona, visible=visible_lead_ids_clause(madrid_unit)) is None


def test_timeline_files_and_proof(related_world: Engine) -> None:
    lead_id = lead_ids_by_ip(related_world)[f"{PREFIX}.13"]  # Sevilla: 4 items, one verified
    dossier = gather(related_world, lead_id, visible=None)
    assert dossier is not None
    assert dossier.timeline_total == len(dossier.timeline) == 12
    assert [e.seen_at for e in dossier.timeline] == sorted(
        (e.seen_at for e in dossier.timeline), reverse=True
    )
    assert {e.time_zone for e in dossier.timeline} == {"Europe/Madrid"}
    assert dossier.per_day == [("2026-11-10", 4), ("2026-11-11", 4), ("2026-11-12", 4)]
    assert len(dossier.files) == 4
    assert [f.proof for f in dossier.files].count(True) == 1
    assert {f.category for f in dossier.files} == {"abuse"}
    assert (dossier.proofs, dossier.pieces_verified, dossier.bytes_verified) == (1, 2, 32_768)
    assert dossier.detail["id"] == lead_id


def test_local_time_is_the_places() -> None:
    winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
    assert local_time(winter, "Europe/Madrid") == "2026-01-15 13:00:00 CET (+0100)"
    assert local_time(summer, "Europe/Madrid") == "2026-07-15 14:00:00 CEST (+0200)"
    assert local_time(summer, "Atlantic/Canary") == "2026-07-15 13:00:00 WEST (+0100)"
    assert local_time(winter, None) == "(time zone unknown)"
    assert local_time(winter, "Not/A_Zone") == "(time zone unknown)"


def test_an_ipv6_presence_shows_its_prefix_and_each_exact_address(engine: Engine) -> None:
    from atalaya.leads.build import build_leads
    from atalaya.leads.config import LeadsConfig
    from tests.leads.helpers import HOME, NOW, facts, item, write
    from tests.leads.helpers import sighting as s

    # Temporary addresses of one device inside its /64, and an IPv4 lead.
    ips = ["2001:db8:1:2::a", "2001:db8:1:2:5::b", "2001:db8:1:2:ffff:1:2:3", "203.0.113.9"]
    write(engine, [s(ip, item(n), n) for n, ip in enumerate(ips)])
    build_leads(engine, facts(dict.fromkeys(ips, HOME)), LeadsConfig(), now=NOW)
    dossier = gather(engine, 1, visible=None)
    assert dossier is not None
    assert dossier.detail["ip"] == "2001:db8:1:2::/64"
    assert [p["ip"] for p in dossier.detail["presences"]] == ["2001:db8:1:2::/64"]
    assert sorted(e.ip for e in dossier.timeline) == sorted(ips[:3])
