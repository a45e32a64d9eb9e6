"""Two writers at once: the second waits its turn instead of failing.

On SQLite a deferred transaction that reads first (an import looks its set
up, a removal finds its set) could not become a writer once another
connection had written: "database is locked" long before the 30 s busy
timeout. Each test holds the write lock in one connection for a moment
while a real second thread writes, then lets go; the second must finish,
on both engines. Every wait is bounded.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, insert, select

from atalaya.hashsets.importer import import_hash_set, list_hash_sets, remove_hash_set
from atalaya.store import begin_write
from atalaya.store.tables import hash_set

# How long the first writer keeps the lock once the second has started.
HOLD_S = 1.5
JOIN_TIMEOUT_S = 60


def _hashes(tmp_path: Path, name: str, n: int = 20) -> Path:
    path = tmp_path / f"{name}.txt"
    path.write_text("".join(os.urandom(20).hex() + "\n" for _ in range(n)))
    return path


def _while_another_writes(engine: Engine, second: Callable[[], object]) -> None:
    """Run `second` in a thread while this thread holds a write transaction."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            second()
        except BaseException as exc:  # reported to the test below
            failures.append(exc)

    thread = threading.Thread(target=run, name="second-writer")
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        conn.execute(
            insert(hash_set).values(
                name="first-writer",
                source="first.txt",
                format="lines",
                imported_at=now,
                updated_at=now,
                file_sha256="",
                file_count=0,
                hash_count=0,
            )
        )
        thread.start()
        time.sleep(HOLD_S)
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), "the second writer never finished"
    assert not failures, f"the second writer failed: {failures[0]!r}"


def test_an_import_waits_for_another_writer(engine: Engine, tmp_path: Path) -> None:
    path = _hashes(tmp_path, "second")
    _while_another_writes(
        engine, lambda: import_hash_set(engine, path, category="abuse", name="second")
    )
    names = {info.name: info.hashes for info in list_hash_sets(engine)}
    assert names == {"first-writer": 0, "second": 20}


def test_a_removal_waits_for_another_writer(engine: Engine, tmp_path: Path) -> None:
    import_hash_set(engine, _hashes(tmp_path, "doomed"), category="abuse", name="doomed")
    _while_another_writes(engine, lambda: remove_hash_set(engine, "doomed"))
    assert [info.name for info in list_hash_sets(engine)] == ["first-writer"]


def test_two_imports_at_once_both_land(engine: Engine, tmp_path: Path) -> None:
    paths = [_hashes(tmp_path, f"set{i}", 2_000) for i in range(2)]
    failures: list[BaseException] = []
    start = threading.Barrier(2, timeout=JOIN_TIMEOUT_S)

    def run(path: Path) -> None:
        try:
            start.wait()
            import_hash_set(engine, path, category="abuse")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures
    with engine.connect() as conn:
        total = conn.execute(select(func.sum(hash_set.c.hash_count))).scalar()
    assert total == 4_000


def test_a_reader_does_not_wait_behind_a_writer(engine: Engine, tmp_path: Path) -> None:
    # Writers begin IMMEDIATE; readers must not. The writer here is this very
    # thread: a reader that waited for it would wait out the busy timeout and fail.
    import_hash_set(engine, _hashes(tmp_path, "present"), category="abuse", name="present")
    with begin_write(engine) as conn:
        conn.execute(hash_set.delete().where(hash_set.c.name == "nothing"))
        names = [info.name for info in list_hash_sets(engine)]
    assert names == ["present"]
