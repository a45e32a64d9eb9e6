"""`run_atalaya` answers as the real command in a child process does.

The CLI tests run commands in this process for speed; what they read (exit
status, stdout, stderr, table widths, piped input) must be what an operator's
process would give, or they would test something else.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support.cli import run_atalaya, spawn_atalaya

# Each comparison starts a real interpreter: seconds each.
pytestmark = pytest.mark.slow


def as_installed(text: str) -> str:
    # Click names the program as it was started: `python -m atalaya` in the
    # child, `atalaya` (the installed script's name) in this process; the
    # help box pads the shorter name's line with spaces.
    renamed = text.replace("python -m atalaya", "atalaya")
    return "\n".join(line.rstrip(" ") for line in renamed.split("\n"))


def both(*args: str, stdin: str | None = None, env: dict[str, str | None] | None = None) -> None:
    here = run_atalaya(*args, stdin=stdin, env=env)
    child = spawn_atalaya(*args, stdin="" if stdin is None else stdin, env=env)
    assert (here.returncode, as_installed(here.stdout), as_installed(here.stderr)) == (
        child.returncode,
        as_installed(child.stdout),
        as_installed(child.stderr),
    ), args


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'atalaya.db'}"
    listing = tmp_path / "synthetic-list.txt"
    rng = random.Random(11)
    listing.write_text("".join(rng.randbytes(20).hex() + "\n" for _ in range(5)))
    assert run_atalaya("--db", url, "init").returncode == 0
    imported = run_atalaya("--db", url, "hashsets", "import", str(listing), "--category", "abuse")
    assert imported.returncode == 0, imported.stderr
    return url


def test_help_at_a_given_width() -> None:
    both("hashsets", "--help", env={"COLUMNS": "70"})


def test_a_table_at_a_given_width(store: str) -> None:
    both("--db", store, "hashsets", "list", env={"COLUMNS": "60"})


def test_an_operator_error(tmp_path: Path) -> None:
    both("--db", f"sqlite:///{tmp_path / 'never.db'}", "hashsets", "list")


def test_piped_input(store: str) -> None:
    rng = random.Random(11)
    known = rng.randbytes(20).hex()
    both("--db", store, "match", "--count", stdin=f"{known}\n{'0' * 40}\r\nnot a hash\n")
