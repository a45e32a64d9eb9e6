"""`atalaya hashsets import|list|remove` driven as an operator would.

Commands run in this process (tests/support/cli.py); the missing file of
`test_operator_mistakes_are_one_line` is reported by a real process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_atalaya, spawn_atalaya


def _env(db_url: str) -> dict[str, str | None]:
    return {"ATALAYA_DATABASE_URL": db_url, "COLUMNS": "60"}


def atalaya(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return run_atalaya(*args, stdin=stdin, env=_env(db_url))


def atalaya_process(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return spawn_atalaya(*args, stdin="", env=_env(db_url))


@pytest.fixture
def db(db_url: str) -> str:
    done = atalaya(db_url, "init")
    assert done.returncode == 0, done.stderr
    return db_url


def sha1s(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.randbytes(20).hex() for _ in range(n)]


def test_import_list_reimport_remove(db: str, tmp_path: Path) -> None:
    listing = tmp_path / "synthetic-list.txt"
    listing.write_text("\n".join(sha1s(1, 40)) + "\n")
    done = atalaya(db, "hashsets", "import", str(listing), "--category", "abuse")
    assert done.returncode == 0, done.stderr
    assert "hash set 'synthetic-list' (new, lines): 40 records" in done.stdout
    assert "files:  40 new, 0 already known" in done.stdout

    again = atalaya(db, "hashsets", "import", str(listing), "--category", "abuse", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["files_new"], report["files_known"], report["created"]) == (0, 40, False)

    listed = atalaya(db, "hashsets", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["name"], row["files"], row["hashes"], row["format"]) == (
        "synthetic-list",
        40,
        40,
        "lines",
    )
    assert row["file_sha256"] == report["file_sha256"]
    table = atalaya(db, "hashsets", "list")
    assert table.stdout.splitlines()[0].split() == [
        "name",
        "source",
        "format",
        "version",
        "files",
        "hashes",
        "imported",
        "updated",
    ]
    assert "synthetic-list" in table.stdout

    refused = atalaya(db, "hashsets", "remove", "synthetic-list")
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("error: refusing to remove")
    assert len(refused.stderr.strip().splitlines()) == 1
    removed = atalaya(db, "hashsets", "remove", "synthetic-list", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert "removed hash set 'synthetic-list': 40 files, 40 hashes" in removed.stderr
    assert atalaya(db, "hashsets", "list", "--json").stdout == ""

    unknown = atalaya(db, "hashsets", "remove", "synthetic-list", "--yes")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "error: no hash set named 'synthetic-list' (see 'atalaya hashsets list')"
    )


def test_rejected_file_is_one_line_and_changes_nothing(db: str, tmp_path: Path) -> None:
    good = sha1s(2, 30)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "sha1,category,name\n" + "".join(f"{h},1,n{i}\n" for i, h in enumerate(good)) + "abc,1,x\n"
    )
    done = atalaya(db, "hashsets", "import", str(bad))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {bad}:32: sha1 must be 40 hex digits, got 3 characters")
    assert "nothing imported" in lines[0]
    assert atalaya(db, "hashsets", "list", "--json").stdout == ""

    skipped = atalaya(db, "hashsets", "import", str(bad), "--skip-invalid", "--source", "kept")
    assert skipped.returncode == 0, skipped.stderr
    assert "rejected: 1 records, lines 32" in skipped.stdout
    assert f"rejected {bad}:32: sha1 must be 40 hex digits" in skipped.stderr
    assert '"kept"' in atalaya(db, "hashsets", "list", "--json").stdout


def test_vics_with_category_map(db: str, tmp_path: Path) -> None:
    rng = random.Random(3)
    doc = {
        "@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media",
        "value": [
            {
                "MediaID": i,
                "Category": 5,
                "MD5": rng.randbytes(16).hex(),
                "SHA1": rng.randbytes(20).hex(),
            }
            for i in range(3)
        ],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc, indent=1))
    unmapped = atalaya(db, "hashsets", "import", str(path))
    assert unmapped.returncode == 2
    assert f"error: {path}:4: unknown category '5'" in unmapped.stderr
    assert "--category-map" in unmapped.stderr
    done = atalaya(
        db, "hashsets", "import", str(path), "--category-map", "5=not_pertinent", "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["format"], report["files_new"], report["hashes_new"]) == ("vics", 3, 6)
    assert report["version"] == doc["@odata.context"]
    bad_map = atalaya(db, "hashsets", "import", str(path), "--category-map", "5=worst")
    assert bad_map.returncode == 2
    assert bad_map.stderr.startswith("error: 'worst' is not an internal category")


def test_operator_mistakes_are_one_line(db: str, tmp_path: Path) -> None:
    missing = atalaya_process(db, "hashsets", "import", str(tmp_path / "nope.txt"))
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        f"error: {tmp_path / 'nope.txt'}: no such file",
    )
    plain = tmp_path / "plain.txt"
    plain.write_text(sha1s(4, 1)[0] + "\n")
    no_category = atalaya(db, "hashsets", "import", str(plain))
    assert no_category.returncode == 2
    assert len(no_category.stderr.strip().splitlines()) == 1
    assert "give --category" in no_category.stderr


def test_uninitialised_store_and_help(db_url: str, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text(sha1s(5, 1)[0] + "\n")
    done = atalaya(db_url, "hashsets", "import", str(plain), "--category", "a")
    assert done.returncode == 2
    assert "run 'atalaya init'" in done.stderr
    for command in ("import", "list", "remove"):
        shown = atalaya(db_url, "hashsets", command, "--help")
        assert shown.returncode == 0
        assert "Usage" in shown.stdout


NOTHING = "error: nothing imported from {path}: it holds no records"
NO_HEADER = "empty file: expected a CSV header (nothing imported)"


@pytest.mark.parametrize(
    ("name", "text", "options", "says"),
    [
        ("empty.txt", "", ("--category", "abuse"), NOTHING),
        ("comments.txt", "# a header, no hashes\n\n", ("--category", "abuse"), NOTHING),
        ("header.csv", "sha1,category\n", (), NOTHING),
        (
            "empty.csv",
            "",
            (),
            "error: {path}:1: empty file: expected a CSV header (nothing imported)",
        ),
    ],
)
def test_a_file_without_records_imports_nothing_and_says_so(
    db: str, tmp_path: Path, name: str, text: str, options: tuple[str, ...], says: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    done = atalaya(db, "hashsets", "import", str(path), *options)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [says.format(path=path)]
    assert atalaya(db, "hashsets", "list", "--json").stdout == ""


def test_every_record_rejected_imports_nothing(db: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("not-a-hash\n")
    done = atalaya(db, "hashsets", "import", str(path), "--category", "abuse", "--skip-invalid")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"error: nothing imported from {path}: every record was rejected"
    )
    assert atalaya(db, "hashsets", "list", "--json").stdout == ""


def _symlink_loop(tmp_path: Path) -> Path:
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    return tmp_path / "loop-a"


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe")
    return tmp_path / "pipe"


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_folder, "{path} is a folder: give the hash set file inside it"),
        (_fifo, "{path} is a named pipe: save it to a file and import that"),
        (_symlink_loop, "{path}: a loop of symbolic links, not a file"),
    ],
)
def test_what_is_not_a_hash_set_file_is_named_for_what_it_is(
    db: str, tmp_path: Path, make: Any, says: str
) -> None:
    path = make(tmp_path)
    done = atalaya(db, "hashsets", "import", str(path), "--category", "abuse")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: " + says.format(path=path)]


def test_a_bad_format_is_one_line(db: str, tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text(sha1s(6, 1)[0] + "\n")
    done = atalaya(db, "hashsets", "import", str(path), "--format", "xml")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["error: --format 'xml' is not one of vics, csv, lines"]


@pytest.mark.parametrize("command", [("import", "--category", "abuse"), ("fingerprint",)])
def test_an_unreadable_file_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    # Root reads any file: the child then runs without the capabilities that allow it.
    path = tmp_path / "secret.txt"
    path.write_text(sha1s(7, 1)[0] + "\n")
    path.chmod(0)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root reads every file, and setpriv is not here to drop that")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    args = ["hashsets", command[0], str(path), *command[1:]]
    if command[0] == "fingerprint":
        args += ["--out", str(tmp_path / "out.csv")]
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "atalaya", "--db", "sqlite:///unused.db", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == f"error: cannot read {path}: Permission denied"
    assert "╭" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt"]
