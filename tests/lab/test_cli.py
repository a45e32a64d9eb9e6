import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from atalaya.lab import processes
from atalaya.lab.layout import FAILED_NAME, PID_NAME, SUPERVISOR_MODULE
from tests.support.cli import run_atalaya

pytestmark = pytest.mark.lab


def _atalaya(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`atalaya lab up` in a child: the supervisor it starts is then no child of
    this process (reparented, reaped by init when it stops), as for an operator."""
    return subprocess.run(
        [sys.executable, "-m", "atalaya", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return processes.cmdline(pid) != ""


@pytest.mark.slow  # a real lab of opentracker and libtorrent peers, started and stopped
def test_up_status_down_leave_no_process_behind(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    up = _atalaya("lab", "up", "--dir", str(lab_dir), "--ip-prefix", "127.84.0", "--json")
    try:
        assert up.returncode == 0, up.stderr
        manifest = json.loads(up.stdout)
        supervisor = manifest["supervisor_pid"]
        children = manifest["child_pids"]
        assert processes.is_running(supervisor, SUPERVISOR_MODULE)
        assert all(processes.is_running(pid, "opentracker") for pid in children)
        assert (lab_dir / "hashset.csv").is_file()

        again = run_atalaya("lab", "up", "--dir", str(lab_dir), "--ip-prefix", "127.84.0")
        assert again.returncode == 2
        assert "already running" in again.stderr

        status = run_atalaya("lab", "status", "--dir", str(lab_dir), "--json")
        assert status.returncode == 0
        assert json.loads(status.stdout)["running"] is True
        text = run_atalaya("lab", "status", "--dir", str(lab_dir)).stdout
        assert "seed-1" in text
        assert "holds nothing of" in text
    finally:
        down = run_atalaya("lab", "down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert not _alive(supervisor)
    assert not any(_alive(pid) for pid in children)
    assert not (lab_dir / PID_NAME).exists()
    assert "no lab is running" in run_atalaya("lab", "status", "--dir", str(lab_dir)).stdout
    assert "no lab is running" in run_atalaya("lab", "down", "--dir", str(lab_dir)).stderr


def test_down_stops_daemons_of_a_killed_supervisor(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    up = _atalaya("lab", "up", "--dir", str(lab_dir), "--ip-prefix", "127.85.0", "--json")
    assert up.returncode == 0, up.stderr
    manifest = json.loads(up.stdout)
    children = manifest["child_pids"]
    try:
        # SIGKILL: the supervisor gets no chance to stop opentracker itself.
        # (The kernel takes a moment to end it, longer on a loaded machine.)
        supervisor = manifest["supervisor_pid"]
        assert processes.is_running(supervisor, SUPERVISOR_MODULE)
        os.kill(supervisor, signal.SIGKILL)
        assert processes.wait_gone(supervisor, SUPERVISOR_MODULE, 10.0)
        assert all(_alive(pid) for pid in children)
    finally:
        down = run_atalaya("lab", "down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in children)


@pytest.mark.skipif(shutil.which("amuled") is None, reason="amule-daemon is not installed")
def test_an_amule_in_the_lab_is_described_and_stopped_even_after_a_killed_supervisor(
    tmp_path: Path,
) -> None:
    lab_dir = tmp_path / "lab"
    up = _atalaya(
        "lab", "up", "--dir", str(lab_dir), "--ip-prefix", "127.87.0", "--amule", "--json"
    )
    assert up.returncode == 0, up.stderr
    manifest = json.loads(up.stdout)
    children = manifest["child_pids"]
    try:
        (amule,) = manifest["ed2k_peers"]
        assert amule["ip"] == "127.87.0.91" and amule["pid"] in children
        assert processes.is_running(amule["pid"], "amuled")
        # One watched file and one unwatched, both files of the catalogue the hash set lists.
        assert sorted(f["watched"] for f in amule["shares"]) == [False, True]
        listed = (lab_dir / "hashset.csv").read_text()
        for shared in amule["shares"]:
            assert (shared["ed2k"] in listed) == shared["watched"]
        text = run_atalaya("lab", "status", "--dir", str(lab_dir)).stdout
        assert "shares on eD2K" in text
        os.kill(manifest["supervisor_pid"], signal.SIGKILL)
        assert processes.wait_gone(manifest["supervisor_pid"], SUPERVISOR_MODULE, 10.0)
        assert _alive(amule["pid"])
    finally:
        down = run_atalaya("lab", "down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert not any(_alive(pid) for pid in children)


def test_a_lab_that_cannot_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    bad = run_atalaya("lab", "up", "--dir", str(lab_dir), "--peers", "1")
    assert bad.returncode == 2
    assert "2 to 40 seeders" in bad.stderr
    assert not lab_dir.exists()
    # Transmission's folder is taken by a file: the start fails after the
    # tracker and the libtorrent peers are already up.
    lab_dir.mkdir()
    (lab_dir / "transmission").write_text("in the way")
    args = ("lab", "up", "--dir", str(lab_dir), "--ip-prefix", "127.86.0", "--transmission")
    failed = _atalaya(*args)
    assert failed.returncode == 2
    assert "the lab did not start" in failed.stderr
    assert "transmission" in failed.stderr
    assert (lab_dir / FAILED_NAME).exists()
    assert not (lab_dir / PID_NAME).exists()
    ours = [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if str(lab_dir) in processes.cmdline(pid)
    ]
    assert ours == []
