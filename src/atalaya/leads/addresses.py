"""The exact addresses behind presence addresses, read from the sightings.

A presence of IPv6 sightings is keyed by a prefix (`presence.presence_address`),
while each sighting keeps the exact address it was seen at. Incremental
builds that rescan a prefix, and pages that list a presence's sightings,
find the exact addresses here: the sightings of the prefix's time span whose
address text matches the prefix's LIKE patterns (`atalaya.enrich.prefixes`),
checked one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, select

from atalaya.enrich.prefixes import holds, parse_prefix, prefix_condition
from atalaya.store.tables import sighting


def exact_addresses(
    conn: Connection, spans: Iterable[tuple[str, datetime, datetime]]
) -> list[set[str]]:
    """For each (presence address, first, last), in order: the addresses of its
    sightings seen from first to last, both included. An address that is no
    prefix (IPv4, or IPv6 grouped by /128) stands for itself, without a query."""
    found: list[set[str]] = []
    for key, first, last in spans:
        addresses: set[str] = set()
        found.append(addresses)
        if parse_prefix(key) is None:
            addresses.add(key)
            continue
        query = (
            select(sighting.c.ip)
            .where(
                sighting.c.seen_at >= first,
                sighting.c.seen_at <= last,
                prefix_condition(sighting.c.ip, key),
            )
            .distinct()
        )
        addresses.update(ip for ip in conn.scalars(query) if holds(key, ip))
    return found


def with_exact_addresses(conn: Connection, presences: Sequence[Any]) -> list[Any]:
    """Presence rows (with `ip`, `first_seen`, `last_seen`), each IPv6 prefix
    row repeated once per exact address seen in it with `ip` set to that
    address, so that `ip = …` conditions find the sightings; other rows as
    they are."""
    found = exact_addresses(conn, [(p.ip, p.first_seen, p.last_seen) for p in presences])
    out: list[Any] = []
    for p, addresses in zip(presences, found, strict=True):
        if parse_prefix(p.ip) is None:
            out.append(p)
            continue
        values = dict(p._mapping) if hasattr(p, "_mapping") else dict(vars(p))
        out.extend(SimpleNamespace(**{**values, "ip": ip}) for ip in sorted(addresses))
    return out
