"""Running one attempt many times at once, in threads released together."""

from __future__ import annotations

import threading
from collections.abc import Callable


def in_parallel(count: int, attempt: Callable[[int], None]) -> list[BaseException]:
    """Run attempt(0..count-1) in threads released together; what each raised."""
    start = threading.Barrier(count)
    outcomes: list[BaseException] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        try:
            start.wait(timeout=60)
            attempt(n)
        except BaseException as exc:  # collected for the test to judge
            with lock:
                outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    return outcomes
