"""eD2K and Kad tags: byte vectors from aMule's layouts, round trips, hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.ed2k.tags import (
    Tag,
    TagError,
    TagLimits,
    TagType,
    find,
    read_kad_tag,
    read_kad_tag_list,
    read_tag,
    read_tag_list,
    write_kad_tag,
    write_tag,
    write_tag_list,
)
from atalaya.networks.ed2k.wire import Ed2kError, Reader, Writer


def _one(data: bytes) -> Tag:
    reader = Reader(data)
    tag = read_tag(reader)
    reader.end("tag")
    return tag


def _written(tag: Tag) -> bytes:
    writer = Writer()
    write_tag(writer, tag)
    return writer.getvalue()


def test_new_form_numeric_name_and_narrowest_integer() -> None:
    # CT_VERSION (0x11) = 0x3C: type UINT8 (0x09) with the high bit, name, value.
    assert _written(Tag.uint(0x11, 0x3C)) == bytes([0x89, 0x11, 0x3C])
    assert _one(bytes([0x89, 0x11, 0x3C])) == Tag(0x11, TagType.UINT32, 0x3C)
    # 0x0102 needs UINT16 (0x08), little-endian.
    assert _written(Tag.uint(0xF9, 0x0102)) == bytes([0x88, 0xF9, 0x02, 0x01])
    assert _written(Tag.uint(0xFB, 1 << 40))[:2] == bytes([0x8B, 0xFB])


def test_short_strings_use_the_length_in_the_type() -> None:
    # CT_NAME "ab": STR2 = 0x12 with the high bit.
    assert _written(Tag.string(0x01, "ab")) == bytes([0x92, 0x01]) + b"ab"
    assert _one(bytes([0x92, 0x01]) + b"ab") == Tag(0x01, TagType.STRING, b"ab")
    long = b"x" * 17
    assert _written(Tag.string(0x01, long)) == bytes([0x82, 0x01, 17, 0]) + long


def test_old_form_names_numeric_and_textual() -> None:
    # Old form: type without the high bit, 16-bit name length, name.
    assert _one(bytes([0x03, 0x01, 0x00, 0x0F, 0x36, 0x12, 0, 0])) == Tag.uint(0x0F, 0x1236)
    tag = _one(bytes([0x03, 0x03, 0x00]) + b"abc" + bytes([1, 0, 0, 0]))
    assert tag.name == b"abc" and tag.integer() == 1


def test_kad_tags_always_carry_a_name_length() -> None:
    writer = Writer()
    write_kad_tag(writer, Tag.uint(0xFE, 0x04030201))
    assert writer.getvalue() == bytes([0x03, 0x01, 0x00, 0xFE, 1, 2, 3, 4])
    writer = Writer()
    write_kad_tag(writer, Tag.string(0x01, "ab"))
    # No short-string types in Kad.
    assert writer.getvalue() == bytes([0x02, 0x01, 0x00, 0x01, 0x02, 0x00]) + b"ab"
    assert read_kad_tag(Reader(writer.getvalue())) == Tag(0x01, TagType.STRING, b"ab")
    bsob = Tag(0x20, TagType.BSOB, b"\x01\x02")
    writer = Writer()
    write_kad_tag(writer, bsob)
    assert read_kad_tag(Reader(writer.getvalue())) == bsob


def test_bool_array_follows_amules_byte_count() -> None:
    tag = Tag(0x30, TagType.BOOLARRAY, (True, False, True, True, False, False, False, False))
    raw = _written(tag)
    # eight flags: 8 // 8 + 1 = 2 bytes, as aMule reads them.
    assert raw == bytes([0x86, 0x30, 8, 0, 0b1101, 0])
    assert _one(raw) == tag


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes([0x8C, 0x01]), "unknown tag type"),
        (bytes([0x82, 0x01, 0xFF, 0xFF]), "string tag of 65535"),
        (bytes([0x87, 0x01, 0xFF, 0xFF, 0xFF, 0x7F]), "blob tag of"),
        (bytes([0x03, 0x00, 0x00]), "empty name"),
        (bytes([0x83, 0x01, 0x01]), "needs 4 bytes"),
    ],
)
def test_hostile_tags_are_typed_errors(data: bytes, message: str) -> None:
    limits = TagLimits(max_string=1024, max_blob=1024)
    with pytest.raises(TagError if "needs" not in message else Ed2kError, match=message):
        read_tag(Reader(data), limits)


def test_tag_count_is_bounded_before_reading() -> None:
    with pytest.raises(TagError, match="tags"):
        read_tag_list(Reader(b"\xff\xff\xff\xff"), TagLimits(max_tags=10))
    with pytest.raises(TagError, match="tags"):
        read_kad_tag_list(Reader(b"\xff"), TagLimits(max_tags=10))


def test_text_removes_controls_and_cuts() -> None:
    tag = Tag.string(0x01, b"evil\x1b[31m\nname\xff" + b"z" * 500)
    shown = tag.text(limit=50)
    assert "\x1b" not in shown and "\n" not in shown and len(shown) == 50
    assert find([tag], 0x01) is tag and find([tag], 0x02) is None


_names = st.one_of(st.integers(0, 255), st.binary(min_size=2, max_size=20))
_tags = st.one_of(
    st.builds(Tag.uint, _names, st.integers(0, 2**64 - 1)),
    st.builds(Tag.string, _names, st.binary(max_size=300)),
    st.builds(Tag.hash16, _names, st.binary(min_size=16, max_size=16)),
    st.builds(Tag, _names, st.just(TagType.BLOB), st.binary(max_size=300)),
    st.builds(Tag, _names, st.just(TagType.BSOB), st.binary(max_size=255)),
    st.builds(Tag, _names, st.just(TagType.BOOL), st.booleans()),
)


@given(st.lists(_tags, max_size=20))
def test_tag_lists_round_trip(tags: list[Tag]) -> None:
    writer = Writer()
    write_tag_list(writer, tags)
    reader = Reader(writer.getvalue())
    assert read_tag_list(reader) == tuple(tags)
    reader.end("list")


@given(st.binary(max_size=400))
def test_any_bytes_give_tags_or_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(Ed2kError):
        read_tag_list(Reader(data), TagLimits(max_tags=32))
    with contextlib.suppress(Ed2kError):
        read_kad_tag_list(Reader(data), TagLimits(max_tags=32))
