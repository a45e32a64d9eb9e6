"""The node and address families (BEP 32): IPv6 nodes, `want`, and what is never a node."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.dht import (
    DhtNode,
    LookupFinished,
    NodeConfig,
    PeersFound,
)
from atalaya.networks.bittorrent.dht.nodeid import distance
from atalaya.networks.bittorrent.krpc import (
    WANT_N4,
    WANT_N6,
    Address,
    FindNode,
    GetPeers,
    Message,
    NodeInfo,
    Ping,
    Query,
    Response,
    SampleInfohashes,
    decode_message,
    encode_message,
)
from tests.networks.bittorrent.dht.sim import Sim

BASE4 = NodeConfig(allowed_networks=("127.0.0.0/8",))
BASE6 = NodeConfig(family=6, allowed_networks=("fd00::/8",))
PEERS6 = (("fd00::5:1", 51413), ("fd00::5:2", 6882))


def network(count: int, base: NodeConfig, prefix: str, seed: int) -> tuple[Sim, list[Address]]:
    """Nodes join one after the other, each bootstrapping from the first."""
    sim = Sim(seed=seed)
    addrs = [(f"{prefix}{i + 1:x}", 6881) for i in range(count)]
    sim.add(addrs[0], base)
    for a in addrs[1:]:
        sim.add(a, replace(base, bootstrap=(addrs[0],)))

        def joined(a: Address = a) -> bool:
            return any(isinstance(e, LookupFinished) for e in sim.events[a])

        assert sim.run(joined, max_time=30)
    return sim, addrs


def finished(sim: Sim, addr: Address, lookup_id: int) -> LookupFinished | None:
    for event in sim.events[addr]:
        if isinstance(event, LookupFinished) and event.lookup_id == lookup_id:
            return event
    return None


def sent(node: DhtNode, now: float) -> list[tuple[Message, Address]]:
    return [(decode_message(data), dst) for data, dst in node.datagrams_to_send(now)]


def reply(node: DhtNode, query: Message, src: Address, now: float, **fields: object) -> None:
    sender = fields.pop("sender_id", bytes([len(src[0])]) * 20)
    response = Response(transaction_id=query.transaction_id, sender_id=sender, **fields)  # type: ignore[arg-type]
    node.receive_datagram(encode_message(response), src, now)


def test_family_and_addresses_are_checked_when_configured() -> None:
    for bad in (5, 0, "6"):
        with pytest.raises(ValueError, match="family"):
            NodeConfig(family=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="IPv6"):
        NodeConfig(family=6, external_ip="198.51.100.1")
    with pytest.raises(ValueError):
        NodeConfig(allowed_networks=("fd00::/129",))
    with pytest.raises(ValueError):
        NodeConfig(own_addresses=(("not an ip", 1),))
    with pytest.raises(ValueError):
        NodeConfig(own_addresses=(("127.0.0.1", 70000),))
    # CIDRs with host bits are read as their network, as the CLI's fence reads them.
    assert NodeConfig(allowed_networks=("fd00::1/8", "127.0.0.1/8")).allowed_networks


def test_an_ipv6_network_bootstraps_and_finds_peers() -> None:
    sim, addrs = network(30, BASE6, "fd00::1:", seed=41)
    for a in addrs:
        assert len(sim.nodes[a].routing) >= 8
        assert all(":" in e.addr[0] for e in sim.nodes[a].routing)
    storer_addr = addrs[11]
    storer = sim.nodes[storer_addr]
    infohash = storer.node_id[:19] + bytes([storer.node_id[19] ^ 1])
    for peer in PEERS6:
        storer.store_peer(infohash, peer, sim.now)
    searcher = addrs[25]
    lookup_id = sim.nodes[searcher].start_get_peers(infohash, sim.now)
    assert sim.run(lambda: finished(sim, searcher, lookup_id) is not None)
    found = [e for e in sim.events[searcher] if isinstance(e, PeersFound)]
    assert {p for e in found for p in e.peers} == set(PEERS6)
    done = finished(sim, searcher, lookup_id)
    assert done is not None
    assert done.stats.reason == "converged"
    truth = sorted(
        (sim.nodes[a].node_id for a in addrs if a != searcher),
        key=lambda n: distance(n, infohash),
    )[:8]
    assert [n.node_id for n in done.stats.closest] == truth
    # Every query asked for IPv6 nodes; every answer carried nodes6 and no nodes.
    messages = [decode_message(d.data) for d in sim.sent]
    queries = [m for m in messages if isinstance(m, FindNode | GetPeers)]
    assert queries
    assert all(q.want == (WANT_N6,) for q in queries)
    answers = [m for m in messages if isinstance(m, Response)]
    assert not any(a.nodes for a in answers)
    assert any(a.nodes6 for a in answers)
    assert all(a.requester is not None and ":" in a.requester[0] for a in answers)


def test_a_node_follows_only_contacts_of_its_family() -> None:
    v4_boot, v6_boot = ("127.0.0.2", 6881), ("fd00::2", 6881)
    v4_contact = NodeInfo(b"\x04" * 20, "127.0.0.3", 6881)
    v6_contact = NodeInfo(b"\x06" * 20, "fd00::3", 6881)
    for family, base, boot, mine, other in (
        (4, NodeConfig(), v4_boot, v4_contact, v6_contact),
        (6, NodeConfig(family=6), v6_boot, v6_contact, v4_contact),
    ):
        node = DhtNode(
            replace(base, bootstrap=(v4_boot, v6_boot)), rng=random.Random(family), now=0.0
        )
        node.start_find_node(b"\x05" * 20, 0.0)
        [(query, dst)] = sent(node, 0.0)
        assert dst == boot
        assert isinstance(query, FindNode)
        assert query.want == ((WANT_N4,) if family == 4 else (WANT_N6,))
        reply(node, query, boot, 0.1, nodes=(v4_contact,), nodes6=(v6_contact,))
        assert [dst for _, dst in sent(node, 0.1)] == [mine.addr]
        assert node.routing.by_addr(boot) is not None
        # A datagram from the other family is dropped before it is read.
        dropped = node.stats.dropped_addresses
        ping = Ping(transaction_id=b"p", sender_id=b"P" * 20)
        node.receive_datagram(encode_message(ping), other.addr, 0.2)
        assert node.stats.dropped_addresses == dropped + 1
        assert sent(node, 0.2) == []


def _answers(node: DhtNode, query: Query, src: Address) -> Response:
    node.receive_datagram(encode_message(query), src, 10.0)
    out = [(m, dst) for m, dst in sent(node, 10.0) if isinstance(m, Response) and dst == src]
    [(answer, _)] = out
    assert isinstance(answer, Response)
    return answer


@pytest.mark.parametrize("family", [4, 6])
def test_answers_give_nodes_of_the_family_asked_for(family: int) -> None:
    base = NodeConfig(family=family)
    asker: Address = ("127.0.0.9", 4000) if family == 4 else ("fd00::9", 4000)
    contacts = [((f"127.0.0.{i}" if family == 4 else f"fd00::{i}"), 6881) for i in range(20, 26)]
    node = DhtNode(base, rng=random.Random(42), now=0.0)
    for i, contact in enumerate(contacts):
        node.routing.node_responded(bytes([i + 1]) * 20, contact, 0.0)
    own, other = (WANT_N4, WANT_N6) if family == 4 else (WANT_N6, WANT_N4)
    me = b"Q" * 20
    for n, (want, expect) in enumerate(
        [((), True), ((own,), True), ((other,), False), ((own, other), True), ((other, own), True)]
    ):
        tid = bytes([n])
        for query in (
            FindNode(transaction_id=tid, sender_id=me, target=b"\x03" * 20, want=want),
            GetPeers(transaction_id=tid, sender_id=me, infohash=b"\x03" * 20, want=want),
            SampleInfohashes(transaction_id=tid, sender_id=me, target=b"\x03" * 20, want=want),
        ):
            answer = _answers(node, query, asker)
            got = answer.nodes if family == 4 else answer.nodes6
            assert (answer.nodes6 if family == 4 else answer.nodes) == ()
            if expect:
                assert {c.addr for c in got} == set(contacts)
                assert got[0].node_id == b"\x03" * 20  # the closest first
            else:
                assert got == ()
            if isinstance(query, GetPeers):
                assert answer.token  # a token whatever the nodes
            # BEP 42: the answer says where the asker was seen, in its family's form.
            assert answer.requester == asker


NEVER_V4 = ["0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "::1", "fd00::1"]
NEVER_V6 = ["::", "ff02::1", "ff05::2", "::ffff:127.0.0.1", "::ffff:198.51.100.1", "127.0.0.1"]


@pytest.mark.parametrize(
    ("family", "ip"), [(4, ip) for ip in NEVER_V4] + [(6, ip) for ip in NEVER_V6]
)
def test_never_a_node_whatever_the_fence(family: int, ip: str) -> None:
    good: Address = ("198.51.100.7", 6881) if family == 4 else ("2001:db8::7", 6881)
    bad: Address = (ip, 6881)
    node = DhtNode(NodeConfig(family=family, bootstrap=(bad, good)), rng=random.Random(43), now=0.0)
    node.bootstrap(0.0)
    [(query, dst)] = sent(node, 0.0)
    assert dst == good
    # Named as a contact in an answer (in the list of its own family)...
    contact = NodeInfo(b"\x01" * 20, ip, 6881)
    reply(node, query, good, 0.1, **{"nodes6" if ":" in ip else "nodes": (contact,)})
    assert all(dst != bad for _, dst in sent(node, 0.1))
    # ...given by the caller, or as the source of a datagram: refused alike.
    node.add_node(bad, 0.2)
    assert sent(node, 0.2) == []
    node.receive_datagram(encode_message(Ping(transaction_id=b"x", sender_id=b"Y" * 20)), bad, 0.3)
    assert sent(node, 0.3) == []
    assert node.stats.dropped_addresses == 1


def test_own_addresses_are_never_nodes() -> None:
    me: Address = ("198.51.100.7", 6881)
    me_elsewhere: Address = ("198.51.100.7", 7000)
    also_me: Address = ("2001:db8::1", 6881)
    ext_ip = "203.0.113.9"
    node = DhtNode(
        NodeConfig(own_addresses=(me,), bootstrap=(me, me_elsewhere)),
        rng=random.Random(44),
        now=0.0,
    )
    node.bootstrap(0.0)
    [(query, dst)] = sent(node, 0.0)
    assert dst == me_elsewhere  # another port of our IP is another node (NAT, CGNAT)
    reply(node, query, me_elsewhere, 0.1)
    assert node.routing.by_addr(me_elsewhere) is not None
    node.receive_datagram(encode_message(Ping(transaction_id=b"a", sender_id=b"Y" * 20)), me, 0.2)
    assert sent(node, 0.2) == []
    # The driver learns more of its addresses: the table forgets them at once.
    node.set_own_addresses([me_elsewhere, also_me])
    assert node.routing.by_addr(me_elsewhere) is None
    assert set(node.own_addresses) == {me, me_elsewhere, ("2001:db8::1", 6881)}
    node.add_node(me_elsewhere, 0.3)
    assert sent(node, 0.3) == []
    # Port 0: every port of that IP.
    node.add_own_address((ext_ip, 0))
    assert (ext_ip, 0) in node.own_addresses
    assert me_elsewhere in node.own_addresses
    node.add_node((ext_ip, 1234), 0.4)
    assert sent(node, 0.4) == []
    # Setting again replaces what the last call set; the config's stay.
    node.set_own_addresses([])
    assert node.own_addresses == (me,)
    node.add_node(me_elsewhere, 0.5)
    assert [dst for _, dst in sent(node, 0.5)] == [me_elsewhere]
    with pytest.raises(ValueError):
        node.set_own_addresses([("nowhere", 1)])


def test_allowed_networks_take_ipv6_ranges() -> None:
    inside: Address = ("fd00:1::5", 6881)
    outside: Address = ("fd00:2::5", 6881)
    node = DhtNode(
        NodeConfig(family=6, allowed_networks=("fd00:1::/32",), bootstrap=(outside, inside)),
        rng=random.Random(45),
        now=0.0,
    )
    node.bootstrap(0.0)
    assert [dst for _, dst in sent(node, 0.0)] == [inside]


def test_own_addresses_match_however_they_are_written() -> None:
    node = DhtNode(
        NodeConfig(family=6, own_addresses=(("2001:0db8:0000::0001", 6881),)),
        rng=random.Random(46),
        now=0.0,
    )
    node.add_own_address(("2001:DB8::2", 0))
    assert node.own_addresses == (("2001:db8::1", 6881), ("2001:db8::2", 0))
    for addr in (("2001:db8::1", 6881), ("2001:db8:0:0::2", 4000)):
        node.add_node(addr, 0.0)
        node.receive_datagram(
            encode_message(Ping(transaction_id=b"p", sender_id=b"Y" * 20)), addr, 0.0
        )
    assert sent(node, 0.0) == []
    assert node.stats.dropped_addresses == 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=12), st.integers(1, 65535))
def test_hostile_ipv6_answers_do_not_break_a_node(junk: list[bytes], port: int) -> None:
    boot: Address = ("fd00::2", 6881)
    # No fence: only the node's own checks stand between hostile contacts and the wire
    # (in memory: nothing is sent anywhere).
    node = DhtNode(NodeConfig(family=6, bootstrap=(boot,)), rng=random.Random(47), now=0.0)
    node.bootstrap(0.0)
    [(query, _)] = sent(node, 0.0)
    now = 0.0
    for blob in junk:
        now += 0.01
        # The live transaction id, with nodes6 (and nodes) of arbitrary content:
        # well-formed lists of hostile contacts, and lists cut anywhere.
        count = len(blob) % 5
        filler = (blob or b"\x00") * 200
        for key, value in (
            (b"6:nodes6", filler[: 38 * count]),
            (b"5:nodes", filler[: 26 * count]),
            (b"6:nodes6", blob),
        ):
            body = b"2:id20:" + blob[:20].ljust(20, b"x") + key + str(len(value)).encode()
            node.receive_datagram(
                b"d1:rd" + body + b":" + value + b"e1:t4:" + query.transaction_id + b"1:y1:re",
                boot,
                now,
            )
        node.receive_datagram(blob, ("fd00::66", port), now)
        node.handle_timer(now)
        for message, dst in sent(node, now):
            # Only IPv6 that can be a node, and what we send is valid KRPC.
            ip = ipaddress.ip_address(dst[0])
            assert ip.version == 6
            assert not (ip.is_multicast or ip.is_unspecified or ip.ipv4_mapped)
            assert not isinstance(message, Response) or not message.nodes
