"""Proof transcripts in general: canonical bytes, times, addresses, and reading them back."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import DBAPIError

from atalaya.observe.sightings import Sighting, SightingWriter
from atalaya.observe.transcripts import (
    TranscriptError,
    canonical_body,
    endpoint,
    iso_utc,
    load_transcripts,
)
from atalaya.store.tables import proof_transcript, sighting

NOW = datetime(2026, 12, 2, 15, 0, 0, 7, tzinfo=UTC)


def test_canonical_bytes_by_hand() -> None:
    document = {"b": [1, 2.5, None, True], "a": "ñ€𝄞", "c": {"z": 1, "y": "x"}}
    assert canonical_body(document) == (
        b'{"a":"\xc3\xb1\xe2\x82\xac\xf0\x9d\x84\x9e","b":[1,2.5,null,true],"c":{"y":"x","z":1}}'
    )


@pytest.mark.parametrize(
    "document", [{"x": float("nan")}, {"x": float("inf")}, {"x": "\udc80"}, {"x": b"bytes"}]
)
def test_what_has_no_canonical_form_is_a_typed_error(document: dict[str, Any]) -> None:
    with pytest.raises(TranscriptError):
        canonical_body(document)


TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(TEXT, json_values, max_size=6))
def test_canonical_bytes_round_trip(document: dict[str, Any]) -> None:
    body = canonical_body(document)
    assert json.loads(body.decode("utf-8")) == document
    assert canonical_body(json.loads(body)) == body


def test_times_are_utc_with_microseconds() -> None:
    assert iso_utc(NOW) == "2026-12-02T15:00:00.000007Z"
    madrid = NOW.astimezone(timezone(timedelta(hours=1)))
    assert iso_utc(madrid) == "2026-12-02T15:00:00.000007Z"
    with pytest.raises(TranscriptError):
        iso_utc(NOW.replace(tzinfo=None))


def test_endpoints() -> None:
    assert endpoint("127.0.0.1", 6881) == "127.0.0.1:6881"
    assert endpoint("2001:db8::1", 6881) == "[2001:db8::1]:6881"


def _sighting(n: int, transcript: bytes | None) -> Sighting:
    return Sighting(
        network="bittorrent",
        item_kind="btih",
        item_value=f"{n:040x}",
        ip="127.0.0.2",
        port=6881,
        seen_at=NOW,
        found_by="tracker",
        run_id="run",
        pieces_verified=1,
        proof_kind="pieces",
        transcript=transcript,
    )


def test_transcripts_are_written_with_their_sightings_and_read_back_as_stored(
    engine: Engine,
) -> None:
    bodies = {n: canonical_body({"n": n, "text": "é" * (n % 3)}) for n in range(1, 1201)}
    writer = SightingWriter(engine)
    # One batch mixes sightings with and without a transcript.
    batch = [_sighting(n, bodies[n] if n % 7 else None) for n in range(1, 1201)]
    assert writer.write(batch) == 1200
    with engine.connect() as conn:
        ids = {
            row.item_value: row.id
            for row in conn.execute(select(sighting.c.id, sighting.c.item_value))
        }
        stored = {row.sighting_id: row for row in conn.execute(select(proof_transcript))}
        got = load_transcripts(conn, [*ids.values(), 10**9])
    assert len(got) == len(stored) == 1200 - 1200 // 7
    for n, body in bodies.items():
        sighting_id = ids[f"{n:040x}"]
        if n % 7 == 0:
            assert sighting_id not in got
            continue
        assert got[sighting_id] == body and isinstance(got[sighting_id], bytes)
        row = stored[sighting_id]
        assert row.version == 1
        assert row.sha256 == hashlib.sha256(body).hexdigest()


def test_a_transcript_cannot_be_changed_or_removed(engine: Engine) -> None:
    SightingWriter(engine).write([_sighting(1, canonical_body({"n": 1}))])
    for statement in (
        update(proof_transcript).values(body=b"{}"),
        delete(proof_transcript),
    ):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        assert load_transcripts(conn, [1]) == {1: canonical_body({"n": 1})}


def test_a_batch_whose_transcript_cannot_be_stored_leaves_no_sighting(engine: Engine) -> None:
    writer = SightingWriter(engine)
    writer.write([_sighting(1, canonical_body({"n": 1}))])
    # The second sighting's transcript fails after both sightings were inserted.
    batch = [_sighting(2, b"{}"), _sighting(3, "not bytes")]  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        writer.write(batch)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sighting)).scalar_one() == 1
        assert len(load_transcripts(conn, range(1, 10))) == 1
    assert writer.written == 1


def test_a_proof_kind_outside_the_two_is_refused() -> None:
    with pytest.raises(ValueError, match="proof_kind"):
        Sighting(
            network="bittorrent",
            item_kind="btih",
            item_value="00" * 20,
            ip="127.0.0.2",
            port=1,
            seen_at=NOW,
            found_by="dht",
            run_id="r",
            proof_kind="hearsay",
        )
