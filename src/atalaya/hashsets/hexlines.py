"""Hex digests, one a line, parsed a block at a time with numpy.

Reference lists and disk hash dumps are millions of lines of bare hex. A
Python loop over them costs microseconds a line; here a block of lines is
split, checked and decoded with a few array operations. Only the lines that
are "clean" (nothing but hex digits of a known length, maybe a trailing CR)
are decoded here: every other line (blank, comment, spaces, bad bytes, too
long) is handed back so the caller's line-at-a-time rules judge it exactly as
before, with the same message and line number.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

NEWLINE: Final = 10
CARRIAGE_RETURN: Final = 13
# Bytes read from a stream at a time; whole lines are cut from it.
BLOCK_BYTES: Final = 4 << 20

# The value of each hex digit; 16 for every other byte.
_NIBBLE: Final = np.full(256, 16, dtype=np.uint8)
for _value, _chars in enumerate(zip(b"0123456789abcdef", b"0123456789ABCDEF", strict=True)):
    _NIBBLE[list(_chars)] = _value


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Block:
    """Whole lines of a stream: `data[starts[i]:ends[i]]` is line i without its newline."""

    data: bytes
    starts: NDArray[np.intp]
    ends: NDArray[np.intp]
    # The last line had no newline of its own (the end of the stream).
    open_end: bool = False

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, i: int) -> bytes:
        return self.data[int(self.starts[i]) : int(self.ends[i])]

    def raw_line(self, i: int) -> bytes:
        """Line i as a stream gave it: with its newline, if it had one."""
        end = int(self.ends[i])
        if not (self.open_end and i == len(self) - 1):
            end += 1
        return self.data[int(self.starts[i]) : end]

    def parts(self, size: int) -> Iterator[Block]:
        """This block cut into blocks of at most `size` lines."""
        count = len(self)
        if count <= size:
            yield self
            return
        for start in range(0, count, size):
            stop = min(start + size, count)
            yield Block(
                self.data,
                self.starts[start:stop],
                self.ends[start:stop],
                self.open_end and stop == count,
            )


@dataclass(frozen=True, slots=True)
class Clean:
    """The clean lines of a block: their positions and, per hex length, the digests."""

    mask: NDArray[np.bool_]  # over the block's lines
    # hex length -> (line positions in the block, (m, length // 2) digests)
    by_length: dict[int, tuple[NDArray[np.intp], NDArray[np.uint8]]]


def blocks(stream: Readable, *, max_line: int, block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """The stream's lines, a block at a time, in bounded memory.

    A line longer than `max_line` bytes is cut to its first `max_line + 1`
    bytes (what `readline(max_line + 1)` would give; the caller then sees it
    is too long) and the rest of it is skipped without being held.
    """
    pending = b""
    discarding = False
    while True:
        chunk = stream.read(block_bytes)
        if not chunk:
            if pending:
                yield _split(pending + b"\n", open_end=True)
            return
        if discarding:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            chunk = chunk[cut + 1 :]
            discarding = False
            if not chunk:
                continue
        data = pending + chunk
        last = data.rfind(b"\n")
        if last < 0:
            pending = data
        else:
            pending = data[last + 1 :]
            yield _split(data[: last + 1])
        if len(pending) > max_line + 1:
            # A line in progress already too long: keep what readline would show.
            yield _split(pending[: max_line + 1] + b"\n")
            pending = b""
            discarding = True


def _split(data: bytes, *, open_end: bool = False) -> Block:
    """`data` ends with a newline."""
    array = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(array == NEWLINE)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    return Block(data, starts, ends, open_end)


def clean_lines(block: Block, lengths: Collection[int], *, strip_cr: bool = True) -> Clean:
    """Which lines are hex digits only, of one of `lengths`, and their digests.

    With `strip_cr`, one trailing carriage return does not make a line unclean.
    """
    uniform = _uniform(block, lengths)
    if uniform is not None:
        return uniform
    if not len(block):
        return Clean(np.zeros(0, dtype=np.bool_), {})
    # Only this block's span: a part of a larger block costs its own size.
    first, stop = int(block.starts[0]), int(block.ends[-1]) + 1
    array = np.frombuffer(block.data, dtype=np.uint8)[first:stop]
    starts, ends = block.starts - first, block.ends - first
    if strip_cr and len(ends):
        has_cr = (ends > starts) & (array[np.maximum(ends - 1, 0)] == CARRIAGE_RETURN)
        ends = ends - has_cr
    sizes = ends - starts
    # Hex digits before each position: a line is all hex when its count is its size.
    before = np.zeros(len(array) + 1, dtype=np.int32)
    np.cumsum(_NIBBLE[array] < 16, out=before[1:])
    mask = np.zeros(len(starts), dtype=np.bool_)
    by_length: dict[int, tuple[NDArray[np.intp], NDArray[np.uint8]]] = {}
    all_hex = (before[ends] - before[starts]) == sizes
    for length in sorted(set(lengths)):
        if length <= 0 or length % 2:
            continue
        positions = np.flatnonzero(all_hex & (sizes == length))
        if not len(positions):
            continue
        mask[positions] = True
        chars = array[starts[positions][:, None] + np.arange(length)]
        by_length[length] = (positions, _decode(chars))
    return Clean(mask, by_length)


def _uniform(block: Block, lengths: Collection[int]) -> Clean | None:
    """The common case at C speed: every line the same length, all hex, no CR."""
    count = len(block)
    if not count:
        return None
    length = int(block.ends[0] - block.starts[0])
    first, stop = int(block.starts[0]), int(block.ends[-1]) + 1
    if length not in lengths or length % 2 or stop - first != count * (length + 1):
        return None
    if not np.array_equal(block.ends - first, np.arange(length, stop - first, length + 1)):
        return None
    try:
        raw = bytes.fromhex(block.data[first:stop].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    # fromhex skips whitespace: any inside a line leaves fewer bytes than this.
    if len(raw) != count * (length // 2):
        return None
    digests = np.frombuffer(raw, dtype=np.uint8).reshape(count, length // 2)
    return Clean(np.ones(count, dtype=np.bool_), {length: (np.arange(count), digests)})


def _decode(chars: NDArray[np.uint8]) -> NDArray[np.uint8]:
    nibbles = _NIBBLE[chars]
    high = nibbles[:, 0::2] << np.uint8(4)
    result: NDArray[np.uint8] = np.bitwise_or(high, nibbles[:, 1::2], dtype=np.uint8)
    return result
