"""HTTP tracker codec: request URLs (BEP 3), scrape URLs (BEP 48), answers (BEP 3, 23, 7)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.bencode import encode
from atalaya.networks.bittorrent.tracker import (
    EVENTS,
    AnnounceRequest,
    AnnounceResponse,
    Peer,
    ScrapeStats,
    TrackerError,
    TrackerRefusedError,
)
from atalaya.networks.bittorrent.tracker_http import (
    MAX_RESPONSE_BYTES,
    announce_url,
    encode_announce_response,
    encode_scrape_response,
    parse_announce_response,
    parse_announce_url,
    parse_scrape_response,
    scrape_url,
    scrape_url_base,
)

# The info-hash from the classic tracker-protocol write-up, with its escaped form.
CLASSIC_HASH = bytes.fromhex("123456789abcdef123456789abcdef123456789a")
CLASSIC_ESCAPED = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A"
PEER_ID = b"-AT0001-abcdefghijkl"


def _request(**changes: object) -> AnnounceRequest:
    fields: dict[str, object] = {
        "infohash": CLASSIC_HASH,
        "peer_id": PEER_ID,
        "port": 6881,
        "left": 1000,
    }
    fields.update(changes)
    return AnnounceRequest(**fields)  # type: ignore[arg-type]


# -- request side ---------------------------------------------------------------


def test_announce_url_vector() -> None:
    url = announce_url(
        "http://127.0.0.1:6969/announce",
        _request(event="started", numwant=200, key=0x1A2B3C4D, uploaded=5, downloaded=6),
    )
    assert url == (
        "http://127.0.0.1:6969/announce"
        f"?info_hash={CLASSIC_ESCAPED}&peer_id=-AT0001-abcdefghijkl&port=6881"
        "&uploaded=5&downloaded=6&left=1000&compact=1&event=started&numwant=200&key=1A2B3C4D"
    )


def test_announce_url_without_optional_fields() -> None:
    url = announce_url("http://127.0.0.1/announce", _request(), compact=False)
    assert url.endswith("&left=1000")
    assert "event=" not in url
    assert "compact" not in url


def test_announce_url_keeps_the_trackers_query_and_drops_the_fragment() -> None:
    url = announce_url("http://127.0.0.1/announce.php?passkey=ab%2Fc#frag", _request())
    assert url.startswith("http://127.0.0.1/announce.php?passkey=ab%2Fc&info_hash=")
    assert "#" not in url


def test_every_byte_outside_the_unreserved_set_is_escaped() -> None:
    url = announce_url(
        "http://127.0.0.1/a",
        _request(infohash=bytes(range(20)), peer_id=b" +&=%/?#" * 2 + b"~._-"),
    )
    query = url.split("?", 1)[1]
    assert "info_hash=%00%01%02%03%04%05%06%07%08%09%0A%0B" in query
    assert "peer_id=%20%2B%26%3D%25%2F%3F%23%20%2B%26%3D%25%2F%3F%23~._-&" in query


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/announce",
        "udp://127.0.0.1:80",
        "http:///announce",
        "http://[::1/a",
        "http://127.0.0.1:99999/announce",
        "http://127.0.0.1/ann ounce",
        "http://127.0.0.1/\x00",
        "http://127.0.0.1/" + "a" * 9000,
    ],
)
def test_announce_url_refuses_bad_tracker_urls(url: str) -> None:
    with pytest.raises(TrackerError):
        announce_url(url, _request())


requests = st.builds(
    AnnounceRequest,
    infohash=st.binary(min_size=20, max_size=20),
    peer_id=st.binary(min_size=20, max_size=20),
    port=st.integers(0, 65535),
    left=st.integers(0, 2**63 - 1),
    uploaded=st.integers(0, 2**63 - 1),
    downloaded=st.integers(0, 2**63 - 1),
    event=st.sampled_from(EVENTS),
    numwant=st.none() | st.integers(0, 2**31 - 1),
    key=st.none() | st.integers(0, 2**32 - 1),
)


@given(requests, st.sampled_from(["http://127.0.0.1:1/announce", "https://t.example/a?x=1&y=%20"]))
def test_announce_url_round_trip(request: AnnounceRequest, base: str) -> None:
    assert parse_announce_url(announce_url(base, request)) == request


@given(st.text(max_size=300))
def test_parse_announce_url_arbitrary_text_raises_only_tracker_error(url: str) -> None:
    with contextlib.suppress(TrackerError):
        parse_announce_url("http://127.0.0.1/announce?" + url)


# BEP 48's table of announce URLs and the scrape URL each gives (None: no scrape).
BEP48 = [
    ("http://example.com/announce", "http://example.com/scrape"),
    ("http://example.com/x/announce", "http://example.com/x/scrape"),
    ("http://example.com/announce.php", "http://example.com/scrape.php"),
    ("http://example.com/a", None),
    ("http://example.com/announce?x2%0644", "http://example.com/scrape?x2%0644"),
    ("http://example.com/announce?x=2/4", "http://example.com/scrape?x=2/4"),
    ("http://example.com/x%064announce", None),
    # Only the path counts, never the host.
    ("http://announce.example.com", None),
    ("http://announce.example.com/", None),
]


@pytest.mark.parametrize(("announce", "scrape"), BEP48)
def test_scrape_url_base_follows_bep48(announce: str, scrape: str | None) -> None:
    assert scrape_url_base(announce) == scrape


def test_scrape_url_carries_every_infohash() -> None:
    other = bytes(20)
    url = scrape_url("http://127.0.0.1:6969/announce?k=v", [CLASSIC_HASH, other])
    assert url == (
        f"http://127.0.0.1:6969/scrape?k=v&info_hash={CLASSIC_ESCAPED}&info_hash=" + "%00" * 20
    )


@pytest.mark.parametrize(
    ("announce", "hashes"),
    [
        ("http://127.0.0.1/a", [CLASSIC_HASH]),
        ("http://127.0.0.1/announce", []),
        ("http://127.0.0.1/announce", [bytes(19)]),
        ("http://127.0.0.1/announce", [bytes(20)] * 1001),
    ],
)
def test_scrape_url_refusals(announce: str, hashes: list[bytes]) -> None:
    with pytest.raises(TrackerError):
        scrape_url(announce, hashes)


# -- answers --------------------------------------------------------------------


def test_compact_answer_vector() -> None:
    body = (
        b"d8:completei3e10:downloadedi7e10:incompletei2e8:intervali1800e"
        b"12:min intervali900e5:peers12:\xc0\xa8\x18\x34\x07\xd1\x7f\x00\x00\x02\x1a\xe1e"
    )
    response = parse_announce_response(body)
    assert response == AnnounceResponse(
        interval=1800,
        min_interval=900,
        complete=3,
        incomplete=2,
        downloaded=7,
        peers=(Peer("192.168.24.52", 2001), Peer("127.0.0.2", 6881)),
    )


def test_dictionary_answer_vector() -> None:
    # BEP 3's dictionary form, as the classic write-up shows it (no peer ids).
    body = (
        b"d8:intervali3600e5:peersld2:ip13:192.168.24.524:porti2001eed2:ip11:192.168.0.3"
        b"4:porti6889eeee"
    )
    response = parse_announce_response(body)
    assert response.interval == 3600
    assert response.peers == (Peer("192.168.24.52", 2001), Peer("192.168.0.3", 6889))


def test_dictionary_answer_with_peer_ids_names_and_ipv6() -> None:
    entries = [
        {b"ip": b"10.0.0.1", b"peer id": b"A" * 20, b"port": 1},
        {b"ip": b"peer.example", b"peer id": b"B" * 20, b"port": 2},
        {b"ip": b"2001:db8::7", b"port": 3},
        {b"ip": b"10.0.0.4", b"peer id": b"short", b"port": 4},
    ]
    response = parse_announce_response(encode({b"interval": 60, b"peers": entries}))
    assert response.peers == (
        Peer("10.0.0.1", 1, b"A" * 20),
        Peer("2001:db8::7", 3),
        Peer("10.0.0.4", 4),
    )
    # A host name is no address to record: counted, not kept, never resolved.
    assert response.peers_dropped == 1


def test_peers6_answer_vector() -> None:
    v6 = bytes.fromhex("fe800000000000000000000000000001") + b"\x1a\xe1"
    body = b"d8:intervali60e5:peers6:\x7f\x00\x00\x01\x00\x506:peers618:" + v6 + b"e"
    response = parse_announce_response(body)
    assert response.peers == (Peer("127.0.0.1", 80), Peer("fe80::1", 6881))


def test_peers6_only_answer() -> None:
    body = b"d8:intervali60e6:peers618:" + bytes(16) + b"\x00\x01e"
    assert parse_announce_response(body).peers == (Peer("::", 1),)


def test_failure_reason_is_a_refusal() -> None:
    body = b"d14:failure reason63:Requested download is not authorized for use with this tracker.e"
    with pytest.raises(TrackerRefusedError) as caught:
        parse_announce_response(body)
    assert caught.value.reason == "Requested download is not authorized for use with this tracker."


def test_failure_reason_wins_over_everything_else() -> None:
    body = encode({b"failure reason": b"banned", b"interval": 5, b"peers": b"bad"})
    with pytest.raises(TrackerRefusedError, match="banned"):
        parse_announce_response(body)
    with pytest.raises(TrackerRefusedError, match="banned"):
        parse_scrape_response(body)


def test_warning_and_tracker_id_are_kept() -> None:
    body = encode(
        {b"interval": 5, b"peers": b"", b"warning message": b"slow down\x07", b"tracker id": b"t1"}
    )
    response = parse_announce_response(body)
    assert response.warning == "slow down\ufffd"
    assert response.tracker_id == b"t1"


def test_peer_bound_spans_peers_and_peers6() -> None:
    body = encode({b"interval": 5, b"peers": bytes(6 * 4), b"peers6": bytes(18 * 4)})
    response = parse_announce_response(body, max_peers=6)
    assert len(response.peers) == 6
    assert response.peers_dropped == 2
    dictionary = encode(
        {b"interval": 5, b"peers": [{b"ip": b"10.0.0.1", b"port": 1} for _ in range(9)]}
    )
    response = parse_announce_response(dictionary, max_peers=4)
    assert (len(response.peers), response.peers_dropped) == (4, 5)


MALFORMED_ANNOUNCE: list[tuple[bytes, str]] = [
    (b"", "not valid bencode"),
    (b"<html>502 Bad Gateway</html>", "not valid bencode"),
    (b"d8:intervali5e5:peers0:e trailing", "not valid bencode"),
    (b"d8:intervali5e8:intervali6ee", "duplicate dictionary key"),
    (b"d8:intervali5e5:peers0:8:intervali6ee", "duplicate dictionary key"),
    (b"le", "not a dictionary"),
    (b"i5e", "not a dictionary"),
    (b"d5:peers0:e", "without interval"),
    (b"d8:intervali-1ee", "interval must be"),
    (b"d8:intervali2147483648ee", "interval must be"),
    (b"d8:interval1:5e", "interval must be"),
    (b"d8:intervali5e12:min intervali-5ee", "min interval must be"),
    (b"d8:completei-1e8:intervali5ee", "complete must be"),
    (b"d8:intervali5e5:peersi5ee", "neither a string nor a list"),
    (b"d8:intervali5e5:peers7:abcdefge", "not a multiple of 6"),
    (b"d8:intervali5e6:peers617:" + bytes(17) + b"e", "not a multiple of 18"),
    (b"d8:intervali5e6:peers6lee", "peers6 is not a string"),
    (b"d8:intervali5e5:peersli5eee", "not a dictionary"),
    (b"d8:intervali5e5:peersld4:porti1eeee", "without an ip"),
    (b"d8:intervali5e5:peersld2:ipi5e4:porti1eeee", "without an ip"),
    (b"d8:intervali5e5:peersld2:ip7:1.2.3.44:porti65536eeee", "port must be"),
    (b"d8:intervali5e5:peersld2:ip7:1.2.3.47:peer idi5e4:porti1eeee", "peer id is not"),
    (b"d8:intervali5e15:warning messagei1ee", "warning message is not"),
    (b"d8:intervali5e10:tracker idi1ee", "tracker id is not"),
    (b"d14:failure reasoni1ee", "failure reason is not"),
    (b"d8:intervali5e5:peers" + b"l" * 10 + b"e" * 10 + b"e", "nesting deeper"),
]


@pytest.mark.parametrize(("body", "reason"), MALFORMED_ANNOUNCE)
def test_malformed_announce_answers(body: bytes, reason: str) -> None:
    with pytest.raises(TrackerError, match=reason) as caught:
        parse_announce_response(body)
    assert not isinstance(caught.value, TrackerRefusedError)


def test_oversized_answer_is_refused_before_decoding() -> None:
    body = b"d8:intervali5e5:peers" + b"%d:" % MAX_RESPONSE_BYTES + bytes(MAX_RESPONSE_BYTES) + b"e"
    with pytest.raises(TrackerError, match="larger than"):
        parse_announce_response(body)


def test_scrape_answer_vector() -> None:
    # BEP 48's example, with a made-up info-hash.
    body = b"d5:filesd20:" + CLASSIC_HASH + b"d8:completei5e10:downloadedi50e10:incompletei10eeee"
    assert parse_scrape_response(body) == {CLASSIC_HASH: ScrapeStats(5, 10, 50)}


def test_unsorted_keys_are_accepted() -> None:
    # opentracker answers a scrape of several info-hashes in the order they were asked.
    high, low = b"\xff" * 20, b"\x00" * 20
    entry = b"d8:completei1e10:downloadedi0e10:incompletei2ee"
    body = b"d5:filesd20:" + high + entry + b"20:" + low + entry + b"ee"
    assert parse_scrape_response(body) == {high: ScrapeStats(1, 2, 0), low: ScrapeStats(1, 2, 0)}
    assert parse_announce_response(b"d5:peers0:8:intervali5ee").interval == 5


def test_scrape_answer_without_downloaded_and_empty() -> None:
    body = b"d5:filesd20:" + CLASSIC_HASH + b"d8:completei1e10:incompletei0eeee"
    assert parse_scrape_response(body) == {CLASSIC_HASH: ScrapeStats(1, 0, None)}
    assert parse_scrape_response(b"d5:filesdee") == {}


MALFORMED_SCRAPE: list[tuple[bytes, str]] = [
    (b"de", "without a files dictionary"),
    (b"d5:fileslee", "without a files dictionary"),
    (b"d5:filesd19:" + bytes(19) + b"deee", "20-byte info-hash"),
    (b"d5:filesd20:" + bytes(20) + b"i5eee", "not a dictionary"),
    (b"d5:filesd20:" + bytes(20) + b"d8:completei1eeee", "without complete and incomplete"),
    (b"d5:filesd20:" + bytes(20) + b"d8:completei-1e10:incompletei0eeee", "complete must be"),
    (
        b"d5:filesd20:" + bytes(20) + b"d8:completei1e10:downloaded0:10:incompletei0eeee",
        "downloaded must be",
    ),
]


@pytest.mark.parametrize(("body", "reason"), MALFORMED_SCRAPE)
def test_malformed_scrape_answers(body: bytes, reason: str) -> None:
    with pytest.raises(TrackerError, match=reason):
        parse_scrape_response(body)


def test_scrape_file_bound() -> None:
    files = {i.to_bytes(20, "big"): ScrapeStats(1, 1, 1) for i in range(11)}
    with pytest.raises(TrackerError, match="more than 10"):
        parse_scrape_response(encode_scrape_response(files), max_files=10)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_tracker_error(body: bytes) -> None:
    for parse in (parse_announce_response, parse_scrape_response):
        with contextlib.suppress(TrackerError):
            parse(body)


# Flat leaves and fixed shapes: recursive strategies cost seconds per hundred examples.
leaves = (
    st.integers(-(2**70), 2**70)
    | st.integers(0, 70_000)
    | st.binary(max_size=40)
    | st.sampled_from([b"", bytes(6), bytes(18), b"10.0.0.1", b"::1"])
    | st.just([])
)
tracker_keys = st.sampled_from(
    [
        b"interval",
        b"min interval",
        b"complete",
        b"incomplete",
        b"downloaded",
        b"peers",
        b"peers6",
        b"warning message",
        b"tracker id",
        b"files",
        b"ip",
        b"port",
        b"peer id",
        b"failure reason",
    ]
)
entry = st.dictionaries(tracker_keys, leaves, max_size=4)
answer_like = st.dictionaries(
    tracker_keys,
    leaves
    | st.lists(entry | leaves, max_size=4)
    | st.dictionaries(st.binary(min_size=19, max_size=20), entry | leaves, max_size=3),
    max_size=8,
)


@settings(max_examples=200)
@given(answer_like)
def test_arbitrary_answer_shaped_values_raise_only_tracker_error(
    value: dict[bytes, object],
) -> None:
    body = encode(value)  # type: ignore[arg-type]
    for parse in (parse_announce_response, parse_scrape_response):
        with contextlib.suppress(TrackerError):
            parse(body)


responses = st.builds(
    AnnounceResponse,
    interval=st.integers(0, 2**31 - 1),
    peers=st.lists(
        st.builds(Peer, st.ip_addresses().map(str), st.integers(0, 65535)), max_size=20
    ).map(lambda ps: tuple(sorted(ps, key=lambda p: ":" in p.ip))),
    min_interval=st.none() | st.integers(0, 2**40),
    complete=st.none() | st.integers(0, 2**40),
    incomplete=st.none() | st.integers(0, 2**40),
    downloaded=st.none() | st.integers(0, 2**40),
    warning=st.none() | st.text(alphabet=st.characters(categories=["L", "N"]), max_size=30),
    tracker_id=st.none() | st.binary(max_size=20),
)


@given(responses)
def test_announce_answer_round_trip(response: AnnounceResponse) -> None:
    assert parse_announce_response(encode_announce_response(response)) == response


@given(
    st.dictionaries(
        st.binary(min_size=20, max_size=20),
        st.builds(
            ScrapeStats,
            st.integers(0, 2**40),
            st.integers(0, 2**40),
            st.none() | st.integers(0, 2**40),
        ),
        max_size=10,
    )
)
def test_scrape_answer_round_trip(files: dict[bytes, ScrapeStats]) -> None:
    assert parse_scrape_response(encode_scrape_response(files)) == files


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xcb\x00\x71\x09", "203.0.113.9"),
        (b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01", "2001:db8::1"),
        (b"203.0.113.9", None),  # text, not the 4 raw bytes BEP 24 says: ignored
        (b"\x01\x02\x03", None),
        (7, None),
    ],
)
def test_external_ip_bep24(raw: object, expected: str | None) -> None:
    body = b"d8:intervali60e5:peers0:11:external ip" + encode(raw) + b"e"  # type: ignore[arg-type]
    assert parse_announce_response(body).external_ip == expected
