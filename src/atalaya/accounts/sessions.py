"""Logins, server-side sessions and CSRF tokens.

The browser holds a random bearer token (32 bytes, URL-safe text); the
database holds only its SHA-256, so a copy of the database cannot be
replayed as sessions. `login`, `session_user` and `logout` take an Engine
and run their own short transactions: a refused login must still count
(failures, lockout, rate limit, audit record) although the caller sees an
exception, and SQLite wants each write transaction to start with its write.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, select, update

from atalaya.accounts.passwords import (
    PasswordBusyError,
    burn_verification,
    needs_rehash,
    rehash_password,
    verify_password,
)
from atalaya.accounts.policy import DEFAULT_POLICY, AccountPolicy
from atalaya.accounts.users import User, parse_username, user_from_row
from atalaya.audit.log import Action, Actor, Outcome, lock_chain, record
from atalaya.errors import AtalayaError
from atalaya.store.tables import app_user, login_attempt, login_refusal, unit, user_session
from atalaya.store.times import utc

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 200
UNKNOWN_CLIENT = "unknown"


class LoginError(AtalayaError):
    """A refused login. `str(error)` is the one generic message safe to show.

    `reason` (unknown_user, bad_password, locked, disabled, rate_limited) is
    for the audit log and tests only: showing it would tell an attacker
    which usernames exist. `login` has already logged the attempt.
    """

    PUBLIC_MESSAGE = "wrong username or password, or the account is locked or disabled"

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or self.PUBLIC_MESSAGE)
        self.reason = reason


class LoginBusyError(LoginError):
    """Every Argon2 slot stayed taken: the server is too busy to check passwords now."""

    def __init__(self) -> None:
        super().__init__("busy", "too many sign-ins at once: try again in a moment")


class LoginThrottledError(LoginError):
    """Too many failed logins from this client address; `retry_after` says how long to wait."""

    def __init__(self, retry_after: timedelta) -> None:
        minutes = max(1, int(-(-retry_after.total_seconds() // 60)))
        super().__init__(
            "rate_limited",
            f"too many failed logins from this address: try again in {minutes} minute(s)",
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Session:
    """A live session and its user (as of this request)."""

    id: int
    user: User
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    idle_timeout: timedelta
    client_address: str | None  # where the login came from
    csrf_secret: str  # hex; never sent to the browser: csrf_token() derives from it

    def actor(self, client_address: str | None = None) -> Actor:
        """The session's user for the audit log, at this request's address."""
        return self.user.actor(client_address or self.client_address)


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _client(client_ip: str | None) -> str:
    return (client_ip or UNKNOWN_CLIENT)[:45]


def client_key(client: str) -> str:
    """Whom the rate limit counts: an IPv4 address, or an IPv6 address's /64.

    One IPv6 subscriber usually holds a whole /64 and could try from a new
    address each time.
    """
    try:
        address = ipaddress.ip_address(client)
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Network((address.exploded, 64), strict=False))
    except ValueError:
        return client
    return str(address)


def _refuse_throttled(
    conn: Connection, client: str, key: str, now: datetime, policy: AccountPolicy
) -> None:
    """Log a rate-limited login: the first of a window now, the rest later as one count."""
    tally = conn.execute(
        select(login_refusal.c.window_end).where(login_refusal.c.client_key == key)
    ).first()
    if tally is not None:
        conn.execute(
            update(login_refusal)
            .where(login_refusal.c.client_key == key)
            .values(refused=login_refusal.c.refused + 1, last_at=now, client_address=client)
        )
        return
    window_end = now + policy.rate_limit_window
    conn.execute(
        login_refusal.insert().values(
            client_key=key,
            client_address=client,
            first_at=now,
            last_at=now,
            window_end=window_end,
            refused=0,
        )
    )
    record(
        conn,
        Action.LOGIN_FAILED,
        actor=Actor(client_address=client),
        outcome=Outcome.DENIED,
        details={
            "reason": "rate_limited",
            "client_key": key,
            "later_refusals_counted_until": window_end.isoformat(),
        },
        at=now,
    )


def flush_refusals(conn: Connection, now: datetime) -> int:
    """Write one audit record per ended window of counted refusals; how many were written.

    Call after `lock_chain` in a write transaction (`login` does, each time).
    """
    ended = (
        conn.execute(select(login_refusal).where(login_refusal.c.window_end <= now))
        .mappings()
        .all()
    )
    written = 0
    for tally in ended:
        if tally["refused"]:
            record(
                conn,
                Action.LOGIN_FAILED,
                actor=Actor(client_address=tally["client_address"]),
                outcome=Outcome.DENIED,
                details={
                    "reason": "rate_limited",
                    "client_key": tally["client_key"],
                    "refused": int(tally["refused"]),
                    "first_at": utc(tally["first_at"]).isoformat(),
                    "last_at": utc(tally["last_at"]).isoformat(),
                },
                at=now,
            )
            written += 1
        conn.execute(delete(login_refusal).where(login_refusal.c.client_key == tally["client_key"]))
    return written


def _throttle(conn: Connection, client: str, now: datetime, policy: AccountPolicy) -> timedelta:
    """How long `client` must wait before trying again (zero: it may try now)."""
    start = now - policy.rate_limit_window
    count, oldest = conn.execute(
        select(func.count(), func.min(login_attempt.c.at)).where(
            login_attempt.c.client_address == client, login_attempt.c.at > start
        )
    ).one()
    if count < policy.rate_limit_failures or oldest is None:
        return timedelta(0)
    return max(timedelta(seconds=1), utc(oldest) + policy.rate_limit_window - now)


def login(
    engine: Engine,
    username: str,
    password: str,
    client_ip: str | None,
    now: datetime,
    policy: AccountPolicy = DEFAULT_POLICY,
) -> tuple[Session, str]:
    """Check a password and open a session: (session, token for the cookie).

    Raises LoginError with one generic message for an unknown user, a wrong
    password, a locked or disabled account alike (and takes the same time),
    LoginThrottledError when `client_ip` has too many recent failures, and
    LoginBusyError when every Argon2 slot stays taken. Every attempt is in
    the audit log (login / login_failed) when this returns or raises.
    `policy.max_failed_logins` consecutive failures lock the account for
    `policy.lockout`.

    The attempt is counted before the password is hashed, in one write
    transaction serialised with every other login: against the client
    address (a row in login_attempt, removed again on success) and against
    the account (failed_logins, reset on success). So parallel attempts see
    each other, and at most `max_failed_logins` of them are ever checked
    against an account's real hash, however many arrive at once.
    """
    now = utc(now)
    client = _client(client_ip)
    key = client_key(client)
    try:
        name: str | None = parse_username(username)
    except AtalayaError:
        name = None

    user: User | None = None
    stored_hash = ""
    attempt_id = 0
    reserved = False  # the attempt holds one of the account's allowed failures
    with engine.begin() as conn:
        lock_chain(conn)  # first: serialises this with every other login and audit write
        flush_refusals(conn, now)
        conn.execute(
            delete(login_attempt).where(login_attempt.c.at <= now - policy.rate_limit_window)
        )
        wait = _throttle(conn, key, now, policy)
        if wait > timedelta(0):
            _refuse_throttled(conn, client, key, now, policy)
        else:
            attempt_id = conn.execute(
                login_attempt.insert()
                .values(client_address=key, at=now)
                .returning(login_attempt.c.id)
            ).scalar_one()
            row = None
            if name is not None:
                row = (
                    conn.execute(
                        select(app_user, unit.c.name.label("unit_name"))
                        .join(unit, unit.c.id == app_user.c.unit_id)
                        .where(app_user.c.username == name)
                    )
                    .mappings()
                    .one_or_none()
                )
            if row is not None:
                user, stored_hash = user_from_row(row), str(row["password_hash"])
            # The account's allowance: taken now, given back on success.
            if user is not None and not user.disabled and not _locked(user, now):
                reserved = (
                    conn.execute(
                        update(app_user)
                        .where(
                            app_user.c.id == user.id,
                            app_user.c.failed_logins < policy.max_failed_logins,
                        )
                        .values(failed_logins=app_user.c.failed_logins + 1)
                        .returning(app_user.c.id)
                    ).first()
                    is not None
                )
    if wait > timedelta(0):
        raise LoginThrottledError(wait)

    # The expensive part, outside any transaction: no lock is held meanwhile.
    try:
        if user is None:
            burn_verification(password, policy)
            reason = "unknown_user"
        elif user.disabled:
            burn_verification(password, policy)
            reason = "disabled"
        elif _locked(user, now) or not reserved:
            # Not reserved: other attempts in flight already hold the
            # account's remaining allowance.
            burn_verification(password, policy)
            reason = "locked"
        elif verify_password(stored_hash, password, policy):
            reason = ""
        else:
            reason = "bad_password"
        rehash = (
            rehash_password(password, policy)
            if user is not None and not reason and needs_rehash(stored_hash, policy)
            else None
        )
    except PasswordBusyError:
        reason, rehash = "busy", None

    with engine.begin() as conn:
        lock_chain(conn)  # first: every write below is serialised with the audit log
        if reason:
            details: dict[str, object] = {"reason": reason}
            if reserved and reason == "busy":
                assert user is not None
                # Not the user's failure: the server was too busy to check.
                conn.execute(
                    update(app_user)
                    .where(app_user.c.id == user.id, app_user.c.failed_logins > 0)
                    .values(failed_logins=app_user.c.failed_logins - 1)
                )
            elif reserved:
                assert user is not None
                failures = conn.execute(
                    select(app_user.c.failed_logins).where(app_user.c.id == user.id)
                ).scalar_one()
                if failures >= policy.max_failed_logins:
                    conn.execute(
                        update(app_user)
                        .where(app_user.c.id == user.id)
                        .values(failed_logins=0, locked_until=now + policy.lockout)
                    )
                    details["locked_until"] = (now + policy.lockout).isoformat()
            record(
                conn,
                Action.LOGIN_FAILED,
                # Only an existing account is named: a mistyped username is
                # sometimes a password.
                actor=user.actor(client) if user is not None else Actor(client_address=client),
                outcome=Outcome.DENIED,
                details=details,
                at=now,
            )
        else:
            assert user is not None
            conn.execute(delete(login_attempt).where(login_attempt.c.id == attempt_id))
            values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
            if rehash is not None:
                values["password_hash"] = rehash
            conn.execute(update(app_user).where(app_user.c.id == user.id).values(**values))
            conn.execute(
                delete(user_session).where(
                    user_session.c.user_id == user.id, user_session.c.expires_at <= now
                )
            )
            token = secrets.token_urlsafe(TOKEN_BYTES)
            csrf_secret = secrets.token_hex(32)
            session_id = conn.execute(
                user_session.insert()
                .values(
                    token_hash=token_hash(token),
                    user_id=user.id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + policy.session_lifetime,
                    idle_timeout_s=int(policy.idle_timeout.total_seconds()),
                    client_address=client,
                    csrf_secret=csrf_secret,
                )
                .returning(user_session.c.id)
            ).scalar_one()
            record(
                conn,
                Action.LOGIN,
                actor=user.actor(client),
                object_type="session",
                object_id=int(session_id),
                at=now,
            )
    if reason == "busy":
        raise LoginBusyError
    if reason or user is None:
        raise LoginError(reason)
    session = Session(
        id=int(session_id),
        user=replace(user, failed_logins=0, locked_until=None),
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.session_lifetime,
        idle_timeout=policy.idle_timeout,
        client_address=client,
        csrf_secret=csrf_secret,
    )
    return session, token


def _locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def session_user(
    engine: Engine, token: str | None, now: datetime, policy: AccountPolicy = DEFAULT_POLICY
) -> Session | None:
    """The live session for a cookie's token, or None.

    None when the token is unknown, the session is past its absolute expiry
    or idle timeout (it is then deleted), or its user is disabled. Writes
    last_seen_at at most every `policy.touch_interval`.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    now = utc(now)
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(
                    user_session,
                    app_user.c.username,
                    app_user.c.unit_id,
                    app_user.c.role,
                    app_user.c.disabled,
                    app_user.c.failed_logins,
                    app_user.c.locked_until,
                    app_user.c.created_at.label("user_created_at"),
                    unit.c.name.label("unit_name"),
                    unit.c.urgent_score.label("unit_urgent_score"),
                )
                .join(app_user, app_user.c.id == user_session.c.user_id)
                .join(unit, unit.c.id == app_user.c.unit_id)
                .where(user_session.c.token_hash == token_hash(token))
            )
            .mappings()
            .one_or_none()
        )
    if row is None:
        return None
    last_seen = utc(row["last_seen_at"])
    idle = timedelta(seconds=int(row["idle_timeout_s"]))
    if row["disabled"] or now >= utc(row["expires_at"]) or now - last_seen >= idle:
        with engine.begin() as conn:
            conn.execute(delete(user_session).where(user_session.c.id == row["id"]))
        return None
    if now - last_seen >= policy.touch_interval:
        with engine.begin() as conn:
            conn.execute(
                update(user_session)
                .where(user_session.c.id == row["id"], user_session.c.last_seen_at < now)
                .values(last_seen_at=now)
            )
        last_seen = now
    user = user_from_row(
        {
            "id": row["user_id"],
            "username": row["username"],
            "unit_id": row["unit_id"],
            "unit_name": row["unit_name"],
            "role": row["role"],
            "disabled": row["disabled"],
            "failed_logins": row["failed_logins"],
            "locked_until": row["locked_until"],
            "created_at": row["user_created_at"],
            "unit_urgent_score": row["unit_urgent_score"],
        }  # type: ignore[arg-type]
    )
    return Session(
        id=int(row["id"]),
        user=user,
        created_at=utc(row["created_at"]),
        last_seen_at=last_seen,
        expires_at=utc(row["expires_at"]),
        idle_timeout=idle,
        client_address=row["client_address"],
        csrf_secret=row["csrf_secret"],
    )


def logout(engine: Engine, token: str | None, now: datetime, client_ip: str | None = None) -> bool:
    """End the session of `token` (audit: logout); False when there was none."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    now = utc(now)
    with engine.begin() as conn:
        lock_chain(conn)
        row = (
            conn.execute(
                select(
                    user_session.c.id, user_session.c.user_id, user_session.c.client_address
                ).where(user_session.c.token_hash == token_hash(token))
            )
            .mappings()
            .one_or_none()
        )
        if row is None:
            return False
        user_row = (
            conn.execute(
                select(app_user, unit.c.name.label("unit_name"))
                .join(unit, unit.c.id == app_user.c.unit_id)
                .where(app_user.c.id == row["user_id"])
            )
            .mappings()
            .one()
        )
        conn.execute(delete(user_session).where(user_session.c.id == row["id"]))
        record(
            conn,
            Action.LOGOUT,
            actor=user_from_row(user_row).actor(_client(client_ip or row["client_address"])),
            object_type="session",
            object_id=int(row["id"]),
            at=now,
        )
    return True


def csrf_token(session: Session) -> str:
    """The CSRF token for forms and fetches of this session (hex HMAC-SHA256).

    Derived, not stored: stable for the session's life, useless in another.
    """
    key = bytes.fromhex(session.csrf_secret)
    return hmac.new(key, f"atalaya-csrf:{session.id}".encode(), hashlib.sha256).hexdigest()


def check_csrf(session: Session, token: str | None) -> bool:
    """True when `token` is this session's CSRF token (constant-time compare)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    return hmac.compare_digest(csrf_token(session).encode(), token.encode("utf-8", "replace"))
