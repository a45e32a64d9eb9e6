"""Synthetic content for the lab: deterministic random bytes, never real files."""

from __future__ import annotations

import random
from pathlib import Path

_CHUNK = 1 << 20


def random_bytes(size: int, seed: int) -> bytes:
    """`size` pseudo-random bytes; the same `seed` always gives the same bytes."""
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    rng = random.Random(seed)
    parts = []
    left = size
    # Drawn in fixed chunks so a file's bytes do not depend on how it is written.
    while left > 0:
        n = min(_CHUNK, left)
        parts.append(rng.randbytes(n))
        left -= n
    return b"".join(parts)


def write_random_file(path: Path, size: int, seed: int) -> Path:
    """Write `size` deterministic random bytes to `path` (creating folders); return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random_bytes(size, seed))
    return path
