"""BitTorrent v2 (BEP 52) per-file merkle trees, sans-I/O.

A file is cut into 16 KiB blocks (the last one shorter, never padded); each
leaf is the SHA-256 of a block; a parent is the SHA-256 of its two children.
Leaves beyond the end of the file, needed only to fill the tree up to a power
of two, are 32 zero bytes, so a subtree made only of padding hashes to the
"zero hash" of its height. What BEP 52 (and its reference creator,
bep_0052_torrent_creator.py) says about the edges, all followed here:

- the "pieces root" is the root over the file's leaves padded to the next
  power of two; it does not depend on the piece size; an empty file has none;
- the "piece layers" hold one hash per piece: the root of that piece's
  subtree, the last piece's subtree padded with zero leaves to the full piece
  height; hashes that would cover only padding are omitted;
- a file of at most one piece has no piece layer: its only piece hash is the
  pieces root itself, padded only to the power of two of its own blocks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

BLOCK_SIZE: Final = 16 * 1024
HASH_SIZE: Final = 32
ZERO_HASH: Final = bytes(HASH_SIZE)

# Trees taller than this would need files beyond 2**64 bytes.
_MAX_HEIGHT: Final = 64 - 14


class MerkleError(ValueError):
    """Arguments that no BEP 52 merkle tree can have."""


def _zero_hashes() -> tuple[bytes, ...]:
    hashes = [ZERO_HASH]
    for _ in range(_MAX_HEIGHT):
        hashes.append(hashlib.sha256(hashes[-1] + hashes[-1]).digest())
    return tuple(hashes)


# ZERO_HASHES[h]: the root of a subtree of 2**h padding leaves.
ZERO_HASHES: Final = _zero_hashes()


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length() if n > 1 else 1


def piece_height(piece_size: int) -> int:
    """How many levels above the leaves a piece hash sits (0 for 16 KiB pieces)."""
    if not isinstance(piece_size, int) or piece_size < BLOCK_SIZE:
        raise MerkleError(f"piece size must be at least {BLOCK_SIZE} bytes, got {piece_size!r}")
    if not _is_power_of_two(piece_size):
        raise MerkleError(f"piece size must be a power of two, got {piece_size}")
    height = (piece_size // BLOCK_SIZE).bit_length() - 1
    if height > _MAX_HEIGHT:
        raise MerkleError(f"piece size {piece_size} is too large")
    return height


def root_from_layer(layer: Sequence[bytes], height: int, pad_to: int | None = None) -> bytes:
    """The root over `layer`, hashes sitting `height` levels above the leaves.

    The layer is padded to `pad_to` entries (default: the next power of two)
    with the zero hash of that height, as BEP 52 pads the leaves with zeros.
    """
    if not 0 <= height <= _MAX_HEIGHT:
        raise MerkleError(f"tree height must be 0..{_MAX_HEIGHT}, got {height}")
    if not layer:
        raise MerkleError("a merkle tree needs at least one hash")
    for node in layer:
        if len(node) != HASH_SIZE:
            raise MerkleError(f"merkle hashes are {HASH_SIZE} bytes, got one of {len(node)}")
    width = _next_power_of_two(len(layer)) if pad_to is None else pad_to
    if not _is_power_of_two(width) or width < len(layer):
        raise MerkleError(
            f"pad_to must be a power of two of at least {len(layer)} (the hashes given), "
            f"got {pad_to}"
        )
    if width.bit_length() - 1 + height > _MAX_HEIGHT:
        raise MerkleError(f"a tree {width} hashes wide at height {height} is too large")
    nodes = list(layer)
    level = height
    while width > 1:
        if len(nodes) % 2:
            nodes.append(ZERO_HASHES[level])
        nodes = [hashlib.sha256(nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes), 2)]
        width //= 2
        level += 1
    return nodes[0]


def root_from_leaves(leaves: Sequence[bytes], pad_to: int | None = None) -> bytes:
    """The root over leaf hashes padded with zero hashes to `pad_to` (default: power of two)."""
    return root_from_layer(leaves, 0, pad_to)


def root_from_piece_layer(layer: Sequence[bytes], piece_size: int) -> bytes:
    """The pieces root a file's piece layer (from "piece layers") must hash to."""
    return root_from_layer(layer, piece_height(piece_size))


def leaf_hashes(data: bytes | bytearray | memoryview) -> list[bytes]:
    """The SHA-256 of each 16 KiB block of `data` (the last one may be shorter)."""
    view = memoryview(data).cast("B")
    return [
        hashlib.sha256(view[i : i + BLOCK_SIZE]).digest() for i in range(0, len(view), BLOCK_SIZE)
    ]


def piece_hash(
    piece_bytes: bytes | bytearray | memoryview, piece_index: int, piece_size: int
) -> bytes:
    """The layer hash of one piece of a file, as it appears in BEP 52 metadata.

    Piece 0 of a file that has only one piece hashes to the file's pieces
    root, whose leaves are padded only to a power of two; every other piece
    (and a full piece 0) is padded with zero leaves to the full piece height.
    """
    height = piece_height(piece_size)
    if piece_index < 0:
        raise MerkleError(f"piece index must not be negative, got {piece_index}")
    size = len(memoryview(piece_bytes).cast("B"))
    if not 0 < size <= piece_size:
        raise MerkleError(f"a piece holds 1 to {piece_size} bytes, got {size}")
    leaves = leaf_hashes(piece_bytes)
    pad_to = _next_power_of_two(len(leaves)) if piece_index == 0 else 1 << height
    return root_from_leaves(leaves, pad_to)


def verify_piece(
    piece_bytes: bytes | bytearray | memoryview,
    piece_index: int,
    expected_layer_hash: bytes,
    piece_size: int,
) -> bool:
    """Whether `piece_bytes` is piece `piece_index` whose layer hash is `expected_layer_hash`.

    `expected_layer_hash` is the piece's entry in the file's piece layer, or
    the pieces root for a file of a single piece. A piece of the wrong size
    (empty, or longer than `piece_size`) is simply not the piece: False.
    """
    if len(expected_layer_hash) != HASH_SIZE:
        raise MerkleError(f"a layer hash is {HASH_SIZE} bytes, got {len(expected_layer_hash)}")
    piece_height(piece_size)
    size = len(memoryview(piece_bytes).cast("B"))
    if not 0 < size <= piece_size:
        return False
    return piece_hash(piece_bytes, piece_index, piece_size) == expected_layer_hash


class FileMerkle:
    """One file's merkle tree, built from its bytes fed in any chunking.

    Memory stays bounded by the tree height (one pending hash per level), plus
    the piece layers asked for in `piece_sizes`, which are recorded as the
    bytes go by.
    """

    def __init__(self, piece_sizes: Iterable[int] = ()) -> None:
        self._recorded: dict[int, list[bytes]] = {piece_height(s): [] for s in piece_sizes}
        self._block = hashlib.sha256()
        self._block_filled = 0
        self._length = 0
        self._leaves = 0
        # _pending[h]: a complete left subtree of height h waiting for its sibling.
        self._pending: list[bytes | None] = []

    @property
    def length(self) -> int:
        """Bytes fed so far."""
        return self._length

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._length += len(view)
        if self._block_filled:
            take = min(len(view), BLOCK_SIZE - self._block_filled)
            self._block.update(view[:take])
            self._block_filled += take
            view = view[take:]
            if self._block_filled < BLOCK_SIZE:
                return
            self._add_leaf(self._block.digest())
            self._block = hashlib.sha256()
            self._block_filled = 0
        whole = len(view) - len(view) % BLOCK_SIZE
        sha256 = hashlib.sha256
        for start in range(0, whole, BLOCK_SIZE):
            self._add_leaf(sha256(view[start : start + BLOCK_SIZE]).digest())
        if whole < len(view):
            self._block.update(view[whole:])
            self._block_filled = len(view) - whole

    def _add_leaf(self, node: bytes) -> None:
        self._leaves += 1
        height = 0
        pending = self._pending
        recorded = self._recorded
        while True:
            layer = recorded.get(height)
            if layer is not None:
                layer.append(node)
            if height == len(pending):
                pending.append(node)
                return
            left = pending[height]
            if left is None:
                pending[height] = node
                return
            pending[height] = None
            node = hashlib.sha256(left + node).digest()
            height += 1

    def _leaf_count(self) -> int:
        return self._leaves + (1 if self._block_filled else 0)

    def _right_edge(self, up_to: int) -> bytes | None:
        """The right-most subtree of height `up_to`, padded with zero leaves.

        None when the leaves so far fill whole subtrees of that height. The
        short last block, if any, is taken as the right-most leaf without
        being added, so the tree stays open for more bytes.
        """
        pending = self._pending
        carry = self._block.copy().digest() if self._block_filled else None
        for height in range(up_to):
            left = pending[height] if height < len(pending) else None
            # A pending node is always a left sibling; the carry, the edge to its right.
            if left is not None:
                carry = hashlib.sha256(left + (carry or ZERO_HASHES[height])).digest()
            elif carry is not None:
                carry = hashlib.sha256(carry + ZERO_HASHES[height]).digest()
        return carry

    def pieces_root(self) -> bytes | None:
        """The file's pieces root so far; None for an empty file (BEP 52 gives it none)."""
        leaves = self._leaf_count()
        if leaves == 0:
            return None
        top = (_next_power_of_two(leaves)).bit_length() - 1
        edge = self._right_edge(top)
        if edge is not None:
            return edge
        # The leaves fill a whole power of two: the root is already complete.
        root = self._pending[top]
        assert root is not None
        return root

    def piece_layer(self, piece_size: int) -> list[bytes]:
        """One hash per piece of `piece_size`, as `verify_piece` expects them.

        For a file of more than one piece this is its "piece layers" entry. A
        file of at most one piece has none in the torrent; its single piece
        hash is the pieces root, returned as a one-element list. Empty: [].
        """
        height = piece_height(piece_size)
        if height not in self._recorded:
            raise MerkleError(
                f"piece size {piece_size} was not asked for when this tree was started"
            )
        leaves = self._leaf_count()
        if leaves <= 1 << height:
            root = self.pieces_root()
            return [] if root is None else [root]
        layer = list(self._recorded[height])
        edge = self._right_edge(height)
        if edge is not None:
            layer.append(edge)
        return layer


def layer_levels(
    layer: Sequence[bytes], height: int, pad_to: int | None = None
) -> list[list[bytes]]:
    """Every level of the tree over `layer`, from `layer` (padded) up to the root.

    The layer is padded as in `root_from_layer`; level 0 is the padded layer,
    the last level holds the root alone. Proof paths are read from it.
    """
    root_from_layer(layer, height, pad_to)  # the same checks, and the same errors
    width = _next_power_of_two(len(layer)) if pad_to is None else pad_to
    nodes = list(layer) + [ZERO_HASHES[height]] * (width - len(layer))
    levels = [nodes]
    while len(nodes) > 1:
        nodes = [hashlib.sha256(nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes), 2)]
        levels.append(nodes)
    return levels


def path_from_levels(levels: Sequence[Sequence[bytes]], index: int) -> list[bytes]:
    """The sibling of node `index` of level 0, then of its parent, … up to the root."""
    if not levels or not 0 <= index < len(levels[0]):
        raise MerkleError(f"no node {index} in the bottom level")
    path = []
    for nodes in levels[:-1]:
        path.append(nodes[index ^ 1])
        index //= 2
    return path


def proof_path(
    layer: Sequence[bytes], index: int, height: int, pad_to: int | None = None
) -> list[bytes]:
    """The hashes that lead from `layer[index]` to the root over `layer` (see `root_from_proof`)."""
    return path_from_levels(layer_levels(layer, height, pad_to), index)


def root_from_proof(node: bytes, index: int, path: Sequence[bytes]) -> bytes:
    """The root that `node`, at position `index` of its level, reaches through `path`.

    At each step the node is hashed with the next sibling of the path, on the
    left when the position is odd, on the right when it is even; the position
    then halves. A piece's layer hash, its index in the file and the path
    recompute the file's pieces root with nothing but SHA-256.
    """
    if len(node) != HASH_SIZE:
        raise MerkleError(f"merkle hashes are {HASH_SIZE} bytes, got one of {len(node)}")
    if index < 0 or index >> len(path):
        raise MerkleError(f"position {index} does not fit a path of {len(path)} hashes")
    for sibling in path:
        if len(sibling) != HASH_SIZE:
            raise MerkleError(f"merkle hashes are {HASH_SIZE} bytes, got one of {len(sibling)}")
        node = hashlib.sha256(sibling + node if index & 1 else node + sibling).digest()
        index //= 2
    return node
