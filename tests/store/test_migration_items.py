"""Revision 0008 (network-neutral items) up and down on a populated store, on both engines."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, inspect, select, text
from sqlalchemy.exc import DBAPIError

from atalaya.store import create_store_engine, upgrade
from atalaya.store.migrate import alembic_config, current_revision

REVISION, BEFORE = "0008", "0007"
T0 = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
SIGHTING_RENAMES = {
    "infohash": "item_value",
    "file_hash": "file_key",
    "hash_set_version": "hash_set_sha256",
}
PRESENCE_ITEM_RENAMES = {"infohash": "value", "file_hash": "file_key"}

# Peers choose these; the migration must carry them through untouched.
HOSTILE = (
    "'; DROP TABLE sighting; --",
    "<script>alert(1)</script>",
    "\u202egnp.exe \U0001f600 \\x00 %s %n",
    '=HYPERLINK("http://127.0.0.1")',
    "x" * 200,
)


def _hex(n: int) -> str:
    return os.urandom(n).hex()


def _table(engine: Engine, name: str) -> Table:
    return Table(name, MetaData(), autoload_with=engine)


def _rows(engine: Engine, name: str, *order: str) -> list[dict[str, Any]]:
    table = _table(engine, name)
    with engine.connect() as conn:
        query = select(table).order_by(*(table.c[o] for o in order))
        return [dict(r) for r in conn.execute(query).mappings()]


def _renamed(row: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    return {renames.get(k, k): v for k, v in row.items()}


def _trigger_sql(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'sighting'"
        else:
            query = (
                "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t "
                "WHERE t.tgrelid = 'sighting'::regclass AND NOT t.tgisinternal"
            )
        return sorted(str(r[0]) for r in conn.execute(text(query)))


def _sighting(n: int, infohash: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "network": "bittorrent",
        "infohash": infohash,
        "ip": f"10.{n}.0.1" if n % 2 else f"fd00::{n:x}",
        "port": 6881 + n,
        "seen_at": T0 + timedelta(seconds=n, microseconds=n),
        "found_by": ("dht", "tracker", "pex", "operator")[n % 4],
        "client": HOSTILE[n % len(HOSTILE)],
        "peer_id": _hex(20),
        "advertised_name": HOSTILE[(n + 1) % len(HOSTILE)],
        "have_fraction": n / 7,
        "pieces_verified": n,
        "pieces_failed": 0,
        "bytes_downloaded": n * 16384,
        "proof": n % 2 == 1,
        "local_ip": "127.0.0.1",
        "local_port": 40000 + n,
        "observer": "atalaya/0.1.0",
        "run_id": f"00000000-0000-4000-8000-{n:012d}",
        "clock_offset_s": 0.25 * n,
        "details": {"reserved": _hex(8), "note": HOSTILE[n % len(HOSTILE)]},
    }
    row.update(extra)
    return row


def _populate_0007(engine: Engine) -> dict[str, str]:
    """Sightings of every shape, and lead items, as 0007 stores them; infohash → expected kind."""
    v1, v2, hybrid_v1, hybrid_v2 = _hex(20), _hex(32), _hex(20), _hex(32)
    sightings = [
        _sighting(1, v1),
        _sighting(2, v1, file_hash=f"sha256:{_hex(32)}", category=1, hash_set="set 'one'"),
        _sighting(3, v2, hash_set_version=_hex(32), file_hash=f"md5:{_hex(16)}", category=2),
        _sighting(4, v2, details=None, client=None, peer_id=None, advertised_name=None),
        _sighting(5, hybrid_v1, details={"infohash_v2": hybrid_v2, "yourip": "7f000001"}),
        _sighting(6, hybrid_v1.upper(), hash_set=HOSTILE[0], hash_set_version=_hex(32)),
    ]
    kinds = {v1: "btih", v2: "btih2", hybrid_v1: "btih", hybrid_v1.upper(): "btih"}
    sighting = _table(engine, "sighting")
    presence, presence_item = _table(engine, "lead_presence"), _table(engine, "lead_presence_item")
    lead_item = _table(engine, "lead_item")
    with engine.begin() as conn:
        # Ids with gaps, as after a retention purge: they must not be renumbered.
        for n, row in zip((3, 4, 9, 10, 40, 41), sightings, strict=True):
            conn.execute(sighting.insert().values(id=n, **row))
        conn.execute(
            presence.insert().values(
                id=3,
                lead_id=3,
                ip="10.1.0.1",
                first_seen=T0,
                last_seen=T0,
                sightings=6,
                opened_by="window",
                days=[0],
                ports=[6881],
                flags=[],
            )
        )
        for rank, (infohash, file_hash) in enumerate(
            ((v1, f"sha256:{_hex(32)}"), (v2, None), (hybrid_v1, None))
        ):
            conn.execute(
                presence_item.insert().values(
                    presence_id=3,
                    infohash=infohash,
                    network="bittorrent",
                    file_hash=file_hash,
                    category=rank or None,
                    proof=rank == 0,
                    sightings=rank + 1,
                    in_prefix=rank < 2,
                )
            )
            conn.execute(lead_item.insert().values(infohash=infohash, rank=rank, leads=rank + 1))
    return kinds


def test_0008_up_and_down_on_a_populated_store(db_url: str) -> None:
    engine = create_store_engine(db_url)
    upgrade(engine, BEFORE)
    kinds = _populate_0007(engine)
    triggers = _trigger_sql(engine)
    before = {
        "sighting": _rows(engine, "sighting", "id"),
        "lead_presence_item": _rows(engine, "lead_presence_item", "presence_id", "infohash"),
        "lead_item": _rows(engine, "lead_item", "infohash"),
    }
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("sighting")}

    upgrade(engine, REVISION)
    assert current_revision(engine) == REVISION
    after = _rows(engine, "sighting", "id")
    # Every sighting, id included, byte for byte under its new column names.
    assert [{k: v for k, v in r.items() if k != "item_kind"} for r in after] == [
        _renamed(r, SIGHTING_RENAMES) for r in before["sighting"]
    ]
    assert [r["item_kind"] for r in after] == [kinds[r["infohash"]] for r in before["sighting"]]
    assert after[4]["details"] == {
        "infohash_v2": before["sighting"][4]["details"]["infohash_v2"],
        "yourip": "7f000001",
    }
    assert {ix["name"] for ix in inspect(engine).get_indexes("sighting")} == (
        indexes - {"ix_sighting_infohash"}
    ) | {"ix_sighting_item"}
    assert _trigger_sql(engine) == triggers

    presence_items = _rows(engine, "lead_presence_item", "presence_id", "value")
    assert [{k: v for k, v in r.items() if k != "kind"} for r in presence_items] == [
        _renamed(r, PRESENCE_ITEM_RENAMES) for r in before["lead_presence_item"]
    ]
    assert [r["kind"] for r in presence_items] == [
        kinds[r["infohash"]] for r in before["lead_presence_item"]
    ]
    lead_items = _rows(engine, "lead_item", "value")
    assert lead_items == [
        {
            "network": "bittorrent",
            "kind": kinds[r["infohash"]],
            "value": r["infohash"],
            "rank": r["rank"],
            "leads": r["leads"],
        }
        for r in before["lead_item"]
    ]
    insp = inspect(engine)
    assert insp.get_pk_constraint("lead_item")["constrained_columns"] == [
        "network",
        "kind",
        "value",
    ]
    assert insp.get_pk_constraint("lead_presence_item")["constrained_columns"] == [
        "presence_id",
        "network",
        "kind",
        "value",
    ]

    # Still evidence: no sighting can be changed, by any column old or new.
    sighting = _table(engine, "sighting")
    for values in ({"item_kind": "btih2"}, {"item_value": _hex(20)}, {"client": "x"}):
        with pytest.raises(DBAPIError, match="sightings are evidence"), engine.begin() as conn:
            conn.execute(sighting.update().where(sighting.c.id == 3).values(**values))
    assert _rows(engine, "sighting", "id") == after

    command.downgrade(alembic_config(engine), BEFORE)
    assert current_revision(engine) == BEFORE
    assert _rows(engine, "sighting", "id") == before["sighting"]
    assert (
        _rows(engine, "lead_presence_item", "presence_id", "infohash")
        == (before["lead_presence_item"])
    )
    assert _rows(engine, "lead_item", "infohash") == before["lead_item"]
    assert {ix["name"] for ix in inspect(engine).get_indexes("sighting")} == indexes
    assert _trigger_sql(engine) == triggers
    sighting = _table(engine, "sighting")
    with pytest.raises(DBAPIError, match="sightings are evidence"), engine.begin() as conn:
        conn.execute(sighting.update().values(client="x"))

    # And up again, as on a store that was never at 0008.
    upgrade(engine, REVISION)
    assert _rows(engine, "sighting", "id") == after
    engine.dispose()
