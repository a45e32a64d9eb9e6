"""The canonical encoding of sightings: one row, one text; any change, another leaf."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from atalaya.evidence.merkle import leaf_hash, root_of
from atalaya.evidence.stamping import (
    EncodingError,
    audit_head_message,
    batch_of,
    changed_ids,
    encode_row,
    pack_leaves,
    row_leaf,
    unpack_leaves,
    value_text,
)
from atalaya.store.tables import sighting
from tests.evidence.rows import sighting_rows, value_strategy


def test_spec_example() -> None:
    """The module docstring's rules, on a row written out by hand."""
    row = {
        "port": 6881,
        "id": 7,
        "proof": True,
        "have_fraction": 0.5,
        "seen_at": datetime(2026, 11, 3, 10, 4, 5, 120, tzinfo=timezone(timedelta(hours=1))),
        "client": "µTorrent",
        "peer_id": None,
        "details": {"b": [1, 2.5], "a": "x"},
        "blob": b"\x00\xff",
    }
    assert encode_row(row) == (
        b'{"blob":"00ff","client":"\\u00b5Torrent","details":"{\\"a\\":\\"x\\",\\"b\\":[1,2.5]}",'
        b'"have_fraction":"0.5","id":"7","port":"6881","proof":"true",'
        b'"seen_at":"2026-11-03T09:04:05.000120Z"}'
    )


def test_value_texts() -> None:
    assert value_text(False) == "false"
    assert value_text(-12) == "-12"
    assert value_text(1e-05) == "1e-05"
    assert value_text(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"
    with pytest.raises(EncodingError):
        value_text(object())
    with pytest.raises(EncodingError):
        value_text({"x": float("nan")})


@given(sighting_rows())
def test_encoding_is_canonical_json_of_text(row: dict[str, Any]) -> None:
    encoded = encode_row(row)
    decoded = json.loads(encoded)
    assert set(decoded) == {k for k, v in row.items() if v is not None}
    assert all(isinstance(v, str) for v in decoded.values())
    assert encoded == json.dumps(decoded, sort_keys=True, separators=(",", ":")).encode("ascii")
    # The order the columns come in does not matter.
    assert encode_row(dict(reversed(list(row.items())))) == encoded


@settings(max_examples=150)
@given(sighting_rows(), st.data())
def test_a_change_in_any_field_changes_the_leaf(row: dict[str, Any], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from([c.name for c in sighting.columns]))
    column = sighting.columns[name]
    values = value_strategy(column)
    new = data.draw(st.none() | values if column.nullable else values)
    old = row[name]
    same = (new is None and old is None) or (
        new is not None and old is not None and value_text(new) == value_text(old)
    )
    assume(not same)
    assert row_leaf({**row, name: new}) != row_leaf(row)


@given(sighting_rows())
def test_aware_and_naive_utc_times_encode_alike(row: dict[str, Any]) -> None:
    naive = {
        k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
        for k, v in row.items()
    }
    elsewhere = {
        k: v.astimezone(timezone(timedelta(hours=-5))) if isinstance(v, datetime) else v
        for k, v in row.items()
    }
    assert encode_row(naive) == encode_row(row) == encode_row(elsewhere)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(sighting_rows(), min_size=1, max_size=8, unique_by=lambda r: r["id"]))
def test_batches_sort_by_id_and_pack_round_trip(rows: list[dict[str, Any]]) -> None:
    batch = batch_of(rows)
    assert list(batch.ids) == sorted(r["id"] for r in rows)
    by_id = {r["id"]: r for r in rows}
    assert batch.leaves == tuple(leaf_hash(encode_row(by_id[i])) for i in batch.ids)
    assert batch.root == root_of(batch.leaves)
    assert batch_of(list(reversed(rows))) == batch
    assert unpack_leaves(pack_leaves(batch)) == batch


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(sighting_rows(), min_size=2, max_size=6, unique_by=lambda r: r["id"]), st.data())
def test_changed_ids_names_edited_removed_and_added(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    batch = batch_of(rows)
    assert changed_ids(batch, rows) == ([], [])
    victim = data.draw(st.sampled_from(rows))
    edited = [{**r, "extra_column": "x"} if r is victim else r for r in rows]
    assert changed_ids(batch, edited) == ([victim["id"]], [])
    kept = [r for r in rows if r is not victim]
    assert changed_ids(batch, kept) == ([victim["id"]], [])
    newcomer = {**victim, "id": max(batch.ids) + 1}
    assert changed_ids(batch, [*rows, newcomer]) == ([], [newcomer["id"]])


def test_refusals() -> None:
    with pytest.raises(EncodingError):
        batch_of([])
    with pytest.raises(EncodingError):
        batch_of([{"id": 1}, {"id": 1}])
    with pytest.raises(EncodingError):
        unpack_leaves(b"\x00" * 39)
    with pytest.raises(EncodingError):
        audit_head_message("zz" * 32)
    assert audit_head_message("ab" * 32) == b"\xab" * 32
