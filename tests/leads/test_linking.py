"""Links: the pairwise rules, and candidate search that misses no pair."""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.leads.config import GroupingConfig
from atalaya.leads.facts import IpFacts
from atalaya.leads.linking import (
    COLLECTION,
    PEER_ID,
    Node,
    all_links,
    block_of,
    links_between,
    prefix,
    prefix_length,
)
from atalaya.leads.presence import US_PER_HOUR, ItemKey

CONFIG = GroupingConfig()


def it(value: str) -> ItemKey:
    """A made-up item; linking compares whole (network, kind, value) keys."""
    return ItemKey("bittorrent", "btih", value)


def node(
    ident: int,
    items: set[str],
    *,
    first_h: float = 0,
    last_h: float = 1,
    ip: str = "10.0.0.1",
    peers: frozenset[str] = frozenset(),
    block: str | None = "AS1|28",
) -> Node:
    return Node(
        id=ident,
        ip=ip,
        port=None,
        first_at=round(first_h * US_PER_HOUR),
        last_at=round(last_h * US_PER_HOUR),
        items=frozenset(it(i) for i in items),
        peer_ids=peers,
        block=block,
        client=None,
    )


def test_collection_link_needs_jaccard_and_shared_items() -> None:
    a = node(1, {"a", "b", "c", "d"})
    b = node(2, {"a", "b", "c", "e"}, first_h=10, last_h=11)  # 3 of 5: 0.6
    (link,) = links_between(a, b, CONFIG)
    assert (link.a, link.b, link.reason) == (1, 2, COLLECTION)
    assert link.evidence["jaccard"] == 0.6
    assert link.evidence["items_in_common"] == 3
    c = node(3, {"a", "b", "x", "y"}, first_h=10, last_h=11)  # 2 in common: too few
    assert links_between(a, c, CONFIG) == []
    d = node(4, {"a", "b", "c", "x", "y", "z"}, first_h=10, last_h=11)  # 3 of 7
    assert links_between(a, d, CONFIG) == []


def test_an_item_is_its_network_kind_and_value_together() -> None:
    a = node(1, {"a", "b", "c", "d"})
    same = node(2, {"a", "b", "c", "d"}, first_h=10, last_h=11)
    assert [k.reason for k in links_between(a, same, CONFIG)] == [COLLECTION]
    # The same hex under another kind, or on another network, is another item.
    for network, kind in (("bittorrent", "btih2"), ("ed2k", "btih")):
        other = replace(same, items=frozenset(ItemKey(network, kind, v) for v in "abcd"))
        assert links_between(a, other, CONFIG) == []


def test_threshold_is_exact_where_floats_round() -> None:
    # 0.7 * 10 is 7.000000000000001 in floating point; 7 of 10 must pass.
    config = replace(CONFIG, collection_jaccard=0.7)
    a = node(1, {str(i) for i in range(10)})
    b = node(2, {str(i) for i in range(7)}, first_h=10, last_h=11)
    assert [k.reason for k in links_between(a, b, config)] == [COLLECTION]
    assert prefix_length(10, config) == 4


def test_no_collection_link_without_a_common_block() -> None:
    a = node(1, {"a", "b", "c"})
    assert (
        links_between(a, node(2, {"a", "b", "c"}, first_h=5, last_h=6, block="AS2|28"), CONFIG)
        == []
    )
    assert links_between(a, node(3, {"a", "b", "c"}, first_h=5, last_h=6, block=None), CONFIG) == []


def test_block_needs_network_and_area_and_excludes_shared_addresses() -> None:
    home = IpFacts(asn=64500, province_code="28", municipality_code="28079")
    assert block_of(home, CONFIG) == "AS64500|28"
    assert block_of(replace(home, asn=None, isp="Example"), CONFIG) == "Example|28"
    assert block_of(replace(home, province_code=None), CONFIG) is None
    assert block_of(replace(home, asn=None), CONFIG) is None
    by_town = replace(CONFIG, collection_area="municipality")
    assert block_of(home, by_town) == "AS64500|28079"
    shared = replace(home, flags=frozenset({"cgnat"}))
    assert block_of(shared, CONFIG) is None
    assert block_of(shared, replace(CONFIG, collection_links_on_shared_addresses=True))


def test_peer_id_link_within_the_gap_and_not_at_once() -> None:
    pid = frozenset({"2d4c54" + "ab" * 17})
    a = node(1, {"a"}, peers=pid, block=None)
    b = node(2, {"b"}, first_h=30, last_h=40, ip="10.0.0.2", peers=pid, block=None)
    (link,) = links_between(a, b, CONFIG)
    assert link.reason == PEER_ID and link.evidence["gap_hours"] == 29.0
    late = node(3, {"b"}, first_h=24 * 9, last_h=24 * 9 + 1, ip="10.0.0.3", peers=pid)
    assert links_between(a, late, CONFIG) == []  # 9 days: another session
    together = node(4, {"b"}, first_h=0, last_h=5, ip="10.0.0.4", peers=pid)
    assert links_between(node(5, {"a"}, last_h=5, peers=pid), together, CONFIG) == []
    # Overlap within the tolerance (an address change seen by two probes).
    edge = node(6, {"b"}, first_h=0.5, last_h=5, ip="10.0.0.5", peers=pid)
    assert [k.reason for k in links_between(a, edge, CONFIG)] == [PEER_ID]
    # IPv4 and IPv6 at once can be one dual-stack device.
    v6 = node(7, {"b"}, first_h=0, last_h=5, ip="2001:db8::7", peers=pid)
    assert [k.reason for k in links_between(node(8, {"a"}, last_h=5, peers=pid), v6, CONFIG)] == [
        PEER_ID
    ]


nodes_strategy = st.lists(
    st.tuples(
        st.sets(st.integers(0, 9), max_size=7),
        st.integers(0, 24 * 60),  # first hour
        st.integers(0, 24 * 5),  # length in hours
        st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"]),
        st.sets(st.sampled_from(["p1", "p2", "p3"]), max_size=2),
        st.sampled_from([None, "AS1|28", "AS1|28", "AS2|41"]),
    ),
    max_size=14,
)


@settings(max_examples=300, deadline=None)
@given(
    raw=nodes_strategy,
    order=st.permutations(list(range(10))),
    jaccard=st.sampled_from([0.3, 0.5, 0.6, 0.7, 1.0]),
    min_shared=st.integers(1, 4),
)
def test_candidate_search_finds_every_pair_in_any_order(
    raw: list[tuple[object, ...]], order: list[int], jaccard: float, min_shared: int
) -> None:
    config = replace(CONFIG, collection_jaccard=jaccard, collection_min_shared=min_shared)
    nodes = {
        i + 1: node(
            i + 1,
            {f"i{n}" for n in items},  # type: ignore[attr-defined]
            first_h=first,  # type: ignore[arg-type]
            last_h=first + length,  # type: ignore[operator]
            ip=ip,  # type: ignore[arg-type]
            peers=frozenset(peers),  # type: ignore[arg-type]
            block=block,  # type: ignore[arg-type]
        )
        for i, (items, first, length, ip, peers, block) in enumerate(raw)
    }
    brute = sorted(
        (k.a, k.b, k.reason)
        for a, b in combinations(nodes.values(), 2)
        for k in links_between(a, b, config)
    )
    ranks = {it(f"i{n}"): pos for pos, n in enumerate(order)}
    found = sorted((k.a, k.b, k.reason) for k in all_links(nodes, ranks, config))
    assert found == brute


def test_prefix_takes_the_first_items_in_rank_order() -> None:
    ranks = {it("a"): 3, it("b"): 1, it("c"): 2, it("d"): 0, it("e"): 4}
    # 5 items, t = 0.6: 3 must be shared, so 3 of the first 3 by rank.
    assert prefix(map(it, "abcde"), ranks, CONFIG) == [it("d"), it("b"), it("c")]
    assert prefix({it("a"), it("b")}, ranks, CONFIG) == []  # under collection_min_shared
