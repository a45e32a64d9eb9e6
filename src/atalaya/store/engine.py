"""Engine creation with the per-dialect settings Atalaya relies on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from atalaya.errors import AtalayaError

# Long imports hold the write lock for a while; readers wait instead of failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Execution option naming a connection whose transactions will write.
_WRITES = "atalaya_writes"


def database_error_reason(exc: BaseException) -> str:
    """The driver's first line of `exc` (refused, locked, authentication failed).

    SQLAlchemy's own text adds the statement, its parameters and a
    "Background on this error" link: nothing an operator can act on.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def redact_url(url: str) -> str:
    """The URL with any password hidden, safe to print or log."""
    return make_url(url).render_as_string(hide_password=True)


def create_store_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise AtalayaError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        # psycopg 3 is the driver we pin; plain postgresql:// URLs mean it.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise AtalayaError(
            f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://USER@HOST/DB"
        )
    engine = create_engine(parsed, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT;
    # we issue BEGIN ourselves (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # A deferred transaction that has read cannot become a writer while
    # another one writes: SQLite answers "database is locked" at once instead
    # of waiting the busy timeout. Writers take the write lock as they begin
    # (IMMEDIATE), where the busy timeout applies; readers stay deferred so
    # they never wait behind a long import.
    immediate = conn.get_execution_options().get(_WRITES, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it waits its turn behind other writers.

    Use it instead of `engine.begin()` wherever the transaction reads before
    it writes; committed on success, rolled back on any exception.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITES: True})
        with conn.begin():
            yield conn
