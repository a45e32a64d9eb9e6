"""Bencode (BEP 3) with the limits a hostile peer cannot get around.

Decoding is strict, as libtorrent's is: integers without leading zeros or
"-0", dictionary keys as byte strings in sorted order without duplicates,
nothing after the value. Every length, the nesting depth and the number of
tokens are bounded, and every failure is a `BencodeError` carrying the offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

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


DEFAULT_LIMITS = Limits()
# info dictionaries of large torrents carry megabytes of piece hashes.
METAINFO_LIMITS = Limits(max_size=64 << 20, max_string=64 << 20, max_tokens=2_000_000)


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> BValue:
    """Decode exactly one value that spans all of `data`."""
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
    if len(data) - start > limits.max_size:
        raise BencodeError(f"input larger than {limits.max_size} bytes", start)
    return _Decoder(data, limits).run(start)


class _Decoder:
    """Iterative, so that depth is bounded by `limits`, not by Python's stack."""

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.data = data
        self.limits = limits
        self.tokens = 0

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
                raise BencodeError(f"invalid type byte {c!r}", pos)

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
                    if last is not None and value <= last:
                        what = "duplicate" if value == last else "unsorted"
                        raise BencodeError(f"{what} dictionary key", pos)
                    pending[0] = value
                    pending[1] = value
                else:
                    container[key] = value
                    pending[0] = None
                break

    def _int(self, pos: int) -> tuple[int, int]:
        data = self.data
        end = data.find(b"e", pos + 1, pos + 2 + self.limits.max_int_digits + 1)
        if end < 0:
            raise BencodeError("unterminated or oversized integer", pos)
        digits = data[pos + 1 : end]
        body = digits[1:] if digits[:1] == b"-" else digits
        if not body or not body.isdigit() or not body.isascii():
            raise BencodeError("invalid integer", pos)
        if (body[0] == 0x30 and len(body) > 1) or digits == b"-0":
            raise BencodeError("non-canonical integer", pos)
        return int(digits), end + 1

    def _bytes(self, pos: int) -> tuple[bytes, int]:
        data = self.data
        colon = data.find(b":", pos, pos + 12)
        if colon < 0:
            raise BencodeError("invalid string length", pos)
        digits = data[pos:colon]
        if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1):
            raise BencodeError("invalid string length", pos)
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
    """Encode a value; `str` is encoded as UTF-8 bytes for convenience."""
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: object, out: list[bytes]) -> None:
    if isinstance(value, bool):
        raise BencodeEncodeError("booleans have no bencode form")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, str):
        _encode(value.encode(), out)
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        out.append(b"d")
        items = [(k.encode() if isinstance(k, str) else k, v) for k, v in value.items()]
        for key, _ in items:
            if not isinstance(key, bytes):
                raise BencodeEncodeError(f"dictionary key {key!r} is not a string")
        items.sort(key=lambda kv: kv[0])
        for key, item in items:
            _encode(key, out)
            _encode(item, out)
        out.append(b"e")
    else:
        raise BencodeEncodeError(f"cannot bencode {type(value).__name__}")
