import subprocess
import time
from collections.abc import Iterator

import pytest

from atalaya.lab import processes


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sleep", "30"])
    # Until it has exec'd, the child's command line is still Python's.
    deadline = time.monotonic() + 5
    while processes.cmdline(child.pid) != "sleep 30" and time.monotonic() < deadline:
        time.sleep(0.01)
    yield child
    child.kill()
    child.wait(5)


def test_stops_the_process_it_was_told_about(sleeper: subprocess.Popen[bytes]) -> None:
    assert processes.is_running(sleeper.pid, "sleep 30")
    assert processes.stop(sleeper.pid, "sleep 30", 5)
    assert sleeper.wait(5) != 0  # ended by the signal
    assert not processes.is_running(sleeper.pid, "sleep 30")


def test_leaves_alone_a_pid_that_is_something_else(sleeper: subprocess.Popen[bytes]) -> None:
    assert not processes.is_running(sleeper.pid, "opentracker")
    assert processes.stop(sleeper.pid, "opentracker", 1)  # "gone" as far as we care
    assert sleeper.poll() is None
    assert processes.cmdline(sleeper.pid) == "sleep 30"
    assert processes.cmdline(-1) == ""


def test_end_child_stops_a_child_and_kills_one_that_ignores_sigterm() -> None:
    polite = subprocess.Popen(["sleep", "30"])
    processes.end_child(polite, timeout=5.0)
    assert polite.returncode == -15
    stubborn = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"], stdout=subprocess.PIPE
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    processes.end_child(stubborn, timeout=0.2)
    assert stubborn.returncode == -9
    stubborn.stdout.close()


def test_end_child_leaves_none_and_exited_children_alone() -> None:
    processes.end_child(None, timeout=1.0)
    done = subprocess.Popen(["true"])
    done.wait(5.0)
    processes.end_child(done, timeout=1.0)
    assert done.returncode == 0
