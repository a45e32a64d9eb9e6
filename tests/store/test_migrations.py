from __future__ import annotations

from sqlalchemy import Engine, MetaData, inspect

from atalaya.store import create_store_engine, upgrade
from atalaya.store.migrate import current_revision, head_revision
from atalaya.store.tables import metadata


def test_upgrade_reaches_head_and_is_idempotent(db_url: str) -> None:
    eng = create_store_engine(db_url)
    assert current_revision(eng) is None
    upgrade(eng)
    assert current_revision(eng) == head_revision(eng)
    upgrade(eng)  # a second run changes nothing and does not fail
    assert current_revision(eng) == head_revision(eng)
    eng.dispose()


def test_migrations_match_table_definitions(engine: Engine) -> None:
    reflected = MetaData()
    reflected.reflect(engine)
    insp = inspect(engine)
    for table in metadata.sorted_tables:
        assert table.name in reflected.tables, table.name
        got = {c["name"] for c in insp.get_columns(table.name)}
        assert got == {c.name for c in table.columns}, table.name
        got_pk = set(insp.get_pk_constraint(table.name)["constrained_columns"])
        assert got_pk == {c.name for c in table.primary_key.columns}, table.name
        got_ix = {ix["name"] for ix in insp.get_indexes(table.name)}
        assert {ix.name for ix in table.indexes} <= got_ix, table.name


def test_sqlite_uses_wal(tmp_path) -> None:
    eng = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    eng.dispose()
