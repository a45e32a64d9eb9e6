"""UDP tracker protocol (BEP 15): packet vectors, malformed packets, the client state machine.

The state machine runs on a fake clock: `now` is whatever the test says, so
retransmission and expiry follow the protocol's numbers without any waiting.
"""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.tracker import (
    EVENTS,
    AnnounceRequest,
    AnnounceResponse,
    Peer,
    ScrapeStats,
)
from atalaya.networks.bittorrent.tracker_udp import (
    CONNECTION_ID_LIFETIME,
    PROTOCOL_ID,
    AnnounceDone,
    AnnouncePacket,
    AnnounceReply,
    ClientEvent,
    ConnectReply,
    ConnectRequest,
    ErrorReply,
    RequestFailed,
    RequestRefused,
    RequestTimedOut,
    ScrapeDone,
    ScrapePacket,
    ScrapeReply,
    UdpTrackerClient,
    UdpTrackerError,
    decode_reply,
    decode_request,
    encode_announce,
    encode_connect,
    encode_reply,
    encode_request,
    encode_scrape,
)

HASH = bytes(range(1, 21))
PEER_ID = b"-AT0001-abcdefghijkl"
REQUEST = AnnounceRequest(
    infohash=HASH,
    peer_id=PEER_ID,
    port=6881,
    left=1000,
    uploaded=3,
    downloaded=2,
    event="started",
    numwant=200,
    key=0xCAFEBABE,
)

# -- packet vectors, laid out by hand from BEP 15's tables ---------------------


def test_protocol_id_bytes() -> None:
    assert PROTOCOL_ID.to_bytes(8, "big") == bytes.fromhex("0000041727101980")


def test_connect_request_vector() -> None:
    assert encode_connect(0x12345678) == bytes.fromhex("00000417271019800000000012345678")


def test_connect_reply_vector() -> None:
    data = bytes.fromhex("00000000123456780102030405060708")
    assert decode_reply(data) == ConnectReply(0x12345678, 0x0102030405060708)


def test_announce_request_vector() -> None:
    packet = AnnouncePacket(
        connection_id=0x0102030405060708, transaction_id=0xAABBCCDD, request=REQUEST
    )
    expected = (
        bytes.fromhex("0102030405060708")  # connection_id
        + bytes.fromhex("00000001")  # action: announce
        + bytes.fromhex("aabbccdd")  # transaction_id
        + HASH
        + PEER_ID
        + (2).to_bytes(8, "big")  # downloaded
        + (1000).to_bytes(8, "big")  # left
        + (3).to_bytes(8, "big")  # uploaded
        + bytes.fromhex("00000002")  # event: started
        + bytes.fromhex("00000000")  # IP address: default
        + bytes.fromhex("cafebabe")  # key
        + (200).to_bytes(4, "big")  # num_want
        + (6881).to_bytes(2, "big")  # port
    )
    assert len(expected) == 98
    assert encode_announce(packet) == expected


def test_announce_request_defaults_num_want_to_minus_one() -> None:
    request = AnnounceRequest(infohash=HASH, peer_id=PEER_ID, port=1, left=1)
    data = encode_announce(AnnouncePacket(1, 2, request))
    assert data[80:84] == bytes(4)  # event none
    assert data[92:96] == b"\xff\xff\xff\xff"  # num_want -1


def test_announce_reply_vector() -> None:
    data = (
        bytes.fromhex("00000001aabbccdd")
        + (1800).to_bytes(4, "big")  # interval
        + (4).to_bytes(4, "big")  # leechers
        + (9).to_bytes(4, "big")  # seeders
        + bytes([127, 0, 0, 2, 0x1A, 0xE1, 10, 0, 0, 1, 0, 80])
    )
    assert decode_reply(data) == AnnounceReply(
        0xAABBCCDD,
        AnnounceResponse(
            interval=1800,
            complete=9,
            incomplete=4,
            peers=(Peer("127.0.0.2", 6881), Peer("10.0.0.1", 80)),
        ),
    )


def test_announce_reply_over_ipv6_has_18_byte_peers() -> None:
    data = bytes.fromhex("00000001000000010000003c0000000000000001")
    data += bytes.fromhex("00000000000000000000000000000001") + b"\x00\x50"
    reply = decode_reply(data, ipv6=True)
    assert isinstance(reply, AnnounceReply)
    assert reply.response.peers == (Peer("::1", 80),)
    # 18 bytes are also three IPv4 entries: only the caller knows the family.
    reply = decode_reply(data, ipv6=False)
    assert isinstance(reply, AnnounceReply)
    assert len(reply.response.peers) == 3


def test_scrape_request_vector() -> None:
    other = bytes(20)
    data = encode_scrape(ScrapePacket(7, 9, (HASH, other)))
    assert data == (7).to_bytes(8, "big") + bytes.fromhex("0000000200000009") + HASH + other


def test_scrape_reply_vector() -> None:
    data = bytes.fromhex("000000020000000900000005000000320000000a000000000000000000000001")
    assert decode_reply(data) == ScrapeReply(9, (ScrapeStats(5, 10, 50), ScrapeStats(0, 1, 0)))


def test_error_reply_vector() -> None:
    data = bytes.fromhex("0000000300000009") + b"torrent not registered"
    assert decode_reply(data) == ErrorReply(9, "torrent not registered")


MALFORMED_REPLIES: list[tuple[bytes, str]] = [
    (b"", "shorter than 8"),
    (bytes(7), "shorter than 8"),
    (bytes(8), "connect reply of 8 bytes"),
    (bytes(15), "connect reply of 15 bytes"),
    (bytes.fromhex("00000001") + bytes(15), "shorter than 20"),
    (bytes.fromhex("00000001") + bytes(16) + bytes(7), "not a multiple of 6"),
    (bytes.fromhex("00000002") + bytes(4) + bytes(13), "12-byte entries"),
    (bytes.fromhex("00000004") + bytes(4), "unknown action 4"),
    (bytes.fromhex("ffffffff") + bytes(12), "unknown action"),
    (bytes.fromhex("00000003") + bytes(4) + bytes(65_600), "too large"),
]


@pytest.mark.parametrize(("data", "reason"), MALFORMED_REPLIES)
def test_malformed_replies(data: bytes, reason: str) -> None:
    with pytest.raises(UdpTrackerError, match=reason):
        decode_reply(data)


MALFORMED_REQUESTS: list[tuple[bytes, str]] = [
    (bytes(15), "shorter than 16"),
    (bytes(16), "protocol id"),
    (bytes(8) + bytes.fromhex("00000001") + bytes(4) + bytes(81), "shorter than 98"),
    (bytes(8) + bytes.fromhex("00000002") + bytes(4), "1 to 74"),
    (bytes(8) + bytes.fromhex("00000002") + bytes(4) + bytes(21), "1 to 74"),
    (bytes(8) + bytes.fromhex("00000002") + bytes(4) + bytes(20 * 75), "1 to 74"),
    (bytes(8) + bytes.fromhex("00000007") + bytes(4), "unknown action"),
    (
        encode_announce(AnnouncePacket(1, 2, REQUEST))[:80] + b"\x00\x00\x00\x04" + bytes(14),
        "event code",
    ),
    (
        encode_announce(AnnouncePacket(1, 2, REQUEST))[:92] + b"\xff\xff\xff\xfe" + bytes(2),
        "num_want",
    ),
    (encode_announce(AnnouncePacket(1, 2, REQUEST))[:64] + b"\xff" * 8 + bytes(26), "left must be"),
]


@pytest.mark.parametrize(("data", "reason"), MALFORMED_REQUESTS)
def test_malformed_requests(data: bytes, reason: str) -> None:
    with pytest.raises(UdpTrackerError, match=reason):
        decode_request(data)


def test_encoders_refuse_out_of_range_fields() -> None:
    with pytest.raises(UdpTrackerError):
        encode_connect(2**32)
    with pytest.raises(UdpTrackerError):
        encode_announce(AnnouncePacket(2**64, 1, REQUEST))
    with pytest.raises(UdpTrackerError):
        encode_scrape(ScrapePacket(1, 1, ()))
    with pytest.raises(UdpTrackerError):
        encode_scrape(ScrapePacket(1, 1, (bytes(19),)))
    with pytest.raises(UdpTrackerError):
        encode_scrape(ScrapePacket(1, 1, (HASH,) * 75))


@settings(max_examples=500)
@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_raise_only_the_typed_error(data: bytes, ipv6: bool) -> None:
    for decode in (lambda d: decode_reply(d, ipv6=ipv6), decode_request):
        with contextlib.suppress(UdpTrackerError):
            decode(data)


@given(st.integers(0, 2**32 - 1), st.binary(max_size=200), st.booleans())
def test_arbitrary_bodies_behind_every_action_raise_only_the_typed_error(
    tid: int, body: bytes, ipv6: bool
) -> None:
    for action in range(5):
        with contextlib.suppress(UdpTrackerError):
            decode_reply(struct.pack(">II", action, tid) + body, ipv6=ipv6)


u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
announce_requests = st.builds(
    AnnounceRequest,
    infohash=st.binary(min_size=20, max_size=20),
    peer_id=st.binary(min_size=20, max_size=20),
    port=st.integers(0, 65535),
    left=st.integers(0, 2**63 - 1),
    uploaded=st.integers(0, 2**63 - 1),
    downloaded=st.integers(0, 2**63 - 1),
    event=st.sampled_from(EVENTS),
    numwant=st.none() | st.integers(0, 2**31 - 1),
    key=u32,
)
request_packets = (
    st.builds(ConnectRequest, u32)
    | st.builds(AnnouncePacket, u64, u32, announce_requests, u32)
    | st.builds(
        ScrapePacket,
        u64,
        u32,
        st.lists(st.binary(min_size=20, max_size=20), min_size=1, max_size=74).map(tuple),
    )
)


@given(request_packets)
def test_request_round_trip(packet: ConnectRequest | AnnouncePacket | ScrapePacket) -> None:
    assert decode_request(encode_request(packet)) == packet


def _peers(ipv6: bool) -> st.SearchStrategy[tuple[Peer, ...]]:
    addresses = st.ip_addresses(v=6 if ipv6 else 4).map(str)
    return st.lists(st.builds(Peer, addresses, st.integers(0, 65535)), max_size=30).map(tuple)


@given(st.booleans(), st.data())
def test_reply_round_trip(ipv6: bool, data: st.DataObject) -> None:
    response = st.builds(
        AnnounceResponse, interval=u32, peers=_peers(ipv6), complete=u32, incomplete=u32
    )
    stats = st.builds(ScrapeStats, u32, u32, u32)
    packet = data.draw(
        st.builds(ConnectReply, u32, u64)
        | st.builds(AnnounceReply, u32, response)
        | st.builds(ScrapeReply, u32, st.lists(stats, max_size=74).map(tuple))
        | st.builds(
            ErrorReply,
            u32,
            st.text(st.characters(categories=["L", "N"], include_characters=" "), max_size=50),
        )
    )
    assert decode_reply(encode_reply(packet, ipv6=ipv6), ipv6=ipv6) == packet


# -- the client state machine --------------------------------------------------


class FakeTracker:
    """A tracker that answers every packet, or drops the ones it is told to."""

    def __init__(self, connection_id: int = 0x1122334455667788) -> None:
        self.connection_id = connection_id
        self.received: list[ConnectRequest | AnnouncePacket | ScrapePacket] = []
        self.peers = (Peer("127.0.0.9", 6881),)

    def answer(self, datagram: bytes) -> bytes:
        packet = decode_request(datagram)
        self.received.append(packet)
        if isinstance(packet, ConnectRequest):
            return encode_reply(ConnectReply(packet.transaction_id, self.connection_id))
        if packet.connection_id != self.connection_id:
            return encode_reply(ErrorReply(packet.transaction_id, "bad connection id"))
        if isinstance(packet, AnnouncePacket):
            response = AnnounceResponse(interval=900, peers=self.peers, complete=1, incomplete=0)
            return encode_reply(AnnounceReply(packet.transaction_id, response))
        stats = tuple(ScrapeStats(1, i, 2) for i in range(len(packet.infohashes)))
        return encode_reply(ScrapeReply(packet.transaction_id, stats))


def _client(**kwargs: object) -> UdpTrackerClient:
    return UdpTrackerClient(randbits=random.Random(7).getrandbits, **kwargs)  # type: ignore[arg-type]


def _events(client: UdpTrackerClient) -> list[ClientEvent]:
    out = []
    while (event := client.next_event()) is not None:
        out.append(event)
    return out


def _exchange(client: UdpTrackerClient, tracker: FakeTracker, now: float) -> int:
    """Deliver every due datagram to the tracker and its answers back; how many went."""
    sent = 0
    for _ in range(10):
        datagrams = client.datagrams_to_send(now)
        if not datagrams:
            return sent
        for datagram in datagrams:
            sent += 1
            client.receive_datagram(tracker.answer(datagram), now)
    raise AssertionError("the client kept sending")


def test_announce_connects_first_then_announces() -> None:
    client, tracker = _client(), FakeTracker()
    request_id = client.start_announce(REQUEST)
    first = client.datagrams_to_send(100.0)
    assert len(first) == 1
    assert isinstance(decode_request(first[0]), ConnectRequest)
    assert client.get_timer() == 115.0
    client.receive_datagram(tracker.answer(first[0]), 100.5)
    second = client.datagrams_to_send(100.5)
    announce = decode_request(second[0])
    assert isinstance(announce, AnnouncePacket)
    assert announce.connection_id == tracker.connection_id
    assert announce.request == REQUEST
    client.receive_datagram(tracker.answer(second[0]), 101.25)
    events = _events(client)
    assert len(events) == 1
    done = events[0]
    assert isinstance(done, AnnounceDone)
    assert done.request_id == request_id
    assert done.now == 101.25
    assert done.response.peers == tracker.peers
    assert client.get_timer() is None
    assert client.pending == 0


def test_retransmits_after_15_times_2_to_the_n_then_gives_up() -> None:
    client = _client(max_tries=4)
    request_id = client.start_announce(REQUEST)
    now = 0.0
    sends: list[float] = []
    sent: set[bytes] = set()
    for _ in range(10):
        datagrams = client.datagrams_to_send(now)
        if datagrams:
            sends.append(now)
            sent.update(datagrams)
        timer = client.get_timer()
        if timer is None:
            break
        now = timer
        client.handle_timer(now)
    assert sends == [0.0, 15.0, 45.0, 105.0]
    assert len(sent) == 1  # the one connect request, sent again unchanged
    assert _events(client) == [RequestTimedOut(request_id, 4)]
    assert client.get_timer() is None


def test_backoff_stops_growing_at_n_equals_8() -> None:
    client = _client(max_tries=11)
    client.start_announce(REQUEST)
    now = 0.0
    gaps = []
    for _ in range(11):
        assert client.datagrams_to_send(now)
        timer = client.get_timer()
        assert timer is not None
        gaps.append(timer - now)
        now = timer
        client.handle_timer(now)
    assert gaps == [15.0 * 2**n for n in range(9)] + [3840.0, 3840.0]
    assert isinstance(_events(client)[0], RequestTimedOut)


def test_retransmissions_keep_one_transaction_id() -> None:
    client, tracker = _client(), FakeTracker()
    client.start_announce(REQUEST)
    connects = []
    for now in (0.0, 15.0):
        datagrams = client.datagrams_to_send(now)
        connects.append(decode_request(datagrams[0]))
        client.handle_timer(client.get_timer() or 0.0)
    assert connects[0] == connects[1]
    # The answer to the first send arrives late and is still taken.
    client.receive_datagram(tracker.answer(encode_request(connects[0])), 20.0)
    assert isinstance(decode_request(client.datagrams_to_send(20.0)[0]), AnnouncePacket)


def test_connection_id_is_reused_for_a_minute_only() -> None:
    client, tracker = _client(), FakeTracker()
    client.start_announce(REQUEST)
    assert _exchange(client, tracker, 0.0) == 2
    client.start_announce(REQUEST)
    assert _exchange(client, tracker, CONNECTION_ID_LIFETIME - 0.5) == 1
    client.start_scrape([HASH])
    assert _exchange(client, tracker, CONNECTION_ID_LIFETIME) == 2
    kinds = [type(p).__name__ for p in tracker.received]
    assert kinds == [
        "ConnectRequest",
        "AnnouncePacket",
        "AnnouncePacket",
        "ConnectRequest",
        "ScrapePacket",
    ]
    assert [type(e) for e in _events(client)] == [AnnounceDone, AnnounceDone, ScrapeDone]


def test_a_retransmission_after_expiry_reconnects_first() -> None:
    client, tracker = _client(max_tries=5), FakeTracker()
    client.start_announce(REQUEST)
    connect = client.datagrams_to_send(0.0)
    client.receive_datagram(tracker.answer(connect[0]), 0.0)
    sent = []
    now = 0.0
    for _ in range(4):
        for datagram in client.datagrams_to_send(now):
            sent.append((now, type(decode_request(datagram)).__name__))
        now = client.get_timer() or now
        client.handle_timer(now)
    # Announce lost at 0, 15 and 45; by 105 the id from 0 has expired.
    assert sent == [
        (0.0, "AnnouncePacket"),
        (15.0, "AnnouncePacket"),
        (45.0, "AnnouncePacket"),
        (105.0, "ConnectRequest"),
    ]


def test_two_requests_share_one_connect() -> None:
    client, tracker = _client(), FakeTracker()
    a = client.start_announce(REQUEST)
    b = client.start_scrape([HASH, bytes(20)])
    datagrams = client.datagrams_to_send(0.0)
    assert len(datagrams) == 1
    client.receive_datagram(tracker.answer(datagrams[0]), 0.0)
    datagrams = client.datagrams_to_send(0.0)
    assert len(datagrams) == 2
    # Answers arrive in the other order.
    for datagram in reversed(datagrams):
        client.receive_datagram(tracker.answer(datagram), 1.0)
    events = {e.request_id: e for e in _events(client)}
    assert isinstance(events[a], AnnounceDone)
    scrape = events[b]
    assert isinstance(scrape, ScrapeDone)
    assert scrape.files == {HASH: ScrapeStats(1, 0, 2), bytes(20): ScrapeStats(1, 1, 2)}


def test_scrape_answer_with_fewer_entries_maps_what_is_there() -> None:
    client, tracker = _client(), FakeTracker()
    client.start_scrape([HASH, bytes(20)])
    client.receive_datagram(tracker.answer(client.datagrams_to_send(0.0)[0]), 0.0)
    scrape = decode_request(client.datagrams_to_send(0.0)[0])
    assert isinstance(scrape, ScrapePacket)
    short = encode_reply(ScrapeReply(scrape.transaction_id, (ScrapeStats(4, 5, 6),)))
    client.receive_datagram(short, 0.1)
    (event,) = _events(client)
    assert isinstance(event, ScrapeDone)
    assert event.files == {HASH: ScrapeStats(4, 5, 6)}


def _connected_request(client: UdpTrackerClient, tracker: FakeTracker) -> AnnouncePacket:
    client.start_announce(REQUEST)
    client.receive_datagram(tracker.answer(client.datagrams_to_send(0.0)[0]), 0.0)
    packet = decode_request(client.datagrams_to_send(0.0)[0])
    assert isinstance(packet, AnnouncePacket)
    return packet


def test_error_reply_refuses_the_request() -> None:
    client, tracker = _client(), FakeTracker()
    packet = _connected_request(client, tracker)
    client.receive_datagram(encode_reply(ErrorReply(packet.transaction_id, "not registered")), 1.0)
    (event,) = _events(client)
    assert event == RequestRefused(1, "not registered", 1.0)


def test_bare_announce_header_is_opentrackers_refusal() -> None:
    client, tracker = _client(), FakeTracker()
    packet = _connected_request(client, tracker)
    client.receive_datagram(struct.pack(">II", 1, packet.transaction_id), 2.0)
    (event,) = _events(client)
    assert isinstance(event, RequestRefused)
    assert "does not serve" in event.message


def test_broken_answer_to_our_transaction_fails_the_request() -> None:
    client, tracker = _client(), FakeTracker()
    packet = _connected_request(client, tracker)
    client.receive_datagram(struct.pack(">IIIII", 1, packet.transaction_id, 5, 0, 0) + b"abc", 2.0)
    (event,) = _events(client)
    assert isinstance(event, RequestFailed)
    assert "multiple of 6" in event.reason


def test_error_on_connect_refuses_every_waiting_request() -> None:
    client = _client()
    a = client.start_announce(REQUEST)
    b = client.start_scrape([HASH])
    connect = decode_request(client.datagrams_to_send(0.0)[0])
    client.receive_datagram(encode_reply(ErrorReply(connect.transaction_id, "go away")), 0.2)
    assert _events(client) == [RequestRefused(a, "go away", 0.2), RequestRefused(b, "go away", 0.2)]
    assert client.pending == 0
    assert client.get_timer() is None


def test_connect_give_up_ends_every_waiting_request() -> None:
    client = _client(max_tries=2)
    a = client.start_announce(REQUEST)
    b = client.start_announce(REQUEST)
    for _ in range(5):
        client.datagrams_to_send(client.get_timer() or 0.0)
        timer = client.get_timer()
        if timer is None:
            break
        client.handle_timer(timer)
    assert _events(client) == [RequestTimedOut(a, 2), RequestTimedOut(b, 2)]


STRAYS = [
    b"",
    b"\x00\x00\x00",
    struct.pack(">IIQ", 0, 0xDEAD, 1),  # connect answer to nothing we asked
    struct.pack(">II", 3, 0xBEEF) + b"not ours",
    bytes(200),
]


def test_stray_datagrams_are_ignored_and_counted() -> None:
    client, tracker = _client(), FakeTracker()
    packet = _connected_request(client, tracker)
    for stray in STRAYS:
        client.receive_datagram(stray, 1.0)
    # The right transaction id with the wrong action is not an answer either.
    client.receive_datagram(struct.pack(">II", 2, packet.transaction_id), 1.0)
    assert _events(client) == []
    assert client.ignored == len(STRAYS) + 1
    assert client.pending == 1
    client.receive_datagram(tracker.answer(encode_request(packet)), 1.5)
    assert isinstance(_events(client)[0], AnnounceDone)


def test_answer_to_a_message_not_yet_sent_is_ignored() -> None:
    ids = iter(range(100, 200))
    client, tracker = UdpTrackerClient(randbits=lambda bits: next(ids)), FakeTracker()
    client.start_announce(REQUEST)  # transaction id 100
    client.start_announce(REQUEST)  # transaction id 101
    # Answers to requests still waiting for a connection id get nowhere.
    for tid in (100, 101):
        client.receive_datagram(struct.pack(">IIIII", 1, tid, 5, 0, 0), 0.0)
    assert _events(client) == []
    assert client.ignored == 2
    _exchange(client, tracker, 0.0)
    assert [e.request_id for e in _events(client)] == [1, 2]


def test_cancel_forgets_the_request() -> None:
    client, tracker = _client(), FakeTracker()
    packet = _connected_request(client, tracker)
    client.cancel(1)
    client.receive_datagram(tracker.answer(encode_request(packet)), 1.0)
    assert _events(client) == []
    assert client.get_timer() is None


def test_bounds() -> None:
    client = _client(max_pending=2)
    client.start_announce(REQUEST)
    client.start_scrape([HASH])
    with pytest.raises(UdpTrackerError, match="outstanding"):
        client.start_announce(REQUEST)
    with pytest.raises(UdpTrackerError):
        _client().start_scrape([HASH] * 75)
    with pytest.raises(UdpTrackerError):
        _client().start_scrape([])
    with pytest.raises(ValueError):
        _client(max_tries=0)
    stuck = UdpTrackerClient(randbits=lambda bits: 5)
    stuck.start_announce(REQUEST)
    with pytest.raises(UdpTrackerError, match="repeating"):
        stuck.start_announce(REQUEST)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("announce"), st.none()),
        st.tuples(st.just("scrape"), st.integers(1, 3)),
        st.tuples(st.just("deliver"), st.booleans()),  # True: the tracker answers; False: lost
        st.tuples(st.just("stray"), st.binary(max_size=40)),
        st.tuples(st.just("forge"), st.integers(0, 4)),  # our tid, arbitrary action and body
        st.tuples(st.just("wait"), st.floats(0, 200)),
    ),
    max_size=40,
)


@settings(max_examples=150)
@given(operations, st.integers(1, 4))
def test_every_request_ends_with_exactly_one_event(
    ops: list[tuple[str, object]], tries: int
) -> None:
    """Whatever arrives and whenever, each request ends once and the client never raises."""
    client, tracker = _client(max_tries=tries), FakeTracker()
    rng = random.Random(1)
    now = 0.0
    started: list[int] = []
    in_flight: list[bytes] = []
    ended: list[ClientEvent] = []
    for op, arg in ops:
        if op == "announce":
            started.append(client.start_announce(REQUEST))
        elif op == "scrape":
            started.append(client.start_scrape([HASH] * int(arg)))  # type: ignore[call-overload]
        elif op == "deliver":
            for datagram in in_flight:
                if arg:
                    client.receive_datagram(tracker.answer(datagram), now)
            in_flight.clear()
        elif op == "stray":
            client.receive_datagram(arg, now)  # type: ignore[arg-type]
        elif op == "forge" and in_flight:
            tid = struct.unpack_from(">I", in_flight[-1], 12)[0]
            client.receive_datagram(
                struct.pack(">II", arg, tid) + rng.randbytes(rng.randint(0, 30)), now
            )
        elif op == "wait":
            now += float(arg)  # type: ignore[arg-type]
            timer = client.get_timer()
            if timer is not None and timer <= now:
                client.handle_timer(now)
        in_flight.extend(client.datagrams_to_send(now))
        ended.extend(_events(client))
    # Then nothing more arrives: every request must end by the timers alone.
    for _ in range(200):
        client.datagrams_to_send(now)
        timer = client.get_timer()
        if timer is None:
            break
        now = max(now, timer)
        client.handle_timer(now)
        ended.extend(_events(client))
    ended.extend(_events(client))
    assert sorted(e.request_id for e in ended) == started
    assert client.pending == 0
