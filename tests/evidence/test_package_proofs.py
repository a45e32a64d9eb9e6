"""All inclusion proofs at once give what RFC 9162's one-leaf construction gives."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.evidence.merkle import inclusion_proof, root_of, verify_inclusion
from atalaya.evidence.package_proofs import all_inclusion_proofs


def _leaves(n: int, salt: int) -> list[bytes]:
    return [hashlib.sha256(f"{salt}:{i}".encode()).digest() for i in range(n)]


@settings(deadline=None)
@given(st.integers(1, 140), st.integers(0, 2**16))
def test_every_proof_is_rfc_9162s(size: int, salt: int) -> None:
    leaves = _leaves(size, salt)
    proofs = all_inclusion_proofs(leaves)
    root = root_of(leaves)
    for index in range(size):
        assert proofs[index] == inclusion_proof(leaves, index)
        assert verify_inclusion(leaves[index], index, size, proofs[index], root)


def test_a_large_batch_is_linear() -> None:
    leaves = _leaves(4096, 1)
    proofs = all_inclusion_proofs(leaves)
    assert len(proofs) == 4096 and all(len(p) == 12 for p in proofs)
    assert verify_inclusion(leaves[4095], 4095, 4096, proofs[4095], root_of(leaves))
