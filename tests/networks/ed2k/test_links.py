"""ed2k:// links: the fields operators paste, and what a hostile link gets."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.networks.ed2k.links import Ed2kLink, parse_link
from atalaya.networks.ed2k.wire import Ed2kError

HASH = "0d5a20d356029316921a147d2ca58aaa"


def test_a_link_gives_name_size_and_hash() -> None:
    link = parse_link(f"ed2k://|file|archivo%20sint%C3%A9tico.bin|12000000|{HASH}|/")
    assert link == Ed2kLink("archivo sintético.bin", 12_000_000, bytes.fromhex(HASH))
    # Optional fields after the hash (h=AICH, sources) are allowed.
    assert parse_link(f"ed2k://|file|a|5|{HASH.upper()}|h=ABC|/").size == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("magnet:?xt=urn:btih:00", "starts with"),
        (f"ed2k://|file|a|-5|{HASH}|/", "not a number"),
        (f"ed2k://|file|a|0|{HASH}|/", "out of range"),
        ("ed2k://|file|a|5|xyz|/", "32 hex"),
        (f"ed2k://|file|a|5|{HASH}", "expected"),
        ("ed2k://|file|" + "a" * 9000 + f"|5|{HASH}|/", "limit"),
        (f"ed2k://|file|a|٣|{HASH}|/", "not a number"),
    ],
)
def test_bad_links_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(Ed2kError, match=message):
        parse_link(text)


@given(st.text(max_size=300))
def test_any_text_gives_a_link_or_a_typed_error(text: str) -> None:
    with contextlib.suppress(Ed2kError):
        parse_link(text)


def test_a_links_aich_hash_is_read_from_base32() -> None:
    master = bytes(range(20))
    text = base64.b32encode(master).decode()
    link = parse_link(f"ed2k://|file|a.bin|10|{'ab' * 16}|h={text}|/")
    assert link.aich == master
    assert parse_link(f"ed2k://|file|a.bin|10|{'ab' * 16}|/").aich is None
    assert parse_link(f"ed2k://|file|a.bin|10|{'ab' * 16}|h=short|/").aich is None
    assert parse_link(f"ed2k://|file|a.bin|10|{'ab' * 16}|h={'1' * 32}|/").aich is None
