"""The root `atalaya` command: init, version, help, and how failures reach the operator.

Commands run in this process (tests/support/cli.py); `--version` and the
operator error run the real `python -m atalaya`, proving the entry point.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from atalaya import __version__
from tests.support.cli import run_atalaya, spawn_atalaya


def atalaya(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_atalaya(*args, cwd=cwd, env=env)


def atalaya_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return spawn_atalaya(*args, cwd=cwd)


def test_init_creates_the_store_and_is_idempotent(db_url: str, tmp_path: Path) -> None:
    first = atalaya("--db", db_url, "init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "database ready" in first.stderr
    again = atalaya("--db", db_url, "init", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    tables = set(inspect(create_engine(db_url)).get_table_names())
    assert {"hash_set", "reference_hash", "sighting", "watch_item"} <= tables


def test_default_store_is_sqlite_in_the_working_directory(tmp_path: Path) -> None:
    env = {"ATALAYA_DATABASE_URL": ""}
    done = atalaya("init", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "atalaya.db").is_file()
    journal = create_engine(f"sqlite:///{tmp_path / 'atalaya.db'}").connect()
    assert journal.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    journal.close()


def test_version_and_help(tmp_path: Path) -> None:
    version = atalaya_process("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout.strip()) == (0, f"atalaya {__version__}")
    helped = atalaya("--help", cwd=tmp_path)
    assert helped.returncode == 0
    for group in ("init", "hashsets", "match", "lab", "sightings", "watch"):
        assert group in helped.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("hashsets", "--help"),
        ("hashsets", "import", "--help"),
        ("hashsets", "fingerprint", "--help"),
        ("match", "--help"),
        ("watch", "bittorrent", "--help"),
        ("sightings", "export", "--help"),
        ("lab", "up", "--help"),
    ],
)
def test_every_sub_command_has_help(args: tuple[str, ...], tmp_path: Path) -> None:
    done = atalaya(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_operator_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'never-initialised.db'}"
    done = atalaya_process("--db", db, "hashsets", "list", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert "atalaya init" in lines[0]
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_non_zero_without_traceback(tmp_path: Path) -> None:
    done = atalaya("hashsets", "import", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Missing argument" in done.stderr


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    # A closed port on loopback: the server is not there.
    done = atalaya("--db", "postgresql://atalaya@127.0.0.1:9/none", "init", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--since", "0001-01-01T00:00:00+01:00"), ("--until", "9999-12-31T23:59:59-01:00")],
)
@pytest.mark.parametrize(
    "command",
    [("sightings", "export"), ("leads", "list"), ("leads", "export"), ("audit", "show")],
)
def test_an_instant_outside_the_calendar_in_utc_is_one_line(
    db_url: str, tmp_path: Path, command: tuple[str, ...], option: str, value: str
) -> None:
    # Valid ISO text whose UTC instant falls in year 0 or 10000 (OverflowError before).
    assert atalaya("--db", db_url, "init", cwd=tmp_path).returncode == 0
    extra = ("--as", "nobody") if command == ("audit", "show") else ()
    done = atalaya("--db", db_url, *command, *extra, f"{option}={value}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: {option} {value!r} is outside the years 1 to 9999 once in UTC"
    ]


@pytest.mark.parametrize(
    "command",
    [("hashsets", "list"), ("match", "ab" * 20), ("leads", "list"), ("sightings", "export")],
)
def test_a_mistyped_sqlite_path_creates_nothing_and_says_so(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "atalya.db"
    done = atalaya("--db", f"sqlite:///{typo}", *command, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: no database at {typo} (nothing created): check --db, "
        "or run 'atalaya init' to create one there"
    ]
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_server_is_one_line_without_sqlalchemy_links(tmp_path: Path) -> None:
    url = "postgresql://atalaya@127.0.0.1:9/none"
    done = atalaya("--db", url, "hashsets", "list", cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: cannot open database {url}: connection failed")
    assert "sqlalche.me" not in line


def test_a_database_error_mid_command_is_one_line(db_url: str, tmp_path: Path) -> None:
    # A store damaged by hand: the table a command reads is gone.
    assert atalaya("--db", db_url, "init", cwd=tmp_path).returncode == 0
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE reference_hash"))
    engine.dispose()
    done = atalaya("--db", db_url, "match", "ab" * 20, "--using", "store", cwd=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: database error: ")
    assert "reference_hash" in line
    assert "sqlalche.me" not in line
