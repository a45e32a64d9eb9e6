"""A time limit on every database statement the web application runs.

One analyst's widest chart or map must not hold a server thread and the
database for half a minute. PostgreSQL enforces `statement_timeout` on each
connection of the engine; SQLite has no such setting, so a progress
handler, called every PROGRESS_STEPS virtual-machine instructions,
interrupts a statement once its deadline has passed. The deadline is set
when a statement starts and cleared before COMMIT and ROLLBACK, which must
never be cut short. A statement over the limit fails with the driver's
error, which `is_timeout` recognises.
"""

from __future__ import annotations

import time
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

PROGRESS_STEPS = 1000
_DEADLINE = "atalaya_deadline"
_QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement_timeout

# The limit in force per engine, read by the listeners installed once per engine.
_limits: WeakKeyDictionary[Engine, float] = WeakKeyDictionary()


def limit_statements(engine: Engine, seconds: float) -> None:
    """Limit every statement `engine` runs from now on to `seconds`.

    Calling it again changes the limit. Pooled connections are closed so
    that every connection in use afterwards carries the limit.
    """
    if not seconds > 0:
        raise ValueError("a statement time limit must be a positive number of seconds")
    first = engine not in _limits
    _limits[engine] = seconds
    if engine.dialect.name == "postgresql":
        if first:
            event.listen(engine, "connect", _postgresql_on_connect(engine))
        engine.dispose(close=True)
        return
    if first:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "before_cursor_execute", _sqlite_start(engine))
        event.listen(engine, "commit", _sqlite_stop)
        event.listen(engine, "rollback", _sqlite_stop)
        event.listen(engine.pool, "checkin", _sqlite_checkin)
        engine.dispose(close=True)


def is_timeout(exc: BaseException) -> bool:
    """Whether `exc` is a statement stopped by the limit (either engine)."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == _QUERY_CANCELED or str(orig) == "interrupted"


def _postgresql_on_connect(engine: Engine) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        milliseconds = max(1, int(_limits.get(engine, 0) * 1000))
        cursor = dbapi_connection.cursor()
        try:
            # A plain SET: the value is an integer we computed, not input.
            cursor.execute(f"SET statement_timeout = {milliseconds}")
        finally:
            cursor.close()
        # Committed, or the pool's first rollback would undo it.
        dbapi_connection.commit()

    return on_connect


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    deadline: list[float | None] = [None]
    record.info[_DEADLINE] = deadline

    def over_time() -> int:
        due = deadline[0]
        return 1 if due is not None and time.monotonic() > due else 0

    dbapi_connection.set_progress_handler(over_time, PROGRESS_STEPS)


def _sqlite_start(engine: Engine) -> Any:
    def start(conn: Connection, *_args: Any) -> None:
        deadline = conn.info.get(_DEADLINE)
        if deadline is not None:
            deadline[0] = time.monotonic() + _limits.get(engine, 0)

    return start


def _sqlite_stop(conn: Connection) -> None:
    deadline = conn.info.get(_DEADLINE)
    if deadline is not None:
        deadline[0] = None


def _sqlite_checkin(_dbapi_connection: Any, record: Any) -> None:
    deadline = record.info.get(_DEADLINE) if record is not None else None
    if deadline is not None:
        deadline[0] = None
