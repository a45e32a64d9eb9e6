"""Little-endian reading and writing for eD2K and Kad payloads, bounded.

Every eD2K integer is little-endian. A `Reader` never reads past its
buffer: a short or overlong payload ends in an `Ed2kError` that says what
was being read, so a hostile peer's packet costs one typed error.
"""

from __future__ import annotations

import struct
from typing import Final

HASH_SIZE: Final = 16

_U16: Final = struct.Struct("<H")
_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")
_F32: Final = struct.Struct("<f")


class Ed2kError(ValueError):
    """A peer (or the caller) broke the eD2K/Kad wire format or its bounds."""


class Reader:
    """Reads typed fields from one payload, front to back."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or count > self.remaining:
            raise Ed2kError(f"{what}: needs {count} bytes, {self.remaining} left")
        start = self._pos
        self._pos += count
        return self._data[start : self._pos]

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        value: int = _U16.unpack(self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = _U32.unpack(self.take(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = _U64.unpack(self.take(8, what))[0]
        return value

    def f32(self, what: str) -> float:
        value: float = _F32.unpack(self.take(4, what))[0]
        return value

    def hash16(self, what: str) -> bytes:
        return self.take(HASH_SIZE, what)

    def rest(self) -> bytes:
        return self.take(self.remaining, "rest")

    def end(self, what: str) -> None:
        """Refuse trailing bytes: a message that says more than it should is malformed."""
        if self.remaining:
            raise Ed2kError(f"{what}: {self.remaining} unexpected bytes at the end")


class Writer:
    """Builds one payload, front to back."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> Writer:
        self._parts.append(bytes(data))
        return self

    def u8(self, value: int) -> Writer:
        self._parts.append(_checked(value, 0xFF).to_bytes(1, "little"))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_U16.pack(_checked(value, 0xFFFF)))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(_checked(value, 0xFFFF_FFFF)))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_U64.pack(_checked(value, 0xFFFF_FFFF_FFFF_FFFF)))
        return self

    def f32(self, value: float) -> Writer:
        self._parts.append(_F32.pack(value))
        return self

    def hash16(self, value: bytes) -> Writer:
        if len(value) != HASH_SIZE:
            raise Ed2kError(f"a hash is {HASH_SIZE} bytes, not {len(value)}")
        self._parts.append(bytes(value))
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _checked(value: int, largest: int) -> int:
    if not 0 <= value <= largest:
        raise Ed2kError(f"{value} does not fit in 0..{largest}")
    return value
