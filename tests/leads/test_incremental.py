"""Incremental builds give what a full rebuild gives, on random sighting streams.

Each example writes a random stream of sightings in parts split at random
points, building after each part (the clock moving on between builds),
then rebuilds from scratch and compares every lead table.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete

from atalaya.leads.build import build_leads
from atalaya.leads.config import GroupingConfig, LeadsConfig
from atalaya.leads.facts import IpFacts
from atalaya.store.tables import (
    lead,
    lead_factor,
    lead_item,
    lead_link,
    lead_presence,
    lead_presence_item,
    lead_presence_peer,
    lead_state,
    sighting,
)
from tests.leads.helpers import CGNAT, ELSEWHERE, HOME, NOW, dump, facts, item, peer_id, write
from tests.leads.helpers import sighting as make

# IPv6 presences group by /64: several addresses in one /64 (whose text
# puts the '::' inside the prefix or not), two /64s of one /56, another /48.
ADDRESSES = [
    "10.0.0.1",
    "10.0.0.2",
    "10.0.0.3",
    "100.64.0.1",
    "2001:db8::1",
    "10.0.0.4",
    "2001:db8::1:0:0:1",
    "2001:db8:0:0:ffff::",
    "2001:db8:0:1::a",
    "2001:db8:0:1:8a2e:370:7334:1",
    "2001:db8:5:0:1::",
]
FACTS: dict[str, IpFacts] = {
    "10.0.0.1": HOME,
    "10.0.0.2": HOME,
    "10.0.0.3": ELSEWHERE,
    "100.64.0.1": CGNAT,
    # A prefix takes the facts of its lowest known address: ELSEWHERE until
    # 2001:db8::1 is known.
    "2001:db8::1": HOME,
    "2001:db8:0:0:ffff::": ELSEWHERE,
    "2001:db8:0:1:8a2e:370:7334:1": HOME,
    # 10.0.0.4 and 2001:db8:5::/64 have no facts: no area, no collection links.
}
PEERS = [None, peer_id(1), peer_id(2), (b"-XX0000-" + b"\x00" * 12).hex()]
# Smaller thresholds than the defaults, so that small streams link often.
CONFIG = LeadsConfig(
    grouping=replace(
        GroupingConfig(),
        window_days=3.0,
        device_change_gap_hours=5.0,
        collection_min_shared=2,
        collection_jaccard=0.5,
        peer_id_max_gap_days=4.0,
        collection_max_gap_days=20.0,
    )
)


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Sightings of a few devices, each with its port, client, peer id and
    collection, moving from address to address over a month (now and then
    showing up somewhere else in between)."""
    devices = draw(
        st.lists(
            st.tuples(
                st.sampled_from([6881, 51413, 7000]),
                st.sampled_from([None, "libtorrent/2.1.1", "Transmission 3.00"]),
                st.sampled_from(PEERS),
                st.lists(st.integers(0, 7), min_size=1, max_size=5, unique=True),
                st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=4),
                st.integers(12, 24 * 10),  # hours at each address
            ),
            min_size=1,
            max_size=5,
        )
    )
    picks = draw(
        st.lists(
            st.tuples(
                st.integers(0, 4),  # device
                st.integers(0, 24 * 30),  # hour
                st.integers(0, 4),  # item of the device's collection
                st.one_of(st.none(), st.none(), st.none(), st.sampled_from(ADDRESSES)),  # stray
                st.booleans(),  # proof
                st.sampled_from([None, 1, 3, 4]),  # category
                st.sampled_from(["bittorrent", "bittorrent", "ed2k"]),
            ),
            min_size=1,
            max_size=45,
        )
    )
    rows = []
    for d, hour, k, stray, proof, category, network in picks:
        port, client, peer, collection, addresses, period = devices[d % len(devices)]
        ip = stray or addresses[(hour // period) % len(addresses)]
        n = collection[k % len(collection)]
        rows.append((ip, port, n, hour, peer, client, proof, category, network))
    return rows


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (
            lead_link,
            lead_presence_item,
            lead_presence_peer,
            lead_presence,
            lead_factor,
            lead,
            lead_item,
            lead_state,
            sighting,
        ):
            conn.execute(delete(table))


def _write(engine: Engine, rows: list[tuple[Any, ...]]) -> None:
    write(
        engine,
        [
            make(
                ip,
                item(n),
                hour + 0.25 * (n % 3),
                port=port,
                peer=peer,
                client=client,
                proof=proof,
                category=category,
                file_key=f"sha1:{n:040x}" if n % 2 else None,
                network=network,
            )
            for ip, port, n, hour, peer, client, proof, category, network in rows
        ],
    )


@pytest.mark.slow
def test_incremental_builds_equal_a_rebuild(engine: Engine) -> None:
    examples = 60 if engine.dialect.name == "sqlite" else 12

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        rows=streams(), cuts=st.lists(st.integers(1, 44), min_size=1, max_size=3), data=st.data()
    )
    def check(rows: list[tuple[Any, ...]], cuts: list[int], data: st.DataObject) -> None:
        _reset(engine)
        bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
        # Some builds see facts that are not there yet, as when enrichment lags.
        late = data.draw(st.sets(st.sampled_from(sorted(FACTS))), label="late facts")
        now = NOW
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            if i:
                now += timedelta(days=data.draw(st.integers(0, 30), label="days to next build"))
            _write(engine, rows[lo:hi])
            last = i == len(bounds) - 2
            known = FACTS if last else {k: v for k, v in FACTS.items() if k not in late}
            build_leads(engine, facts(known), CONFIG, now=now)
        incremental = dump(engine)
        build_leads(engine, facts(FACTS), CONFIG, now=now, rebuild=True)
        assert dump(engine) == incremental

    check()
