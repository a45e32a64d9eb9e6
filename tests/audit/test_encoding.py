"""The canonical encoding that audit hashes are taken over."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.audit.encoding import (
    GENESIS_HASH,
    AuditEncodingError,
    AuditFields,
    canonical_bytes,
    normalise_details,
    parse_canonical,
    record_hash,
)

FIELDS = AuditFields(
    seq=1,
    at=datetime(2026, 11, 23, 10, 0, 0, 5, tzinfo=UTC),
    action="view",
    outcome="ok",
    prev_hash=GENESIS_HASH,
    user_id=7,
    username="ana",
    unit="Málaga",
    client_address="127.0.0.1",
    object_type="lead",
    object_id="42",
    details={"z": 1, "a": [True, None, 1.5]},
)

# Written out by hand from the rules in the module docstring.
VECTOR = (
    b'{"action":"view","at":"2026-11-23T10:00:00.000005Z","client_address":"127.0.0.1",'
    b'"details":{"a":[true,null,1.5],"z":1},"object_id":"42","object_type":"lead",'
    b'"outcome":"ok","prev_hash":"' + b"0" * 64 + b'","seq":1,"unit":"M\\u00e1laga",'
    b'"user_id":7,"username":"ana"}'
)


def test_vector() -> None:
    assert canonical_bytes(FIELDS) == VECTOR
    assert record_hash(FIELDS) == hashlib.sha256(VECTOR).hexdigest()
    assert parse_canonical(VECTOR) == FIELDS


def test_time_is_encoded_in_utc_whatever_the_zone() -> None:
    madrid = FIELDS.at.astimezone(timezone(timedelta(hours=1)))
    assert canonical_bytes(replace(FIELDS, at=madrid)) == VECTOR


def test_naive_time_is_refused() -> None:
    with pytest.raises(AuditEncodingError):
        canonical_bytes(replace(FIELDS, at=datetime(2026, 11, 23)))


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 0},
        {"seq": True},
        {"action": "View"},
        {"action": ""},
        {"outcome": "maybe"},
        {"prev_hash": "0" * 63},
        {"prev_hash": "A" * 64},
        {"username": "x" * 101},
        {"user_id": "7"},
    ],
)
def test_fields_that_do_not_fit_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(AuditEncodingError):
        canonical_bytes(replace(FIELDS, **change))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "variant",
    [
        VECTOR.replace(b",", b", ", 1),  # whitespace
        VECTOR.replace(b"M\\u00e1laga", "Málaga".encode()),  # not ASCII-escaped
        VECTOR.replace(b'"seq":1', b'"seq":1.0'),
        VECTOR.replace(b'"user_id":7', b'"user_id":7,"user_id":7'),  # duplicate key
        VECTOR.replace(b".000005Z", b".000005+00:00"),
        VECTOR.replace(b'"action":"view",', b""),  # missing field
        VECTOR.replace(b'{"action"', b'{"extra":1,"action"'),
        VECTOR[:-1],
        b"",
        b"[]",
        b"\xff",
    ],
)
def test_non_canonical_bytes_are_refused(variant: bytes) -> None:
    with pytest.raises(AuditEncodingError):
        parse_canonical(variant)


def test_details_keys_must_be_strings() -> None:
    with pytest.raises(AuditEncodingError):
        normalise_details({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(AuditEncodingError):
        normalise_details({"x": float("nan")})
    with pytest.raises(AuditEncodingError):
        normalise_details({"x": object()})
    assert normalise_details({"t": (1, 2)}) == {"t": [1, 2]}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
short_text = st.none() | st.text(max_size=40)

fields_strategy = st.builds(
    AuditFields,
    seq=st.integers(min_value=1, max_value=2**62),
    at=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(UTC),
    ),
    action=st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True),
    outcome=st.sampled_from(["ok", "denied", "error"]),
    prev_hash=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    user_id=st.none() | st.integers(min_value=-(2**31), max_value=2**31),
    username=short_text,
    unit=short_text,
    client_address=st.none() | st.text(max_size=45),
    object_type=short_text,
    object_id=short_text,
    details=st.dictionaries(st.text(max_size=8), json_values, max_size=5),
)


@pytest.mark.slow
@given(fields_strategy)
def test_round_trip(fields: AuditFields) -> None:
    encoded = canonical_bytes(fields)
    assert parse_canonical(encoded) == fields
    assert canonical_bytes(parse_canonical(encoded)) == encoded
    # Key order of details does not change the encoding.
    shuffled = replace(fields, details=dict(reversed(list(fields.details.items()))))
    assert canonical_bytes(shuffled) == encoded


@pytest.mark.slow
@given(fields_strategy, st.data())
def test_any_field_change_changes_the_hash(fields: AuditFields, data: st.DataObject) -> None:
    other = data.draw(fields_strategy)
    if other != fields:
        assert record_hash(other) != record_hash(fields)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_fail_only_with_the_typed_error(data: bytes) -> None:
    with contextlib.suppress(AuditEncodingError):
        parse_canonical(data)


@given(
    fields_strategy, st.integers(min_value=0, max_value=10_000), st.binary(min_size=1, max_size=3)
)
def test_mutated_encodings_fail_only_with_the_typed_error(
    fields: AuditFields, position: int, junk: bytes
) -> None:
    encoded = canonical_bytes(fields)
    at = position % (len(encoded) + 1)
    mutated = encoded[:at] + junk + encoded[at:]
    try:
        parsed = parse_canonical(mutated)
    except AuditEncodingError:
        return
    # Rarely a mutation is itself canonical; then it must re-encode exactly.
    assert canonical_bytes(parsed) == mutated


def test_deep_nesting_fails_with_the_typed_error() -> None:
    deep = b'{"details":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(AuditEncodingError):
        parse_canonical(deep)
    nested: list[object] = []
    for _ in range(100):
        nested = [nested]
    with pytest.raises(AuditEncodingError):
        normalise_details({"x": nested})
    assert json.loads(VECTOR)["seq"] == 1
