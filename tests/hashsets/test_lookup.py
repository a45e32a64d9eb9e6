"""The read API over both layouts: a plain list (compact rows) and a VICS file (rich rows)."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, MetaData, func, select

from atalaya.hashsets import MatchIndex, fetch_details, importer, lookup
from atalaya.hashsets.categories import Category
from atalaya.hashsets.importer import HashSetImportError, import_hash_set, remove_hash_set
from atalaya.observe.bittorrent.full_file import reference_hashes
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import reference_digest, reference_file

US = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media"


def _vics(path: Path, media: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"@odata.context": US, "value": media}), encoding="utf-8")
    return path


def _two_sets(tmp_path: Path, engine: Engine) -> tuple[bytes, list[str], dict[str, Any]]:
    """A plain list "bare" of 30 SHA-1s and a VICS set "rich" whose first file shares one."""
    rng = random.Random(5)
    sha1s = [rng.randbytes(20).hex() for _ in range(30)]
    shared = sha1s[0]
    (tmp_path / "bare.txt").write_text("\n".join(sha1s) + "\n")
    media = [
        {
            "MediaID": i,
            "Category": 1,
            "MD5": rng.randbytes(16).hex(),
            "SHA1": shared if i == 1 else rng.randbytes(20).hex(),
            "MediaSize": 1000 + i,
            "MediaFiles": [{"FileName": f"synthetic-{i}.bin"}],
        }
        for i in range(1, 4)
    ]
    _vics(tmp_path / "rich.json", media)
    import_hash_set(engine, tmp_path / "bare.txt", category="abuse")
    import_hash_set(engine, tmp_path / "rich.json")
    return bytes.fromhex(shared), sha1s, media[0]


def test_both_layouts_read_alike(engine: Engine, tmp_path: Path) -> None:
    shared, sha1s, first = _two_sets(tmp_path, engine)
    with engine.connect() as conn:
        # The plain list went to the compact table, the VICS file to the rich ones.
        assert conn.scalar(select(func.count()).select_from(reference_digest)) == 30
        assert conn.scalar(select(func.count()).select_from(reference_file)) == 3

        bare_key, rich_key = f"sha1:{shared.hex()}", f"sha1:{first['SHA1']}"
        assert bare_key == rich_key  # VICS keys a file by its SHA-1 when it has no SHA-256
        files = lookup.files_by_keys(conn, [bare_key, "sha1:zz", "nonsense"])
        assert [(f.hash_set, f.file_key, f.bare) for f in files] == [
            ("bare", bare_key, True),
            ("rich", rich_key, False),
        ]
        bare, rich = files
        assert (bare.category, bare.category_label, bare.name, bare.attributes) == (
            int(Category.ABUSE),
            "abuse",
            None,
            None,
        )
        assert bare.source == "bare.txt"
        assert rich.attributes["MediaSize"] == first["MediaSize"]
        only_rich = lookup.files_by_keys(conn, [bare_key], hash_set_ids={rich.hash_set_id})
        assert [f.hash_set for f in only_rich] == ["rich"]

        hashes = lookup.file_hashes(conn, [bare_key])
        assert hashes[(bare.hash_set_id, bare_key)] == {"sha1": shared}
        assert hashes[(rich.hash_set_id, rich_key)] == {
            "sha1": shared,
            "md5": bytes.fromhex(first["MD5"]),
        }
        assert lookup.file_keys_for_digest(conn, ["sha1", "btih"], shared) == {bare_key}
        assert lookup.file_keys_for_digest(conn, ["md5"], bytes.fromhex(first["MD5"])) == {rich_key}
        rows = list(lookup.watch_rows(conn, ["sha1"]))
        assert [r[4] for r in rows] == ["bare"] * 30 + ["rich"] * 3
        assert [r[1] for r in rows[:30]] == sorted(bytes.fromhex(h) for h in sha1s)
        assert lookup.digest_counts(conn) == {"sha1": 33, "md5": 3}
    assert reference_hashes(engine, bare_key) == {
        "sha1": shared,
        "md5": bytes.fromhex(first["MD5"]),
    }

    details = fetch_details(engine, [("sha1", shared), ("sha1", b"\0" * 20)])
    assert [(m.hash_set, m.file_key, m.category_label) for m in details[("sha1", shared)]] == [
        ("bare", bare_key, "abuse"),
        ("rich", rich_key, "1"),
    ]
    index = MatchIndex.from_store(engine)
    assert (index.count("sha1"), index.count("md5")) == (32, 3)  # the shared digest once
    queries = [bytes.fromhex(h) for h in sha1s] + [b"\1" * 20]
    assert index.lookup("sha1", queries).tolist() == [True] * 30 + [False]

    # Removing one set leaves the other whole.
    remove_hash_set(engine, "bare")
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(reference_digest)) == 0
        assert [f.hash_set for f in lookup.files_by_keys(conn, [bare_key])] == ["rich"]
        assert lookup.file_keys_for_digest(conn, ["sha1"], shared) == {rich_key}
    assert MatchIndex.from_store(engine).count("sha1") == 3
    import_hash_set(engine, tmp_path / "bare.txt", category="abuse")
    remove_hash_set(engine, "rich")
    with engine.connect() as conn:
        assert [f.hash_set for f in lookup.files_by_keys(conn, [bare_key])] == ["bare"]
        assert lookup.digest_counts(conn) == {"sha1": 30}


def test_plain_list_into_a_set_with_rich_records_stays_rich(engine: Engine, tmp_path: Path) -> None:
    """A set's digest is held in one layout only: a list added to a VICS set goes rich."""
    _, sha1s, _ = _two_sets(tmp_path, engine)
    report = import_hash_set(engine, tmp_path / "bare.txt", name="rich", category="abuse")
    assert (report.files_new, report.hashes_new, report.hashes_known) == (29, 29, 1)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(reference_digest)) == 30  # "bare" only
        keys = lookup.file_keys_for_digest(conn, ["sha1"], bytes.fromhex(sha1s[5]))
    assert keys == {f"sha1:{sha1s[5]}"}


def _dump(engine: Engine) -> dict[str, list[str]]:
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {
            t.name: sorted(repr(tuple(r)) for r in conn.execute(select(t)))
            for t in meta.sorted_tables
        }


def test_a_bad_line_after_written_batches_leaves_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches already in the database when line N is refused are rolled back with the rest."""
    monkeypatch.setattr(importer, "BATCH_DIGESTS", 100)
    _two_sets(tmp_path, engine)
    before = _dump(engine)
    rng = np.random.default_rng(3)
    lines = [bytes(rng.integers(0, 256, 20, dtype=np.uint8)).hex() for _ in range(1000)]
    lines.insert(876, "not a digest")
    path = tmp_path / "big.txt"
    path.write_text("\n".join(lines) + "\n")
    for name in ("big", "bare"):  # a new set, and more records for an existing one
        with pytest.raises(HashSetImportError, match=r"big\.txt:877: .*nothing imported"):
            import_hash_set(engine, path, name=name, category="abuse")
        assert _dump(engine) == before


_digest = st.binary(min_size=20, max_size=20)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    digests=st.lists(_digest, min_size=1, max_size=60),
    repeats=st.lists(st.integers(min_value=0, max_value=59), max_size=10),
    upper=st.booleans(),
    bad_at=st.one_of(st.none(), st.integers(min_value=0, max_value=70)),
)
def test_plain_list_property(
    digests: list[bytes], repeats: list[int], upper: bool, bad_at: int | None
) -> None:
    """Whatever the list: stored = its distinct digests, or line N refused and nothing stored."""
    lines = [d.hex().upper() if upper else d.hex() for d in digests]
    lines += [lines[i % len(lines)] for i in repeats]
    if bad_at is not None:
        bad_at = min(bad_at, len(lines))
        lines.insert(bad_at, "g" * 40)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_store_engine(f"sqlite:///{Path(tmp) / 'p.db'}")
        upgrade(engine)
        path = Path(tmp) / "p.txt"
        path.write_text("\n".join(lines) + "\n")
        try:
            if bad_at is not None:
                with pytest.raises(HashSetImportError, match=rf"p\.txt:{bad_at + 1}: "):
                    import_hash_set(engine, path, category="abuse")
                with engine.connect() as conn:
                    assert conn.scalar(select(func.count()).select_from(reference_digest)) == 0
                return
            report = import_hash_set(engine, path, category="abuse")
            assert report.files_new == len(set(digests))
            assert report.files_known == len(lines) - len(set(digests))
            with engine.connect() as conn:
                stored = conn.scalars(select(reference_digest.c.value)).all()
                found = lookup.files_by_keys(conn, [f"sha1:{d.hex()}" for d in digests])
            assert sorted(map(bytes, stored)) == sorted(set(digests))
            assert {f.file_key for f in found} == {f"sha1:{d.hex()}" for d in digests}
        finally:
            engine.dispose()
