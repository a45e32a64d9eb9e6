"""Times read back from the store come out as aware UTC on either engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from atalaya.store.times import utc


def test_a_naive_value_is_taken_as_utc() -> None:
    naive = datetime(2026, 11, 23, 10, 0, 0, 1)
    assert utc(naive) == naive.replace(tzinfo=UTC) and utc(naive).tzinfo == UTC


def test_an_aware_value_keeps_its_instant_and_is_shown_in_utc() -> None:
    madrid_winter = timezone(timedelta(hours=1))
    value = utc(datetime(2026, 11, 23, 11, tzinfo=madrid_winter))
    assert value.tzinfo == UTC and value.hour == 10


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_naive_and_aware_readings_of_one_instant_agree(moment: datetime) -> None:
    offset = timezone(timedelta(hours=-3, minutes=-30))
    aware = moment.replace(tzinfo=UTC).astimezone(offset)
    assert utc(moment) == utc(aware) and utc(aware).tzinfo == UTC
