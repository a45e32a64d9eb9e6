"""Search from one box: what the box understands, and what it finds on both
engines, through the real pipeline (sightings written, leads built)."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from atalaya.accounts import add_unit
from atalaya.accounts.visibility import visible_lead_ids_clause
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.leads.search import SearchError, parse_query, search_leads
from atalaya.store.tables import hash_set, lead, reference_hash, unit
from tests.leads.helpers import ELSEWHERE, HOME, NOW, facts, item, peer_id, sighting, write

MADRID_IP = "192.0.2.10"
MADRID_IP_2 = "192.0.2.77"
SEVILLA_IP = "198.51.100.5"
IPV6 = "2001:db8:5::9"
IPV6_KEY = "2001:db8:5::/64"  # IPv6 presences are keyed by their /64
# A made-up reference file: random-looking bytes' hashes, never a real list's.
CONTENT = b"made-up reference file for the search tests"
SHA1 = hashlib.sha1(CONTENT).hexdigest()
MD5 = hashlib.md5(CONTENT).hexdigest()
SHA256 = hashlib.sha256(CONTENT).hexdigest()
FILE_KEY = f"sha256:{SHA256}"
QB = b"-qB4650-"


def _world(engine: Engine) -> dict[str, int]:
    write(
        engine,
        [
            sighting(MADRID_IP, item(1), 1, peer=peer_id(1, QB), file_key=FILE_KEY),
            sighting(MADRID_IP, item(1), 2, peer=peer_id(1, QB), file_key=FILE_KEY),
            sighting(MADRID_IP_2, item(2), 1, peer=peer_id(2)),
            sighting(SEVILLA_IP, item(3), 1, peer=peer_id(3, QB)),
            sighting(SEVILLA_IP, "ab" * 32, 2, kind="btih2"),
            sighting(IPV6, item(4), 3),
        ],
    )
    build_leads(
        engine,
        facts({MADRID_IP: HOME, MADRID_IP_2: HOME, SEVILLA_IP: ELSEWHERE, IPV6: HOME}),
        LeadsConfig(),
        now=NOW,
    )
    with engine.begin() as conn:
        set_id = conn.execute(
            insert(hash_set).values(
                name="made-up set",
                source="tests",
                format="csv",
                imported_at=NOW,
                updated_at=NOW,
                file_sha256="0" * 64,
                file_count=1,
                hash_count=3,
            )
        ).inserted_primary_key[0]
        for algorithm, digest in (("md5", MD5), ("sha1", SHA1), ("sha256", SHA256)):
            conn.execute(
                insert(reference_hash).values(
                    hash_set_id=set_id,
                    algorithm=algorithm,
                    value=bytes.fromhex(digest),
                    file_key=FILE_KEY,
                )
            )
        add_unit(conn, "Madrid", ("28",), "desk 1", NOW)
        add_unit(conn, "Sevilla", ("41",), "desk 2", NOW)
        return {r.ip: r.id for r in conn.execute(select(lead.c.ip, lead.c.id))}


def _found(engine: Engine, text: str, unit: int | None = None) -> set[int]:
    with engine.connect() as conn:
        visible = visible_lead_ids_clause(unit) if unit is not None else None
        return set(search_leads(conn, parse_query(text), visible=visible).lead_ids)


def test_each_kind_finds_its_leads(engine: Engine) -> None:
    ids = _world(engine)
    madrid, madrid_2, sevilla, v6 = (
        ids[MADRID_IP],
        ids[MADRID_IP_2],
        ids[SEVILLA_IP],
        ids[IPV6_KEY],
    )
    assert len({madrid, madrid_2, sevilla, v6}) == 4
    assert _found(engine, MADRID_IP) == {madrid}
    assert _found(engine, f" {IPV6.upper()} ") == {v6}
    assert _found(engine, "2001:db8:5::1234") == {v6}  # same /64
    assert _found(engine, "2001:db8:6::9") == set()
    assert _found(engine, "192.0.2.0/24") == {madrid, madrid_2}
    assert _found(engine, "192.0.2.64/26") == {madrid_2}  # not on an octet boundary
    assert _found(engine, "2001:db8::/32") == {v6}
    assert _found(engine, "203.0.113.0/24") == set()
    assert _found(engine, item(1)) == {madrid}  # a v1 info-hash
    assert _found(engine, item(1).upper()) == {madrid}
    assert _found(engine, "AB" * 32) == {sevilla}  # a v2 info-hash
    assert _found(engine, f"btih2:{'ab' * 32}") == {sevilla}
    assert _found(engine, f"btih:{'ab' * 20}") == set()
    # The reference file by each of its hashes, then by its key.
    for digest in (MD5, SHA1, SHA256, f"md5:{MD5}", f"sha256:{SHA256}"):
        assert _found(engine, digest) == {madrid}, digest
    # Peer ids: the full hex, the printable client prefix, a hex prefix.
    assert _found(engine, peer_id(2)) == {madrid_2}
    assert _found(engine, "-qB4650-") == {madrid, sevilla}
    assert _found(engine, QB.hex()) == {madrid, sevilla}
    assert _found(engine, "-TR3000-") == set()


def test_a_unit_finds_only_its_leads(engine: Engine) -> None:
    ids = _world(engine)
    with engine.connect() as conn:
        by_name = {r.name: r.id for r in conn.execute(select(unit.c.name, unit.c.id))}
    assert _found(engine, "-qB4650-", by_name["Madrid"]) == {ids[MADRID_IP]}
    assert _found(engine, "-qB4650-", by_name["Sevilla"]) == {ids[SEVILLA_IP]}
    assert _found(engine, MADRID_IP, by_name["Sevilla"]) == set()


def test_reasons_say_how_each_lead_was_found(engine: Engine) -> None:
    ids = _world(engine)
    with engine.connect() as conn:
        result = search_leads(conn, parse_query(SHA1), visible=None)
    assert result.lead_ids == [ids[MADRID_IP]]
    assert result.reasons[ids[MADRID_IP]] == ["reference file"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "type an IP"),
        ("   ", "type an IP"),
        ("10.0.0.0/4", "at least /8"),
        ("2001::/16", "at least /32"),
        ("999.1.1.1/24", "not a prefix"),
        ("md4:00", "unknown hash kind"),
        ("sha1:abc", "40 hex digits"),
        ("abc", "not an IP address"),
        ("x" * 201, "at most 200"),
        ("' OR 1=1 --", "not an IP address"),
    ],
)
def test_bad_input_says_what_the_box_takes(text: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        parse_query(text)


@given(st.text(max_size=80))
def test_any_text_is_a_query_or_a_search_error(text: str) -> None:
    try:
        query = parse_query(text)
    except SearchError:
        return
    assert query.kind in ("ip", "prefix", "hash", "peer_id")
    if query.kind in ("ip", "prefix"):
        assert isinstance(query.network, ipaddress.IPv4Network | ipaddress.IPv6Network)
    if query.kind == "hash":
        assert query.digest is not None and len(query.digest) in (32, 40, 64)
