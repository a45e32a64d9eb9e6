"""LowID (firewalled) sources: found, recorded as such, never proof and never a claim of parts."""

from __future__ import annotations

from sqlalchemy import Engine, select

from atalaya.hashsets.algorithms import ED2K
from atalaya.observe.ed2k.observer import Ed2kConfig, Ed2kObserver
from atalaya.observe.watchlist import WatchTarget
from atalaya.store.tables import proof_transcript, sighting

FILE_HASH = bytes.fromhex("0d5a20d356029316921a147d2ca58aaa")


def test_a_firewalled_source_is_recorded_as_found_but_not_probed(engine: Engine) -> None:
    target = WatchTarget("ed2k", ED2K, FILE_HASH, "test", category=1)
    observer = Ed2kObserver(engine, [target], {}, Ed2kConfig(()))
    written = observer.record_unprobed(
        "198.51.100.7", 4662, target, found_by="kad", reason="low_id: firewalled, behind a buddy",
        facts={"buddy": "198.51.100.8:4672"},
    )  # fmt: skip
    assert written == 1 and observer.stats.unprobed == 1
    with engine.connect() as conn:
        row = conn.execute(select(sighting)).mappings().one()
        transcripts = conn.execute(select(proof_transcript)).all()
    assert not row["proof"] and row["proof_kind"] is None
    assert row["have_fraction"] is None and row["pieces_verified"] == 0
    assert row["found_by"] == "kad" and row["item_value"] == FILE_HASH.hex()
    assert row["details"] == {
        "probed": False,
        "reason": "low_id: firewalled, behind a buddy",
        "buddy": "198.51.100.8:4672",
    }
    # Nothing was exchanged with the peer: there is no transcript to keep.
    assert transcripts == []
