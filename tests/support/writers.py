"""Holding SQLite's write lock while another writer starts: it must wait, not fail.

On SQLite a deferred transaction that reads before it writes cannot become
a writer once another connection has committed since its read: "database
is locked" at once, long before the busy timeout. `while_another_writes`
holds a write transaction in this thread, runs the writer under test in a
real second thread, commits after `hold_s` and requires the second writer
to have finished without error. On PostgreSQL the same test checks that
the second writer waits on row locks rather than failing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, insert

from atalaya.store import begin_write
from atalaya.store.tables import lead_state

HOLD_S = 1.5
JOIN_TIMEOUT_S = 90
_holders = itertools.count()


def while_another_writes(
    engine: Engine, second: Callable[[], object], *, hold_s: float = HOLD_S
) -> None:
    """Run `second` in a thread while this thread holds (then commits) a write."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            second()
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=run, name="second-writer")
    with begin_write(engine) as conn:
        # Any committed change will do; build bookkeeping is read by no test here.
        conn.execute(insert(lead_state).values(key=f"holder-{next(_holders)}", value="x"))
        thread.start()
        time.sleep(hold_s)
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), "the second writer never finished"
    assert not failures, f"the second writer failed: {failures[0]!r}"
