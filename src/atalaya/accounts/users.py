"""Users: creation with an Argon2id password, listing, disabling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, select, update
from sqlalchemy.exc import IntegrityError

from atalaya.accounts.passwords import hash_password
from atalaya.accounts.policy import DEFAULT_POLICY, AccountPolicy
from atalaya.accounts.roles import Role, parse_role
from atalaya.accounts.units import get_unit
from atalaya.audit.log import Actor
from atalaya.errors import AtalayaError
from atalaya.store.tables import app_user, unit, user_session
from atalaya.store.times import utc

_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,99}")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    unit_id: int
    unit_name: str
    role: Role
    disabled: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    # The unit's urgency threshold (unit.urgent_score).
    urgent_score: float = 60.0

    def actor(self, client_address: str | None = None) -> Actor:
        """This user as the audit log records them."""
        return Actor(
            user_id=self.id,
            username=self.username,
            unit=self.unit_name,
            client_address=client_address,
            role=self.role.value,
        )


def parse_username(text: str) -> str:
    """Usernames are case-insensitive: kept lower-case."""
    name = text.strip().lower()
    if not _USERNAME.fullmatch(name):
        raise AtalayaError(
            f"username {text!r} must be 1-100 letters, digits or . _ @ - (starting with a "
            "letter or digit)"
        )
    return name


_USER_COLUMNS = (
    *app_user.c,
    unit.c.name.label("unit_name"),
    unit.c.urgent_score.label("unit_urgent_score"),
)


def user_from_row(row: RowMapping) -> User:
    locked = row["locked_until"]
    return User(
        id=int(row["id"]),
        username=row["username"],
        unit_id=int(row["unit_id"]),
        unit_name=row["unit_name"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        failed_logins=int(row["failed_logins"]),
        locked_until=None if locked is None else utc(locked),
        created_at=utc(row["created_at"]),
        urgent_score=float(row.get("unit_urgent_score", 60.0)),
    )


def add_user(
    conn: Connection,
    username: str,
    unit_name: str,
    role: str,
    password: str,
    now: datetime,
    policy: AccountPolicy = DEFAULT_POLICY,
) -> User:
    """Create a user in `unit_name` with `role`; the password is checked and hashed."""
    name = parse_username(username)
    parsed_role = parse_role(role)
    the_unit = get_unit(conn, unit_name)
    password_hash = hash_password(password, policy)
    moment = utc(now)
    try:
        with conn.begin_nested():
            conn.execute(
                app_user.insert().values(
                    username=name,
                    unit_id=the_unit.id,
                    role=parsed_role.value,
                    password_hash=password_hash,
                    disabled=False,
                    failed_logins=0,
                    locked_until=None,
                    created_at=moment,
                    password_changed_at=moment,
                )
            )
    except IntegrityError as exc:
        raise AtalayaError(f"a user named {name!r} already exists") from exc
    return get_user(conn, name)


def find_user(conn: Connection, username: str) -> User | None:
    """The user called `username` (any case), or None."""
    row = (
        conn.execute(
            select(*_USER_COLUMNS)
            .join(unit, unit.c.id == app_user.c.unit_id)
            .where(app_user.c.username == username.strip().lower())
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else user_from_row(row)


def get_user(conn: Connection, username: str) -> User:
    """The user called `username`; AtalayaError when there is none."""
    user = find_user(conn, username)
    if user is None:
        raise AtalayaError(f"no user named {username!r} ('atalaya users list' shows them)")
    return user


def list_users(conn: Connection) -> list[User]:
    rows = conn.execute(
        select(*_USER_COLUMNS)
        .join(unit, unit.c.id == app_user.c.unit_id)
        .order_by(app_user.c.username)
    ).mappings()
    return [user_from_row(r) for r in rows]


def set_disabled(conn: Connection, username: str, disabled: bool) -> User:
    """Disable (ending every session of) or re-enable a user."""
    user = get_user(conn, username)
    conn.execute(update(app_user).where(app_user.c.id == user.id).values(disabled=disabled))
    if disabled:
        conn.execute(user_session.delete().where(user_session.c.user_id == user.id))
    return get_user(conn, username)


def unlock_user(conn: Connection, username: str) -> User:
    """Lift a lockout after failed logins and reset the failure count."""
    user = get_user(conn, username)
    conn.execute(
        update(app_user).where(app_user.c.id == user.id).values(failed_logins=0, locked_until=None)
    )
    return get_user(conn, username)


def set_password(
    conn: Connection,
    username: str,
    password: str,
    now: datetime,
    policy: AccountPolicy = DEFAULT_POLICY,
) -> User:
    """Replace a user's password and end their sessions."""
    user = get_user(conn, username)
    conn.execute(
        update(app_user)
        .where(app_user.c.id == user.id)
        .values(password_hash=hash_password(password, policy), password_changed_at=utc(now))
    )
    conn.execute(user_session.delete().where(user_session.c.user_id == user.id))
    return get_user(conn, username)
