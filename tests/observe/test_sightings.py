from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError

from atalaya.observe.sightings import (
    EXPORT_FIELDS,
    Sighting,
    SightingWriter,
    canonical_ip,
    iter_export_rows,
    new_run_id,
    sightings_by_id,
    write_csv,
    write_jsonl,
)
from atalaya.store.tables import sighting

T0 = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)


def make(ip: str = "127.0.0.5", *, verified: int = 2, failed: int = 0, **kw: object) -> Sighting:
    return Sighting(
        network="bittorrent",
        item_kind="btih",
        item_value="ab" * 20,
        ip=ip,
        port=6881,
        seen_at=kw.pop("seen_at", T0),  # type: ignore[arg-type]
        found_by="dht",
        run_id=new_run_id(),
        client="libtorrent/2.1.1",
        peer_id="2d4c54323130302d" + "00" * 12,
        have_fraction=1.0,
        pieces_verified=verified,
        pieces_failed=failed,
        bytes_downloaded=verified * 16384,
        file_key="sha1:" + "cd" * 20,
        category=3,
        **kw,  # type: ignore[arg-type]
    )


def test_proof_needs_verified_and_no_failed() -> None:
    assert make(verified=1).proof
    assert not make(verified=0).proof
    assert not make(verified=3, failed=1).proof


def test_naive_or_non_utc_times_are_refused() -> None:
    with pytest.raises(ValueError, match="UTC"):
        make(seen_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="UTC"):
        make(seen_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1))))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("203.0.113.5", "203.0.113.5"),
        # A dual-stack socket's view of an IPv4 peer: stored as that IPv4.
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("::FFFF:CB00:7105", "203.0.113.5"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:0db8:0000:0001:0000:0000:0000:0001", "2001:db8:0:1::1"),
        ("fe80::1%eth0", "fe80::1"),  # our interface's name is no part of the peer
        ("fd00:77::10", "fd00:77::10"),
        ("::", "::"),
    ],
)
def test_addresses_are_stored_in_one_form(given: str, stored: str) -> None:
    assert canonical_ip(given) == stored
    assert make(given, local_ip=given).ip == stored
    assert make(local_ip=given).local_ip == stored


@pytest.mark.parametrize(
    "text", ["", "not-an-address", "203.0.113.256", "2001:db8::1::2", " 1.2.3.4"]
)
def test_what_is_no_address_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        make(text)


def test_ipv6_sightings_keep_their_exact_address(engine: Engine) -> None:
    addresses = ["2001:db8:1:2:a:b:c:d", "2001:DB8:1:2::e", "::ffff:198.51.100.7"]
    SightingWriter(engine).write(make(ip) for ip in addresses)
    rows = list(iter_export_rows(engine))
    assert [r["ip"] for r in rows] == ["2001:db8:1:2:a:b:c:d", "2001:db8:1:2::e", "198.51.100.7"]
    longest = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    SightingWriter(engine).write([make(longest)])
    with engine.connect() as conn:
        assert longest in conn.scalars(select(sighting.c.ip)).all()


def test_written_sightings_keep_microseconds_and_cannot_be_updated(engine: Engine) -> None:
    writer = SightingWriter(engine)
    assert writer.write([make(), make("127.0.0.6", verified=0, failed=2)]) == 2
    rows = list(iter_export_rows(engine))
    assert [r["ip"] for r in rows] == ["127.0.0.5", "127.0.0.6"]
    assert rows[0]["seen_at"] == "2026-11-23T10:00:00.123456+00:00"
    assert rows[0]["proof"] is True and rows[1]["proof"] is False
    assert rows[0]["category"] == "abuse"
    with pytest.raises(DBAPIError, match="cannot be changed"), engine.begin() as conn:
        conn.execute(update(sighting).values(ip="127.0.0.9"))
    with engine.connect() as conn:
        assert conn.execute(select(sighting.c.ip).order_by(sighting.c.id)).scalars().all() == [
            "127.0.0.5",
            "127.0.0.6",
        ]


def test_export_window_and_formats(engine: Engine) -> None:
    SightingWriter(engine).write(
        [make(seen_at=T0 + timedelta(days=d), ip=f"127.0.0.{10 + d}") for d in range(3)]
    )
    rows = list(iter_export_rows(engine, since=T0 + timedelta(days=1)))
    assert [r["ip"] for r in rows] == ["127.0.0.11", "127.0.0.12"]
    rows = list(iter_export_rows(engine, until=T0 + timedelta(days=1)))
    assert [r["ip"] for r in rows] == ["127.0.0.10"]

    buf = io.StringIO()
    assert write_jsonl(iter_export_rows(engine), buf) == 3
    first = json.loads(buf.getvalue().splitlines()[0])
    assert list(first) == list(EXPORT_FIELDS)

    buf = io.StringIO()
    assert write_csv(iter_export_rows(engine), buf) == 3
    parsed = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["ip"] for r in parsed] == ["127.0.0.10", "127.0.0.11", "127.0.0.12"]
    assert parsed[0]["seen_at"].endswith(".123456+00:00")


def test_sightings_by_id_oldest_first(engine: Engine) -> None:
    SightingWriter(engine).write(
        [make(seen_at=T0 + timedelta(days=-d), ip=f"127.0.0.{20 + d}") for d in range(3)]
    )
    with engine.connect() as conn:
        ids = conn.execute(select(sighting.c.id).order_by(sighting.c.id)).scalars().all()
        rows = sightings_by_id(conn, [ids[0], ids[2]])
        assert [r.ip for r in rows] == ["127.0.0.22", "127.0.0.20"]
        assert [(r.network, r.port) for r in rows] == [("bittorrent", 6881)] * 2
        assert [r.id for r in rows] == [ids[2], ids[0]]
        assert sightings_by_id(conn, []) == []
