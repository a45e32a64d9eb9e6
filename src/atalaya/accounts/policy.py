"""Account policy: password, lockout, rate-limit and session settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class AccountPolicy:
    """Defaults follow OWASP's authentication and session guidance.

    The Argon2id costs are argon2-cffi's defaults (RFC 9106's low-memory
    profile); tests may lower them to run faster, never below what Argon2
    accepts.
    """

    min_password_length: int = 12
    # Hashing is the expensive part of a login: bound what one attempt can cost.
    max_password_length: int = 1024
    # Consecutive failures that lock an account, and for how long.
    max_failed_logins: int = 5
    lockout: timedelta = timedelta(minutes=15)
    # Failed logins accepted from one client address per window, all accounts together.
    rate_limit_failures: int = 20
    rate_limit_window: timedelta = timedelta(minutes=5)
    # A session ends this long after login whatever happens…
    session_lifetime: timedelta = timedelta(hours=10)
    # …or after this long without a request.
    idle_timeout: timedelta = timedelta(minutes=30)
    # last_seen_at is written at most this often (one write per request is
    # too many for SQLite's single writer); idle timeouts are this coarse.
    touch_interval: timedelta = timedelta(seconds=30)
    # Argon2 runs at once in one process (each takes argon2_memory_cost_kib),
    # and how long a login waits for one before it is refused as busy.
    max_concurrent_hashes: int = 4
    hash_wait: timedelta = timedelta(seconds=10)
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 65536
    argon2_parallelism: int = 4


DEFAULT_POLICY = AccountPolicy()
