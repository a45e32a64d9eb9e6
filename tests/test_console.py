"""Helpers shared by the commands: option values read as operators type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.console import parse_instant
from atalaya.errors import AtalayaError


def test_a_date_or_a_time_without_zone_is_utc() -> None:
    assert parse_instant("2026-11-23", "--since") == datetime(2026, 11, 23, tzinfo=UTC)
    assert parse_instant("2026-11-23T10:00:00.000001", "--until") == datetime(
        2026, 11, 23, 10, 0, 0, 1, tzinfo=UTC
    )


def test_a_time_with_a_zone_is_converted_to_utc() -> None:
    assert parse_instant("2026-11-23T10:00:00+01:00", "--since") == datetime(
        2026, 11, 23, 9, tzinfo=UTC
    )
    assert parse_instant("2026-11-23T10:00:00Z", "--since") == datetime(
        2026, 11, 23, 10, tzinfo=UTC
    )


def test_none_stays_none() -> None:
    assert parse_instant(None, "--since") is None


def test_anything_else_is_one_error_naming_the_option() -> None:
    with pytest.raises(AtalayaError, match=r"--until 'last week' is not a date or time"):
        parse_instant("last week", "--until")


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3, minutes=-30))])))
def test_any_aware_time_round_trips_as_the_same_instant(moment: datetime) -> None:
    parsed = parse_instant(moment.isoformat(), "--since")
    assert parsed == moment and parsed is not None and parsed.tzinfo == UTC


@given(st.text(max_size=40))
def test_no_text_raises_anything_but_the_typed_error(text: str) -> None:
    try:
        parsed = parse_instant(text, "--since")
    except AtalayaError:
        return
    assert parsed is not None and parsed.tzinfo == UTC
