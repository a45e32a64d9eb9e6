"""Presences: how one address's sightings are cut into devices."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.leads.config import GroupingConfig
from atalaya.leads.presence import (
    US_PER_DAY,
    US_PER_HOUR,
    ItemKey,
    SightingRow,
    by_address,
    keyed,
    presence_address,
    scan,
    scan_address,
    stable_peer_id,
)

CONFIG = GroupingConfig()


def row(
    ident: int,
    hours: float,
    item: str = "a",
    *,
    port: int = 6881,
    client: str | None = None,
    peer: str | None = None,
    proof: bool = False,
    category: int | None = None,
    file_key: str | None = None,
    network: str = "bittorrent",
    ip: str = "10.0.0.1",
) -> SightingRow:
    return SightingRow(
        ident,
        ip,
        port,
        round(hours * US_PER_HOUR),
        network,
        "btih",
        item,
        file_key,
        category,
        proof,
        peer,
        client,
    )


def test_window_splits_and_keeps_the_smallest_id() -> None:
    rows = [row(5, 0), row(2, 24 * 7), row(9, 24 * 14 + 1)]
    found = scan(rows, CONFIG, by_port=False)
    assert [(p.id, p.sightings, p.opened_by) for p in found] == [(2, 2, "window"), (9, 1, "window")]
    assert found[0].days == {0, 7}


def test_device_change_needs_silence_other_device_and_new_item() -> None:
    base = [row(1, 0, "a", port=1, client="x"), row(2, 1, "b", port=1, client="x")]
    cases = {
        "other port, new item, 6 h quiet": (row(3, 7, "c", port=2), 2),
        "other client, new item": (row(3, 7, "c", port=1, client="y"), 2),
        "same port and client": (row(3, 7, "c", port=1, client="x"), 1),
        "client unknown, same port": (row(3, 7, "c", port=1), 1),
        "an item offered before": (row(3, 7, "a", port=2), 1),
        "too soon": (row(3, 5, "c", port=2), 1),
    }
    for name, (extra, expected) in cases.items():
        assert len(scan([*base, extra], CONFIG, by_port=False)) == expected, name


def test_shared_addresses_are_scanned_per_port() -> None:
    rows = [row(i, i, port=1000 + i % 3) for i in range(9)]
    found = list(scan_address(rows, CONFIG, shared=True))
    assert [(p.port, p.sightings) for p in found] == [(1000, 3), (1001, 3), (1002, 3)]
    assert [p.port for p in scan_address(rows, CONFIG, shared=False)] == [None]


def test_item_stats_take_the_strongest_values() -> None:
    rows = [
        row(1, 0, "a", category=1, file_key="sha1:bb"),
        row(2, 1, "a", category=4, file_key="sha1:aa", proof=True),
        row(3, 2, "a", category=None),
    ]
    (p,) = scan(rows, CONFIG, by_port=False)
    stat = p.items[ItemKey("bittorrent", "btih", "a")]
    assert (stat.sightings, stat.category, stat.file_key, stat.proof) == (3, 4, "sha1:aa", True)


def test_stable_peer_ids() -> None:
    assert stable_peer_id((b"-LT2010-" + bytes(range(40, 52))).hex())
    assert not stable_peer_id((b"-XX0000-" + b"\x00" * 12).hex())
    assert not stable_peer_id((b"-XX0000-" + b"ab" * 6).hex())
    assert not stable_peer_id(None)
    assert not stable_peer_id("zz" * 20)
    assert not stable_peer_id("ab" * 19)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 24 * 40),
            st.sampled_from("abcd"),
            st.integers(1, 3),
            st.sampled_from([None, "x", "y"]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.integers(0, 39),
)
def test_scanning_a_stretch_between_long_silences_alone_gives_the_same(
    raw: list[tuple[int, str, int, str | None]], cut: int
) -> None:
    rows = sorted(
        (
            row(i + 1, h, item, port=port, client=client)
            for i, (h, item, port, client) in enumerate(raw)
        ),
        key=lambda r: (r.at, r.id),
    )
    whole = scan(rows, CONFIG, by_port=False)
    # Cut at the first silence longer than the window after `cut`, if any.
    window = CONFIG.window_days * US_PER_DAY
    for i in range(min(cut, len(rows) - 1), len(rows) - 1):
        if rows[i + 1].at - rows[i].at > window:
            left = scan(rows[: i + 1], CONFIG, by_port=False)
            right = scan(rows[i + 1 :], CONFIG, by_port=False)
            assert [(p.id, p.sightings, p.opened_by) for p in left + right] == [
                (p.id, p.sightings, p.opened_by) for p in whole
            ]
            break


def test_ipv6_presence_addresses_are_prefixes() -> None:
    assert presence_address("192.0.2.7", CONFIG) == "192.0.2.7"
    assert presence_address("2001:db8:1:2:9a3f:21ff:fe4b:77c1", CONFIG) == "2001:db8:1:2::/64"
    assert presence_address("2001:db8::1:0:0:1", CONFIG) == "2001:db8::/64"
    wide = GroupingConfig(ipv6_prefix_length=56)
    assert presence_address("2001:db8:1:2ff::1", wide) == "2001:db8:1:200::/56"
    exact = GroupingConfig(ipv6_prefix_length=128)
    assert presence_address("2001:db8:1:2::1", exact) == "2001:db8:1:2::1"


def test_rows_sorted_by_address_group_by_prefix() -> None:
    # Text order splits the /64 2001:db8::/64: the '::' swallows its zeros.
    ips = ["10.0.0.1", "2001:db8:0:0:ffff::", "2001:db8:0:1::1", "2001:db8::1", "9.9.9.9"]
    rows = sorted(
        (row(i, i, ip=ip) for i, ip in enumerate(ips * 2, start=1)), key=lambda r: (r.ip, r.id)
    )
    groups = [(key, [r.id for r in rs]) for key, rs in by_address(rows, CONFIG)]
    assert groups == [
        ("10.0.0.1", [1, 6]),
        ("9.9.9.9", [5, 10]),
        ("2001:db8:0:1::/64", [3, 8]),
        ("2001:db8::/64", [2, 7, 4, 9]),
    ]
    assert all(r.ip == key for key, rs in by_address(rows, CONFIG) for r in rs)
    assert [r.ip for r in keyed(rows[:1], CONFIG)] == ["10.0.0.1"]
    assert {r.ip for r in keyed(rows, CONFIG)} == {
        "10.0.0.1",
        "9.9.9.9",
        "2001:db8:0:1::/64",
        "2001:db8::/64",
    }


def test_privacy_addresses_of_one_device_are_one_presence() -> None:
    # A new temporary address every 4 hours for a day, inside one /64.
    rows = [
        row(i, 4 * i, ip=f"2001:db8:1:2:{0x1000 + 7919 * i:x}:{i:x}ff:fe{i:02x}:{i:x}")
        for i in range(1, 7)
    ]
    groups = list(by_address(sorted(rows, key=lambda r: r.ip), CONFIG))
    assert [key for key, _ in groups] == ["2001:db8:1:2::/64"]
    ((key, grouped),) = groups
    grouped.sort(key=lambda r: (r.at, r.id))
    (presence,) = scan_address(grouped, CONFIG, shared=False)
    assert (presence.ip, presence.sightings, presence.family) == (key, 6, 6)
