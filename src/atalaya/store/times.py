"""Times read back from the store, as aware UTC whatever the engine."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime) -> datetime:
    """`value` as aware UTC: SQLite hands back naive values, which were written in UTC;
    PostgreSQL hands back aware values in the session's time zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
