"""Password hashing with Argon2id (argon2-cffi).

Every hash and verification takes one of the policy's `max_concurrent_hashes`
slots for its duration: Argon2 spends `argon2_memory_cost_kib` per run, and
parallel logins must not be able to exhaust the server's memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from atalaya.accounts.policy import DEFAULT_POLICY, AccountPolicy
from atalaya.errors import AtalayaError


class PasswordPolicyError(AtalayaError):
    """A new password that the policy refuses (too short, too long)."""


class PasswordBusyError(AtalayaError):
    """Every hashing slot stayed taken for the policy's `hash_wait`."""


_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


@contextmanager
def hashing_slot(policy: AccountPolicy = DEFAULT_POLICY) -> Iterator[None]:
    """Hold one of this process's `policy.max_concurrent_hashes` Argon2 slots."""
    with _slots_lock:
        slot = _slots.get(policy.max_concurrent_hashes)
        if slot is None:
            slot = _slots[policy.max_concurrent_hashes] = threading.BoundedSemaphore(
                policy.max_concurrent_hashes
            )
    if not slot.acquire(timeout=policy.hash_wait.total_seconds()):
        raise PasswordBusyError("too many password checks at once: try again in a moment")
    try:
        yield
    finally:
        slot.release()


def hasher(policy: AccountPolicy = DEFAULT_POLICY) -> PasswordHasher:
    return PasswordHasher(
        time_cost=policy.argon2_time_cost,
        memory_cost=policy.argon2_memory_cost_kib,
        parallelism=policy.argon2_parallelism,
    )


def check_new_password(password: str, policy: AccountPolicy = DEFAULT_POLICY) -> None:
    """Raise PasswordPolicyError unless `password` is acceptable as a new password."""
    if len(password) < policy.min_password_length:
        raise PasswordPolicyError(
            f"the password must have at least {policy.min_password_length} characters"
        )
    if len(password) > policy.max_password_length:
        raise PasswordPolicyError(
            f"the password must have at most {policy.max_password_length} characters"
        )


def hash_password(password: str, policy: AccountPolicy = DEFAULT_POLICY) -> str:
    """The Argon2id PHC string for a new password (checked against the policy)."""
    check_new_password(password, policy)
    with hashing_slot(policy):
        return hasher(policy).hash(password)


def rehash_password(password: str, policy: AccountPolicy = DEFAULT_POLICY) -> str:
    """A new hash, at the policy's costs, of a password that has just verified."""
    with hashing_slot(policy):
        return hasher(policy).hash(password)


def verify_password(
    stored_hash: str, password: str, policy: AccountPolicy = DEFAULT_POLICY
) -> bool:
    """True when `password` matches `stored_hash`; False for a mismatch or a bad hash.

    An over-long password is refused after a verification against a hash
    nobody has: returning at once would tell an attacker, by the time it
    takes, that the account exists (an unknown user costs a verification).
    """
    if len(password) > policy.max_password_length:
        burn_verification(password, policy)
        return False
    with hashing_slot(policy):
        try:
            return hasher(policy).verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def needs_rehash(stored_hash: str, policy: AccountPolicy = DEFAULT_POLICY) -> bool:
    """True when `stored_hash` was made with other costs than the policy's."""
    try:
        return hasher(policy).check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


# Verified against when the user does not exist, so a missing account costs
# the same time as a wrong password. Made lazily per policy.
_dummy_hashes: dict[tuple[int, int, int], str] = {}


def burn_verification(password: str, policy: AccountPolicy = DEFAULT_POLICY) -> None:
    """Spend the time of a real verification, against a hash nobody has."""
    key = (policy.argon2_time_cost, policy.argon2_memory_cost_kib, policy.argon2_parallelism)
    dummy = _dummy_hashes.get(key)
    if dummy is None:
        with hashing_slot(policy):
            dummy = _dummy_hashes[key] = hasher(policy).hash("no user has this password")
    verify_password(dummy, password[: policy.max_password_length], policy)
