"""Leads from IPv6 sightings: presences by /64, exact addresses kept, on both engines."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine, select

from atalaya.leads.addresses import exact_addresses, with_exact_addresses
from atalaya.leads.build import BuildReport, build_leads
from atalaya.leads.config import GroupingConfig, LeadsConfig
from atalaya.leads.facts import IpFacts
from atalaya.leads.query import lead_detail
from atalaya.store.tables import lead_presence, sighting
from tests.leads.helpers import (
    ELSEWHERE,
    HOME,
    NOW,
    dump,
    facts,
    item,
    lead_rows,
    leads_of,
    peer_id,
    write,
)
from tests.leads.helpers import sighting as s

CONFIG = LeadsConfig()
HOME_64 = "2001:db8:1:2::/64"


def build(
    engine: Engine,
    mapping: dict[str, IpFacts],
    *,
    config: LeadsConfig = CONFIG,
    rebuild: bool = False,
    hours_later: float = 0,
) -> BuildReport:
    now = NOW + timedelta(hours=hours_later)
    return build_leads(engine, facts(mapping), config, now=now, rebuild=rebuild)


def privacy_address(prefix: str, n: int) -> str:
    """A made-up temporary address: a random-looking interface id in `prefix`."""
    iid = (n * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % (1 << 64)
    groups = [(iid >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]
    return prefix + ":".join(f"{g:x}" for g in groups)


def presences(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(lead_presence).order_by(lead_presence.c.id)).mappings()
        return [dict(r) for r in rows]


def test_privacy_addresses_rotating_in_one_64_over_a_day_are_one_presence(
    engine: Engine,
) -> None:
    # A device takes a new temporary address every two hours for a day
    # (RFC 8981), offering the same items from the same port all along.
    addresses = [privacy_address("2001:db8:1:2:", n) for n in range(12)]
    assert len(set(addresses)) == 12
    write(engine, [s(ip, item(n % 3), 2 * n) for n, ip in enumerate(addresses)])
    build(engine, {addresses[5]: HOME})

    (only,) = presences(engine)
    assert (only["ip"], only["port"], only["sightings"]) == (HOME_64, None, 12)
    assert (only["province_code"], only["isp"]) == ("28", "Example Fibra")
    (lead,) = lead_rows(engine)
    assert (lead["ip"], lead["addresses"], lead["presences"], lead["province_code"]) == (
        HOME_64,
        1,
        1,
        "28",
    )
    # Each sighting keeps its exact address.
    with engine.connect() as conn:
        stored = conn.scalars(select(sighting.c.ip).order_by(sighting.c.id)).all()
        assert stored == addresses
        span = (only["ip"], only["first_seen"], only["last_seen"])
        assert exact_addresses(conn, [span]) == [set(addresses)]
        rows = conn.execute(select(lead_presence)).all()
        expanded = with_exact_addresses(conn, rows)
    assert sorted(r.ip for r in expanded) == sorted(addresses)
    assert {r.id for r in expanded} == {only["id"]}
    detail = lead_detail(engine, int(str(lead["id"])))
    assert detail["ip"] == HOME_64
    assert detail["presences"][0]["ip"] == HOME_64


def test_the_same_day_built_in_parts_equals_a_rebuild(engine: Engine) -> None:
    # Addresses whose text puts the '::' inside the prefix, and others.
    prefix_zero = ["2001:db8::1", "2001:db8::1:0:0:1", "2001:db8:0:0:ffff::", "2001:db8::a:b:c:d"]
    elsewhere = [privacy_address("2001:db8:1:2:", n) for n in range(4)]
    mapping = {"2001:db8::1": HOME, elsewhere[0]: ELSEWHERE}
    for n, ip in enumerate(prefix_zero + elsewhere):
        write(engine, [s(ip, item(n % 2 + (5 if n >= 4 else 0)), 3 * n)])
        report = build(engine, mapping, hours_later=n)
        assert report.mode == ("full" if n == 0 else "incremental")
    incremental = dump(engine)
    assert [p["ip"] for p in presences(engine)] == ["2001:db8::/64", HOME_64]
    build(engine, mapping, rebuild=True, hours_later=7)
    assert dump(engine) == incremental


def test_two_64s_of_one_56_are_two_presences(engine: Engine) -> None:
    # Two devices on two links of one home's /56, at the same time.
    a = [s(privacy_address("2001:db8:1:200:", n), item(n), n) for n in range(4)]
    b = [s(privacy_address("2001:db8:1:201:", n), item(10 + n), n + 0.5) for n in range(4)]
    write(engine, a + b)
    build(engine, {})
    assert [p["ip"] for p in presences(engine)] == ["2001:db8:1:200::/64", "2001:db8:1:201::/64"]
    assert leads_of(engine) == [(1,), (5,)]
    # Grouping by the /56 instead (a rebuild, as any change of grouping is).
    wide = LeadsConfig(grouping=replace(GroupingConfig(), ipv6_prefix_length=56))
    build(engine, {}, config=wide, rebuild=True)
    (only,) = presences(engine)
    assert (only["ip"], only["sightings"]) == ("2001:db8:1:200::/56", 8)


def test_ipv4_and_ipv6_of_one_device_are_not_joined_by_address_alone(engine: Engine) -> None:
    # A dual-stack device, and IPv6 addresses that embed its IPv4 address
    # (6to4, NAT64): different addresses, so different presences and leads,
    # however close in time.
    ips = ["203.0.113.5", "2001:db8:7:1::cb00:7105", "2002:cb00:7105::1", "64:ff9b::cb00:7105"]
    write(engine, [s(ip, item(k), k, client="libtorrent/2.1.1") for k, ip in enumerate(ips)])
    build(engine, dict.fromkeys(ips, HOME))
    assert [p["ip"] for p in presences(engine)] == [
        "203.0.113.5",
        "2001:db8:7:1::/64",
        "2002:cb00:7105::/64",
        "64:ff9b::/64",
    ]
    assert leads_of(engine) == [(1,), (2,), (3,), (4,)]
    # A dual-stack socket's IPv4-mapped form is the IPv4 address itself.
    write(engine, [s("::ffff:203.0.113.5", item(0), 5)])
    build(engine, dict.fromkeys(ips, HOME), hours_later=1)
    assert presences(engine)[0]["sightings"] == 2
    # A peer id from one client session is what links them.
    pid = peer_id(7)
    write(
        engine,
        [s("198.51.100.9", item(20), 30, peer=pid), s("2001:db8:9:9::1", item(21), 30.5, peer=pid)],
    )
    build(engine, {}, hours_later=2)
    assert leads_of(engine)[-1] == (6, 7)
