from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, select

from atalaya.errors import AtalayaError
from atalaya.hashsets import importer
from atalaya.hashsets.algorithms import NAMES_BY_CODE
from atalaya.hashsets.categories import Category
from atalaya.hashsets.formats import LinesReader
from atalaya.hashsets.importer import (
    HashSetImportError,
    find_hash_set,
    import_hash_set,
    list_hash_sets,
    remove_hash_set,
)
from atalaya.store.tables import (
    hash_set,
    reference_digest,
    reference_file,
    reference_hash,
    reference_label,
)

US = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media"
UK = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/UK/$metadata#Media"


def dump(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table (alembic's included), in a comparable form."""
    meta = MetaData()
    meta.reflect(engine)
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted(repr(tuple(row)) for row in rows)
    return out


@dataclass(frozen=True)
class Stored:
    """A stored record or hash, whichever layout holds it (rich or compact)."""

    hash_set_id: int
    file_key: str
    category: int = 0
    category_label: str = ""
    name: str | None = None
    attributes: Any = None
    algorithm: str = ""
    value: bytes = b""


def stored(engine: Engine) -> tuple[list[Stored], list[Stored]]:
    """(files, hashes) of every set, from reference_file/reference_hash and reference_digest."""
    d, lab = reference_digest.c, reference_label.c
    files: list[Stored] = []
    hashes: list[Stored] = []
    with engine.connect() as conn:
        for r in conn.execute(select(reference_file)):
            files.append(
                Stored(
                    r.hash_set_id, r.file_key, r.category, r.category_label, r.name, r.attributes
                )
            )
        for r in conn.execute(select(reference_hash)):
            hashes.append(
                Stored(r.hash_set_id, r.file_key, algorithm=r.algorithm, value=bytes(r.value))
            )
        bare = select(d.hash_set_id, d.algorithm, d.value, lab.category, lab.category_label).join(
            reference_label, (lab.hash_set_id == d.hash_set_id) & (lab.label == d.label)
        )
        for set_id, code, value, category, label in conn.execute(bare):
            algorithm = NAMES_BY_CODE[code]
            key = f"{algorithm}:{bytes(value).hex()}"
            files.append(Stored(set_id, key, category, label))
            hashes.append(Stored(set_id, key, algorithm=algorithm, value=bytes(value)))
    return files, hashes


def hexes(rng: random.Random, size: int, n: int) -> list[str]:
    return [rng.randbytes(size).hex() for _ in range(n)]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def vics(path: Path, media: list[dict[str, Any]], context: str | None = US) -> Path:
    doc: dict[str, Any] = {"@odata.context": context} if context else {}
    doc["value"] = media
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def media(rng: random.Random, n: int, category: Any = 1) -> list[dict[str, Any]]:
    return [
        {
            "MediaID": i,
            "Category": category,
            "MD5": rng.randbytes(16).hex().upper(),
            "SHA1": rng.randbytes(20).hex().upper(),
            "MediaSize": rng.randint(1, 10**8),
            "MediaFiles": [{"FileName": f"synthetic-{i}.bin"}],
        }
        for i in range(1, n + 1)
    ]


def test_plain_list_import_counts_and_rows(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(1)
    sha1s = hexes(rng, 20, 50)
    path = write(tmp_path / "list-one.txt", "# synthetic\n" + "\n".join(sha1s + sha1s[:5]) + "\n")
    report = import_hash_set(engine, path, category="A")
    assert report.created
    assert (report.hash_set, report.format, report.records) == ("list-one", "lines", 55)
    assert (report.files_new, report.files_known) == (50, 5)
    assert (report.hashes_new, report.hashes_known) == (50, 5)
    assert report.rejected == 0
    assert report.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with engine.connect() as conn:
        row = conn.execute(select(hash_set)).one()
    files, hashes = stored(engine)
    assert (row.name, row.source, row.format, row.version) == ("list-one", path.name, "lines", None)
    assert (row.file_count, row.hash_count) == (50, 50)
    assert row.file_sha256 == report.file_sha256
    assert {f.file_key for f in files} == {f"sha1:{h}" for h in sha1s}
    assert {(f.category, f.category_label) for f in files} == {(int(Category.SEVERE_ABUSE), "A")}
    assert {(h.algorithm, bytes(h.value)) for h in hashes} == {
        ("sha1", bytes.fromhex(h)) for h in sha1s
    }


def test_vics_import_keeps_labels_attributes_and_version(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(2)
    recs = media(rng, 4)
    for rec, cat in zip(recs, [0, 1, 2, "3"], strict=True):
        rec["Category"] = cat
    path = vics(tmp_path / "vics.json", recs)
    report = import_hash_set(engine, path, name="pv")
    assert (report.files_new, report.hashes_new, report.version) == (4, 8, US)
    with engine.connect() as conn:
        files = {f.file_key: f for f in conn.execute(select(reference_file))}
        version = conn.execute(select(hash_set.c.version)).scalar_one()
    assert version == US
    expected = [Category.NOT_PERTINENT, Category.ABUSE, Category.EXPLOITATIVE]
    expected.append(Category.EXPLOITATIVE)
    for rec, category in zip(recs, expected, strict=True):
        f = files[f"sha1:{rec['SHA1'].lower()}"]
        assert (f.category, f.category_label) == (int(category), str(rec["Category"]))
        assert f.attributes == {
            "MediaID": rec["MediaID"],
            "MediaSize": rec["MediaSize"],
            "MediaFiles": rec["MediaFiles"],
        }


def test_csv_import_several_hashes_per_file(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = [
        (rng.randbytes(16).hex(), rng.randbytes(32).hex(), rng.randbytes(20).hex())
        for _ in range(3)
    ]
    text = "md5,sha256,btih,category,name\n"
    text += "".join(f'{m},{s},{b},B,"n, {i}"\n' for i, (m, s, b) in enumerate(rows))
    path = write(tmp_path / "fp.csv", text)
    report = import_hash_set(engine, path, version="2026-11")
    assert (report.files_new, report.hashes_new, report.version) == (3, 9, "2026-11")
    with engine.connect() as conn:
        keys = conn.execute(select(reference_file.c.file_key, reference_file.c.name)).all()
        linked = conn.execute(select(reference_hash.c.algorithm, reference_hash.c.file_key)).all()
    assert sorted(keys) == sorted((f"sha256:{s}", f"n, {i}") for i, (_, s, _) in enumerate(rows))
    assert {a for a, _ in linked} == {"md5", "sha256", "btih"}
    assert {k for _, k in linked} == {k for k, _ in keys}


@pytest.mark.parametrize("fmt", ["lines", "csv", "vics"])
def test_reimport_changes_nothing(engine: Engine, tmp_path: Path, fmt: str) -> None:
    rng = random.Random(4)
    if fmt == "lines":
        path = write(tmp_path / "a.txt", "\n".join(hexes(rng, 16, 30)))
    elif fmt == "csv":
        path = write(
            tmp_path / "a.csv", "sha1,category\n" + "".join(f"{h},2\n" for h in hexes(rng, 20, 30))
        )
    else:
        path = vics(tmp_path / "a.json", media(rng, 30))
    first = import_hash_set(engine, path, category="abuse")
    before = dump(engine)
    again = import_hash_set(engine, path, category="abuse")
    assert dump(engine) == before
    assert not again.created
    assert (again.files_new, again.hashes_new) == (0, 0)
    assert (again.files_known, again.hashes_known) == (first.files_new, first.hashes_new)


def test_import_into_existing_set_adds_only_the_new(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(5)
    old, new = hexes(rng, 20, 10), hexes(rng, 20, 4)
    one = write(tmp_path / "one.txt", "\n".join(old))
    two = write(tmp_path / "two.txt", "\n".join(old[:3] + new))
    import_hash_set(engine, one, name="set", category="abuse")
    before = find_hash_set(engine, "set")
    report = import_hash_set(engine, two, name="set", category="abuse")
    after = find_hash_set(engine, "set")
    assert before is not None and after is not None
    assert (report.files_new, report.files_known) == (4, 3)
    assert (after.files, after.hashes) == (14, 14)
    assert after.imported_at == before.imported_at
    assert after.updated_at > before.updated_at
    assert after.file_sha256 == hashlib.sha256(two.read_bytes()).hexdigest()
    assert after.source == "two.txt"


def _record_lines(path: Path) -> list[int]:
    """Lines where the media records of an indent=2 VICS file open."""
    return [n for n, text in enumerate(path.read_text().splitlines(), 1) if text == "    {"]


def _bad_files(tmp_path: Path, rng: random.Random) -> list[tuple[Path, dict[str, Any], int, str]]:
    """Files that must be rejected: (path, options, line of the error, what it says)."""
    good = hexes(rng, 20, 250)
    body = "\n".join(good)
    full = json.dumps({"@odata.context": US, "value": media(rng, 3)}, indent=2)
    truncated = write(tmp_path / "trunc.json", full[: len(full) // 2])
    wrong_md5 = media(rng, 300)
    wrong_md5[250]["MD5"] = "ab" * 15
    length = vics(tmp_path / "len.json", wrong_md5)
    uk = vics(tmp_path / "uk.json", media(rng, 2), UK)
    nocat = vics(tmp_path / "nocat.json", media(rng, 2, None))
    abuse = {"category": "abuse"}
    twice = media(rng, 300)
    text = json.dumps({"@odata.context": US, "value": twice}, indent=2)
    # json.dumps cannot write a key twice: a second MD5 goes into record 251 by hand.
    first_md5 = f'"MD5": "{twice[250]["MD5"]}"'
    second_md5 = f'"MD5": "{rng.randbytes(16).hex()}"'
    repeated_key = write(
        tmp_path / "twice.json", text.replace(first_md5, f"{first_md5},\n      {second_md5}")
    )
    # A second top-level "value" array after the first: ijson reads both as one.
    head = text.removesuffix("\n}")
    second_array = json.dumps(media(rng, 2), indent=2)
    two_arrays = write(tmp_path / "arrays.json", f'{head},\n  "value": {second_array}\n}}')
    return [
        (repeated_key, {}, _record_lines(repeated_key)[250], "key 'MD5' appears twice"),
        (two_arrays, {}, head.count("\n") + 2, 'a second top-level "value" array'),
        (write(tmp_path / "bad.json", '{"value": [\n{"MD5": }]}'), {}, 2, "invalid JSON"),
        (truncated, {}, truncated.read_text().count("\n") + 1, "invalid JSON"),
        (length, {}, _record_lines(length)[250], "md5 must be 32 hex digits"),
        (uk, {}, _record_lines(uk)[0], "VICS variant 'UK'"),
        (nocat, {}, _record_lines(nocat)[0], "no category"),
        (write(tmp_path / "cols.csv", "sha1,colour\n"), {"category": "1"}, 1, "unknown column"),
        (
            write(tmp_path / "alpha.csv", f"sha1,category\n{good[0]},1\n{'x' * 40},1\n"),
            {},
            3,
            "not hex",
        ),
        (write(tmp_path / "nocat.csv", f"sha1,category\n{good[0]},\n"), {}, 2, "no category"),
        (
            write(tmp_path / "label.csv", f"sha1,category\n{good[0]},Z9\n"),
            {},
            2,
            "unknown category",
        ),
        (
            write(tmp_path / "len.txt", body + "\n" + good[0][:-2] + "\n"),
            {**abuse, "algorithm": "sha1"},
            251,
            "got 38",
        ),
        (write(tmp_path / "alpha.txt", body + "\n" + "g" * 32 + "\n"), abuse, 251, "not hex"),
        (write(tmp_path / "trunc.txt", body + "\n" + good[1][:21]), abuse, 251, "cannot tell"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("into", ["new", "existing"])
def test_every_rejection_leaves_the_database_as_it_was(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, into: str
) -> None:
    # Small batches: the bad record comes after rows were already written.
    monkeypatch.setattr(importer, "BATCH_RECORDS", 100)
    rng = random.Random(6)
    seed = write(tmp_path / "seed.txt", "\n".join(hexes(rng, 20, 120)))
    import_hash_set(engine, seed, name="existing", category="abuse")
    for path, options, line, message in _bad_files(tmp_path, rng):
        before = dump(engine)
        name = "existing" if into == "existing" else None
        with pytest.raises(HashSetImportError) as info:
            import_hash_set(engine, path, name=name, **options)
        text = str(info.value)
        assert "\n" not in text
        assert text.startswith(f"{path}:{line}: "), (text, line)
        assert message in text, text
        assert dump(engine) == before, path.name


def test_vics_with_other_top_level_objects_imports(engine: Engine, tmp_path: Path) -> None:
    # Only a second "value" is refused: other objects at the top level are kept out of the way.
    rng = random.Random(16)
    recs = media(rng, 3)
    doc = {"@odata.context": US, "meta": {"a": [1, 2]}, "value": recs, "more": [{"b": 1}]}
    path = write(tmp_path / "extra.json", json.dumps(doc))
    assert import_hash_set(engine, path).files_new == 3


def test_skip_invalid_reports_lines_and_imports_the_rest(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(7)
    lines = hexes(rng, 16, 100)
    bad_at = sorted(rng.sample(range(100), 30))
    for i in bad_at:
        lines[i] = "zz" + lines[i][2:]
    path = write(tmp_path / "mixed.txt", "\n".join(lines) + "\n")
    report = import_hash_set(engine, path, category="abuse", skip_invalid=True)
    assert report.rejected == 30
    assert report.rejected_lines == [i + 1 for i in bad_at[:20]]
    assert len(report.rejected_reasons) == 20
    assert (report.records, report.files_new) == (70, 70)
    info = find_hash_set(engine, "mixed")
    assert info is not None and info.files == 70


def test_skip_invalid_vics_lines_are_found(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(8)
    recs = media(rng, 6)
    recs[1]["SHA1"] = "x"
    recs[1]["MD5"] = None
    recs[4]["Category"] = 7
    path = vics(tmp_path / "v.json", recs)
    opens = _record_lines(path)
    report = import_hash_set(engine, path, skip_invalid=True)
    assert report.rejected == 2
    assert report.rejected_lines == [opens[1], opens[4]]
    assert "unknown category '7'" in report.rejected_reasons[1]
    assert report.files_new == 4


def test_category_map_and_default(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(9)
    recs = media(rng, 2, category=5)
    recs.append(media(rng, 1, category=None)[0])
    path = vics(tmp_path / "v5.json", recs, UK)
    report = import_hash_set(
        engine,
        path,
        category="A",
        category_map={"5": Category.NOT_PERTINENT},
    )
    assert report.files_new == 3
    with engine.connect() as conn:
        got = sorted(
            conn.execute(select(reference_file.c.category, reference_file.c.category_label))
        )
    assert got == [(0, "5"), (0, "5"), (4, "A")]


def test_nothing_accepted_creates_no_set(engine: Engine, tmp_path: Path) -> None:
    before = dump(engine)
    report = import_hash_set(
        engine, write(tmp_path / "x.txt", "nothex\n"), category="abuse", skip_invalid=True
    )
    assert (report.created, report.rejected) == (False, 1)
    empty = import_hash_set(engine, write(tmp_path / "e.txt", "# nothing\n"), category="abuse")
    assert not empty.created
    assert dump(engine) == before


def test_options_checked_before_reading(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "l.txt", "")
    with pytest.raises(HashSetImportError, match="give --category"):
        import_hash_set(engine, path)
    with pytest.raises(HashSetImportError, match="--category: unknown category 'worst'"):
        import_hash_set(engine, path, category="worst")
    with pytest.raises(HashSetImportError, match="plain lists only"):
        import_hash_set(engine, path, fmt="csv", algorithm="md5")
    with pytest.raises(HashSetImportError, match="unknown --algorithm"):
        import_hash_set(engine, path, category="a", algorithm="crc")
    with pytest.raises(HashSetImportError, match="name must be"):
        import_hash_set(engine, path, category="a", name="x" * 201)
    with pytest.raises(HashSetImportError, match="cannot read"):
        import_hash_set(engine, tmp_path / "missing.txt", category="a")


def test_progress_reports_bytes_up_to_the_size(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(10)
    path = write(tmp_path / "big.txt", "\n".join(hexes(rng, 32, 5000)))
    seen: list[int] = []
    import_hash_set(engine, path, category="abuse", on_progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == path.stat().st_size


def test_list_and_remove(engine: Engine, tmp_path: Path) -> None:
    rng = random.Random(11)
    a = write(tmp_path / "alpha.txt", "\n".join(hexes(rng, 20, 5)))
    b = vics(tmp_path / "beta.json", media(rng, 3))
    import_hash_set(engine, a, category="abuse")
    import_hash_set(engine, b)
    listed = list_hash_sets(engine)
    assert [(s.name, s.format, s.files, s.hashes) for s in listed] == [
        ("alpha", "lines", 5, 5),
        ("beta", "vics", 3, 6),
    ]
    assert listed[1].version == US
    assert listed[0].imported_at.tzinfo is not None
    alone = dump(engine)
    import_hash_set(
        engine, write(tmp_path / "gamma.txt", "\n".join(hexes(rng, 20, 7))), category="b"
    )
    removed = remove_hash_set(engine, "gamma")
    assert (removed.name, removed.files) == ("gamma", 7)
    assert dump(engine) == alone
    with pytest.raises(AtalayaError, match=re.escape("no hash set named 'gamma'")):
        remove_hash_set(engine, "gamma")
    assert find_hash_set(engine, "gamma") is None


def test_two_first_imports_of_one_new_name_merge(engine: Engine, tmp_path: Path) -> None:
    # The second import starts while the first, which created the set, has not
    # committed; it must wait and add to that set, not fail on the unique name.
    rng = random.Random(17)
    first = write(tmp_path / "first.txt", "\n".join(hexes(rng, 20, 300)) + "\n")
    second = write(tmp_path / "second.txt", "\n".join(hexes(rng, 20, 200)) + "\n")
    failures: list[BaseException] = []
    reports: list[importer.ImportReport] = []

    def import_second() -> None:
        try:
            reports.append(import_hash_set(engine, second, name="shared", category="abuse"))
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=import_second)
    size = first.stat().st_size

    def at_the_end_start_the_second(done: int) -> None:
        # The whole file is read: the set row exists in the first transaction.
        if done == size and not thread.is_alive():
            thread.start()
            time.sleep(1.5)

    created = import_hash_set(
        engine, first, name="shared", category="abuse", on_progress=at_the_end_start_the_second
    )
    thread.join(60)
    assert not thread.is_alive()
    assert not failures, failures
    assert created.created and not reports[0].created
    info = find_hash_set(engine, "shared")
    assert info is not None and (info.files, info.hashes) == (500, 500)


def _rows_of_sets(engine: Engine) -> tuple[list[Any], list[Any]]:
    """The stored hashes and files, without the set's id (a new one each import)."""
    files, hashes = stored(engine)
    return (
        sorted((h.algorithm, h.value, h.file_key) for h in hashes),
        sorted(
            (f.file_key, f.category, f.category_label, f.name, repr(f.attributes)) for f in files
        ),
    )


def _mixed_plain_list(rng: random.Random) -> str:
    lines = []
    for n in range(3000):
        value = rng.randbytes(rng.choice([16, 20, 32])).hex()
        kind = n % 7
        if kind == 1:
            value = value.upper()
        elif kind == 2:
            value += "\r"
        elif kind == 3:
            value = f"  {value} "
        elif kind == 4 and n % 5 == 0:
            value = "# a comment" if n % 2 else ""
        elif kind == 5 and n % 11 == 0:
            value = value[:-1] + "x"
        lines.append(value)
    lines += lines[:50]  # repeats: known the second time
    return "\n".join(lines)


@pytest.mark.parametrize("skip_invalid", [True, False])
def test_plain_list_in_batches_stores_what_records_store(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip_invalid: bool
) -> None:
    path = write(tmp_path / "mixed.txt", _mixed_plain_list(random.Random(11)))
    try:
        batched: Any = import_hash_set(engine, path, category="abuse", skip_invalid=skip_invalid)
    except HashSetImportError as exc:
        batched = str(exc)
    stored = _rows_of_sets(engine)
    if not isinstance(batched, str):
        remove_hash_set(engine, "mixed")
    # The reference: the same reader one record at a time.
    monkeypatch.setattr(LinesReader, "batches", LinesReader.__iter__)
    try:
        one_by_one: Any = import_hash_set(engine, path, category="abuse", skip_invalid=skip_invalid)
    except HashSetImportError as exc:
        one_by_one = str(exc)
    if isinstance(batched, str):
        assert batched == one_by_one
        assert "mixed.txt:" in batched
        return
    assert _rows_of_sets(engine) == stored
    for report in (batched, one_by_one):
        report.file_sha256 = ""
    assert batched.as_dict() == one_by_one.as_dict()
    assert batched.hashes_known > 40  # the repeated lines that are hashes
