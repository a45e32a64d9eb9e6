from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.enrich.ranges import (
    FlagRules,
    RangeListError,
    check_flag_name,
    default_range_list,
    parse_asn_list,
    parse_range_list,
)


def test_range_lists_take_cidrs_addresses_and_comments() -> None:
    text = """
    # datacentre ranges (made up)
    203.0.113.0/25   # first half
    203.0.113.128/25
    198.51.100.7
    2001:db8::/32
    10.1.2.3/8  # host bits set: the network is meant
    """
    assert parse_range_list(text) == [
        (4, int(IPv4Address("10.0.0.0")), int(IPv4Address("10.255.255.255"))),
        (4, int(IPv4Address("198.51.100.7")), int(IPv4Address("198.51.100.7"))),
        (4, int(IPv4Address("203.0.113.0")), int(IPv4Address("203.0.113.255"))),
        (
            6,
            int(IPv6Address("2001:db8::")),
            int(IPv6Address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")),
        ),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("203.0.113.0/33\n", "line 1"),
        ("# ok\nhosting\n", "line 2"),
        ("1.2.3.4-1.2.3.9\n", "not a CIDR"),
        ("x" * 300, "longer than"),
    ],
)
def test_bad_range_lists_fail_with_their_reason(text: str, message: str) -> None:
    with pytest.raises(RangeListError, match=message):
        parse_range_list(text)


def test_asn_lists() -> None:
    assert parse_asn_list("AS64512\n64513 # note\nas64514\n\n") == {64512, 64513, 64514}
    for bad in ("ASx\n", "-5\n", "4294967296\n", "AS 1\n", "\u00b2\n"):
        with pytest.raises(RangeListError):
            parse_asn_list(bad)


def test_flag_names() -> None:
    assert check_flag_name("hosting") == "hosting"
    for bad in ("Hosting", "", "1vpn", "vpn-x", "x" * 41):
        with pytest.raises(RangeListError):
            check_flag_name(bad)
    with pytest.raises(RangeListError):
        FlagRules({"Bad": []})


def test_the_shipped_list_is_cgnat_only() -> None:
    assert parse_range_list(default_range_list("cgnat")) == [
        (4, int(IPv4Address("100.64.0.0")), int(IPv4Address("100.127.255.255")))
    ]


def test_flag_rules_by_range_and_asn() -> None:
    rules = FlagRules(
        {
            "cgnat": parse_range_list(default_range_list("cgnat")),
            "hosting": parse_range_list("203.0.113.0/24\n2001:db8::/32\n"),
            "vpn": parse_range_list("203.0.113.128/25\n"),
        },
        {"hosting": {64515}, "mobile": {64514}},
    )
    assert rules.flags(IPv4Address("100.64.0.0"), None) == {"cgnat"}
    assert rules.flags(IPv4Address("100.127.255.255"), None) == {"cgnat"}
    assert rules.flags(IPv4Address("100.128.0.0"), None) == set()
    assert rules.flags(IPv4Address("203.0.113.200"), None) == {"hosting", "vpn"}
    assert rules.flags(IPv4Address("203.0.113.1"), 64514) == {"hosting", "mobile"}
    assert rules.flags(IPv6Address("2001:db8::1"), None) == {"hosting"}
    assert rules.flags(IPv6Address("::100.64.0.1"), None) == set()  # not IPv4
    assert rules.flags(IPv4Address("8.8.8.8"), 64515) == {"hosting"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_fails_with_the_typed_error(text: str) -> None:
    for parse in (parse_range_list, parse_asn_list):
        with contextlib.suppress(RangeListError):
            parse(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(8, 32)), max_size=10),
    st.integers(0, 2**32 - 1),
)
def test_range_rules_agree_with_ipaddress(blocks: list[tuple[int, int]], probe: int) -> None:
    from ipaddress import ip_network

    networks = [ip_network((address, prefix), strict=False) for address, prefix in blocks]
    rules = FlagRules({"x": parse_range_list("\n".join(str(n) for n in networks))})
    inside = any(IPv4Address(probe) in n for n in networks)
    assert rules.flags(IPv4Address(probe), None) == ({"x"} if inside else set())


def test_cgnat_is_for_ipv4_only() -> None:
    with pytest.raises(RangeListError, match="IPv6"):
        FlagRules({"cgnat": parse_range_list("100.64.0.0/10\n2001:db8::/32\n")})
    rules = FlagRules(
        {"cgnat": parse_range_list("100.64.0.0/10\n"), "vpn": parse_range_list("2001:db8::/32")},
        {"cgnat": [64502], "mobile": [64502]},
    )
    assert rules.flags(IPv4Address("100.64.1.2"), None) == {"cgnat"}
    assert rules.flags(IPv4Address("192.0.2.1"), 64502) == {"cgnat", "mobile"}
    assert rules.flags(IPv6Address("2001:db8::1"), 64502) == {"mobile", "vpn"}
    assert rules.flags(IPv6Address("2001:db9::1"), 64502) == {"mobile"}
