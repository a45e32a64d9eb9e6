"""Stopping exactly the processes the lab started, by process id.

A pid file can outlive its process and the id be reused, so before a signal
is sent the process's command line is checked for what the lab started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

_POLL_SECONDS = 0.05


def cmdline(pid: int) -> str:
    """The command line of process `pid`, "" if there is none (or it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def is_running(pid: int, expect: str) -> bool:
    """Whether `pid` is alive, not a zombie, and its command line contains `expect`."""
    if pid <= 0 or expect not in cmdline(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int, expect: str, timeout: float) -> bool:
    """Whether `pid` stopped being that process within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while is_running(pid, expect):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def stop(pid: int, expect: str, timeout: float) -> bool:
    """SIGTERM `pid` if it is still the process we started, SIGKILL after `timeout`.

    Whether it is gone. A pid that is not (or no longer) that process is left alone.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not is_running(pid, expect):
            return True
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        if wait_gone(pid, expect, timeout):
            return True
    return not is_running(pid, expect)


def end_child(process: subprocess.Popen[Any] | None, timeout: float) -> None:
    """Stop a child this process started: SIGTERM, then SIGKILL after `timeout`.

    None, or a child that has already exited, is left as it is.
    """
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
