"""Politeness on the public DHT: libtorrent-like rates, backoff on failures, no announces."""

from __future__ import annotations

import itertools
import random

from atalaya.networks.bittorrent.dht import (
    DEFAULT_OUTGOING,
    LAB_OUTGOING,
    DhtNode,
    LookupFinished,
    NodeConfig,
)
from atalaya.networks.bittorrent.dht.node import LIBTORRENT_BLOCK_RATE, LIBTORRENT_UPLOAD_RATE
from atalaya.networks.bittorrent.krpc import (
    METHOD_UNKNOWN,
    SERVER_ERROR,
    AnnouncePeer,
    ErrorReply,
    GetPeers,
    Message,
    Response,
    SampleInfohashes,
    decode_message,
    encode_message,
)
from tests.networks.bittorrent.dht.sim import Sim

Address = tuple[str, int]


def drive(
    node: DhtNode, start: float, end: float, step: float = 0.05
) -> list[tuple[float, bytes, Address]]:
    """Run the node's clock from `start` to `end`; every datagram it sends, with its time."""
    out: list[tuple[float, bytes, Address]] = []
    now = start
    while now < end:
        timer = node.get_timer()
        if timer is not None and timer <= now:
            node.handle_timer(now)
        out.extend((now, data, dst) for data, dst in node.datagrams_to_send(now))
        while node.next_event() is not None:
            pass
        now += step
    return out


def test_default_rates_follow_libtorrents_defaults() -> None:
    # Per remote IP: what fits in libtorrent's 10-second window stays under its block.
    per_window = DEFAULT_OUTGOING.per_ip_burst + DEFAULT_OUTGOING.per_ip_rate * 10
    assert per_window < LIBTORRENT_BLOCK_RATE * 10
    # The lab's constant only raises the total.
    assert LAB_OUTGOING.total_rate > DEFAULT_OUTGOING.total_rate
    assert LAB_OUTGOING.per_ip_rate == DEFAULT_OUTGOING.per_ip_rate


def test_default_total_rate_keeps_bytes_near_libtorrents_upload_limit() -> None:
    """A crawl with plenty to ask sends about 8000 bytes a second of real queries, not more."""
    crowd = [(f"203.0.{i // 200}.{i % 200 + 1}", 6881) for i in range(2400)]
    node = DhtNode(NodeConfig(alpha=300, max_candidates=2400), rng=random.Random(61), now=0.0)
    node.start_sample_infohashes(0.0, nodes=crowd, max_nodes=len(crowd), follow=False)
    sends = drive(node, 0.0, 30.0)
    assert all(isinstance(decode_message(data), SampleInfohashes) for _, data, _ in sends)
    # Any 10 seconds: at most 10 seconds' worth plus the one-second burst.
    for t in range(21):
        window = sum(len(data) for at, data, _ in sends if t <= at < t + 10)
        assert window <= LIBTORRENT_UPLOAD_RATE * 11 * 1.05
    # And the limit is what holds the crawl back: it is used, within a few percent.
    total = sum(len(data) for _, data, _ in sends)
    assert total >= LIBTORRENT_UPLOAD_RATE * 30 * 0.9


def test_a_silent_node_rests_longer_each_time_up_to_a_bound() -> None:
    cfg = NodeConfig(query_timeout=2.0)
    node = DhtNode(cfg, rng=random.Random(62), now=0.0)
    mute = ("198.51.100.77", 6881)
    sends: list[float] = []
    now = 0.0
    while now < 3 * 3600:
        if node.active_lookups == 0:
            node.start_sample_infohashes(now, nodes=[mute], follow=False, respect_interval=False)
        sends.extend(at for at, _, dst in drive(node, now, now + 1.0, step=0.5) if dst == mute)
        now += 1.0
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    # Two tries, then rests: 30 s, 60 s, ... up to 10 minutes, each plus the timeout.
    assert gaps[0] <= cfg.query_timeout + 1
    rests = gaps[1:]
    assert rests[0] >= cfg.backoff_base
    assert rests == sorted(rests)
    assert rests[-1] <= cfg.backoff_max + cfg.query_timeout + 1.5
    assert rests[-1] >= cfg.backoff_max
    assert len({round(r, -1) for r in rests}) >= 5  # it grew step by step
    # Three hours of a lookup a second cost the silent node a couple of dozen queries.
    assert len(sends) <= 30
    assert node.stats.rested > 10_000 - 100


def _answer_all(node: DhtNode, src: Address, now: float, error: int | None) -> list[Message]:
    queries = [decode_message(d) for d, dst in node.datagrams_to_send(now) if dst == src]
    for query in queries:
        reply: Response | ErrorReply
        if error is None:
            reply = Response(transaction_id=query.transaction_id, sender_id=b"R" * 20)
        else:
            reply = ErrorReply(transaction_id=query.transaction_id, code=error, message=b"no")
        node.receive_datagram(encode_message(reply), src, now)
    return queries


def test_error_answers_count_and_any_answer_ends_the_rest() -> None:
    cfg = NodeConfig()
    node = DhtNode(cfg, rng=random.Random(63), now=0.0)
    grumpy = ("198.51.100.5", 6881)
    for now in (1.0, 2.0):
        node.add_node(grumpy, now)
        assert len(_answer_all(node, grumpy, now, SERVER_ERROR)) == 1
    assert node.resting(grumpy, 2.0)
    node.add_node(grumpy, 3.0)
    assert _answer_all(node, grumpy, 3.0, None) == []
    assert node.stats.rested == 1
    later = 2.0 + cfg.backoff_base
    assert not node.resting(grumpy, later)
    node.add_node(grumpy, later)
    assert len(_answer_all(node, grumpy, later, None)) == 1
    # The answer wiped the slate: one more error is not yet a rest.
    node.add_node(grumpy, later + 1)
    _answer_all(node, grumpy, later + 1, SERVER_ERROR)
    assert not node.resting(grumpy, later + 1)


def test_method_unknown_to_a_bep51_query_is_no_failure() -> None:
    node = DhtNode(NodeConfig(), rng=random.Random(64), now=0.0)
    old = ("198.51.100.6", 6881)
    for now in (1.0, 2.0, 3.0):
        node.start_sample_infohashes(now, nodes=[old], follow=False, respect_interval=False)
        [query] = _answer_all(node, old, now, METHOD_UNKNOWN)
        assert isinstance(query, SampleInfohashes)
    assert not node.resting(old, 3.0)
    # To a query every node knows, it is.
    for now in (4.0, 5.0):
        node.add_node(old, now)
        _answer_all(node, old, now, METHOD_UNKNOWN)
    assert node.resting(old, 5.0)


def test_backoff_memory_is_bounded() -> None:
    cfg = NodeConfig(backoff_after=1, max_backoff_tracked=16, query_timeout=1.0)
    node = DhtNode(cfg, rng=random.Random(65), now=0.0)
    silent = [(f"198.51.100.{i}", 6881) for i in range(1, 101)]
    for i, addr in enumerate(silent):
        node.add_node(addr, i * 0.01)
    drive(node, 0.0, 3.0)
    assert node.stats.timeouts == 100
    resting = [a for a in silent if node.resting(a, 3.0)]
    # Only the most recent failures are remembered; nothing grows without bound.
    assert resting == silent[-16:]


def test_no_outgoing_datagram_is_ever_an_announce() -> None:
    """An observer offers nothing: lookups of every kind and maintenance never announce."""
    sim = Sim(seed=66)
    base = NodeConfig(allowed_networks=("127.0.0.0/8",), outgoing=LAB_OUTGOING)
    addrs = sim.add_many(20, base)
    sim.run(max_time=30)
    searcher_addr = addrs[13]
    searcher = sim.nodes[searcher_addr]
    storer = sim.nodes[addrs[4]]
    infohash = storer.node_id[:19] + bytes([storer.node_id[19] ^ 1])
    storer.store_peer(infohash, ("127.0.5.1", 51413), sim.now)
    lookups = [
        searcher.start_get_peers(infohash, sim.now),
        searcher.start_find_node(infohash, sim.now),
        searcher.start_sample_infohashes(sim.now),
        searcher.bootstrap(sim.now),
    ]

    def all_done() -> bool:
        done = {e.lookup_id for e in sim.events[searcher_addr] if isinstance(e, LookupFinished)}
        return set(lookups) <= done

    assert sim.run(all_done, max_time=60)
    sim.run(max_time=base.refresh_interval + 2 * base.maintenance_interval)
    messages = [(d.src, decode_message(d.data)) for d in sim.sent]
    # The searcher had every chance: tokens from get_peers answers.
    tokens = [
        m
        for d, (_, m) in zip(sim.sent, messages, strict=True)
        if d.dst == searcher_addr and isinstance(m, Response) and m.token
    ]
    assert tokens
    assert any(isinstance(m, GetPeers) for src, m in messages if src == searcher_addr)
    assert not any(isinstance(m, AnnouncePeer) for _, m in messages)
