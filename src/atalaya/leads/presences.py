"""Which sightings belong to which presence, in SQL.

A presence (`lead_presence`) is the sightings of one address, or of one
address and port where the address is shared, between its first and last
sighting; the lead tables keep no list of sighting ids, so pages find a
presence's sightings again by those bounds (`ix_sighting_ip_seen_at`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_

from atalaya.store.tables import sighting

# Presences per statement: each is a few bound parameters in an OR and a CASE.
BATCH = 100


def _inside(p: Any) -> ColumnElement[bool]:
    parts = [
        sighting.c.ip == p.ip,
        sighting.c.seen_at >= p.first_seen,
        sighting.c.seen_at <= p.last_seen,
    ]
    if p.port is not None:
        parts.append(sighting.c.port == p.port)
    return and_(*parts)


def in_presences(presences: Sequence[Any]) -> ColumnElement[bool]:
    """True for sightings of any of these presences (rows with ip, port,
    first_seen, last_seen)."""
    return or_(*(_inside(p) for p in presences))


def presence_of(presences: Sequence[Any]) -> ColumnElement[Any]:
    """The id of the presence (rows with id too) a sighting belongs to."""
    return case(*((_inside(p), p.id) for p in presences), else_=None)


def utc_day(conn: Connection, column: Any) -> ColumnElement[Any]:
    """The UTC day of a timestamp column as 'YYYY-MM-DD' text, on either engine."""
    if conn.dialect.name == "sqlite":
        # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
        return func.substr(column, 1, 10)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
