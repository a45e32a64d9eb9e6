"""A user's saved searches, and "new since my last visit".

Saved searches are a name and the map's query string, per user: nobody
else sees or removes them. The query string is stored as given (bounded);
the web parses it again when it is opened, so a saved view never holds
more than a URL would.

A visit is a run of looks at the leads with no pause longer than
`VISIT_GAP`. `visit(conn, user_id, now)` records a look and returns the
instant the visit now under way counts from: the last look of the visit
before it (None on a user's first visit). Leads first seen after it are
new to the user; the answer stays the same for the whole visit, so paging
and filtering do not make the marks vanish.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from atalaya.errors import N_, AtalayaError
from atalaya.store.engine import begin_write
from atalaya.store.tables import saved_search, user_visit
from atalaya.store.times import utc

MAX_NAME = 100
MAX_QUERY = 8_000
MAX_SAVED = 100  # per user
VISIT_GAP = timedelta(minutes=30)


class SavedSearchError(AtalayaError):
    """A name or query that cannot be saved; the message says why."""


@dataclass(frozen=True)
class SavedSearch:
    id: int
    name: str
    query: str
    created_at: datetime


def saved_searches(conn: Connection, user_id: int) -> list[SavedSearch]:
    """The user's saved searches, by name."""
    rows = conn.execute(
        select(
            saved_search.c.id, saved_search.c.name, saved_search.c.query, saved_search.c.created_at
        )
        .where(saved_search.c.user_id == user_id)
        .order_by(saved_search.c.name, saved_search.c.id)
    )
    return [SavedSearch(r[0], r[1], r[2], utc(r[3])) for r in rows]


def save_search(
    conn: Connection, user_id: int, name: str, query: str, now: datetime
) -> SavedSearch:
    """Save (or replace, by name) a search of the user's."""
    name = " ".join(name.split())
    if not name:
        raise SavedSearchError(N_("give the search a name"))
    if len(name) > MAX_NAME:
        raise SavedSearchError(N_("a name is at most %(most)s characters"), most=MAX_NAME)
    if len(query) > MAX_QUERY:
        raise SavedSearchError(N_("this search is too long to save"))
    if not name.isprintable():
        raise SavedSearchError(N_("a name is printable text"))
    existing = conn.scalar(
        select(saved_search.c.id).where(
            and_(saved_search.c.user_id == user_id, saved_search.c.name == name)
        )
    )
    if existing is not None:
        conn.execute(
            update(saved_search)
            .where(saved_search.c.id == existing)
            .values(query=query, created_at=now)
        )
        return SavedSearch(existing, name, query, now)
    count = conn.scalar(
        select(func.count()).select_from(saved_search).where(saved_search.c.user_id == user_id)
    )
    if (count or 0) >= MAX_SAVED:
        raise SavedSearchError(
            N_("at most %(most)s saved searches: remove one first"), most=MAX_SAVED
        )
    try:
        key = conn.execute(
            insert(saved_search).values(user_id=user_id, name=name, query=query, created_at=now)
        ).inserted_primary_key
    except IntegrityError:  # the same name saved at the same moment elsewhere
        raise SavedSearchError(N_("a search with this name was just saved: try again")) from None
    assert key is not None
    return SavedSearch(int(key[0]), name, query, now)


def delete_search(conn: Connection, user_id: int, search_id: int) -> bool:
    """Remove one of the user's saved searches; False if the user has no such one."""
    done = conn.execute(
        delete(saved_search).where(
            and_(saved_search.c.id == search_id, saved_search.c.user_id == user_id)
        )
    )
    return bool(done.rowcount)


def visit(conn: Connection, user_id: int, now: datetime) -> datetime | None:
    """Record a look at the leads; the instant the current visit counts from."""
    row = conn.execute(
        select(user_visit.c.last_seen_at, user_visit.c.since).where(user_visit.c.user_id == user_id)
    ).first()
    if row is None:
        try:
            conn.execute(insert(user_visit).values(user_id=user_id, last_seen_at=now, since=None))
        except IntegrityError:  # two first looks at once: the other one counts
            return None
        return None
    last, since = utc(row[0]), (utc(row[1]) if row[1] is not None else None)
    if now - last > VISIT_GAP:
        since = last  # a new visit: what came after the last look is new
    conn.execute(
        update(user_visit)
        .where(user_visit.c.user_id == user_id)
        .values(last_seen_at=max(now, last), since=since)
    )
    return since


def record_visit(engine: Engine, user_id: int, now: datetime) -> datetime | None:
    """`visit` in its own writing transaction (on SQLite it waits its turn
    behind other writers instead of failing with "database is locked")."""
    with begin_write(engine) as conn:
        return visit(conn, user_id, now)


def save_search_now(
    engine: Engine, user_id: int, name: str, query: str, now: datetime
) -> SavedSearch:
    """`save_search` in its own writing transaction."""
    with begin_write(engine) as conn:
        return save_search(conn, user_id, name, query, now)


def delete_search_now(engine: Engine, user_id: int, search_id: int) -> bool:
    """`delete_search` in its own writing transaction."""
    with begin_write(engine) as conn:
        return delete_search(conn, user_id, search_id)
