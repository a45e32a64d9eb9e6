"""Migration 0015 down and up again: the append-only triggers come back as they were."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from atalaya.store import create_store_engine, upgrade
from atalaya.store.migrate import alembic_config, current_revision

SIGHTING = (
    "INSERT INTO sighting (id, network, item_kind, item_value, ip, port, seen_at, found_by, "
    "pieces_verified, pieces_failed, bytes_downloaded, proof, observer, run_id) VALUES "
    "(1, 'bittorrent', 'btih', 'aa', '10.0.0.1', 6881, '2026-10-01 08:00:00', 'dht', "
    "0, 0, 0, false, 'atalaya/test', 'run')"
)
PROOF = (
    "INSERT INTO proof_transcript (sighting_id, version, body, sha256) VALUES (1, 1, :body, 'y')"
)


def test_0015_down_and_up_keeps_proofs_undeletable_outside_a_run(db_url: str) -> None:
    eng = create_store_engine(db_url)
    try:
        upgrade(eng)
        with eng.begin() as conn:
            conn.execute(text(SIGHTING))
            conn.execute(text(PROOF), {"body": b"\x00"})
        command.downgrade(alembic_config(eng), "0011")
        assert current_revision(eng) == "0011"
        assert "retention_permit" not in inspect(eng).get_table_names()
        with pytest.raises(DBAPIError, match="proof transcripts are evidence"), eng.begin() as conn:
            conn.execute(text("DELETE FROM proof_transcript"))
        upgrade(eng)
        with pytest.raises(DBAPIError, match="only a retention run"), eng.begin() as conn:
            conn.execute(text("DELETE FROM proof_transcript"))
        with eng.begin() as conn:
            conn.execute(
                text("INSERT INTO retention_permit (scope, object_id) VALUES ('sighting', 1)")
            )
            conn.execute(text("DELETE FROM proof_transcript"))
            conn.execute(text("DELETE FROM retention_permit"))
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM proof_transcript")).scalar() == 0
    finally:
        eng.dispose()
