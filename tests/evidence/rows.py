"""Synthetic sighting rows for whatever columns the `sighting` table has (by column type).

The columns are being renamed elsewhere; generating from the table keeps
these tests about the encoding rather than about today's column names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)

from atalaya.store.tables import sighting

# PostgreSQL text holds no NUL, and no lone surrogates reach any database.
_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")
_INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_TEXT, max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(_TEXT, max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def value_strategy(column: Column[Any]) -> st.SearchStrategy[Any]:
    kind = column.type
    if isinstance(kind, Boolean):
        return st.booleans()
    if isinstance(kind, SmallInteger):
        return st.integers(-(2**15), 2**15 - 1)
    if isinstance(kind, BigInteger):
        return st.integers(-(2**63), 2**63 - 1)
    if isinstance(kind, Integer):
        return st.integers(-(2**31), 2**31 - 1)
    if isinstance(kind, Float):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(kind, DateTime):
        return _INSTANTS
    if isinstance(kind, LargeBinary):
        return st.binary(max_size=40)
    if isinstance(kind, JSON):
        return st.dictionaries(st.text(_TEXT, max_size=5), _JSON, max_size=4)
    if isinstance(kind, String | Text):
        length = getattr(kind, "length", None) or 300
        return st.text(_TEXT, max_size=min(length, 24))
    raise AssertionError(f"no strategy for column {column.name} of type {kind!r}")


@st.composite
def sighting_rows(draw: st.DrawFn, with_id: bool = True) -> dict[str, Any]:
    """One row of `sighting`: every column, NULL now and then where it may be."""
    row: dict[str, Any] = {}
    for column in sighting.columns:
        if column.primary_key:
            if with_id:
                row[column.name] = draw(st.integers(1, 2**31))
            continue
        if column.nullable and draw(st.booleans()):
            row[column.name] = None
        else:
            row[column.name] = draw(value_strategy(column))
    return row


def plain_row(n: int) -> dict[str, Any]:
    """A deterministic row without id, different for every n: for store tests."""
    row: dict[str, Any] = {}
    for column in sighting.columns:
        if column.primary_key:
            continue
        kind = column.type
        if isinstance(kind, Boolean):
            value: Any = n % 2 == 0
        elif isinstance(kind, Integer):  # SmallInteger and BigInteger too
            value = n % 30000
        elif isinstance(kind, Float):
            value = n / 7
        elif isinstance(kind, DateTime):
            value = datetime(2026, 11, 1, 12, 0, n % 60, 1000 * n % 1_000_000, tzinfo=UTC)
        elif isinstance(kind, LargeBinary):
            value = n.to_bytes(4, "big")
        elif isinstance(kind, JSON):
            value = {"n": n, "note": "synthetic ñ"}
        else:
            length = getattr(kind, "length", None) or 100
            value = f"{column.name[:8]}-{n}"[:length]
        row[column.name] = value
    return row
