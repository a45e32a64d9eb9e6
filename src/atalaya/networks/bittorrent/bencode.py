"""Bencode (BEP 3) with the limits a hostile peer cannot get around.

Decoding is strict by default, as KRPC needs: integers without leading zeros
or "-0", dictionary keys as byte strings in sorted order without duplicates,
nothing after the value. A caller that must read what real encoders write
(.torrent files, some trackers) can accept unsorted keys, and duplicate keys
(the first value wins, as in libtorrent), through `Limits`; `scan` says how
many of each it forgave. Every length, the nesting depth and the number of
tokens are bounded, and every failure is a `BencodeError` carrying the offset.

Strict `decode` of `bytes` (every KRPC datagram) first asks bencode2, a
compiled decoder that refuses the same things (unsorted or repeated keys,
leading zeros, "-0", non-string keys, trailing data), then checks our limits
on what it built. Anything it refuses, and anything near a limit, is decoded
again by the pure-Python decoder below, so a failure is always that
decoder's `BencodeError` with its reason and offset; the lenient modes,
`scan` and `decode_prefix` use the pure-Python decoder alone.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Final, TypeAlias

import bencode2

# Bencoded values as Python sees them: bytes stay bytes; keys are bytes.
BValue: TypeAlias = "int | bytes | list[BValue] | dict[bytes, BValue]"


class BencodeError(ValueError):
    """The input is not valid bencode within the limits."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.reason = message
        self.offset = offset


@dataclass(frozen=True)
class Limits:
    """Bounds applied while decoding; the defaults suit KRPC and peer wire."""

    max_size: int = 1 << 20
    max_depth: int = 32
    max_tokens: int = 100_000
    max_string: int = 1 << 20
    max_int_digits: int = 40
    # Some real encoders (opentracker's multi-hash scrape) emit keys unsorted;
    # False accepts that.
    sorted_keys: bool = True
    # False accepts a key that appears twice in one dictionary and keeps its
    # first value (libtorrent's lookups find the first). Only for inputs whose
    # identity is their raw bytes (a .torrent's info dictionary): a message
    # read for its values (KRPC) keeps refusing, as two values are ambiguous.
    unique_keys: bool = True

    @cached_property
    def _fast(self) -> tuple[int, int, int, int] | None:
        """What `decode`'s compiled path needs, or None where it does not apply.

        (longest input, bound on integers, depth, tokens): an input longer
        than the shortest string the limits refuse could hold one; the
        lenient modes go to the pure decoder, which counts what it forgives.
        cached_property writes the instance's __dict__ directly, so it
        works on a frozen dataclass and is computed once per `Limits`.
        """
        if not (bencode2.COMPILED and self.sorted_keys and self.unique_keys):
            return None
        longest = min(self.max_size, self.max_string)
        # Every integer has a digit: a limit below one refuses them all.
        bound = 10**self.max_int_digits if self.max_int_digits >= 1 else 0
        return longest, bound, self.max_depth, self.max_tokens


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Scan:
    """One decoded value, where it ends, and what the limits let through."""

    value: BValue
    end: int  # offset just past the value
    unsorted_keys: int = 0  # keys smaller than the key before them
    duplicate_keys: int = 0  # keys already in their dictionary (value dropped)
    tokens: int = 0  # as counted against `Limits.max_tokens`, for callers that share a budget


_INT_BODY = re.compile(rb"(-?)([0-9]*)")
_LENGTH = re.compile(rb"[0-9]*")
# More digits than this cannot be a length any limit allows (10**20 > 2**64).
_MAX_LENGTH_DIGITS = 20


# What bencode2 may raise on hostile input: its BencodeDecodeError is a
# ValueError, and so is CPython's refusal of an integer of more than 4300
# digits; the other two stand for any bound it hits that we do not expect.
_FAST_ERRORS = (ValueError, RecursionError, OverflowError)


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> BValue:
    """Decode exactly one value that spans all of `data`."""
    fast = limits._fast
    if fast is not None and type(data) is bytes and len(data) <= fast[0]:
        try:
            value: BValue = bencode2.bdecode(data)
        except _FAST_ERRORS:
            pass
        else:
            if _within_limits(value, fast[1], fast[2], fast[3]):
                return value
    return decode_pure(data, limits)


def decode_pure(data: bytes, limits: Limits = DEFAULT_LIMITS) -> BValue:
    """`decode` by the pure-Python decoder alone.

    The reference the compiled path is tested and benchmarked against, and
    what names every failure.
    """
    value, end = decode_prefix(data, limits)
    if end != len(data):
        raise BencodeError("trailing data after value", end)
    return value


def decode_prefix(
    data: bytes, limits: Limits = DEFAULT_LIMITS, start: int = 0
) -> tuple[BValue, int]:
    """Decode one value at `start`; return it and the offset just past it.

    Used where a bencoded dictionary is followed by raw bytes (ut_metadata).
    """
    found = scan(data, limits, start)
    return found.value, found.end


def scan(data: bytes, limits: Limits = DEFAULT_LIMITS, start: int = 0) -> Scan:
    """`decode_prefix`, also counting the unsorted and duplicate keys `limits` allowed."""
    if not 0 <= start <= len(data):
        raise BencodeError("start offset outside the input", start)
    if len(data) - start > limits.max_size:
        raise BencodeError(f"input larger than {limits.max_size} bytes", start)
    decoder = _Decoder(data, limits)
    value, end = decoder.run(start)
    return Scan(value, end, decoder.unsorted, decoder.duplicates, decoder.tokens)


def _within_limits(value: BValue, bound: int, max_depth: int, max_tokens: int) -> bool:
    """Whether the pure decoder would accept the bytes that bencode2 decoded to `value`.

    bencode2 settled syntax, canonical form, key order and the absence of
    trailing bytes, and the caller string lengths (it passes no input longer
    than the longest string allowed); left are the depth, the tokens and the
    integers' digits.
    Tokens are counted as `_Decoder` counts them: one per integer, string
    and key, two per container. Integers must lie strictly within `bound`
    (10 ** max_int_digits). Any doubt answers False, which only costs a
    second decode.
    """
    kind = type(value)
    if kind is bytes:
        return max_tokens >= 1
    if kind is int:
        return max_tokens >= 1 and -bound < value < bound  # type: ignore[operator]
    tokens = 0
    depth = 0
    # Level by level, so that a depth is counted once per level, not per container.
    level: list[BValue] = [value]
    while level:
        depth += 1
        if depth > max_depth:
            return False
        below: list[BValue] = []
        for container in level:
            children: Iterable[BValue]
            if type(container) is dict:
                tokens += 2 + 2 * len(container)
                children = container.values()
            elif type(container) is list:
                tokens += 2 + len(container)
                try:
                    # Only bytes-like items join, so a list of strings alone
                    # (a response's peers) is passed over in C.
                    b"".join(container)  # type: ignore[arg-type]
                    continue
                except TypeError:
                    children = container
            else:
                return False
            for child in children:
                kind = type(child)
                if kind is bytes:
                    continue
                if kind is int:
                    if not -bound < child < bound:  # type: ignore[operator]
                        return False
                else:
                    # A container counts its own two tokens, not one as a child.
                    tokens -= 1
                    below.append(child)
        level = below
    return tokens <= max_tokens


class _Decoder:
    """Iterative, so that depth is bounded by `limits`, not by Python's stack."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.data = data
        self.limits = limits
        self.tokens = 0
        self.unsorted = 0
        self.duplicates = 0
        # int() refuses more digits than CPython's limit (4300 by default) with
        # a ValueError; a Limits above it is held to it, as a BencodeError.
        python_most = sys.get_int_max_str_digits()
        self.int_digits = min(limits.max_int_digits, python_most or limits.max_int_digits)

    def run(self, pos: int) -> tuple[BValue, int]:
        data = self.data
        # Each frame: the container being filled and, for dicts, the pending key.
        stack: list[tuple[list[BValue] | dict[bytes, BValue], list[bytes | None]]] = []
        while True:
            self.tokens += 1
            if self.tokens > self.limits.max_tokens:
                raise BencodeError(f"more than {self.limits.max_tokens} tokens", pos)
            if pos >= len(data):
                raise BencodeError("unexpected end of input", pos)
            c = data[pos]
            value: BValue
            if c == 0x65:  # 'e' closes the innermost container
                if not stack:
                    raise BencodeError("unexpected 'e'", pos)
                container, pending = stack.pop()
                if isinstance(container, dict) and pending[0] is not None:
                    raise BencodeError("dictionary key without value", pos)
                pos += 1
                value = container
            elif c == 0x69:  # 'i'
                value, pos = self._int(pos)
            elif 0x30 <= c <= 0x39:
                value, pos = self._bytes(pos)
            elif c in {108, 100}:  # 'l' / 'd'
                if len(stack) >= self.limits.max_depth:
                    raise BencodeError(f"nesting deeper than {self.limits.max_depth}", pos)
                stack.append(([] if c == 0x6C else {}, [None, None]))
                pos += 1
                continue
            else:
                raise BencodeError(f"invalid type byte 0x{c:02x}", pos)

            # Place the finished value into its parent, or return it.
            while True:
                if not stack:
                    return value, pos
                container, pending = stack[-1]
                if isinstance(container, list):
                    container.append(value)
                    break
                key = pending[0]
                if key is None:
                    if not isinstance(value, bytes):
                        raise BencodeError("dictionary key is not a string", pos)
                    last = pending[1]
                    if last is not None and value < last:
                        if self.limits.sorted_keys:
                            raise BencodeError("unsorted dictionary key", pos)
                        self.unsorted += 1
                    if value in container:
                        if self.limits.unique_keys:
                            raise BencodeError("duplicate dictionary key", pos)
                        self.duplicates += 1
                    pending[0] = value
                    pending[1] = value
                else:
                    # A duplicate key's later value is dropped: the first one wins.
                    container.setdefault(key, value)
                    pending[0] = None
                break

    def _int(self, pos: int) -> tuple[int, int]:
        data = self.data
        most = self.int_digits
        # Fast path for the common canonical non-negative integer; anything else
        # goes through the exact checks below, which name the fault.
        end = data.find(b"e", pos + 1, pos + 2 + most)
        if end > pos + 1:
            digits = data[pos + 1 : end]
            if digits.isdigit() and (digits[0] != 0x30 or end == pos + 2):
                return int(digits), end + 1
        # The window stops one digit past the limit, so a flood of digits costs nothing.
        m = _INT_BODY.match(data, pos + 1, min(len(data), pos + 3 + most))
        assert m is not None  # the pattern matches the empty string
        digits = m.group(2)
        if len(digits) > most:
            raise BencodeError(f"integer longer than {most} digits", pos)
        end = m.end()
        if end >= len(data):
            raise BencodeError("unexpected end of input", len(data))
        if data[end] != 0x65 or not digits:  # 'e'
            raise BencodeError("invalid integer", end)
        if (digits[0] == 0x30 and len(digits) > 1) or m.group() == b"-0":
            raise BencodeError("non-canonical integer", pos)
        return int(m.group()), end + 1

    def _bytes(self, pos: int) -> tuple[bytes, int]:
        data = self.data
        # Fast path for a canonical string that fits; the exact checks follow otherwise.
        colon = data.find(b":", pos, pos + _MAX_LENGTH_DIGITS + 1)
        if colon > pos:
            digits = data[pos:colon]
            if digits.isdigit() and (digits[0] != 0x30 or colon == pos + 1):
                length = int(digits)
                end = colon + 1 + length
                if length <= self.limits.max_string and end <= len(data):
                    return data[colon + 1 : end], end
        m = _LENGTH.match(data, pos, min(len(data), pos + _MAX_LENGTH_DIGITS + 1))
        assert m is not None  # called only on a digit
        digits = m.group()
        colon = m.end()
        if len(digits) > _MAX_LENGTH_DIGITS:
            raise BencodeError(f"string longer than {self.limits.max_string} bytes", pos)
        if colon >= len(data):
            raise BencodeError("unexpected end of input", len(data))
        if data[colon] != 0x3A:  # ':'
            raise BencodeError("expected ':' after string length", colon)
        if digits[0] == 0x30 and len(digits) > 1:
            raise BencodeError("non-canonical string length", pos)
        length = int(digits)
        if length > self.limits.max_string:
            raise BencodeError(f"string longer than {self.limits.max_string} bytes", pos)
        start = colon + 1
        end = start + length
        if end > len(data):
            raise BencodeError("string runs past end of input", pos)
        return data[start:end], end


class BencodeEncodeError(TypeError):
    """The value has a type bencode cannot carry."""


def encode(value: BValue | str) -> bytes:
    """Encode a value; `str` is encoded as UTF-8 bytes for convenience.

    Iterative, like the decoder: a value as deep as a decoder's limit allows
    (a v2 file tree) encodes without reaching Python's recursion limit.
    """
    out: list[bytes] = []
    # Work items: a value still to encode, or bytes ready to append (a container's 'e').
    todo: list[object] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, _Ready):
            out.append(item.data)
        elif isinstance(item, bool):
            raise BencodeEncodeError("booleans have no bencode form")
        elif isinstance(item, int):
            out.append(b"i%de" % item)
        elif isinstance(item, bytes | bytearray | memoryview):
            raw = bytes(item)
            out.append(b"%d:" % len(raw))
            out.append(raw)
        elif isinstance(item, str):
            raw = item.encode()
            out.append(b"%d:" % len(raw))
            out.append(raw)
        elif isinstance(item, list | tuple):
            out.append(b"l")
            todo.append(_END)
            todo.extend(reversed(item))
        elif isinstance(item, dict):
            out.append(b"d")
            todo.append(_END)
            for key, child in reversed(_sorted_items(item)):
                todo.append(child)
                todo.append(_Ready(b"%d:%s" % (len(key), key)))
        else:
            raise BencodeEncodeError(f"cannot bencode {type(item).__name__}")
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class _Ready:
    """Encoded bytes waiting their turn in `encode`'s work list."""

    data: bytes


_END: Final = _Ready(b"e")


def _sorted_items(value: dict[object, object]) -> list[tuple[bytes, object]]:
    """A dictionary's items with byte-string keys, in the sorted order bencode requires."""
    items: list[tuple[bytes, object]] = []
    for key, child in value.items():
        raw = key.encode() if isinstance(key, str) else key
        if not isinstance(raw, bytes):
            raise BencodeEncodeError(f"dictionary key {key!r} is not a string")
        items.append((raw, child))
    items.sort(key=lambda kv: kv[0])
    for (key, _), (next_key, _) in pairwise(items):
        if key == next_key:
            # {"a": 1, b"a": 2}: two keys that encode alike.
            raise BencodeEncodeError(f"duplicate dictionary key {key!r}")
    return items
