"""`atalaya watch bittorrent`'s proof and clock options, as an operator meets them.

A run fenced into 127.63.0.0/16 with no DHT and a tracker nobody answers:
nothing is found, which is all these tests need; the clock is measured
against a small NTP responder on loopback.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from atalaya.lab.ports import free_port
from tests.observe.clock_support import SkewedNtpServer
from tests.support.cli import spawn_atalaya

IP = "127.63.0.1"
INFOHASH = "ab" * 20


@pytest.fixture
def db(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "atalaya.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def watch(db: str, *options: str) -> tuple[int, str]:
    tracker = f"http://{IP}:{free_port(IP)}/announce"  # nothing listens there
    done = spawn_atalaya(
        "--db",
        db,
        "watch",
        "bittorrent",
        "--no-dht",
        "--bind",
        IP,
        "--allow-network",
        "127.63.0.0/16",
        "--tracker",
        tracker,
        "--infohash",
        INFOHASH,
        "--duration",
        "1",
        "--json",
        *options,
        env={"ATALAYA_NTP_SERVER": None, "ATALAYA_MAX_CLOCK_OFFSET": None},
    )
    return done.returncode, done.stdout + done.stderr


def test_an_unknown_category_is_refused_by_name(db: str) -> None:
    code, text = watch(db, "--full-file-category", "dreadful")
    assert code != 0
    assert "--full-file-category" in text and "'dreadful' is not an internal category" in text


def test_a_clock_off_its_bound_is_announced_before_the_run(db: str) -> None:
    with SkewedNtpServer(IP, skew_s=-3.0) as server:
        code, text = watch(
            db, "--ntp-server", server.server, "--full-file", "--max-clock-offset", "1"
        )
    assert code == 0, text
    # chronyc has no daemon to ask here; the named server answers.
    assert f"ntp: {server.server}" in text
    assert "warning: the clock is +3.0" in text or "warning: the clock is +2.9" in text
    assert "not recorded as evidence" in text


def test_a_clock_within_its_bound_is_only_reported(db: str) -> None:
    with SkewedNtpServer(IP, skew_s=-3.0) as server:
        code, text = watch(db, "--ntp-server", server.server, "--max-clock-offset", "5")
    assert code == 0, text
    assert "clock offset +" in text and "warning" not in text
