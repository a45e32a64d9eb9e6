"""A real, throw-away PostgreSQL server for the tests, from Debian's binaries.

The server runs in a temporary directory on a free loopback port and is
stopped at the end of the session. PostgreSQL refuses to run as root, so
under root it runs as the `postgres` system user that Debian's package creates.

The directory is in memory (/dev/shm) where there is room: the suite
creates a database per test, and each one copies some megabytes of catalogue
that nothing needs on disk. Durability is off for the same reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 60

MEMORY_DIR = Path("/dev/shm")
# The server's files, a few live databases and its WAL fit well within this.
MEMORY_NEEDED_BYTES = 1 << 30


def find_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def data_parent() -> Path | None:
    """Where the server's directory goes: memory if there is room, else the default."""
    try:
        stats = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    if stats.f_bavail * stats.f_frsize < MEMORY_NEEDED_BYTES or not os.access(MEMORY_DIR, os.W_OK):
        return None
    return MEMORY_DIR


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield a SQLAlchemy URL for its `postgres` superuser."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found: run scripts/setup.sh")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        pwd.getpwnam(user)  # KeyError if Debian's package did not create it
    tmp = Path(tempfile.mkdtemp(prefix="atalaya-pg-", dir=data_parent()))
    data = tmp / "data"
    if user:
        shutil.chown(tmp, user)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(
        _as_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            user,
        ),
        check=True,
        capture_output=True,
        env=env,
        timeout=START_TIMEOUT_S,
    )
    options = (
        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
        # Each database made from a template is written to the WAL; recycle it
        # early so that the directory stays small (it may be in memory).
        "-c max_wal_size=256MB -c min_wal_size=64MB"
    )
    subprocess.run(
        _as_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(tmp / "log"),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            user,
        ),
        check=True,
        capture_output=True,
        env=env,
        timeout=START_TIMEOUT_S + 10,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_user(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user
            ),
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)
