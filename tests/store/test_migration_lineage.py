"""Revision 0006 (lead lineage) up and down on a populated store, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, inspect, select
from sqlalchemy.exc import DBAPIError

from atalaya.store import create_store_engine, upgrade
from atalaya.store.migrate import alembic_config, current_revision

REVISION, BEFORE = "0006", "0005"
T0 = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
NEW_TABLES = {"lead_province", "lead_build", "lead_lineage", "lead_history", "lead_alias"}


def _table(engine: Engine, name: str) -> Table:
    return Table(name, MetaData(), autoload_with=engine)


def _rows(engine: Engine, name: str, order: str) -> list[dict[str, Any]]:
    table = _table(engine, name)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(table.c[order])).mappings()]


def _shape(engine: Engine, name: str) -> dict[str, Any]:
    insp = inspect(engine)
    return {
        "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)],
        "pk": insp.get_pk_constraint(name)["constrained_columns"],
        "indexes": sorted((ix["name"], tuple(ix["column_names"])) for ix in insp.get_indexes(name)),
        "fks": sorted(
            (tuple(fk["constrained_columns"]), fk["referred_table"])
            for fk in insp.get_foreign_keys(name)
        ),
    }


def _populate_0005(engine: Engine) -> None:
    """Two leads (one in two provinces), a unit, a claim and an override, as 0005 has them."""
    lead, presence = _table(engine, "lead"), _table(engine, "lead_presence")
    unit, claim = _table(engine, "unit"), _table(engine, "lead_claim")
    override = _table(engine, "lead_override")
    with engine.begin() as conn:
        for lead_id, provinces in ((1, ["28", "41", None]), (7, ["08"])):
            size = len(provinces)
            conn.execute(
                lead.insert().values(
                    {
                        "id": lead_id,
                        "first_seen": T0,
                        "last_seen": T0,
                        "sightings": size,
                        "presences": size,
                        "addresses": size,
                        "items": 1,
                        "known_files": 1,
                        "verified_items": 0,
                        "networks": ["bittorrent"],
                        "ip": f"10.0.{lead_id}.1",
                        "province_code": provinces[0],
                        "flags": [],
                        "score": 1.5,
                        "weights_version": "w",
                        "scored_at": T0,
                    }
                )
            )
            for n, code in enumerate(provinces):
                conn.execute(
                    presence.insert().values(
                        {
                            "id": lead_id + n,
                            "lead_id": lead_id,
                            "ip": f"10.0.{lead_id}.{n + 1}",
                            "first_seen": T0,
                            "last_seen": T0,
                            "sightings": 1,
                            "opened_by": "window",
                            "days": [0],
                            "ports": [6881],
                            "province_code": code,
                            "flags": [],
                        }
                    )
                )
        conn.execute(unit.insert().values(id=1, name="Madrid", contact="desk", created_at=T0))
        conn.execute(claim.insert().values(lead_id=7, unit_id=1, claimed_by="ana", claimed_at=T0))
        conn.execute(
            override.insert().values(
                lead_id=1, score=9.0, reason="why", analyst="ana", created_at=T0
            )
        )


def test_0006_up_and_down_on_a_populated_store(db_url: str) -> None:
    engine = create_store_engine(db_url)
    upgrade(engine, BEFORE)
    _populate_0005(engine)
    claim_shape = _shape(engine, "lead_claim")
    before = {
        name: _rows(engine, name, order)
        for name, order in (
            ("lead", "id"),
            ("lead_presence", "id"),
            ("lead_claim", "lead_id"),
            ("lead_override", "id"),
        )
    }

    upgrade(engine, REVISION)
    assert current_revision(engine) == REVISION
    assert set(inspect(engine).get_table_names()) >= NEW_TABLES
    # Units hold leads by any presence at once: the provinces are filled in.
    with engine.connect() as conn:
        provinces = _table(engine, "lead_province")
        assert sorted(conn.execute(select(provinces))) == [(1, "28"), (1, "41"), (7, "08")]
    assert [c["carried_from"] for c in _rows(engine, "lead_claim", "lead_id")] == [None]
    for name in ("lead", "lead_presence", "lead_override"):
        assert _rows(engine, name, "id") == before[name], name

    # What a build would record, then everything down again.
    build, lineage = _table(engine, "lead_build"), _table(engine, "lead_lineage")
    with engine.begin() as conn:
        conn.execute(
            build.insert().values(
                id=1, at=T0, mode="full", reason="", algorithm="2", last_sighting_id=9
            )
        )
        conn.execute(lineage.insert().values(build_id=1, old_id=7, new_id=1, kind="merge"))
        conn.execute(_table(engine, "lead_alias").insert().values(id=7, lead_id=1))
        conn.execute(
            _table(engine, "lead_claim")
            .insert()
            .values(lead_id=1, unit_id=1, claimed_by="ana", claimed_at=T0, carried_from=7)
        )
    with pytest.raises(DBAPIError, match="lineage and history are a record"), engine.begin() as c:
        c.execute(lineage.delete())

    command.downgrade(alembic_config(engine), BEFORE)
    assert current_revision(engine) == BEFORE
    assert not NEW_TABLES & set(inspect(engine).get_table_names())
    assert _shape(engine, "lead_claim") == claim_shape
    claims = _rows(engine, "lead_claim", "lead_id")
    assert [(c["lead_id"], c["unit_id"]) for c in claims] == [(1, 1), (7, 1)]
    assert claims[1] == before["lead_claim"][0]
    for name in ("lead", "lead_presence", "lead_override"):
        assert _rows(engine, name, "id") == before[name], name

    # And up again, as on a store that was never at 0006.
    upgrade(engine, REVISION)
    with engine.connect() as conn:
        assert len(conn.execute(select(_table(engine, "lead_province"))).all()) == 3
        assert conn.execute(select(_table(engine, "lead_lineage"))).all() == []
    engine.dispose()
