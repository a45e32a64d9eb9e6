"""Enrichment runs wait for other writers, and two at once write each address once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from atalaya.enrich.store import enrich_pending, pending_ips
from atalaya.store.tables import enrichment, enrichment_data
from tests.enrich.mmdb import write_mmdb
from tests.enrich.test_store import RECORDS, make_enricher, sight
from tests.support.parallel import in_parallel
from tests.support.writers import while_another_writes

ADDRESSES = ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "8.8.8.8")


@pytest.fixture(scope="module")
def geo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mmdb(tmp_path_factory.mktemp("geo") / "made-up.mmdb", RECORDS)


def _rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.scalar(select(func.count()).select_from(enrichment)) or 0,
            conn.scalar(select(func.count()).select_from(enrichment_data)) or 0,
        )


def test_an_enrichment_run_waits_for_another_writer(engine: Engine, geo_db: Path) -> None:
    # Its first transaction reads (is this data version known?) then writes:
    # SQLite refused that at once while another writer committed.
    sight(engine, *ADDRESSES)
    enricher = make_enricher(geo_db)
    reports = []
    while_another_writes(engine, lambda: reports.append(enrich_pending(engine, enricher)))
    assert reports[0].enriched == len(ADDRESSES)
    assert _rows(engine) == (len(ADDRESSES), 1)


def test_two_enrichment_runs_at_once_write_each_address_once(engine: Engine, geo_db: Path) -> None:
    sight(engine, *ADDRESSES)
    enricher = make_enricher(geo_db)
    failures = in_parallel(2, lambda _n: enrich_pending(engine, enricher, batch_size=2))
    assert not failures, failures
    assert _rows(engine) == (len(ADDRESSES), 1)
    with engine.connect() as conn:
        assert pending_ips(conn, enricher.data_version) == []
