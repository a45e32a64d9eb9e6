"""NAT (BEP 42, 43): the external address from votes, a BEP 42 id for it, read-only at run time.

Addresses are TEST-NET (192.0.2/24, 198.51.100/24, 203.0.113/24) and the IPv6
documentation prefix, in memory only: BEP 42 does not exempt them, as it does
the lab's loopback and ULA addresses.
"""

from __future__ import annotations

import random
from dataclasses import replace

from atalaya.networks.bittorrent.dht import (
    MIN_VOTERS,
    DhtNode,
    Event,
    ExternalAddressChanged,
    NodeConfig,
)
from atalaya.networks.bittorrent.dht.nodeid import is_valid_node_id
from atalaya.networks.bittorrent.krpc import (
    Address,
    ErrorReply,
    FindNode,
    Message,
    Ping,
    Response,
    decode_message,
    encode_message,
)

VOTERS4 = tuple((f"203.0.113.{i}", 6881) for i in range(1, 12))
VOTERS6 = tuple((f"2001:db8::{i:x}", 6881) for i in range(1, 12))


def sent(node: DhtNode, now: float) -> list[tuple[Message, Address]]:
    return [(decode_message(data), dst) for data, dst in node.datagrams_to_send(now)]


def events(node: DhtNode) -> list[Event]:
    out = []
    while (event := node.next_event()) is not None:
        out.append(event)
    return out


def changes(node: DhtNode) -> list[ExternalAddressChanged]:
    return [e for e in events(node) if isinstance(e, ExternalAddressChanged)]


class Voters:
    """Fake nodes that answer the node's queries with what they say they saw."""

    def __init__(self, node: DhtNode, addrs: tuple[Address, ...]) -> None:
        self.node = node
        self.addrs = addrs
        self.now = 1.0
        self.ids = {a: bytes([i + 1]) * 20 for i, a in enumerate(addrs)}

    def vote(self, voter: Address, seen: Address) -> None:
        """`voter` answers a ping from the node, saying it saw the node at `seen`."""
        self.now += 0.1
        self.node.add_node(voter, self.now)
        queries = [(m, dst) for m, dst in sent(self.node, self.now) if dst == voter]
        assert queries, f"nothing sent to {voter}"
        for query, _ in queries:
            response = Response(
                transaction_id=query.transaction_id, sender_id=self.ids[voter], requester=seen
            )
            self.node.receive_datagram(encode_message(response), voter, self.now)


def test_three_voters_give_the_node_a_bep42_id_for_its_new_ip() -> None:
    node = DhtNode(NodeConfig(), rng=random.Random(51), now=0.0)
    old_id = node.node_id
    voters = Voters(node, VOTERS4)
    seen = ("198.51.100.23", 4321)
    assert not is_valid_node_id(old_id, seen[0])
    for voter in VOTERS4[: MIN_VOTERS - 1]:
        voters.vote(voter, seen)
    assert changes(node) == []
    assert node.node_id == old_id
    assert node.external_ip is None
    voters.vote(VOTERS4[MIN_VOTERS - 1], seen)
    [change] = changes(node)
    assert change.ip == seen[0]
    assert change.voters == MIN_VOTERS
    assert change.previous is None
    assert change.received_at == voters.now
    assert node.node_id == change.node_id != old_id
    assert is_valid_node_id(node.node_id, seen[0])
    assert node.external_ip == seen[0]
    # The table is rebuilt around the new id and keeps every voter.
    assert node.routing.own_id == node.node_id
    assert {e.addr for e in node.routing} == set(VOTERS4[:MIN_VOTERS])
    # And the node looks for its new neighbours, with its new id.
    out = sent(node, voters.now)
    lookups = [m for m, _ in out if isinstance(m, FindNode)]
    assert lookups
    assert all(m.target == node.node_id and m.sender_id == node.node_id for m in lookups)
    # More voters agreeing change nothing.
    voters.vote(VOTERS4[MIN_VOTERS], seen)
    assert changes(node) == []


def test_many_ports_of_one_ip_are_one_voter() -> None:
    node = DhtNode(NodeConfig(), rng=random.Random(52), now=0.0)
    one_ip = tuple(("203.0.113.5", 7000 + i) for i in range(6))
    voters = Voters(node, one_ip)
    for voter in one_ip:
        voters.vote(voter, ("198.51.100.23", 1))
    assert changes(node) == []
    assert node.external_ip is None


def test_only_a_majority_of_recent_voters_moves_the_address() -> None:
    node = DhtNode(NodeConfig(), rng=random.Random(53), now=0.0)
    voters = Voters(node, VOTERS4)
    first, second = ("198.51.100.1", 1), ("198.51.100.2", 1)
    for voter in VOTERS4[:3]:
        voters.vote(voter, first)
    assert [c.ip for c in changes(node)] == [first[0]]
    id_first = node.node_id
    # Three for the second IP against three for the first: no majority.
    for voter in VOTERS4[3:6]:
        voters.vote(voter, second)
    assert changes(node) == []
    assert node.external_ip == first[0]
    # However the tie is counted, and whoever spoke last.
    for voter in VOTERS4[:3]:
        voters.vote(voter, first)
    for voter in VOTERS4[3:6]:
        voters.vote(voter, second)
    assert changes(node) == []
    assert node.external_ip == first[0]
    # One voter changing its mind makes it four to two.
    voters.vote(VOTERS4[0], second)
    [change] = changes(node)
    assert (change.ip, change.voters, change.previous) == (second[0], 4, first[0])
    assert node.node_id != id_first
    assert is_valid_node_id(node.node_id, second[0])


def test_a_fixed_id_stays_and_a_configured_ip_is_in_force() -> None:
    fixed = b"\x42" * 20
    node = DhtNode(NodeConfig(node_id=fixed), rng=random.Random(54), now=0.0)
    voters = Voters(node, VOTERS4)
    for voter in VOTERS4[:3]:
        voters.vote(voter, ("198.51.100.9", 1))
    [change] = changes(node)
    assert change.node_id == fixed
    assert node.node_id == fixed
    assert node.external_ip == "198.51.100.9"
    # Told its external IP, a node derives its id from it; voters that agree change nothing.
    told = DhtNode(NodeConfig(external_ip="198.51.100.9"), rng=random.Random(55), now=0.0)
    assert told.external_ip == "198.51.100.9"
    assert is_valid_node_id(told.node_id, "198.51.100.9")
    voters = Voters(told, VOTERS4)
    for voter in VOTERS4[:4]:
        voters.vote(voter, ("198.51.100.9", 1))
    assert changes(told) == []


def test_ipv6_votes_and_id() -> None:
    node = DhtNode(NodeConfig(family=6), rng=random.Random(56), now=0.0)
    voters = Voters(node, VOTERS6)
    seen = ("2001:db8:77::1", 6881)
    for voter in VOTERS6[:3]:
        voters.vote(voter, seen)
    [change] = changes(node)
    assert change.ip == "2001:db8:77::1"
    assert is_valid_node_id(node.node_id, "2001:db8:77::1")
    assert node.external_address == seen
    # Votes for an address of the other family, or one that is never ours, are not counted.
    other = DhtNode(NodeConfig(family=6), rng=random.Random(57), now=0.0)
    voters = Voters(other, VOTERS6)
    for voter in VOTERS6[:3]:
        voters.vote(voter, ("198.51.100.5", 1))
    for voter in VOTERS6[3:6]:
        voters.vote(voter, ("::", 1))
    for voter in VOTERS6[6:9]:
        voters.vote(voter, ("::ffff:198.51.100.5", 1))
    assert changes(other) == []
    assert other.external_ip is None


def test_votes_come_only_from_answers_to_our_queries() -> None:
    node = DhtNode(NodeConfig(), rng=random.Random(58), now=0.0)
    for i, voter in enumerate(VOTERS4[:5]):
        forged = Response(
            transaction_id=b"\x00\x00\x00" + bytes([i]),
            sender_id=bytes([i + 1]) * 20,
            requester=("198.51.100.66", 1),
        )
        node.receive_datagram(encode_message(forged), voter, 1.0)
    assert changes(node) == []
    assert node.stats.unsolicited == 5


def test_read_only_switches_at_run_time() -> None:
    node = DhtNode(NodeConfig(bootstrap=(VOTERS4[0],)), rng=random.Random(59), now=0.0)
    asker = ("192.0.2.7", 4000)

    def pinged(now: float) -> list[Message]:
        ping = Ping(transaction_id=b"pp", sender_id=b"Q" * 20)
        node.receive_datagram(encode_message(ping), asker, now)
        return [m for m, dst in sent(node, now) if dst == asker and isinstance(m, Response)]

    assert not node.read_only
    assert len(pinged(1.0)) == 1
    node.set_read_only(True)
    assert node.read_only
    assert pinged(2.0) == []
    # A malformed query gets no error answer either.
    node.receive_datagram(b"d1:ad2:id3:abce1:q4:ping1:t2:zz1:y1:qe", asker, 2.5)
    assert [m for m, _ in sent(node, 2.5) if isinstance(m, ErrorReply)] == []
    node.bootstrap(3.0)
    [(query, _)] = sent(node, 3.0)
    assert isinstance(query, FindNode)
    assert query.read_only
    node.set_read_only(False)
    assert len(pinged(4.0)) == 1
    node.start_find_node(b"\x01" * 20, 5.0)
    out = [m for m, _ in sent(node, 5.0) if isinstance(m, FindNode)]
    assert out
    assert not any(m.read_only for m in out)


def test_unsolicited_queries_count_queries_from_strangers() -> None:
    friend, stranger, other_port = VOTERS4[0], VOTERS4[1], (VOTERS4[0][0], 9999)
    node = DhtNode(
        replace(NodeConfig(), bootstrap=(friend,), read_only=True),
        rng=random.Random(60),
        now=0.0,
    )
    ping = encode_message(Ping(transaction_id=b"pp", sender_id=b"Q" * 20))
    node.receive_datagram(ping, friend, 0.5)
    assert node.stats.unsolicited_queries == 1  # nothing sent to it yet
    node.bootstrap(1.0)
    assert [dst for _, dst in sent(node, 1.0)] == [friend]
    node.receive_datagram(ping, friend, 1.5)
    # Another port of an IP we sent to could come through a NAT that filters by IP only.
    node.receive_datagram(ping, other_port, 1.6)
    assert node.stats.unsolicited_queries == 1
    # Counted read-only or not, malformed or not: what matters is that it reached us.
    node.receive_datagram(ping, stranger, 2.0)
    node.receive_datagram(b"d1:ad2:id3:abce1:q4:ping1:t2:zz1:y1:qe", VOTERS4[2], 2.0)
    assert node.stats.unsolicited_queries == 3
    # Answers are no queries.
    answer = Response(transaction_id=b"zz", sender_id=b"R" * 20)
    node.receive_datagram(encode_message(answer), VOTERS4[3], 2.5)
    assert node.stats.unsolicited_queries == 3
