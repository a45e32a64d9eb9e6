"""Every leaf's RFC 9162 inclusion proof at once, in time linear in the tree.

`merkle.inclusion_proof` rebuilds subtrees for one leaf, which is fine for
one sighting and quadratic for a whole batch. Built bottom-up, one level at
a time with a lone last node carried up unchanged (the same tree as RFC
9162's split, see `merkle.root_of`), a leaf's proof is its sibling at each
level where it has one, leaf side first: what `merkle.root_from_proof`
takes.
"""

from __future__ import annotations

from collections.abc import Sequence

from atalaya.evidence.merkle import MerkleError, node_hash


def all_inclusion_proofs(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """proofs[i] is the audit path of leaf i among `leaves` (already hashed)."""
    if not leaves:
        raise MerkleError("a merkle tree needs at least one leaf")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        up = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            up.append(level[-1])
        levels.append(up)
    proofs: list[list[bytes]] = []
    for leaf in range(len(leaves)):
        path: list[bytes] = []
        index = leaf
        for level in levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        proofs.append(path)
    return proofs
