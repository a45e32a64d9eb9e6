"""The sans-I/O DHT node, in a simulated network of engines with a fake clock."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.dht import (
    AnnounceReceived,
    DhtNode,
    InfohashesSampled,
    LookupFinished,
    LookupKind,
    NodeConfig,
    PeersFound,
)
from atalaya.networks.bittorrent.dht.nodeid import distance, generate_node_id
from atalaya.networks.bittorrent.dht.ratelimit import RateLimit
from atalaya.networks.bittorrent.krpc import (
    AnnouncePeer,
    ErrorReply,
    FindNode,
    GetPeers,
    NodeInfo,
    Ping,
    Response,
    SampleInfohashes,
    UnknownQuery,
    decode_message,
    encode_message,
)
from tests.networks.bittorrent.dht.sim import Sim

BASE = NodeConfig(allowed_networks=("127.0.0.0/8",))
TEST = ("127.0.9.9", 4000)  # the test's own "socket"
PEERS = (("127.0.5.1", 51413), ("127.0.5.2", 6882))


def bootstrapped(count: int, seed: int = 1, **config: object) -> tuple[Sim, list[tuple[str, int]]]:
    """Nodes join one after the other, each bootstrapping from the first."""
    sim = Sim(seed=seed)
    cfg = replace(BASE, **config)  # type: ignore[arg-type]
    addrs = [(f"127.0.1.{i + 1}", 6881) for i in range(count)]
    sim.add(addrs[0], cfg)
    for a in addrs[1:]:
        sim.add(a, replace(cfg, bootstrap=(addrs[0],)))

        def joined(a: tuple[str, int] = a) -> bool:
            return any(isinstance(e, LookupFinished) for e in sim.events[a])

        assert sim.run(joined, max_time=30)
    return sim, addrs


def finished(sim: Sim, addr: tuple[str, int], lookup_id: int) -> LookupFinished | None:
    for event in sim.events[addr]:
        if isinstance(event, LookupFinished) and event.lookup_id == lookup_id:
            return event
    return None


def test_bootstrap_fills_routing_tables() -> None:
    sim, addrs = bootstrapped(30)
    for a in addrs:
        assert len(sim.nodes[a].routing) >= 8
    first = next(e for e in sim.events[addrs[5]] if isinstance(e, LookupFinished))
    assert first.kind is LookupKind.FIND_NODE
    assert first.target == sim.nodes[addrs[5]].node_id
    assert first.stats.reason == "converged"


def test_get_peers_finds_the_node_storing_them() -> None:
    sim, addrs = bootstrapped(40, seed=2)
    storer_addr = addrs[17]
    storer = sim.nodes[storer_addr]
    # The infohash lies next to the storer's id, as announces go to the closest nodes.
    infohash = bytes(storer.node_id[:19]) + bytes([storer.node_id[19] ^ 1])
    for peer in PEERS:
        storer.store_peer(infohash, peer, sim.now)
    searcher_addr = addrs[33]
    lookup_id = sim.nodes[searcher_addr].start_get_peers(infohash, sim.now)
    assert sim.run(lambda: finished(sim, searcher_addr, lookup_id) is not None)

    found = [e for e in sim.events[searcher_addr] if isinstance(e, PeersFound)]
    assert found, "no PeersFound event"
    event = found[0]
    assert event.lookup_id == lookup_id
    assert event.infohash == infohash
    assert set(event.peers) == set(PEERS)
    assert event.source_node == NodeInfo(storer.node_id, *storer_addr)
    # received_at is the `now` passed with the datagram that carried the values.
    arrivals = {d.at for d in sim.delivered if d.src == storer_addr and d.dst == searcher_addr}
    assert event.received_at in arrivals

    done = finished(sim, searcher_addr, lookup_id)
    assert done is not None
    assert done.stats.reason == "converged"
    assert done.stats.peers == len(PEERS)
    # The lookup converged on the true 8 closest nodes of the network.
    truth = sorted(
        (sim.nodes[a].node_id for a in addrs if a != searcher_addr),
        key=lambda n: distance(n, infohash),
    )[:8]
    assert [n.node_id for n in done.stats.closest] == truth


def test_stale_buckets_are_refreshed() -> None:
    sim, addrs = bootstrapped(12, seed=21)
    start = sim.now
    sim.run(max_time=BASE.refresh_interval + 3 * BASE.maintenance_interval)
    late = [decode_message(d.data) for d in sim.sent if d.at >= start + BASE.refresh_interval]
    refreshes = [
        (d.src, m)
        for d in sim.sent
        if d.at >= start + BASE.refresh_interval
        and isinstance(m := decode_message(d.data), FindNode)
    ]
    assert refreshes, "no bucket refresh after 15 minutes"
    # Refresh lookups look for random ids in stale buckets, not for the node's own id
    # (which would be a re-bootstrap).
    assert any(m.target != sim.nodes[src].node_id for src, m in refreshes)
    # Maintenance only finds nodes and pings; it never looks for peers by itself.
    assert not [m for m in late if isinstance(m, GetPeers)]
    assert all(len(sim.nodes[a].routing) >= 8 for a in addrs)


def test_lookup_survives_packet_loss() -> None:
    sim, addrs = bootstrapped(30, seed=3)
    sim.loss = 0.1
    storer = sim.nodes[addrs[9]]
    infohash = storer.node_id[:19] + bytes([storer.node_id[19] ^ 1])
    storer.store_peer(infohash, PEERS[0], sim.now)
    sim.drop_next[addrs[9]] = 1  # the first query to the storer is lost for sure
    lookup_id = sim.nodes[addrs[20]].start_get_peers(infohash, sim.now)
    assert sim.run(lambda: finished(sim, addrs[20], lookup_id) is not None)
    done = finished(sim, addrs[20], lookup_id)
    assert done is not None
    assert done.stats.timeouts > 0
    assert done.stats.retries > 0
    found = [e for e in sim.events[addrs[20]] if isinstance(e, PeersFound)]
    assert [e.source_node.addr for e in found] == [addrs[9]]


def test_dead_bootstrap_times_out_with_bounded_retries() -> None:
    sim = Sim(seed=4)
    dead = [("127.0.7.1", 6881), ("127.0.7.2", 6881)]
    node_addr = ("127.0.1.1", 6881)
    node = sim.add(node_addr, replace(BASE, bootstrap=tuple(dead), query_timeout=2.0))
    lookup_id = node.bootstrap(sim.now)
    started = sim.now
    assert sim.run(lambda: finished(sim, node_addr, lookup_id) is not None, max_time=60)
    done = finished(sim, node_addr, lookup_id)
    assert done is not None
    assert done.stats.reason == "exhausted"
    assert done.stats.responses == 0
    # Each dead node got max_attempts queries, no more.
    assert done.stats.queries_sent == 2 * len(dead)
    assert done.stats.timeouts == 2 * len(dead)
    sent_to_dead = [d for d in sim.sent if d.dst in dead and d.at <= done.stats.finished_at]
    assert len(sent_to_dead) == 4
    assert done.stats.finished_at - started <= 2 * 2.0 + 1.0
    # Re-bootstrapping an empty table is paced, not continuous.
    sim.run(max_time=59)
    assert len([d for d in sim.sent if d.dst in dead]) <= 4 * 2


def test_lookup_deadline_and_query_budget_bound_a_hostile_network() -> None:
    """A node that answers every query with 8 fresh fake nodes cannot keep a lookup going."""
    sim = Sim(seed=5)
    me_addr = ("127.0.1.1", 6881)
    liar_addr = ("127.0.2.1", 6881)
    me = sim.add(me_addr, replace(BASE, bootstrap=(liar_addr,), lookup_max_queries=40))
    inbox: list[tuple[bytes, tuple[str, int], float]] = []
    sim.taps[liar_addr] = inbox
    rng = random.Random(9)
    lookup_id = me.start_get_peers(bytes(20), sim.now)
    for _ in range(400):
        sim.run(lambda: bool(inbox) or finished(sim, me_addr, lookup_id) is not None, max_time=30)
        if finished(sim, me_addr, lookup_id) is not None:
            break
        queued = list(inbox)
        inbox.clear()
        for data, _src, _at in queued:
            query = decode_message(data)
            # Ever closer fake nodes, each one another port of the liar's IP.
            fake = tuple(
                NodeInfo(bytes(2) + rng.randbytes(18), "127.0.2.1", rng.randrange(1024, 65535))
                for _ in range(8)
            )
            for node in fake:
                sim.taps[node.addr] = inbox
            reply = Response(
                transaction_id=query.transaction_id,
                sender_id=rng.randbytes(20),
                nodes=fake,
                token=b"t",
            )
            sim.inject(encode_message(reply), src=_dst_of(sim, data), dst=me_addr)
    done = finished(sim, me_addr, lookup_id)
    assert done is not None
    assert done.stats.queries_sent == 40
    assert done.stats.reason == "query_budget"
    assert done.stats.finished_at - done.stats.started_at <= BASE.lookup_timeout


def _dst_of(sim: Sim, data: bytes) -> tuple[str, int]:
    for d in reversed(sim.sent):
        if d.data == data:
            return d.dst
    raise AssertionError("datagram was never sent")


def test_outgoing_rate_limit_per_remote_ip_stays_below_libtorrent_block() -> None:
    """Crawling 100 ports of one IP never sends it 50 messages in 10 seconds."""
    sim = Sim(seed=6)
    me_addr = ("127.0.1.1", 6881)
    me = sim.add(me_addr, BASE)
    crowd = [("127.0.3.1", 2000 + i) for i in range(100)]
    sim.taps.update({a: [] for a in crowd})
    lookup_id = me.start_sample_infohashes(sim.now, nodes=crowd, max_nodes=100, follow=False)
    assert sim.run(lambda: finished(sim, me_addr, lookup_id) is not None, max_time=300)
    times = sorted(d.at for d in sim.sent if d.dst[0] == "127.0.3.1")
    assert times, "nothing was sent"
    limit = BASE.outgoing
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t < start + 10.0)
        assert in_window <= limit.per_ip_burst + limit.per_ip_rate * 10.0 + 1
        assert in_window < 50
    done = finished(sim, me_addr, lookup_id)
    assert done is not None
    # Held back queries were given up, not sent in a burst.
    assert done.stats.queries_sent <= 100


def test_incoming_flood_from_one_ip_is_cut_and_others_still_answered() -> None:
    sim = Sim(seed=7)
    node_addr = ("127.0.1.1", 6881)
    limit = RateLimit(per_ip_rate=5.0, per_ip_burst=10, total_rate=1000, total_burst=1000)
    node = sim.add(node_addr, replace(BASE, incoming=limit))
    flooder = ("127.0.4.4", 7000)
    sim.taps[flooder] = []
    sim.taps[TEST] = []
    for i in range(200):
        ping = Ping(transaction_id=i.to_bytes(2, "big"), sender_id=b"F" * 20)
        node.receive_datagram(encode_message(ping), flooder, sim.now)
    node.receive_datagram(
        encode_message(Ping(transaction_id=b"ok", sender_id=b"T" * 20)), TEST, sim.now
    )
    sim.run(max_time=0.5)
    assert len(sim.taps[flooder]) <= 10 + 5 * 0.5 + 1
    assert node.stats.queries_rate_limited >= 180
    replies = [m for d, _, _ in sim.taps[TEST] if isinstance(m := decode_message(d), Response)]
    assert [r.transaction_id for r in replies] == [b"ok"]


def test_overall_incoming_limit() -> None:
    sim = Sim(seed=8)
    limit = RateLimit(per_ip_rate=100, per_ip_burst=100, total_rate=10, total_burst=20)
    node = sim.add(("127.0.1.1", 6881), replace(BASE, incoming=limit))
    for i in range(100):
        src = ("127.0.4.1", 7000 + i) if i % 2 else (f"127.0.6.{i}", 7000)
        node.receive_datagram(
            encode_message(Ping(transaction_id=b"p", sender_id=b"F" * 20)), src, sim.now
        )
    assert node.stats.queries_rate_limited == 80


def _replies(sim: Sim) -> list[Response | ErrorReply]:
    """Answers that reached the test's socket (the node may also ping it back)."""
    out = []
    for data, _, _ in sim.taps[TEST]:
        message = decode_message(data)
        if isinstance(message, Response | ErrorReply):
            out.append(message)
    return out


def ask(sim: Sim, node_addr: tuple[str, int], query: object) -> object:
    sim.taps.setdefault(TEST, []).clear()
    sim.nodes[node_addr].receive_datagram(encode_message(query), TEST, sim.now)  # type: ignore[arg-type]
    sim.run(lambda: bool(_replies(sim)), max_time=1)
    [reply] = _replies(sim)
    return reply


def test_answers_queries_as_a_polite_node() -> None:
    sim, addrs = bootstrapped(12, seed=9)
    node_addr = addrs[4]
    node = sim.nodes[node_addr]
    me = b"Q" * 20

    pong = ask(sim, node_addr, Ping(transaction_id=b"p1", sender_id=me))
    assert pong == Response(
        transaction_id=b"p1", sender_id=node.node_id, requester=TEST, version=BASE.version
    )

    target = sim.nodes[addrs[7]].node_id
    found = ask(sim, node_addr, FindNode(transaction_id=b"f1", sender_id=me, target=target))
    assert isinstance(found, Response)
    assert 0 < len(found.nodes) <= 8
    assert NodeInfo(target, *addrs[7]) in found.nodes
    ds = [distance(n.node_id, target) for n in found.nodes]
    assert ds == sorted(ds)

    infohash = b"I" * 20
    got = ask(sim, node_addr, GetPeers(transaction_id=b"g1", sender_id=me, infohash=infohash))
    assert isinstance(got, Response)
    assert got.token and not got.values and got.nodes

    bad = ask(
        sim,
        node_addr,
        AnnouncePeer(
            transaction_id=b"a0", sender_id=me, infohash=infohash, port=5555, token=b"forged"
        ),
    )
    assert isinstance(bad, ErrorReply)
    assert bad.code == 203

    ok = ask(
        sim,
        node_addr,
        AnnouncePeer(
            transaction_id=b"a1",
            sender_id=me,
            infohash=infohash,
            port=5555,
            token=got.token,
            implied_port=True,
        ),
    )
    assert isinstance(ok, Response)
    announced = [e for e in sim.events[node_addr] if isinstance(e, AnnounceReceived)]
    assert [(e.infohash, e.peer) for e in announced] == [(infohash, TEST)]

    again = ask(sim, node_addr, GetPeers(transaction_id=b"g2", sender_id=me, infohash=infohash))
    assert isinstance(again, Response)
    assert again.values == (TEST,)

    sampled = ask(
        sim, node_addr, SampleInfohashes(transaction_id=b"s1", sender_id=me, target=infohash)
    )
    assert isinstance(sampled, Response)
    assert sampled.samples == (infohash,)
    assert sampled.num == 1
    assert sampled.interval == BASE.sample_interval

    unknown = ask(sim, node_addr, UnknownQuery(transaction_id=b"u1", sender_id=me, method=b"vote"))
    assert isinstance(unknown, ErrorReply)
    assert unknown.code == 204
    kin = ask(
        sim,
        node_addr,
        UnknownQuery(transaction_id=b"u2", sender_id=me, method=b"find_node2", target=target),
    )
    assert isinstance(kin, Response)
    assert kin.nodes

    sim.taps[TEST].clear()
    node.receive_datagram(b"d1:ad2:id3:abce1:q4:ping1:t2:zz1:y1:qe", TEST, sim.now)
    sim.run(lambda: bool(_replies(sim)), max_time=1)
    [proto] = _replies(sim)
    assert isinstance(proto, ErrorReply)
    assert (proto.transaction_id, proto.code) == (b"zz", 203)


def test_token_expires_after_two_rotations() -> None:
    sim, addrs = bootstrapped(4, seed=10)
    me = b"Q" * 20
    got = ask(sim, addrs[1], GetPeers(transaction_id=b"g", sender_id=me, infohash=b"I" * 20))
    assert isinstance(got, Response)
    assert got.token is not None
    sim.run(max_time=BASE.token_rotation * 2 + 1)
    late = ask(
        sim,
        addrs[1],
        AnnouncePeer(
            transaction_id=b"a", sender_id=me, infohash=b"I" * 20, port=1, token=got.token
        ),
    )
    assert isinstance(late, ErrorReply)


def test_serve_peers_off_keeps_nothing_to_hand_out() -> None:
    sim, addrs = bootstrapped(4, seed=11, serve_peers=False)
    me = b"Q" * 20
    got = ask(sim, addrs[1], GetPeers(transaction_id=b"g", sender_id=me, infohash=b"I" * 20))
    assert isinstance(got, Response)
    assert got.token is not None
    ask(
        sim,
        addrs[1],
        AnnouncePeer(
            transaction_id=b"a", sender_id=me, infohash=b"I" * 20, port=9, token=got.token
        ),
    )
    assert any(isinstance(e, AnnounceReceived) for e in sim.events[addrs[1]])
    again = ask(sim, addrs[1], GetPeers(transaction_id=b"h", sender_id=me, infohash=b"I" * 20))
    assert isinstance(again, Response)
    assert again.values == ()


def test_read_only_node_answers_nothing_and_says_so() -> None:
    sim = Sim(seed=12)
    addrs = sim.add_many(6, BASE)
    ro_addr = ("127.0.1.50", 6881)
    ro = sim.add(ro_addr, replace(BASE, read_only=True, bootstrap=(addrs[0],)))
    sim.run(max_time=20)
    assert len(ro.routing) > 0
    queries = [decode_message(d.data) for d in sim.sent if d.src == ro_addr]
    assert queries and all(getattr(q, "read_only", False) for q in queries)
    # Nobody put the read-only node in their table.
    assert all(
        a == ro_addr or ro_addr not in {e.addr for e in sim.nodes[a].routing} for a in sim.nodes
    )
    sim.taps[TEST] = []
    ro.receive_datagram(
        encode_message(Ping(transaction_id=b"p", sender_id=b"Q" * 20)), TEST, sim.now
    )
    sim.run(max_time=1)
    assert sim.taps[TEST] == []


def test_sample_infohashes_crawl_and_interval() -> None:
    sim, addrs = bootstrapped(20, seed=13)
    infohashes = [bytes([i]) * 20 for i in range(1, 4)]
    holder = sim.nodes[addrs[6]]
    for ih in infohashes:
        holder.store_peer(ih, PEERS[0], sim.now)
    crawler_addr = addrs[12]
    crawler = sim.nodes[crawler_addr]
    lookup_id = crawler.start_sample_infohashes(sim.now, max_nodes=30)
    assert sim.run(lambda: finished(sim, crawler_addr, lookup_id) is not None)
    sampled = [e for e in sim.events[crawler_addr] if isinstance(e, InfohashesSampled)]
    by_source = {e.source.addr: e for e in sampled}
    assert addrs[6] in by_source
    event = by_source[addrs[6]]
    assert set(event.samples) == set(infohashes)
    assert event.num == 3
    assert event.interval == BASE.sample_interval
    assert len(by_source) >= 15  # the crawl reached most of the network
    # A second crawl skips the nodes whose interval has not passed.
    second = crawler.start_sample_infohashes(sim.now, max_nodes=30)
    assert sim.run(lambda: finished(sim, crawler_addr, second) is not None)
    again = [
        e
        for e in sim.events[crawler_addr]
        if isinstance(e, InfohashesSampled) and e.lookup_id == second
    ]
    assert again == []
    # Asked directly and without respect, the holder answers again.
    third = crawler.start_sample_infohashes(
        sim.now, nodes=[addrs[6]], follow=False, respect_interval=False
    )
    assert sim.run(lambda: finished(sim, crawler_addr, third) is not None)
    direct = [
        e
        for e in sim.events[crawler_addr]
        if isinstance(e, InfohashesSampled) and e.lookup_id == third
    ]
    assert [e.source.addr for e in direct] == [addrs[6]]


def test_spoofed_and_unsolicited_replies_are_ignored() -> None:
    sim = Sim(seed=14)
    me_addr = ("127.0.1.1", 6881)
    boot = ("127.0.2.2", 6881)
    me = sim.add(me_addr, replace(BASE, bootstrap=(boot,)))
    sim.taps[boot] = []
    lookup_id = me.bootstrap(sim.now)
    sim.run(lambda: bool(sim.taps[boot]), max_time=1)
    query = decode_message(sim.taps[boot][0][0])
    forged = Response(transaction_id=query.transaction_id, sender_id=b"S" * 20, nodes=())
    # Right transaction id, wrong source address: ignored.
    me.receive_datagram(encode_message(forged), ("127.0.2.3", 6881), sim.now)
    # Unknown transaction id from the right address: ignored.
    other = Response(transaction_id=b"\x00\x00\x00\x00", sender_id=b"S" * 20)
    me.receive_datagram(encode_message(other), boot, sim.now)
    assert me.stats.unsolicited == 2
    assert len(me.routing) == 0
    # The real answer still counts.
    real = Response(transaction_id=query.transaction_id, sender_id=b"R" * 20)
    me.receive_datagram(encode_message(real), boot, sim.now)
    assert me.routing.by_addr(boot) is not None
    sim.run(lambda: finished(sim, me_addr, lookup_id) is not None, max_time=10)
    assert finished(sim, me_addr, lookup_id) is not None


def test_bep42_enforcement_keeps_invalid_ids_out() -> None:
    # In memory only: TEST-NET addresses, which BEP 42 does not exempt.
    rng = random.Random(15)
    cfg = NodeConfig(enforce_node_id=True, bootstrap=(("203.0.113.1", 6881), ("203.0.113.2", 6881)))
    node = DhtNode(cfg, rng=rng, now=0.0)
    node.bootstrap(0.0)
    sent = {dst: decode_message(data) for data, dst in node.datagrams_to_send(0.0)}
    good_id = generate_node_id("203.0.113.1", rng)
    bad_id = b"\x00" * 20
    r1 = Response(transaction_id=sent[("203.0.113.1", 6881)].transaction_id, sender_id=good_id)
    r2 = Response(transaction_id=sent[("203.0.113.2", 6881)].transaction_id, sender_id=bad_id)
    node.receive_datagram(encode_message(r1), ("203.0.113.1", 6881), 0.1)
    node.receive_datagram(encode_message(r2), ("203.0.113.2", 6881), 0.1)
    assert node.routing.find(good_id) is not None
    assert node.routing.find(bad_id) is None
    # Without enforcement both are kept; 127/8 is always exempt.
    lax = DhtNode(replace(cfg, enforce_node_id=False), rng=rng, now=0.0)
    lax.bootstrap(0.0)
    sent = {dst: decode_message(data) for data, dst in lax.datagrams_to_send(0.0)}
    r2 = Response(transaction_id=sent[("203.0.113.2", 6881)].transaction_id, sender_id=bad_id)
    lax.receive_datagram(encode_message(r2), ("203.0.113.2", 6881), 0.1)
    assert lax.routing.find(bad_id) is not None


def test_external_address_from_bep42_ip_field_and_id_from_external_ip() -> None:
    rng = random.Random(16)
    node = DhtNode(
        NodeConfig(external_ip="198.51.100.7", bootstrap=(("127.0.0.2", 1),)), rng=rng, now=0.0
    )
    from atalaya.networks.bittorrent.dht.nodeid import is_valid_node_id

    assert is_valid_node_id(node.node_id, "198.51.100.7")
    node.bootstrap(0.0)
    [(data, dst)] = node.datagrams_to_send(0.0)
    reply = Response(
        transaction_id=decode_message(data).transaction_id,
        sender_id=b"B" * 20,
        requester=("127.0.0.50", 4242),
    )
    node.receive_datagram(encode_message(reply), dst, 0.1)
    assert node.external_address == ("127.0.0.50", 4242)


def test_disallowed_addresses_are_never_contacted() -> None:
    node = DhtNode(
        replace(BASE, bootstrap=(("10.0.0.1", 6881), ("127.0.0.2", 6881))),
        rng=random.Random(17),
        now=0.0,
    )
    node.bootstrap(0.0)
    out = node.datagrams_to_send(0.0)
    assert [dst for _, dst in out] == [("127.0.0.2", 6881)]
    q = decode_message(out[0][0])
    outside = NodeInfo(b"Z" * 20, "192.0.2.1", 6881)
    node.receive_datagram(
        encode_message(
            Response(transaction_id=q.transaction_id, sender_id=b"B" * 20, nodes=(outside,))
        ),
        ("127.0.0.2", 6881),
        0.1,
    )
    assert all(dst[0].startswith("127.") for _, dst in node.datagrams_to_send(0.2))
    node.receive_datagram(
        encode_message(Ping(transaction_id=b"x", sender_id=b"Y" * 20)), ("192.0.2.9", 1), 0.3
    )
    assert node.stats.dropped_addresses == 1


def test_too_many_lookups_are_refused() -> None:
    from atalaya.networks.bittorrent.dht import LookupLimitError

    node = DhtNode(
        replace(BASE, max_lookups=2, bootstrap=(("127.0.0.2", 1),)), rng=random.Random(18), now=0.0
    )
    node.start_get_peers(b"a" * 20, 0.0)
    node.start_get_peers(b"b" * 20, 0.0)
    with pytest.raises(LookupLimitError):
        node.start_get_peers(b"c" * 20, 0.0)
    with pytest.raises(ValueError, match="20 bytes"):
        DhtNode(BASE, rng=random.Random(1), now=0.0).start_get_peers(b"short", 0.0)


def test_cancel_emits_finished_and_stops_sending() -> None:
    node = DhtNode(replace(BASE, bootstrap=(("127.0.0.2", 1),)), rng=random.Random(19), now=0.0)
    lookup_id = node.start_get_peers(b"a" * 20, 0.0)
    node.cancel(lookup_id, 0.0)
    event = node.next_event()
    assert isinstance(event, LookupFinished)
    assert event.stats.reason == "cancelled"
    assert node.datagrams_to_send(0.0) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=20), st.integers(1, 65535))
def test_hostile_datagrams_do_not_break_a_node(junk: list[bytes], port: int) -> None:
    node = DhtNode(replace(BASE, bootstrap=(("127.0.0.2", 6881),)), rng=random.Random(20), now=0.0)
    node.bootstrap(0.0)
    [(data, dst)] = node.datagrams_to_send(0.0)
    tid = decode_message(data).transaction_id
    now = 0.0
    for blob in junk:
        now += 0.01
        node.receive_datagram(blob, ("127.0.0.66", port), now)
        # A reply with the live transaction id but arbitrary content.
        node.receive_datagram(
            b"d1:rd2:id20:" + blob[:20].ljust(20, b"x") + b"e1:t4:" + tid + b"1:y1:re", dst, now
        )
        node.receive_datagram(blob, dst, now)
        node.handle_timer(now)
        for out, _ in node.datagrams_to_send(now):
            decode_message(out)  # whatever we send is valid KRPC
    # The node still works: it answers a ping.
    node.receive_datagram(
        encode_message(Ping(transaction_id=b"ok", sender_id=b"P" * 20)), ("127.0.0.77", 1), now + 1
    )
    replies = [
        m
        for d, a in node.datagrams_to_send(now + 1)
        if a == ("127.0.0.77", 1) and isinstance(m := decode_message(d), Response)
    ]
    assert [r.transaction_id for r in replies] == [b"ok"]
    timer = node.get_timer()
    assert timer is not None
