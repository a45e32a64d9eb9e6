"""eD2K and Kad tags: typed, named values that carry most of both protocols' facts.

Two layouts share the type codes (aMule src/include/tags/TagTypes.h):

- eD2K (HELLO, file lists): a type byte; when its high bit is set the name is
  one byte that follows ("new" form), otherwise a 16-bit length and the name
  (a one-byte name is numeric). Types 0x11..0x20 are strings of 1..16 bytes
  whose length is the type itself.
- Kad: a type byte, then always a 16-bit length and the name.

A name of one byte is kept as an int (the protocol's numeric tag ids), any
other as bytes. Strings stay bytes as sent: they are attacker-controlled, and
`Tag.text()` is the one place they become display text. Integers of any
width decode to one `UINT` type and encode in the narrowest width, as aMule
does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias

from atalaya.networks.ed2k.wire import HASH_SIZE, Ed2kError, Reader, Writer


class TagType(IntEnum):
    HASH16 = 0x01
    STRING = 0x02
    UINT32 = 0x03
    FLOAT32 = 0x04
    BOOL = 0x05
    BOOLARRAY = 0x06
    BLOB = 0x07
    UINT16 = 0x08
    UINT8 = 0x09
    BSOB = 0x0A
    UINT64 = 0x0B


STR1: Final = 0x11
STR16: Final = 0x20
_INT_TYPES: Final = frozenset({TagType.UINT8, TagType.UINT16, TagType.UINT32, TagType.UINT64})

TagName: TypeAlias = int | bytes
TagValue: TypeAlias = int | float | bytes | bool | tuple[bool, ...]


class TagError(Ed2kError):
    """A tag that cannot be read, or one over the configured bounds."""


@dataclass(frozen=True, slots=True)
class TagLimits:
    max_tags: int = 256
    max_name: int = 256
    max_string: int = 64 * 1024
    max_blob: int = 64 * 1024


DEFAULT_LIMITS: Final = TagLimits()


@dataclass(frozen=True, slots=True)
class Tag:
    """One tag. ``kind`` is the logical type: integers are always ``UINT32``
    here whatever their width on the wire (``UINT64`` only above 32 bits)."""

    name: TagName
    kind: TagType
    value: TagValue

    @classmethod
    def uint(cls, name: TagName, value: int) -> Tag:
        kind = TagType.UINT64 if value > 0xFFFF_FFFF else TagType.UINT32
        return cls(name, kind, value)

    @classmethod
    def string(cls, name: TagName, value: bytes | str) -> Tag:
        raw = value.encode("utf-8") if isinstance(value, str) else value
        return cls(name, TagType.STRING, raw)

    @classmethod
    def hash16(cls, name: TagName, value: bytes) -> Tag:
        if len(value) != HASH_SIZE:
            raise TagError(f"a hash tag holds {HASH_SIZE} bytes, not {len(value)}")
        return cls(name, TagType.HASH16, value)

    def integer(self) -> int:
        if self.kind not in (TagType.UINT32, TagType.UINT64) or not isinstance(self.value, int):
            raise TagError(f"tag {self.name!r} is {self.kind.name}, not an integer")
        return self.value

    def raw(self) -> bytes:
        if not isinstance(self.value, bytes):
            raise TagError(f"tag {self.name!r} is {self.kind.name}, not bytes")
        return self.value

    def text(self, limit: int = 200) -> str:
        """A string tag as display text: UTF-8 with replacement, controls removed, cut."""
        shown = self.raw().decode("utf-8", "replace")
        cleaned = "".join(ch for ch in shown if ch.isprintable())
        return cleaned[:limit]


def _read_name(reader: Reader, length: int, limits: TagLimits) -> TagName:
    if length == 0:
        raise TagError("tag with an empty name")
    if length > limits.max_name:
        raise TagError(f"tag name of {length} bytes (limit {limits.max_name})")
    raw = reader.take(length, "tag name")
    return raw[0] if length == 1 else raw


def _value(reader: Reader, name: TagName, code: int, limits: TagLimits, *, kad: bool) -> Tag:
    if STR1 <= code <= STR16 and not kad:
        return Tag(name, TagType.STRING, reader.take(code - STR1 + 1, "short string tag"))
    try:
        kind = TagType(code)
    except ValueError:
        raise TagError(f"unknown tag type 0x{code:02x}") from None
    if kind is TagType.HASH16:
        return Tag(name, kind, reader.hash16("hash tag"))
    if kind is TagType.STRING:
        length = reader.u16("string tag length")
        if length > limits.max_string:
            raise TagError(f"string tag of {length} bytes (limit {limits.max_string})")
        return Tag(name, kind, reader.take(length, "string tag"))
    if kind in _INT_TYPES:
        width = {TagType.UINT8: 1, TagType.UINT16: 2, TagType.UINT32: 4, TagType.UINT64: 8}[kind]
        value = int.from_bytes(reader.take(width, f"{kind.name} tag"), "little")
        return Tag.uint(name, value)
    if kind is TagType.FLOAT32:
        return Tag(name, kind, reader.f32("float tag"))
    if kind is TagType.BSOB:
        size = reader.u8("bsob tag length")
        return Tag(name, kind, reader.take(size, "bsob tag"))
    if kad:
        raise TagError(f"tag type {kind.name} is not used in Kad")
    if kind is TagType.BOOL:
        return Tag(name, kind, reader.u8("bool tag") != 0)
    if kind is TagType.BOOLARRAY:
        count = reader.u16("bool array length")
        # aMule reads count // 8 + 1 bytes (one too many on multiples of 8);
        # reading the same keeps us in step with what aMule sends.
        raw = reader.take(count // 8 + 1, "bool array")
        return Tag(name, kind, tuple(bool(raw[i // 8] >> (i % 8) & 1) for i in range(count)))
    # BLOB: a 32-bit length, bounded before anything is taken.
    size = reader.u32("blob tag length")
    if size > limits.max_blob:
        raise TagError(f"blob tag of {size} bytes (limit {limits.max_blob})")
    return Tag(name, kind, reader.take(size, "blob tag"))


def read_tag(reader: Reader, limits: TagLimits = DEFAULT_LIMITS) -> Tag:
    """One eD2K tag (either name form)."""
    code = reader.u8("tag type")
    if code & 0x80:
        name: TagName = reader.u8("tag name")
        code &= 0x7F
    else:
        name = _read_name(reader, reader.u16("tag name length"), limits)
    return _value(reader, name, code, limits, kad=False)


def read_kad_tag(reader: Reader, limits: TagLimits = DEFAULT_LIMITS) -> Tag:
    """One Kad tag: type, 16-bit name length, name, value."""
    code = reader.u8("tag type")
    name = _read_name(reader, reader.u16("tag name length"), limits)
    return _value(reader, name, code, limits, kad=True)


def read_tag_list(reader: Reader, limits: TagLimits = DEFAULT_LIMITS) -> tuple[Tag, ...]:
    """A 32-bit count, then that many eD2K tags."""
    count = reader.u32("tag count")
    if count > limits.max_tags:
        raise TagError(f"{count} tags (limit {limits.max_tags})")
    return tuple(read_tag(reader, limits) for _ in range(count))


def read_kad_tag_list(reader: Reader, limits: TagLimits = DEFAULT_LIMITS) -> tuple[Tag, ...]:
    """An 8-bit count, then that many Kad tags."""
    count = reader.u8("tag count")
    if count > limits.max_tags:
        raise TagError(f"{count} tags (limit {limits.max_tags})")
    return tuple(read_kad_tag(reader, limits) for _ in range(count))


def _write_name(writer: Writer, name: TagName) -> None:
    raw = bytes([name]) if isinstance(name, int) else name
    if not raw or len(raw) > 0xFFFF:
        raise TagError("a tag name is 1..65535 bytes")
    writer.u16(len(raw)).raw(raw)


def _write_value(writer: Writer, tag: Tag, code: int) -> None:
    value = tag.value
    if code in (TagType.UINT8, TagType.UINT16, TagType.UINT32, TagType.UINT64):
        assert isinstance(value, int)
        width = {TagType.UINT8: 1, TagType.UINT16: 2, TagType.UINT32: 4, TagType.UINT64: 8}[
            TagType(code)
        ]
        writer.raw(value.to_bytes(width, "little"))
    elif code == TagType.FLOAT32:
        assert isinstance(value, float)
        writer.f32(value)
    elif code == TagType.HASH16:
        assert isinstance(value, bytes)
        writer.hash16(value)
    elif code == TagType.STRING:
        assert isinstance(value, bytes)
        writer.u16(len(value)).raw(value)
    elif STR1 <= code <= STR16:
        assert isinstance(value, bytes)
        writer.raw(value)
    elif code == TagType.BSOB:
        assert isinstance(value, bytes)
        writer.u8(len(value)).raw(value)
    elif code == TagType.BLOB:
        assert isinstance(value, bytes)
        writer.u32(len(value)).raw(value)
    elif code == TagType.BOOL:
        writer.u8(1 if value else 0)
    else:
        assert isinstance(value, tuple)
        bits = bytearray(len(value) // 8 + 1)
        for i, flag in enumerate(value):
            if flag:
                bits[i // 8] |= 1 << (i % 8)
        writer.u16(len(value)).raw(bytes(bits))


def _wire_type(tag: Tag, *, kad: bool) -> int:
    if tag.kind in (TagType.UINT32, TagType.UINT64):
        value = tag.integer()
        if value < 0:
            raise TagError("tag integers are unsigned")
        for kind, largest in (
            (TagType.UINT8, 0xFF),
            (TagType.UINT16, 0xFFFF),
            (TagType.UINT32, 0xFFFF_FFFF),
            (TagType.UINT64, 0xFFFF_FFFF_FFFF_FFFF),
        ):
            if value <= largest:
                return int(kind)
        raise TagError("tag integer over 64 bits")
    if tag.kind is TagType.STRING and not kad and 1 <= len(tag.raw()) <= 16:
        return STR1 + len(tag.raw()) - 1
    if tag.kind is TagType.BSOB and len(tag.raw()) > 0xFF:
        raise TagError("a bsob tag holds at most 255 bytes")
    if kad and tag.kind in (TagType.BOOL, TagType.BOOLARRAY, TagType.BLOB):
        raise TagError(f"tag type {tag.kind.name} is not used in Kad")
    return int(tag.kind)


def write_tag(writer: Writer, tag: Tag) -> None:
    """One eD2K tag, in the new form when its name is numeric."""
    code = _wire_type(tag, kad=False)
    if isinstance(tag.name, int):
        writer.u8(code | 0x80).u8(tag.name)
    else:
        writer.u8(code)
        _write_name(writer, tag.name)
    _write_value(writer, tag, code)


def write_kad_tag(writer: Writer, tag: Tag) -> None:
    code = _wire_type(tag, kad=True)
    writer.u8(code)
    _write_name(writer, tag.name)
    _write_value(writer, tag, code)


def write_tag_list(writer: Writer, tags: Sequence[Tag]) -> None:
    writer.u32(len(tags))
    for tag in tags:
        write_tag(writer, tag)


def write_kad_tag_list(writer: Writer, tags: Sequence[Tag]) -> None:
    writer.u8(len(tags))
    for tag in tags:
        write_kad_tag(writer, tag)


def find(tags: Iterable[Tag], name: TagName) -> Tag | None:
    """The first tag called ``name`` (peers may repeat a tag: the first one counts)."""
    for tag in tags:
        if tag.name == name:
            return tag
    return None
