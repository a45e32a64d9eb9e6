"""A SHA-256 merkle tree with inclusion proofs, as RFC 9162 (Certificate Transparency 2.0) §2.1.

Standard library only, so that a verifier can copy this file and check a
proof with python3 alone. Leaves and inner nodes are hashed with different
one-byte prefixes, so no inner node can pass for a leaf:

    leaf hash  = SHA-256(0x00 || leaf bytes)
    node hash  = SHA-256(0x01 || left hash || right hash)
    root of n leaves D[0:n]:
        n = 1: the leaf hash of D[0]
        n > 1: k = the largest power of two below n;
               node hash(root(D[0:k]), root(D[k:n]))

(The empty tree, SHA-256 of nothing, is never stamped.) An inclusion proof
for leaf m of n is the list of sibling hashes from the leaf up to the root,
as RFC 9162 §2.1.3.1 builds it; `verify_inclusion` is §2.1.3.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32


class MerkleError(ValueError):
    """A tree or proof that cannot be built or read (empty, index out of range, bad size)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The root over already-hashed leaves, in their order."""
    if not leaves:
        raise MerkleError("a merkle tree needs at least one leaf")
    for leaf in leaves:
        if len(leaf) != HASH_SIZE:
            raise MerkleError("every leaf hash must be 32 bytes")
    # Bottom-up, one level at a time: a lone last node is carried up unchanged,
    # which gives the same tree as the recursive split above.
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` among `leaves` (already hashed), leaf side first."""
    if not 0 <= index < len(leaves):
        raise MerkleError(f"leaf {index} is not in a tree of {len(leaves)}")
    proof: list[bytes] = []
    lo, hi, m = 0, len(leaves), index
    # Top-down per RFC 9162 §2.1.3.1, then reversed so the proof reads leaf to root.
    while hi - lo > 1:
        k = _split(hi - lo)
        if m - lo < k:
            proof.append(root_of(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root_of(leaves[lo : lo + k]))
            lo = lo + k
    proof.reverse()
    return proof


def root_from_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that leaf hash `leaf` at `index` of `size` leaves and `proof` lead to.

    RFC 9162 §2.1.3.2. Raises MerkleError when the proof has the wrong
    length for that index and size.
    """
    if not 0 <= index < size:
        raise MerkleError(f"leaf {index} is not in a tree of {size}")
    if len(leaf) != HASH_SIZE or any(len(p) != HASH_SIZE for p in proof):
        raise MerkleError("hashes must be 32 bytes")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise MerkleError("the proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleError("the proof is shorter than the tree is deep")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows leaf hash `leaf` at `index` in the tree of `size` with `root`."""
    try:
        return root_from_proof(leaf, index, size, proof) == root
    except MerkleError:
        return False
