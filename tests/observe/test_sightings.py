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
    iter_export_rows,
    new_run_id,
    write_csv,
    write_jsonl,
)
from atalaya.store.tables import sighting

T0 = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)


def make(ip: str = "127.0.0.5", *, verified: int = 2, failed: int = 0, **kw: object) -> Sighting:
    return Sighting(
        network="bittorrent",
        infohash="ab" * 20,
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
        file_hash="sha1:" + "cd" * 20,
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
