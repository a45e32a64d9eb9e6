"""Revision 0023 (compact rows for plain lists) up and down on a populated store, both engines."""

from __future__ import annotations

import random
from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from atalaya.hashsets import lookup
from atalaya.hashsets.importer import import_hash_set
from atalaya.store import create_store_engine, upgrade
from atalaya.store.migrate import alembic_config, current_revision

REVISION, BEFORE = "0023", "0022"


def test_0023_up_and_down_keeps_every_record(db_url: str, tmp_path: Path) -> None:
    engine = create_store_engine(db_url)
    upgrade(engine, REVISION)
    rng = random.Random(8)
    sha1s = [rng.randbytes(20).hex() for _ in range(20)]
    md5s = [rng.randbytes(16).hex() for _ in range(5)]
    (tmp_path / "list.txt").write_text("\n".join(sha1s) + "\n")
    (tmp_path / "md5.txt").write_text("\n".join(md5s) + "\n")
    import_hash_set(engine, tmp_path / "list.txt", category="abuse")
    import_hash_set(engine, tmp_path / "md5.txt", category="A", algorithm="ed2k")
    keys = [f"sha1:{h}" for h in sha1s] + [f"ed2k:{h}" for h in md5s]

    def seen() -> list[tuple[str, str, int, str, dict[str, bytes]]]:
        with engine.connect() as conn:
            files = lookup.files_by_keys(conn, keys)
            hashes = lookup.file_hashes(conn, keys)
        return [
            (
                f.hash_set,
                f.file_key,
                f.category,
                f.category_label,
                hashes[(f.hash_set_id, f.file_key)],
            )
            for f in files
        ]

    before = seen()
    assert len(before) == 25

    command.downgrade(alembic_config(engine), BEFORE)
    assert current_revision(engine) == BEFORE
    assert not {"reference_digest", "reference_label"} & set(inspect(engine).get_table_names())
    # What the rows became in the old layout, read by the old layout's rules.
    upgrade(engine, REVISION)
    assert seen() == before
    with engine.connect() as conn:
        assert not any(f.bare for f in lookup.files_by_keys(conn, keys))
    engine.dispose()
