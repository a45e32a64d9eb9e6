"""Argon2id password hashes."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters

from atalaya.accounts import DEFAULT_POLICY, PasswordPolicyError, hash_password, verify_password
from atalaya.accounts.passwords import check_new_password, needs_rehash
from tests.accounts.helpers import FAST, PASSWORD


def test_default_hash_is_argon2id_with_the_policy_costs() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    params = extract_parameters(stored)
    assert (params.time_cost, params.memory_cost, params.parallelism) == (
        DEFAULT_POLICY.argon2_time_cost,
        DEFAULT_POLICY.argon2_memory_cost_kib,
        DEFAULT_POLICY.argon2_parallelism,
    )
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, PASSWORD + " ")
    assert not needs_rehash(stored)


def test_verify_accepts_and_rejects() -> None:
    stored = hash_password(PASSWORD, FAST)
    assert verify_password(stored, PASSWORD, FAST)
    assert not verify_password(stored, PASSWORD.upper(), FAST)
    assert not verify_password(stored, "", FAST)
    # Same password, new salt: a different hash that verifies too.
    again = hash_password(PASSWORD, FAST)
    assert again != stored and verify_password(again, PASSWORD, FAST)


def test_damaged_or_foreign_hashes_do_not_verify() -> None:
    stored = hash_password(PASSWORD, FAST)
    flipped = stored[:-2] + ("A" if stored[-2] != "A" else "B") + stored[-1]
    assert not verify_password(flipped, PASSWORD, FAST)
    assert not verify_password("not a hash", PASSWORD, FAST)
    assert not verify_password("", PASSWORD, FAST)
    assert needs_rehash("not a hash", FAST)
    assert needs_rehash(stored, DEFAULT_POLICY)


def test_new_password_length_limits() -> None:
    with pytest.raises(PasswordPolicyError, match="at least 12"):
        check_new_password("eleven char")
    with pytest.raises(PasswordPolicyError, match="at least 12"):
        hash_password("short", FAST)
    with pytest.raises(PasswordPolicyError, match="at most"):
        hash_password("x" * 1025, FAST)
    check_new_password("twelve chars")
    # An over-long password never reaches Argon2.
    assert not verify_password(hash_password(PASSWORD, FAST), "x" * 5000, FAST)
