"""Units, users and leads built directly in the tables for account tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert

from atalaya.accounts import AccountPolicy, add_unit, add_user
from atalaya.store.tables import lead, lead_presence, lead_province

# Argon2id at a cost tests can afford; the default costs have their own test.
FAST = AccountPolicy(argon2_time_cost=1, argon2_memory_cost_kib=1024, argon2_parallelism=1)
T0 = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


def unit_with_user(
    engine: Engine,
    unit_name: str = "Madrid",
    provinces: tuple[str, ...] = ("28",),
    username: str = "ana",
    role: str = "analyst",
    policy: AccountPolicy = FAST,
) -> None:
    with engine.begin() as conn:
        add_unit(conn, unit_name, provinces, f"{unit_name} duty desk, ext. 100", T0)
        add_user(conn, username, unit_name, role, PASSWORD, T0, policy)


def insert_lead(conn: Connection, lead_id: int, province_code: str | None) -> None:
    """A lead row with made-up facts; only id and province matter here."""
    conn.execute(
        insert(lead).values(
            id=lead_id,
            first_seen=T0,
            last_seen=T0,
            sightings=1,
            presences=1,
            addresses=1,
            items=1,
            known_files=1,
            verified_items=0,
            highest_category=None,
            networks=["bittorrent"],
            ip=f"127.0.{lead_id % 250}.{lead_id % 200 + 1}",
            country="ES" if province_code else "PT",
            province_code=province_code,
            flags=[],
            score=1.0,
            weights_version="test",
            scored_at=T0,
        )
    )
    conn.execute(
        insert(lead_presence).values(
            id=lead_id,
            lead_id=lead_id,
            ip=f"127.0.{lead_id % 250}.{lead_id % 200 + 1}",
            first_seen=T0,
            last_seen=T0,
            sightings=1,
            opened_by="window",
            days=[0],
            ports=[6881],
            province_code=province_code,
            flags=[],
        )
    )
    if province_code is not None:
        # What a build writes: the provinces that decide who holds the lead.
        conn.execute(insert(lead_province).values(lead_id=lead_id, province_code=province_code))
