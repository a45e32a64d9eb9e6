"""Routing table: buckets split on our own id range, node states, replacements."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.dht.nodeid import distance
from atalaya.networks.bittorrent.dht.routing import (
    GOOD_FOR,
    AddResult,
    NodeState,
    RoutingTable,
)

OWN = bytes(20)  # id 0: buckets near 0 split


def rid(rng: random.Random) -> bytes:
    return rng.getrandbits(160).to_bytes(20, "big")


def addr(i: int) -> tuple[str, int]:
    return (f"127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 6881)


def check_structure(table: RoutingTable) -> None:
    assert table.buckets[0].low == 0
    assert table.buckets[-1].high == 1 << 160
    for left, right in zip(table.buckets, table.buckets[1:], strict=False):
        assert left.high == right.low
    own = int.from_bytes(table.own_id, "big")
    for bucket in table.buckets:
        assert len(bucket.nodes) <= table.k
        assert len(bucket.replacements) <= table.max_replacements
        for entry in bucket.nodes + bucket.replacements:
            assert bucket.covers(entry.id_int)
    # Only the bucket holding our id is ever split: every other bucket is
    # exactly the half that does not contain us at its depth.
    for bucket in table.buckets:
        if bucket.covers(own):
            continue
        size = bucket.high - bucket.low
        assert size & (size - 1) == 0
        parent_low = bucket.low & ~((size << 1) - 1)
        assert parent_low <= own < parent_low + (size << 1)


def test_buckets_split_only_on_own_range() -> None:
    rng = random.Random(7)
    table = RoutingTable(OWN, 0.0)
    for i in range(2000):
        table.node_responded(rid(rng), addr(i), 1.0)
    check_structure(table)
    assert len(table.buckets) > 5
    # Far half of the id space: one bucket, k nodes, the rest waiting.
    far = table.buckets[-1]
    assert far.low == 1 << 159
    assert len(far.nodes) == 8
    assert len(table) == sum(len(b.nodes) for b in table.buckets)


def test_close_nodes_are_kept_far_nodes_cached() -> None:
    table = RoutingTable(OWN, 0.0)
    near = [(i + 1).to_bytes(20, "big") for i in range(20)]
    for i, node_id in enumerate(near):
        assert table.node_responded(node_id, addr(i), 1.0) is AddResult.ADDED
    far = [((1 << 159) + i).to_bytes(20, "big") for i in range(12)]
    results = [table.node_responded(n, addr(100 + i), 1.0) for i, n in enumerate(far)]
    assert results.count(AddResult.ADDED) == 8
    assert results.count(AddResult.CACHED) == 4
    check_structure(table)


@settings(max_examples=50)
@given(st.integers(0, 2**32), st.integers(1, 400), st.binary(min_size=20, max_size=20))
def test_structure_and_closest_hold_for_any_insertions(seed: int, n: int, own: bytes) -> None:
    rng = random.Random(seed)
    table = RoutingTable(own, 0.0)
    for i in range(n):
        table.node_responded(rid(rng), addr(i), float(i))
    check_structure(table)
    target = rid(rng)
    closest = table.closest(target, 8, float(n))
    everyone = sorted(table, key=lambda e: distance(e.node_id, target))
    assert [e.node_id for e in closest] == [e.node_id for e in everyone[:8]]


def test_node_states_follow_time_and_failures() -> None:
    table = RoutingTable(OWN, 0.0)
    node = b"\x80" + bytes(19)
    table.node_responded(node, addr(1), 100.0)
    entry = table.find(node)
    assert entry is not None
    assert table.state(entry, 100.0 + GOOD_FOR - 1) is NodeState.GOOD
    assert table.state(entry, 100.0 + GOOD_FOR) is NodeState.QUESTIONABLE
    # Having answered once, a recent query from it makes it good again.
    table.node_queried(node, addr(1), 100.0 + GOOD_FOR + 5)
    assert table.state(entry, 100.0 + GOOD_FOR + 10) is NodeState.GOOD
    table.node_failed(addr(1), 2000.0)
    assert table.state(entry, 2000.0) is not NodeState.BAD
    table.node_failed(addr(1), 2001.0)
    assert table.state(entry, 2001.0) is NodeState.BAD
    assert table.closest(node, 8, 2001.0) == []
    # An answer clears the failures.
    table.node_responded(node, addr(1), 2002.0)
    assert table.state(entry, 2002.0) is NodeState.GOOD


def test_bad_node_gives_way_to_replacement() -> None:
    table = RoutingTable(OWN, 0.0)
    far = [((1 << 159) + i).to_bytes(20, "big") for i in range(9)]
    for i, node_id in enumerate(far[:8]):
        table.node_responded(node_id, addr(i), 1.0)
    assert table.node_responded(far[8], addr(8), 2.0) is AddResult.CACHED
    assert table.find(far[8]) is None
    table.node_failed(addr(3), 3.0)
    table.node_failed(addr(3), 4.0)
    assert table.find(far[3]) is None
    assert table.find(far[8]) is not None
    assert table.by_addr(addr(3)) is None


def test_bad_node_is_replaced_by_a_newcomer() -> None:
    table = RoutingTable(OWN, 0.0)
    far = [((1 << 159) + i).to_bytes(20, "big") for i in range(9)]
    for i, node_id in enumerate(far[:8]):
        table.node_responded(node_id, addr(i), 1.0)
    table.node_failed(addr(5), 2.0)
    table.node_failed(addr(5), 3.0)
    assert table.node_responded(far[8], addr(8), 4.0) is AddResult.ADDED
    assert table.find(far[5]) is None


def test_questionable_nodes_are_offered_for_ping_when_replacements_wait() -> None:
    table = RoutingTable(OWN, 0.0)
    far = [((1 << 159) + i).to_bytes(20, "big") for i in range(9)]
    for i, node_id in enumerate(far[:8]):
        table.node_responded(node_id, addr(i), float(i))
    assert table.to_ping(GOOD_FOR + 100) == []
    table.node_responded(far[8], addr(8), GOOD_FOR + 100)
    pings = table.to_ping(GOOD_FOR + 100)
    assert [e.node_id for e in pings] == far[:8]  # oldest first


def test_live_node_id_cannot_be_taken_by_another_address() -> None:
    table = RoutingTable(OWN, 0.0)
    node = b"\x42" * 20
    table.node_responded(node, addr(1), 1.0)
    assert table.node_responded(node, addr(2), 2.0) is AddResult.REJECTED
    assert table.find(node).addr == addr(1)  # type: ignore[union-attr]
    # Once it has gone quiet, the id may move.
    assert table.node_responded(node, addr(2), 2.0 + GOOD_FOR) is AddResult.UPDATED
    assert table.by_addr(addr(2)) is not None
    assert table.by_addr(addr(1)) is None


def test_one_node_per_ip_and_never_ourselves() -> None:
    table = RoutingTable(OWN, 0.0)
    assert table.node_responded(OWN, addr(1), 1.0) is AddResult.REJECTED
    assert table.node_responded(b"\x01" * 20, ("127.0.0.5", 1000), 1.0) is AddResult.ADDED
    assert table.node_responded(b"\x02" * 20, ("127.0.0.5", 1001), 1.0) is AddResult.REJECTED
    two = RoutingTable(OWN, 0.0, max_per_ip=2)
    assert two.node_responded(b"\x01" * 20, ("127.0.0.5", 1000), 1.0) is AddResult.ADDED
    assert two.node_responded(b"\x02" * 20, ("127.0.0.5", 1001), 1.0) is AddResult.ADDED


def test_stale_buckets_and_random_ids_within_them() -> None:
    rng = random.Random(3)
    table = RoutingTable(OWN, 0.0)
    for i in range(100):
        table.node_responded(rid(rng), addr(i), 10.0)
    assert table.stale_buckets(10.0 + 899, 900) == []
    stale = table.stale_buckets(10.0 + 900, 900)
    assert stale == table.buckets
    for bucket in stale:
        target = int.from_bytes(table.random_id_in(bucket, rng), "big")
        assert bucket.covers(target)


def test_reset_own_id_rebuilds_around_the_new_id_and_keeps_contacts() -> None:
    rng = random.Random(31)
    table = RoutingTable(OWN, 0.0)
    for i in range(60):
        table.node_responded(rid(rng), addr(i), float(i))
    entry = max(table, key=lambda e: e.id_int)  # near the new id: it stays in the table
    table.node_queried(entry.node_id, entry.addr, 70.0)

    def held(t: RoutingTable) -> dict[tuple[str, int], tuple[object, ...]]:
        return {
            e.addr: (e.node_id, e.first_seen, e.last_response, e.last_query)
            for b in t.buckets
            for e in b.nodes + b.replacements
        }

    before = held(table)
    new_own = b"\xff" * 20
    table.reset_own_id(new_own, 100.0)
    assert table.own_id == new_own
    check_structure(table)
    after = held(table)
    # Contacts keep their history, in the table or waiting in a cache.
    assert all(before[a] == v for a, v in after.items())
    kept = table.by_addr(entry.addr)
    assert kept is not None
    assert kept.last_query == 70.0
    # What is lost lay in a bucket already full (k nodes and its cache).
    for a in set(before) - set(after):
        node_id = before[a][0]
        assert isinstance(node_id, bytes)
        bucket = table.bucket_for(node_id)
        assert len(bucket.nodes) == table.k
        assert len(bucket.replacements) == table.max_replacements
    # The buckets near the new id are the ones split now, filled from the old caches too.
    last = table.buckets[-1]
    assert last.covers(int.from_bytes(new_own, "big"))
    assert last.high - last.low < 1 << 159
    near_half = [e for e in table if e.id_int >= 1 << 159]
    assert len(near_half) > table.k
    for e in table:
        assert table.by_addr(e.addr) is e
        assert table.find(e.node_id) is e


def test_reset_own_id_drops_bad_nodes_and_the_node_with_the_new_id() -> None:
    table = RoutingTable(OWN, 0.0, max_failures=2)
    ids = [bytes([i]) * 20 for i in range(1, 6)]
    for i, node_id in enumerate(ids):
        table.node_responded(node_id, addr(i), 1.0)
    table.node_failed(addr(0), 2.0)
    table.node_failed(addr(0), 3.0)
    table.reset_own_id(ids[1], 4.0)
    assert table.by_addr(addr(0)) is None  # bad
    assert table.by_addr(addr(1)) is None  # it has our id now
    assert {e.addr for e in table} == {addr(2), addr(3), addr(4)}


def test_remove_forgets_a_contact_in_the_table_or_the_cache() -> None:
    rng = random.Random(32)
    table = RoutingTable(OWN, 0.0, k=2)
    far = [(1 << 159 | rng.getrandbits(150)).to_bytes(20, "big") for _ in range(3)]
    for i, node_id in enumerate(far):
        table.node_responded(node_id, addr(i), 1.0)
    assert len(table) == 2
    assert [e.addr for e in table.buckets[-1].replacements] == [addr(2)]
    assert table.remove(addr(0))
    assert table.by_addr(addr(0)) is None
    assert table.remove(addr(2))
    assert table.buckets[-1].replacements == []
    assert not table.remove(addr(9))
    assert len(table) == 1
