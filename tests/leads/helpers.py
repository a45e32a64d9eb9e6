"""Sightings with known ground truth, and a canonical dump of the lead tables."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from atalaya.leads.facts import IpFacts, MappingFacts
from atalaya.observe.sightings import Sighting, SightingWriter
from atalaya.store.tables import (
    lead,
    lead_factor,
    lead_item,
    lead_link,
    lead_presence,
    lead_presence_day,
    lead_presence_item,
    lead_presence_peer,
    lead_presence_week,
    lead_province,
)

T0 = datetime(2026, 10, 1, 8, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


def item(n: int) -> str:
    """A made-up infohash (never a real one)."""
    return f"{n:040x}"


def peer_id(n: int, client: bytes = b"-LT2010-") -> str:
    """An Azureus-style peer id whose last 12 bytes look random."""
    tail = bytes((n * 37 + k * 101 + 13) % 256 for k in range(12))
    return (client + tail).hex()


def sighting(
    ip: str,
    value: str,
    hours: float,
    *,
    port: int = 6881,
    peer: str | None = None,
    client: str | None = None,
    proof: bool = False,
    category: int | None = None,
    file_key: str | None = None,
    network: str = "bittorrent",
    kind: str = "btih",
) -> Sighting:
    return Sighting(
        network=network,
        item_kind=kind,
        item_value=value,
        ip=ip,
        port=port,
        seen_at=T0 + timedelta(hours=hours),
        found_by="dht",
        run_id="00000000-0000-4000-8000-000000000000",
        client=client,
        peer_id=peer,
        pieces_verified=2 if proof else 0,
        bytes_downloaded=32768 if proof else 0,
        category=category,
        file_key=file_key,
    )


def write(engine: Engine, items: Iterable[Sighting]) -> None:
    SightingWriter(engine).write(items)


# Made-up networks and places (INE-style codes only as labels).
HOME = IpFacts(
    country="ES",
    province_code="28",
    province_name="Madrid",
    municipality_code="28079",
    municipality_name="Madrid",
    lat=40.42,
    lon=-3.70,
    accuracy_km=20.0,
    asn=64500,
    isp="Example Fibra",
    time_zone="Europe/Madrid",
    version="test-v1",
)
ELSEWHERE = IpFacts(
    country="ES",
    province_code="41",
    province_name="Sevilla",
    municipality_code="41091",
    municipality_name="Sevilla",
    lat=37.39,
    lon=-5.98,
    accuracy_km=20.0,
    asn=64501,
    isp="Example Cable",
    time_zone="Europe/Madrid",
    version="test-v1",
)
CGNAT = IpFacts(
    country="ES",
    province_code="28",
    province_name="Madrid",
    asn=64502,
    isp="Example Mobile",
    flags=frozenset({"cgnat", "mobile"}),
    version="test-v1",
)


def facts(mapping: dict[str, IpFacts]) -> MappingFacts:
    return MappingFacts(mapping, version="test")


def dump(engine: Engine) -> dict[str, Any]:
    """The lead tables as comparable values.

    Left out: `scored_at` (when a lead's score was last computed),
    `in_prefix` and `lead_item.rank` (how candidates are found, not what is
    found), and items no lead offers any more.
    """
    with engine.connect() as conn:
        leads = [
            {k: v for k, v in r.items() if k != "scored_at"}
            for r in conn.execute(select(lead).order_by(lead.c.id)).mappings()
        ]
        return {
            "leads": leads,
            "factors": [
                tuple(r)
                for r in conn.execute(
                    select(lead_factor).order_by(lead_factor.c.lead_id, lead_factor.c.name)
                )
            ],
            "presences": [
                dict(r)
                for r in conn.execute(select(lead_presence).order_by(lead_presence.c.id)).mappings()
            ],
            "items": [
                {k: v for k, v in r.items() if k != "in_prefix"}
                for r in conn.execute(
                    select(lead_presence_item).order_by(
                        lead_presence_item.c.presence_id,
                        lead_presence_item.c.network,
                        lead_presence_item.c.kind,
                        lead_presence_item.c.value,
                    )
                ).mappings()
            ],
            "peers": [
                tuple(r)
                for r in conn.execute(
                    select(lead_presence_peer).order_by(
                        lead_presence_peer.c.presence_id, lead_presence_peer.c.peer_id
                    )
                )
            ],
            "days": [
                tuple(r)
                for r in conn.execute(
                    select(lead_presence_day).order_by(
                        lead_presence_day.c.presence_id, lead_presence_day.c.day
                    )
                )
            ],
            "weeks": [
                tuple(r)
                for r in conn.execute(
                    select(lead_presence_week).order_by(
                        lead_presence_week.c.presence_id, lead_presence_week.c.week
                    )
                )
            ],
            "links": [
                dict(r)
                for r in conn.execute(
                    select(lead_link).order_by(
                        lead_link.c.presence_a, lead_link.c.presence_b, lead_link.c.reason
                    )
                ).mappings()
            ],
            "provinces": [
                tuple(r)
                for r in conn.execute(
                    select(lead_province).order_by(
                        lead_province.c.lead_id, lead_province.c.province_code
                    )
                )
            ],
            "item_leads": [
                tuple(r)
                for r in conn.execute(
                    select(
                        lead_item.c.network, lead_item.c.kind, lead_item.c.value, lead_item.c.leads
                    )
                    .where(lead_item.c.leads > 0)
                    .order_by(lead_item.c.network, lead_item.c.kind, lead_item.c.value)
                )
            ],
        }


def leads_of(engine: Engine) -> list[tuple[int, ...]]:
    """Each lead as the sorted ids of its sightings' presences' first sightings."""
    with engine.connect() as conn:
        rows = conn.execute(select(lead_presence.c.lead_id, lead_presence.c.id)).all()
    grouped: dict[int, list[int]] = {}
    for lead_id, pid in rows:
        grouped.setdefault(lead_id, []).append(pid)
    return sorted(tuple(sorted(v)) for v in grouped.values())


def lead_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(lead).order_by(lead.c.id)).mappings()]


def factors_of(engine: Engine, lead_id: int) -> dict[str, dict[str, float]]:
    with engine.connect() as conn:
        return {
            r["name"]: {k: r[k] for k in ("raw", "value", "weight", "contribution")}
            for r in conn.execute(
                select(lead_factor).where(lead_factor.c.lead_id == lead_id)
            ).mappings()
        }
