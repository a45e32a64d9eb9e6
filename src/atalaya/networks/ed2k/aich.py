"""AICH, eMule's SHA-1 hash tree over 180 KiB blocks, sans-I/O: geometry, recovery data, checks.

The tree (aMule src/SHAHashSet.cpp, `CAICHHashTree`) covers the whole
file. A node of `size` bytes has a base size of one block (184,320 bytes)
when it spans at most one part (9,728,000 bytes), else of one part; a node
no larger than its base is a leaf, hashed as SHA-1 of its bytes. A larger
node counts its bases (the last may be short) and gives the left child
half of them, rounded up when the node is itself a left child and down
when it is a right one; the root counts as a left child. An inner node's
hash is SHA-1(left hash + right hash); the root's is the file's AICH
"master hash".

A node is named by its path from the root: the root is 1, a node's left
child is `ident * 2 + 1` and its right child `ident * 2`. Asked for the
recovery data of a part (OP_AICHREQUEST), a peer sends the hashes of the
part's sibling nodes on the way down from the root (top first), then the
hashes of the part's blocks, left to right, each with its ident: enough to
rebuild the master hash from the part's blocks alone. So one block, hashed
and matched with its leaf, is proven against a master hash the caller
already trusts, at the cost of 180 KiB rather than a whole part.

A hostile peer writes the recovery data: `check_part` accepts exactly the
idents the part needs, each once, and nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from atalaya.networks.ed2k.hashing import PART_SIZE
from atalaya.networks.ed2k.wire import Ed2kError, Reader, Writer

BLOCK_SIZE: Final = 184_320  # aMule's EMBLOCKSIZE
HASH_SIZE: Final = 20  # SHA-1
# Blocks in a part (53) plus one sibling a level: a part of a file of
# eMule's largest size sits well under 64 levels down.
MAX_RECOVERY_HASHES: Final = 53 + 64
# 16-bit idents reach 15 levels: aMule switches to 32-bit ones for "large
# files", over its old size limit (OLD_MAX_FILE_SIZE), and so does this module.
LARGE_FILE: Final = 4_290_048_000


class AichError(Ed2kError):
    """Recovery data that is malformed, incomplete, or does not lead to the master hash."""


@dataclass(frozen=True, slots=True)
class Node:
    """One node of a file's AICH tree: which bytes it covers, and its name."""

    ident: int
    offset: int
    size: int
    left: bool  # a left child (the root counts as one)

    @property
    def leaf(self) -> bool:
        return self.size <= _base(self.size)

    def children(self) -> tuple[Node, Node]:
        if self.leaf:
            raise AichError("a leaf has no children")
        base = _base(self.size)
        blocks = -(-self.size // base)
        left = ((blocks + 1 if self.left else blocks) // 2) * base
        return (
            Node(self.ident * 2 + 1, self.offset, left, True),
            Node(self.ident * 2, self.offset + left, self.size - left, False),
        )


def _base(size: int) -> int:
    return BLOCK_SIZE if size <= PART_SIZE else PART_SIZE


def _sha1(data: bytes | memoryview) -> bytes:
    return hashlib.sha1(data, usedforsecurity=False).digest()


def _join(left: bytes, right: bytes) -> bytes:
    return _sha1(left + right)


def root(file_size: int) -> Node:
    if file_size <= 0:
        raise AichError("an AICH tree needs at least one byte")
    return Node(1, 0, file_size, True)


def master_hash(data: bytes | bytearray | memoryview) -> bytes:
    """The AICH master hash of a whole file held in memory (tests, the lab, benchmarks)."""
    view = memoryview(data).cast("B")

    def walk(node: Node) -> bytes:
        if node.leaf:
            return _sha1(view[node.offset : node.offset + node.size])
        left, right = node.children()
        return _join(walk(left), walk(right))

    return walk(root(len(view)))


def leaves(node: Node) -> list[Node]:
    """The blocks under `node`, left to right."""
    found: list[Node] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if current.leaf:
            found.append(current)
        else:
            left, right = current.children()
            stack += (right, left)
    return found


def part_path(file_size: int, part: int) -> tuple[Node, list[Node]]:
    """The node of part `part` and its siblings on the way down from the root (top first)."""
    start = part * PART_SIZE
    if part < 0 or start >= file_size:
        raise AichError(f"part {part} is past the end of a file of {file_size} bytes")
    size = min(PART_SIZE, file_size - start)
    node = root(file_size)
    siblings: list[Node] = []
    while not (node.offset == start and node.size == size):
        if node.leaf:
            raise AichError(f"part {part} is not a node of the tree")  # pragma: no cover
        left, right = node.children()
        if start < right.offset:
            node, sibling = left, right
        else:
            node, sibling = right, left
        siblings.append(sibling)
    return node, siblings


def part_blocks(file_size: int, part: int) -> list[Node]:
    """The blocks of part `part`, left to right, with their offsets in the file."""
    node, _ = part_path(file_size, part)
    return leaves(node)


@dataclass(frozen=True, slots=True)
class RecoveryData:
    """A part's recovery data as sent: (ident, SHA-1) pairs, in the peer's order."""

    hashes: tuple[tuple[int, bytes], ...]
    wide: bool = False  # 32-bit idents (files over 4 GiB)

    def encode(self) -> bytes:
        writer = Writer()
        if self.wide:
            writer.u16(0).u16(len(self.hashes))
            for ident, digest in self.hashes:
                writer.u32(ident).raw(_checked_hash(digest))
            return writer.getvalue()
        writer.u16(len(self.hashes))
        for ident, digest in self.hashes:
            writer.u16(ident).raw(_checked_hash(digest))
        return writer.u16(0).getvalue()


def _checked_hash(digest: bytes) -> bytes:
    if len(digest) != HASH_SIZE:
        raise AichError(f"an AICH hash is {HASH_SIZE} bytes, not {len(digest)}")
    return digest


def read_recovery_data(reader: Reader) -> RecoveryData:
    """Recovery data from `reader`, as aMule writes it (`CAICHHashSet::CreatePartRecoveryData`).

    A count of 16-bit-ident hashes, the hashes; then a count of 32-bit-ident
    hashes and those (aMule writes one of the two lists empty).
    """
    narrow = reader.u16("AICH 16-bit hash count")
    if narrow > MAX_RECOVERY_HASHES:
        raise AichError(f"{narrow} AICH hashes (limit {MAX_RECOVERY_HASHES})")
    hashes = [
        (reader.u16("AICH ident"), reader.take(HASH_SIZE, "AICH hash")) for _ in range(narrow)
    ]
    wide = 0
    if reader.remaining >= 2:
        wide = reader.u16("AICH 32-bit hash count")
        if wide and narrow:
            raise AichError("AICH recovery data with both 16- and 32-bit idents")
        if wide > MAX_RECOVERY_HASHES:
            raise AichError(f"{wide} AICH hashes (limit {MAX_RECOVERY_HASHES})")
        hashes += [
            (reader.u32("AICH ident"), reader.take(HASH_SIZE, "AICH hash")) for _ in range(wide)
        ]
    if not hashes:
        raise AichError("AICH recovery data with no hashes")
    return RecoveryData(tuple(hashes), wide=bool(wide))


def recovery_data(data: bytes | bytearray | memoryview, part: int) -> RecoveryData:
    """The recovery data an honest peer sends for `part` of `data` (tests, fake peers)."""
    view = memoryview(data).cast("B")
    node, siblings = part_path(len(view), part)
    digests = {n.ident: _subtree_hash(view, n) for n in siblings}
    digests |= {n.ident: _sha1(view[n.offset : n.offset + n.size]) for n in leaves(node)}
    order = [n.ident for n in siblings] + [n.ident for n in leaves(node)]
    return RecoveryData(tuple((i, digests[i]) for i in order), wide=len(view) > LARGE_FILE)


def _subtree_hash(view: memoryview, node: Node) -> bytes:
    if node.leaf:
        return _sha1(view[node.offset : node.offset + node.size])
    left, right = node.children()
    return _join(_subtree_hash(view, left), _subtree_hash(view, right))


@dataclass(frozen=True, slots=True)
class PartCheck:
    """Recovery data that leads to the master hash: the part's blocks and their hashes."""

    part: int
    blocks: tuple[Node, ...]
    block_hashes: tuple[bytes, ...]


def check_part(
    file_size: int, part: int, master: bytes, hashes: Sequence[tuple[int, bytes]]
) -> PartCheck:
    """Check a part's recovery data against a trusted `master` hash; `AichError` if it fails.

    Exactly the part's sibling and block idents, each once; the blocks'
    hashes rebuild the part's node, and the siblings lead from it to `master`.
    """
    _checked_hash(master)
    node, siblings = part_path(file_size, part)
    blocks = leaves(node)
    wanted = {n.ident for n in siblings} | {n.ident for n in blocks}
    given: dict[int, bytes] = {}
    for ident, digest in hashes:
        if ident not in wanted:
            raise AichError(f"AICH ident {ident} is not one of part {part}'s")
        if ident in given:
            raise AichError(f"AICH ident {ident} given twice")
        given[ident] = _checked_hash(digest)
    if len(given) != len(wanted):
        raise AichError(f"AICH recovery data lacks {len(wanted) - len(given)} of part {part}'s")
    digest = _rebuild(node, given)
    for sibling in reversed(siblings):
        other = given[sibling.ident]
        digest = _join(other, digest) if sibling.left else _join(digest, other)
    if digest != master:
        raise AichError(f"part {part}'s AICH hashes do not lead to the master hash")
    return PartCheck(part, tuple(blocks), tuple(given[n.ident] for n in blocks))


def _rebuild(node: Node, given: dict[int, bytes]) -> bytes:
    if node.leaf:
        return given[node.ident]
    left, right = node.children()
    return _join(_rebuild(left, given), _rebuild(right, given))


def block_hash(data: bytes | bytearray | memoryview) -> bytes:
    """A block's leaf hash."""
    return _sha1(memoryview(data).cast("B"))
