"""`--out` files: whole or absent, and one line when they cannot be written.

The full disk is real: a 64 KiB tmpfs mounted in a private mount namespace
(`unshare -m`, which needs root or user namespaces; skipped without), filled
before the command runs; and, everywhere, a file size limit (RLIMIT_FSIZE)
that makes the write fail the way a full disk does, half-way through.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from atalaya.errors import AtalayaError
from atalaya.out_file import write_out_file
from tests.support.cli import DEFAULT_ENV, run_atalaya

EXPORTS = [
    ("sightings", "export", "--format", "csv"),
    ("leads", "export"),
]
TIMEOUT_S = 120


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> str:
    done = run_atalaya("--db", db_url, "init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return db_url


def test_a_written_file_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("older\n")
    assert write_out_file(target, lambda s: s.write("newer\n")) == 6
    assert target.read_text() == "newer\n"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]
    assert target.stat().st_mode & 0o077 == 0


def test_a_failing_writer_leaves_the_old_file_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("older\n")

    def broken(stream: IO[str]) -> None:
        stream.write("half")
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        write_out_file(target, broken)
    assert target.read_text() == "older\n"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


@pytest.mark.parametrize("command", EXPORTS)
def test_out_into_a_missing_folder_is_one_line(
    store: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    target = tmp_path / "missing" / "out.txt"
    done = run_atalaya("--db", store, *command, "--out", str(target), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: cannot write {target}: folder {target.parent} does not exist"
    ]
    assert not target.parent.exists()


@pytest.mark.parametrize("command", EXPORTS)
def test_out_onto_a_folder_is_one_line(
    store: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    target = tmp_path / "a-folder"
    target.mkdir()
    done = run_atalaya("--db", store, *command, "--out", str(target), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: cannot write {target}: it is a folder; give a file name for --out"
    ]
    assert os.listdir(target) == []
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name or p.name.endswith(".part")]


def test_a_write_that_runs_out_of_room_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "fingerprints.csv"
    target.parent.mkdir()
    files = tmp_path / "files"
    files.mkdir()
    for i in range(20):
        (files / f"{i:02}.bin").write_bytes(os.urandom(100 + i))
    command = ["hashsets", "fingerprint", str(files), "--out", str(target), "--jobs", "1"]
    fingerprint = shlex.join([sys.executable, "-m", "atalaya", *command])
    # At most 8 blocks of 512 bytes a file; an ignored SIGXFSZ stays ignored
    # across exec, so the write past the limit fails with EFBIG instead.
    done = subprocess.run(
        ["sh", "-c", f"ulimit -f 8 && trap '' XFSZ && exec {fingerprint}"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == f"error: cannot write {target}: File too large"
    assert os.listdir(target.parent) == []


@pytest.mark.parametrize("command", EXPORTS)
def test_out_onto_a_full_disk_is_one_line_and_leaves_nothing(
    store: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs unshare as root")
    disk = tmp_path / "disk"
    disk.mkdir()
    target = disk / "out.txt"
    atalaya = shlex.join([sys.executable, "-m", "atalaya", *command, "--out", str(target)])
    # Fill the 64 KiB disk, then export onto it; list what the disk holds after.
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(disk))} || exit 99\n"
        f"dd if=/dev/zero of={shlex.quote(str(disk / 'filler'))} bs=4k 2>/dev/null\n"
        f"{atalaya}\n"
        f"echo rc=$? >&2\n"
        f"ls -A {shlex.quote(str(disk))} >&2\n"
    )
    done = subprocess.run(
        [unshare, "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={
            **DEFAULT_ENV,
            **os.environ,
            "ATALAYA_DATABASE_URL": store,
            "PYTHONPATH": os.pathsep.join(sys.path),
        },
        check=False,
    )
    if done.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.stderr.splitlines() == [
        f"error: cannot write {target}: No space left on device",
        "rc=2",
        "filler",
    ]


def test_write_out_file_errors_are_atalaya_errors(tmp_path: Path) -> None:
    with pytest.raises(AtalayaError, match="does not exist"):
        write_out_file(tmp_path / "no" / "file", lambda s: s.write(""))
