"""Magnet links: BEP 9 / BEP 52 vectors, malformed links, round trips, libtorrent agreement."""

from __future__ import annotations

import base64
import contextlib

import libtorrent as lt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.magnet import (
    MAX_MAGNET_LENGTH,
    Magnet,
    MagnetError,
    build_magnet,
    parse_magnet,
)
from atalaya.networks.bittorrent.notes import MAX_NOTE_CHARS, MAX_NOTES

# BEP 52's test torrents.
V2_TEST = (
    "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
    "&dn=bittorrent-v2-test"
)
HYBRID_TEST = (
    "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac"
    "&xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"
    "&dn=bittorrent-v1-v2-hybrid-test"
)
V1_HEX = "631a31dd0a46257d5078c0dee4e66e26f73e42ac"


def test_bep52_v2_vector() -> None:
    m = parse_magnet(V2_TEST)
    assert m.infohash_v1 is None
    assert m.infohash_v2 == bytes.fromhex(
        "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e"
    )
    assert m.name == "bittorrent-v2-test"
    assert m.swarm_hashes == (bytes.fromhex("caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa"),)
    assert m.uri() == V2_TEST


def test_bep52_hybrid_vector() -> None:
    m = parse_magnet(HYBRID_TEST)
    assert m.infohash_v1 == bytes.fromhex(V1_HEX)
    assert m.infohash_v2 == bytes.fromhex(
        "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb"
    )
    assert m.name == "bittorrent-v1-v2-hybrid-test"
    assert m.uri() == HYBRID_TEST


def test_bep9_form_with_tracker_and_peers() -> None:
    # BEP 9: magnet:?xt=urn:btih:<info-hash>&dn=<name>&tr=<tracker-url>&x.pe=<peer-address>
    uri = (
        f"magnet:?xt=urn:btih:{V1_HEX.upper()}&dn=my+file%20%C3%A9.bin"
        "&tr=udp%3A%2F%2F127.0.0.9%3A6969%2Fannounce&tr=http://127.0.0.9:7000/announce"
        "&x.pe=127.0.0.5:6881&x.pe=%5B::1%5D:6882&x.pe=peer.local:1"
    )
    m = parse_magnet(uri)
    assert m.infohash_v1 == bytes.fromhex(V1_HEX)
    assert m.infohash_v2 is None
    assert m.name == "my file é.bin"
    assert m.trackers == ("udp://127.0.0.9:6969/announce", "http://127.0.0.9:7000/announce")
    assert m.peers == (("127.0.0.5", 6881), ("::1", 6882), ("peer.local", 1))
    assert parse_magnet(m.uri()) == m


@pytest.mark.parametrize(
    ("base32", "raw"),
    [
        ("A" * 32, bytes(20)),  # 160 zero bits
        ("7" * 32, b"\xff" * 20),  # '7' is 31: 160 one bits
        ("a" * 32, bytes(20)),  # lower case is accepted
        (base64.b32encode(bytes.fromhex(V1_HEX)).decode(), bytes.fromhex(V1_HEX)),
    ],
)
def test_base32_btih(base32: str, raw: bytes) -> None:
    assert parse_magnet(f"magnet:?xt=urn:btih:{base32}").infohash_v1 == raw


def test_numbered_and_repeated_parameters() -> None:
    uri = (
        f"magnet:?xt.1=urn:btih:{V1_HEX}&xt.2=urn:btih:{V1_HEX}&tr.1=http://127.0.0.1/a"
        "&tr.2=http://127.0.0.1/a&xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C&ws=http://x/"
        "&x.pe=127.0.0.1:1&x.pe=127.0.0.1:1&&"
    )
    m = parse_magnet(uri)
    assert m == Magnet(
        bytes.fromhex(V1_HEX), None, None, ("http://127.0.0.1/a",), (("127.0.0.1", 1),)
    )


def test_fragment_and_case_of_scheme() -> None:
    assert parse_magnet(f"MAGNET:?xt=URN:BTIH:{V1_HEX}#frag").infohash_v1 == bytes.fromhex(V1_HEX)


# What no link can be read without: a BitTorrent info-hash, and only one of each kind.
MALFORMED = [
    ("", "must start with 'magnet:?'"),
    ("http://127.0.0.1/?xt=urn:btih:" + V1_HEX, "must start with 'magnet:?'"),
    ("magnet:?", "no BitTorrent info-hash"),
    ("magnet:?dn=x", "no BitTorrent info-hash"),
    ("magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C", "no BitTorrent info-hash"),
    ("magnet:?xt", "no BitTorrent info-hash"),
    ("magnet:?xt=urn:btih:" + V1_HEX[:-1], "40 hex digits or 32 base32"),
    ("magnet:?xt=urn:btih:" + V1_HEX + "0", "40 hex digits or 32 base32"),
    ("magnet:?xt=urn:btih:" + "g" * 40, "40 hex digits or 32 base32"),
    ("magnet:?xt=urn:btih:" + "1" * 32, "is not base32"),  # '1' is not in the alphabet
    ("magnet:?xt=urn:btih:" + "é" * 32, "is not base32"),
    ("magnet:?xt=urn:btmh:" + "caf1" * 16, "'1220' and 64 hex digits"),
    ("magnet:?xt=urn:btmh:1220" + "ab" * 31, "'1220' and 64 hex digits"),
    ("magnet:?xt=urn:btmh:1114" + "ab" * 32, "is not SHA-256"),
    ("magnet:?xt=urn:btmh:1220" + "zz" * 32, "'1220' and 64 hex digits"),
    ("magnet:?xt=urn:btih:%zz", "'%' that is not followed by two hex digits"),
    (f"magnet:?xt=urn:btih:{V1_HEX}&xt=urn:btih:{'0' * 40}", "two different v1 info-hashes"),
    (
        f"magnet:?xt=urn:btmh:1220{'0' * 64}&xt=urn:btmh:1220{'1' * 64}",
        "two different v2 info-hashes",
    ),
    # The first bad topic is the reason given when no good one follows.
    ("magnet:?xt=urn:btih:xyz&xt=urn:btmh:1114" + "ab" * 32, "40 hex digits or 32 base32"),
    ("magnet:?xt=urn:btih:" + V1_HEX + "&x=" + "y" * MAX_MAGNET_LENGTH, "longer than 16384"),
]


@pytest.mark.parametrize(("uri", "message"), MALFORMED)
def test_malformed_magnet(uri: str, message: str) -> None:
    with pytest.raises(MagnetError) as info:
        parse_magnet(uri)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


PREFIX = f"magnet:?xt=urn:btih:{V1_HEX}"
GOOD_TR = "&tr=http://127.0.0.1/ok"

# (what follows the info-hash, (name, trackers, peers) read, what a note says was dropped)
DROPPED: list[tuple[str, tuple[str | None, tuple[str, ...], tuple[tuple[str, int], ...]], str]] = [
    ("&dn=a&dn=b", ("a", (), ()), "dn dropped: more than one display name"),
    ("&dn=%zz", (None, (), ()), "dn dropped: dn has a '%'"),
    ("&dn=%4", (None, (), ()), "dn dropped: dn has a '%'"),
    ("&dn=%FF&dn=ok", ("ok", (), ()), "dn dropped: dn is not UTF-8"),
    ("&dn=a%00b", (None, (), ()), "dn dropped: dn contains NUL"),
    ("&dn=" + "n" * 1025, (None, (), ()), "dn dropped: dn longer than 1024 bytes"),
    ("&dn=\ud800", (None, (), ()), "dn dropped: dn is not valid text"),
    ("&tr=" + GOOD_TR, (None, ("http://127.0.0.1/ok",), ()), "tr dropped: tracker URL ''"),
    ("&tr=http://a%20b/" + GOOD_TR, (None, ("http://127.0.0.1/ok",), ()), "has spaces"),
    ("&tr=http://a/%07", (None, (), ()), "tr dropped"),
    ("&tr=%20%20http://127.0.0.1/ok%0A", (None, ("http://127.0.0.1/ok",), ()), "trimmed"),
    ("&tr=" + "u" * 2049 + GOOD_TR, (None, ("http://127.0.0.1/ok",), ()), "longer than 2048"),
    ("&tr=%FF", (None, (), ()), "tr is not UTF-8"),
    ("&x.pe=127.0.0.1", (None, (), ()), "x.pe dropped: peer '127.0.0.1' is not host:port"),
    ("&x.pe=::1:80&x.pe=127.0.0.1:1", (None, (), (("127.0.0.1", 1),)), "is not host:port"),
    ("&x.pe=127.0.0.1:0", (None, (), ()), "port 0 outside 1..65535"),
    ("&x.pe=127.0.0.1:65536", (None, (), ()), "port 65536 outside"),
    ("&x.pe=127.0.0.1:123456", (None, (), ()), "is not host:port"),
    ("&x.pe=a%09b:1", (None, (), ()), "has spaces or control characters"),
    ("&x.pe=%zz", (None, (), ()), "x.pe has a '%'"),
    ("&dn&tr", (None, (), ()), "parameter without '=' dropped: 'dn'"),
    ("&=&dn=x", ("x", (), ()), ""),  # an empty key with a value is merely unknown
    # A bad topic beside a good one: the good one names the torrent.
    ("&xt=urn:btih:zz&xt=urn:btmh:12", (None, (), ()), "xt dropped: btih must be 40 hex"),
]


@pytest.mark.parametrize(("tail", "read", "note"), DROPPED, ids=[d[0][:30] for d in DROPPED])
def test_what_only_describes_the_torrent_is_dropped(
    tail: str,
    read: tuple[str | None, tuple[str, ...], tuple[tuple[str, int], ...]],
    note: str,
) -> None:
    m = parse_magnet(PREFIX + tail)
    assert m.infohash_v1 == bytes.fromhex(V1_HEX)
    assert (m.name, m.trackers, m.peers) == read
    if note:
        assert any(note in n for n in m.notes), m.notes
    else:
        assert m.notes == ()
    # The same link without the junk names the same torrent.
    assert m == parse_magnet(m.uri())
    assert parse_magnet(m.uri()).notes == ()


def test_every_prefix_of_a_link_parses_or_raises_magnet_error() -> None:
    # Links arrive whole, but a cut one (a paste, a log line) must fail typed.
    for tail, _, _ in DROPPED:
        link = PREFIX + tail
        for cut in range(len(link) + 1):
            with contextlib.suppress(MagnetError):
                parse_magnet(link[:cut])


def test_good_parameters_are_not_noted() -> None:
    m = parse_magnet(HYBRID_TEST + "&tr=udp://127.0.0.1:1/&x.pe=127.0.0.1:6881&ws=http://x/")
    assert m.notes == ()


def test_more_trackers_and_peers_than_the_bounds_are_dropped() -> None:
    trackers = "".join(f"&tr=http://127.0.0.1/{i}" for i in range(150))
    peers = "".join(f"&x.pe=127.0.0.1:{i}" for i in range(1, 151))
    m = parse_magnet(PREFIX + trackers + peers)
    assert m.trackers == tuple(f"http://127.0.0.1/{i}" for i in range(100))
    assert m.peers == tuple(("127.0.0.1", i) for i in range(1, 101))
    assert any("more than 100 trackers (x50)" in n for n in m.notes)
    assert any("more than 100 peers (x50)" in n for n in m.notes)


def test_notes_stay_few_and_short() -> None:
    junk = "".join(f"&x.pe=h{i}{'%01' * 50}:1&tr=%07{i}&{'z' * 90}{i}" for i in range(50))
    m = parse_magnet(PREFIX + "&dn=%FF" + junk)
    assert 3 <= len(m.notes) <= MAX_NOTES
    assert all(len(n) <= MAX_NOTE_CHARS and n.isprintable() for n in m.notes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a v1 or a v2 info-hash"),
        ({"infohash_v1": bytes(19)}, "v1 info-hash is 20 bytes"),
        ({"infohash_v2": bytes(20)}, "v2 info-hash is 32 bytes"),
        ({"infohash_v1": bytes(20), "peers": (("127.0.0.1", 0),)}, "port 0 outside"),
        ({"infohash_v1": bytes(20), "name": "\udc80"}, "encodable as UTF-8"),
        ({"infohash_v1": bytes(20), "trackers": ("u" * MAX_MAGNET_LENGTH,)}, "longer than"),
    ],
)
def test_build_refuses_what_no_magnet_can_carry(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(MagnetError, match=message):
        build_magnet(**kwargs)  # type: ignore[arg-type]


def test_build_escapes_what_needs_it() -> None:
    uri = build_magnet(
        infohash_v1=bytes.fromhex(V1_HEX),
        name="a&b=c d+é%",
        trackers=("http://127.0.0.1:80/announce?k=1&x=2",),
        peers=(("::1", 6881), ("127.0.0.1", 1)),
    )
    assert uri == (
        f"magnet:?xt=urn:btih:{V1_HEX}&dn=a%26b%3Dc%20d%2B%C3%A9%25"
        "&tr=http%3A%2F%2F127.0.0.1%3A80%2Fannounce%3Fk%3D1%26x%3D2"
        "&x.pe=[::1]:6881&x.pe=127.0.0.1:1"
    )
    params = lt.parse_magnet_uri(uri)
    assert params.name == "a&b=c d+é%"
    assert list(params.trackers) == ["http://127.0.0.1:80/announce?k=1&x=2"]
    assert sorted(params.peers) == [("127.0.0.1", 1), ("::1", 6881)]


# --- properties ---------------------------------------------------------------------------

names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "udp"]),
    st.sampled_from(["127.0.0.1:6969", "127.0.0.9", "[::1]:80"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30),
)
hosts = st.sampled_from(["127.0.0.1", "127.0.0.77", "::1", "fe80::1", "peer.local"])
magnets = st.builds(
    Magnet,
    infohash_v1=st.none() | st.binary(min_size=20, max_size=20),
    infohash_v2=st.binary(min_size=32, max_size=32),
    name=st.none() | names,
    trackers=st.lists(urls, max_size=4, unique=True).map(tuple),
    peers=st.lists(st.tuples(hosts, st.integers(1, 65535)), max_size=4, unique=True).map(tuple),
) | st.builds(Magnet, infohash_v1=st.binary(min_size=20, max_size=20))


@settings(max_examples=300, deadline=None)
@given(magnets)
def test_round_trip(m: Magnet) -> None:
    assert parse_magnet(m.uri()) == m


@settings(max_examples=200, deadline=None)
@given(magnets)
def test_libtorrent_reads_what_we_build(m: Magnet) -> None:
    params = lt.parse_magnet_uri(m.uri())
    if m.infohash_v1 is not None:
        assert params.info_hashes.v1.to_bytes() == m.infohash_v1
    if m.infohash_v2 is not None:
        assert params.info_hashes.v2.to_bytes() == m.infohash_v2
    assert list(params.trackers) == list(m.trackers)
    if m.name:
        assert params.name == m.name


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_magnet_error(text: str) -> None:
    for candidate in (text, "magnet:?" + text, f"magnet:?xt=urn:btih:{V1_HEX}&" + text):
        with contextlib.suppress(MagnetError):
            parse_magnet(candidate)


pieces = st.sampled_from(
    ["xt=", "urn:btih:", "urn:btmh:", "1220", V1_HEX, "A" * 32, "&", "=", "%", "%2", "%C3",
     "dn", "tr", "x.pe", ":", "[", "]", "::1", "127.0.0.1", "65535", "0", "+", ".1", "#"]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(pieces, max_size=30).map("".join))
def test_magnet_like_text_raises_only_magnet_error(text: str) -> None:
    try:
        m = parse_magnet("magnet:?" + text)
    except MagnetError:
        return
    assert parse_magnet(m.uri()) == m
