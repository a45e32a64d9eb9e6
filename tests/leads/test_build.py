"""Leads from sightings with known ground truth, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from sqlalchemy import Engine, insert, select

from atalaya.errors import AtalayaError
from atalaya.hashsets.categories import Category
from atalaya.leads.build import BuildReport, build_leads
from atalaya.leads.config import GroupingConfig, LeadsConfig, ScoringConfig, parse_config
from atalaya.leads.facts import IpFacts
from atalaya.leads.query import override_score
from atalaya.store.tables import lead, lead_link, lead_presence, sighting
from tests.leads.helpers import (
    CGNAT,
    ELSEWHERE,
    HOME,
    NOW,
    dump,
    factors_of,
    facts,
    item,
    lead_rows,
    leads_of,
    peer_id,
    write,
)
from tests.leads.helpers import (
    sighting as s,
)

CONFIG = LeadsConfig()


def build(
    engine: Engine,
    mapping: dict[str, IpFacts],
    *,
    config: LeadsConfig = CONFIG,
    rebuild: bool = False,
) -> BuildReport:
    return build_leads(engine, facts(mapping), config, now=NOW, rebuild=rebuild)


def presence_ids(engine: Engine, ip: str) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.scalars(select(lead_presence.c.id).where(lead_presence.c.ip == ip).order_by("id"))
        )


def links(engine: Engine) -> list[tuple[int, int, str]]:
    with engine.connect() as conn:
        return sorted(
            (r.presence_a, r.presence_b, r.reason) for r in conn.execute(select(lead_link))
        )


# --- one device changing address ------------------------------------------------


def test_device_changing_address_is_one_lead_linked_by_peer_id_and_collection(
    engine: Engine,
) -> None:
    pid = peer_id(1)
    first = [s("10.1.0.1", item(i), i, peer=pid, client="libtorrent/2.1.1") for i in range(5)]
    # Twelve hours later the ISP gave the same subscriber another address.
    second = [s("10.1.0.2", item(i), 17 + i, peer=pid, client="libtorrent/2.1.1") for i in range(6)]
    write(engine, first + second)
    build(engine, {"10.1.0.1": HOME, "10.1.0.2": HOME})

    (only,) = lead_rows(engine)
    assert only["id"] == 1  # the first sighting's id
    assert (only["sightings"], only["addresses"], only["presences"]) == (11, 2, 2)
    assert only["items"] == 6
    assert only["ip"] == "10.1.0.2"  # the address with the most sightings
    assert only["province_code"] == "28" and only["isp"] == "Example Fibra"
    assert links(engine) == [(1, 6, "collection"), (1, 6, "peer_id")]
    with engine.connect() as conn:
        evidence = {r.reason: r.evidence for r in conn.execute(select(lead_link))}
    assert evidence["peer_id"]["peer_id"] == pid
    assert evidence["peer_id"]["gap_hours"] == 13.0
    assert evidence["collection"]["items_in_common"] == 5
    assert evidence["collection"]["jaccard"] == round(5 / 6, 4)
    assert evidence["collection"]["network_area"] == "AS64500|28"


def test_new_client_session_on_a_new_address_links_by_collection_alone(engine: Engine) -> None:
    # The client restarted: a new peer id, another address, the same collection.
    write(engine, [s("10.1.0.1", item(i), i, peer=peer_id(1)) for i in range(4)])
    write(engine, [s("10.1.0.2", item(i), 30 + i, peer=peer_id(2)) for i in range(4)])
    build(engine, {"10.1.0.1": HOME, "10.1.0.2": HOME})
    assert leads_of(engine) == [(1, 5)]
    assert links(engine) == [(1, 5, "collection")]


def test_same_collection_in_another_network_and_province_is_another_lead(engine: Engine) -> None:
    write(engine, [s("10.1.0.1", item(i), i) for i in range(4)])
    write(engine, [s("10.2.0.1", item(i), 30 + i) for i in range(4)])
    build(engine, {"10.1.0.1": HOME, "10.2.0.1": ELSEWHERE})
    assert leads_of(engine) == [(1,), (5,)]


def test_a_peer_id_that_is_not_random_links_nothing(engine: Engine) -> None:
    fixed = (b"-XX0000-" + b"\x00" * 12).hex()
    write(engine, [s("10.1.0.1", item(1), 0, peer=fixed)])
    write(engine, [s("10.2.0.1", item(2), 5, peer=fixed)])
    build(engine, {"10.1.0.1": HOME, "10.2.0.1": ELSEWHERE})
    assert leads_of(engine) == [(1,), (2,)]


def test_peer_id_seen_in_two_places_at_once_is_two_devices(engine: Engine) -> None:
    # A copied or forged id, active on two addresses for the same two days.
    pid = peer_id(7)
    write(engine, [s("10.1.0.1", item(1), h, peer=pid) for h in range(0, 48, 6)])
    write(engine, [s("10.2.0.1", item(2), h, peer=pid) for h in range(0, 48, 6)])
    build(engine, {"10.1.0.1": HOME, "10.2.0.1": ELSEWHERE})
    assert len(leads_of(engine)) == 2
    assert links(engine) == []


# --- two devices behind one address at different times -----------------------


def test_one_address_reused_after_the_window_is_two_leads(engine: Engine) -> None:
    write(engine, [s("10.3.0.1", item(i), i) for i in range(4)])
    # Twenty days later another subscriber has the address, other items.
    write(engine, [s("10.3.0.1", item(10 + i), 20 * 24 + i) for i in range(4)])
    build(engine, {"10.3.0.1": HOME})
    assert leads_of(engine) == [(1,), (5,)]
    with engine.connect() as conn:
        opened = conn.execute(select(lead_presence.c.opened_by).order_by("id")).scalars().all()
    assert opened == ["window", "window"]


def test_address_handed_over_within_the_window_splits_on_device_change(engine: Engine) -> None:
    a = [s("10.3.0.1", item(i), i, port=6881, client="libtorrent/2.1.1") for i in range(4)]
    # Twelve hours of silence, then another client on another port, other items.
    b = [
        s("10.3.0.1", item(10 + i), 15 + i, port=51413, client="Transmission 3.00")
        for i in range(4)
    ]
    write(engine, a + b)
    build(engine, {"10.3.0.1": HOME})
    assert leads_of(engine) == [(1,), (5,)]
    with engine.connect() as conn:
        opened = conn.execute(select(lead_presence.c.opened_by).order_by("id")).scalars().all()
    assert opened == ["window", "device_change"]


def test_same_device_after_a_silence_within_the_window_stays_one(engine: Engine) -> None:
    write(engine, [s("10.3.0.1", item(i), i, client="libtorrent/2.1.1") for i in range(4)])
    # Three days quiet, same port and client, new items: the same device.
    write(
        engine, [s("10.3.0.1", item(10 + i), 80 + i, client="libtorrent/2.1.1") for i in range(4)]
    )
    build(engine, {"10.3.0.1": HOME})
    assert leads_of(engine) == [(1,)]


def test_device_change_back_to_the_same_collection_is_relinked(engine: Engine) -> None:
    # A restart on a random port at the same address: split by the device
    # rule, then joined again by the collection it offers.
    write(engine, [s("10.3.0.1", item(i), i, port=40001) for i in range(4)])
    write(engine, [s("10.3.0.1", item(9), 10, port=40002)])
    write(engine, [s("10.3.0.1", item(i), 11 + i, port=40002) for i in range(4)])
    build(engine, {"10.3.0.1": HOME})
    assert leads_of(engine) == [(1, 5)]
    assert links(engine) == [(1, 5, "collection")]


# --- one carrier-grade NAT address shared by many ----------------------------------


@pytest.mark.parametrize("address", ["100.64.7.7", "198.51.100.7"])
def test_cgnat_address_shared_by_many_is_not_merged(engine: Engine, address: str) -> None:
    # 100.64/10 is shared space by definition; 198.51.100.7 is flagged by the facts.
    popular = [item(1), item(2), item(3)]
    rows = []
    for device in range(12):
        port = 20000 + device
        # All active over the same three days, all offering the popular items.
        for h in range(0, 72, 12):
            rows += [s(address, ih, h + device / 60, port=port) for ih in popular]
        rows.append(s(address, item(100 + device), 30, port=port))
    write(engine, rows)
    build(engine, {address: CGNAT})

    grouped = leads_of(engine)
    assert len(grouped) == 12
    assert all(len(g) == 1 for g in grouped)
    assert links(engine) == []
    with engine.connect() as conn:
        ports = sorted(conn.scalars(select(lead_presence.c.port)))
    assert ports == list(range(20000, 20012))
    for row in lead_rows(engine):
        assert "cgnat" in row["flags"]
        f = factors_of(engine, row["id"])
        assert f["flag_cgnat"]["raw"] == 1.0
        assert f["flag_cgnat"]["contribution"] == -10.0
        if address == "198.51.100.7":
            assert f["flag_mobile"]["contribution"] == -5.0


def test_cgnat_devices_at_different_times_with_one_collection_stay_apart(engine: Engine) -> None:
    rows = []
    for device in range(5):
        start = device * 30  # one after the other, never at once
        rows += [s("100.64.7.7", item(i), start + i, port=30000 + device) for i in range(4)]
    write(engine, rows)
    build(engine, {"100.64.7.7": CGNAT})
    assert len(leads_of(engine)) == 5

    # Even where collection links are allowed on shared addresses, devices
    # active at the same time are never one.
    concurrent = LeadsConfig(
        grouping=replace(GroupingConfig(), collection_links_on_shared_addresses=True)
    )
    with engine.begin() as conn:
        conn.execute(sighting.delete())
    rows = []
    for device in range(5):
        rows += [
            s("100.64.7.7", item(i), h, port=30000 + device) for i in range(4) for h in (0, 24, 48)
        ]
    write(engine, rows)
    build(engine, {"100.64.7.7": CGNAT}, config=concurrent, rebuild=True)
    assert len(leads_of(engine)) == 5


def test_cgnat_device_whose_port_changes_is_followed_by_peer_id(engine: Engine) -> None:
    pid = peer_id(3)
    write(engine, [s("100.64.7.7", item(i), i, port=30001, peer=pid) for i in range(3)])
    write(engine, [s("100.64.7.7", item(i), 10 + i, port=30777, peer=pid) for i in range(3)])
    write(engine, [s("100.64.7.7", item(i), 5 + i, port=30555) for i in range(3)])  # another
    build(engine, {"100.64.7.7": CGNAT})
    assert leads_of(engine) == [(1, 4), (7,)]


# --- scores -------------------------------------------------------------------------


def test_score_factors_from_known_values(engine: Engine) -> None:
    pid = peer_id(5)
    rows = [
        s(
            "10.4.0.1",
            item(1),
            0,
            peer=pid,
            proof=True,
            category=int(Category.ABUSE),
            file_key="sha1:" + "a1" * 20,
        ),
        s(
            "10.4.0.1",
            item(2),
            1,
            peer=pid,
            category=int(Category.SEVERE_ABUSE),
            file_key="sha1:" + "a2" * 20,
        ),
        s("10.4.0.1", item(3), 30, peer=pid, proof=True, file_key="sha1:" + "a3" * 20),
        s("10.4.0.1", item(3), 31, peer=pid, proof=True, file_key="sha1:" + "a3" * 20),
        s("10.4.0.1", item(4), 50, peer=pid, network="ed2k"),
        # Another lead offers item 1: with rare_other_leads 0 it is not rare.
        s("10.9.0.1", item(1), 0),
    ]
    write(engine, rows)
    config = LeadsConfig(scoring=replace(ScoringConfig(), rare_other_leads=0))
    build(engine, {"10.4.0.1": HOME, "10.9.0.1": ELSEWHERE}, config=config)
    f = factors_of(engine, 1)
    assert f["known_files"]["raw"] == 3
    assert f["known_files"]["value"] == pytest.approx(math.log1p(3) / math.log1p(50))
    assert f["highest_category"]["raw"] == int(Category.SEVERE_ABUSE)
    assert f["highest_category"]["value"] == 1.0
    assert f["verified_downloads"]["raw"] == 2  # items 1 and 3, not sightings
    assert f["days_active"]["raw"] == 3  # hours 0-1, 30-31 and 50 from 08:00 UTC
    assert f["recency"]["raw"] == (NOW.date() - rows[4].seen_at.date()).days
    assert f["rare_items"]["raw"] == 3  # items 2, 3, 4
    assert f["networks_used"]["raw"] == 2
    assert f["networks_used"]["value"] == pytest.approx(2 / 3)
    for name, values in f.items():
        assert values["contribution"] == pytest.approx(values["value"] * values["weight"]), name
    (row,) = [r for r in lead_rows(engine) if r["id"] == 1]
    assert row["score"] == round(math.fsum(v["contribution"] for v in f.values()), 6)
    assert row["weights_version"] == config.scoring.version()
    assert (row["known_files"], row["verified_items"], row["highest_category"]) == (3, 2, 4)


def test_items_are_counted_by_network_kind_and_value(engine: Engine) -> None:
    value = item(7)
    write(
        engine,
        [
            s("10.4.0.1", value, 0),
            s("10.4.0.1", value, 1, kind="btih2"),
            s("10.4.0.1", value, 2, network="ed2k", kind="ed2k"),
            s("10.9.0.1", value, 0),
        ],
    )
    build(engine, {"10.4.0.1": HOME, "10.9.0.1": ELSEWHERE})
    (row,) = [r for r in lead_rows(engine) if r["ip"] == "10.4.0.1"]
    assert row["items"] == 3
    assert row["networks"] == ["bittorrent", "ed2k"]
    assert dump(engine)["item_leads"] == [
        ("bittorrent", "btih", value, 2),
        ("bittorrent", "btih2", value, 1),
        ("ed2k", "ed2k", value, 1),
    ]


def test_lowering_flags_weigh_by_share_of_sightings(engine: Engine) -> None:
    hosting = replace(HOME, flags=frozenset({"hosting"}))
    pid = peer_id(9)
    write(engine, [s("10.5.0.1", item(i), i, peer=pid) for i in range(3)])
    write(engine, [s("10.5.0.2", item(i), 10 + i, peer=pid) for i in range(1)])
    build(engine, {"10.5.0.1": HOME, "10.5.0.2": hosting})
    f = factors_of(engine, 1)
    assert f["flag_hosting"]["raw"] == 0.25
    assert f["flag_hosting"]["contribution"] == -15.0 * 0.25
    (row,) = lead_rows(engine)
    assert row["flags"] == ["hosting"]


def test_more_evidence_scores_higher(engine: Engine) -> None:
    strong = [
        s("10.6.0.1", item(i), i * 24, proof=True, category=4, file_key=f"sha1:{i:040x}")
        for i in range(8)
    ]
    weak = [s("10.7.0.1", item(50), 0)]
    write(engine, strong + weak)
    build(engine, {"10.6.0.1": HOME, "10.7.0.1": HOME})
    scores = {r["ip"]: r["score"] for r in lead_rows(engine)}
    assert scores["10.6.0.1"] > scores["10.7.0.1"] + 30


# --- incremental, rebuilds, settings -----------------------------------------------


def test_incremental_build_joins_new_sightings_and_matches_a_rebuild(engine: Engine) -> None:
    pid = peer_id(11)
    mapping = {"10.8.0.1": HOME, "10.8.0.2": HOME, "10.8.0.3": ELSEWHERE}
    write(engine, [s("10.8.0.1", item(i), i, peer=pid) for i in range(3)])
    write(engine, [s("10.8.0.3", item(i), i) for i in range(3)])
    first = build(engine, mapping)
    assert first.mode == "full"
    assert len(leads_of(engine)) == 2
    write(engine, [s("10.8.0.2", item(i), 30 + i, peer=pid) for i in range(3)])
    second = build(engine, mapping)
    assert second.mode == "incremental"
    assert second.sightings == 3
    assert leads_of(engine) == [(1, 7), (4,)]
    incremental = dump(engine)
    build(engine, mapping, rebuild=True)
    assert dump(engine) == incremental


def test_nothing_new_changes_nothing(engine: Engine) -> None:
    write(engine, [s("10.8.0.1", item(i), i) for i in range(3)])
    build(engine, {"10.8.0.1": HOME})
    before = dump(engine)
    report = build(engine, {"10.8.0.1": HOME})
    assert report.sightings == 0
    assert dump(engine) == before


def test_changed_grouping_settings_ask_for_a_rebuild(engine: Engine) -> None:
    write(engine, [s("10.8.0.1", item(1), 0)])
    build(engine, {})
    other = parse_config({"grouping": {"window_days": 3}})
    with pytest.raises(AtalayaError, match="--rebuild"):
        build(engine, {}, config=other)
    assert build(engine, {}, config=other, rebuild=True).mode == "full"


def test_changed_weights_rescore_every_lead(engine: Engine) -> None:
    write(engine, [s("10.8.0.1", item(1), 0), s("10.8.0.2", item(2), 0)])
    build(engine, {})
    heavier = parse_config({"scoring": {"factors": {"networks_used": {"weight": 50}}}})
    report = build(engine, {}, config=heavier)
    assert report.leads_rescored == 2
    versions = {r["weights_version"] for r in lead_rows(engine)}
    assert versions == {heavier.scoring.version()}
    assert factors_of(engine, 1)["networks_used"]["weight"] == 50


def test_changed_facts_regroup_the_addresses_concerned(engine: Engine) -> None:
    write(engine, [s("10.8.0.1", item(i), i) for i in range(3)])
    write(engine, [s("10.8.0.2", item(i), 40 + i) for i in range(3)])
    write(engine, [s("10.8.0.9", item(7), 0)])
    mapping = {"10.8.0.1": HOME, "10.8.0.9": HOME}
    build(engine, mapping)
    assert len(leads_of(engine)) == 3  # 10.8.0.2 has no place yet: no collection link
    mapping["10.8.0.2"] = HOME  # enrichment caught up
    report = build(engine, mapping)
    assert report.mode == "incremental"
    assert leads_of(engine) == [(1, 4), (7,)]
    state = dump(engine)
    build(engine, mapping, rebuild=True)
    assert dump(engine) == state


def test_sighting_ids_that_appear_late_are_not_lost(engine: Engine) -> None:
    # On PostgreSQL an id can commit after a higher one: 3 shows up late.
    def put(ident: int, hours: float) -> None:
        row = s("10.8.0.1", item(ident), hours)
        values = {**row.__dict__, "proof": row.proof, "id": ident}
        values.pop("transcript")  # kept in its own table, not a column
        with engine.begin() as conn:
            conn.execute(insert(sighting).values(**values))

    for ident in (1, 2, 4):
        put(ident, ident)
    first = build(engine, {"10.8.0.1": HOME})
    assert first.pending_ids == 1
    put(3, 3)
    second = build(engine, {"10.8.0.1": HOME})
    assert second.sightings == 1 and second.pending_ids == 0
    with engine.connect() as conn:
        assert conn.scalar(select(lead.c.sightings)) == 4
    state = dump(engine)
    build(engine, {"10.8.0.1": HOME}, rebuild=True)
    assert dump(engine) == state


def test_override_survives_a_rebuild_and_both_scores_stay(engine: Engine) -> None:
    write(engine, [s("10.8.0.1", item(i), i) for i in range(3)])
    build(engine, {"10.8.0.1": HOME})
    (row,) = lead_rows(engine)
    record = override_score(engine, row["id"], 99.0, "confirmed by a second unit", "ana", now=NOW)
    assert record["computed_score"] == row["score"]
    build(engine, {"10.8.0.1": HOME}, rebuild=True)
    from atalaya.leads.query import LeadFilter, iter_leads

    (listed,) = iter_leads(engine, LeadFilter())
    assert listed["id"] == row["id"]
    assert listed["score"] == 99.0
    assert listed["computed_score"] == row["score"]
    assert listed["override"]["reason"] == "confirmed by a second unit"


def test_times_keep_their_microseconds(engine: Engine) -> None:
    # SQLite's date functions round to milliseconds: 59.999999 s must not
    # become the next minute.
    late = s("10.8.0.1", item(1), 0)
    late = replace(late, seen_at=late.seen_at.replace(second=59, microsecond=999_999))
    write(engine, [late, s("10.8.0.1", item(2), 5)])
    build(engine, {"10.8.0.1": HOME})
    with engine.connect() as conn:
        first = conn.scalar(select(lead_presence.c.first_seen))
    assert first is not None
    assert first.replace(tzinfo=None) == late.seen_at.replace(tzinfo=None)
