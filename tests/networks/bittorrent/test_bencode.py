"""Bencode: valid vectors, libtorrent-style table of malformed inputs, truncation, properties.

The malformed table follows the cases of libtorrent's test_bdecode.cpp, each
mapped to the reason (and offset) this decoder must give. Where libtorrent
accepts with a "soft error" (unsorted or duplicate keys, leading zeros),
this decoder is stricter and refuses by default; `Limits` can let unsorted
and repeated keys through for .torrent files (LENIENT below), never by
default, so KRPC stays strict.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent.bencode import (
    DEFAULT_LIMITS,
    BencodeEncodeError,
    BencodeError,
    BValue,
    Limits,
    Scan,
    decode,
    decode_prefix,
    encode,
    scan,
)

# (encoding, value) pairs checked by hand against BEP 3.
VALID: list[tuple[bytes, BValue]] = [
    (b"i0e", 0),
    (b"i42e", 42),
    (b"i-42e", -42),
    (b"i12453e", 12453),
    (b"i9223372036854775807e", 9223372036854775807),
    (b"i-9223372036854775807e", -9223372036854775807),
    # Beyond 64 bits: Python ints carry it exactly (libtorrent would overflow).
    (b"i18446744073709551615e", 18446744073709551615),
    (b"i" + b"9" * 40 + b"e", int("9" * 40)),
    (b"i-" + b"9" * 40 + b"e", -int("9" * 40)),
    (b"0:", b""),
    (b"4:spam", b"spam"),
    (b"26:abcdefghijklmnopqrstuvwxyz", b"abcdefghijklmnopqrstuvwxyz"),
    (b"3:\x00\xff:", b"\x00\xff:"),
    (b"3:i1e", b"i1e"),
    (b"le", []),
    (b"l4:spam4:eggse", [b"spam", b"eggs"]),
    (b"li12453e3:aaae", [12453, b"aaa"]),
    (b"llelee", [[], []]),
    (b"de", {}),
    (b"d3:cow3:moo4:spam4:eggse", {b"cow": b"moo", b"spam": b"eggs"}),
    (b"d4:spaml1:a1:bee", {b"spam": [b"a", b"b"]}),
    (b"d1:X10:01234567891:ai12453e1:b3:aaa1:c3:bbbe", {
        b"X": b"0123456789", b"a": 12453, b"b": b"aaa", b"c": b"bbb"
    }),
    (b"d3:a\x00bi1ee", {b"a\x00b": 1}),
    (b"d0:i1e1:ai2ee", {b"": 1, b"a": 2}),
    (b"d1:ai1e2:aai2ee", {b"a": 1, b"aa": 2}),
    (b"d2:aai1e1:bi2ee", {b"aa": 1, b"b": 2}),
    # Keys sort as raw bytes: 'Z' (0x5a) before 'a' (0x61), 0x7f before 0x80.
    (b"d1:Zi1e1:ai2e1:\x7fi3e1:\x80i4ee", {b"Z": 1, b"a": 2, b"\x7f": 3, b"\x80": 4}),
    (b"d1:ad1:xi1eee", {b"a": {b"x": 1}}),
    (b"li1e3:fooli1ei2eed1:xi1eee", [1, b"foo", [1, 2], {b"x": 1}]),
    (b"d1:ai1e1:b3:foo1:cli1ei2ee1:dd1:xi1eee", {
        b"a": 1, b"b": b"foo", b"c": [1, 2], b"d": {b"x": 1}
    }),
]  # fmt: skip


@pytest.mark.parametrize(("data", "value"), VALID)
def test_valid_vector_decodes(data: bytes, value: BValue) -> None:
    assert decode(data) == value
    assert decode_prefix(data) == (value, len(data))


@pytest.mark.parametrize(("data", "value"), VALID)
def test_valid_vector_encodes_to_itself(data: bytes, value: BValue) -> None:
    assert encode(value) == data


@pytest.mark.parametrize(("data", "value"), VALID)
def test_valid_vector_every_prefix_is_truncated(data: bytes, value: BValue) -> None:
    for end in range(len(data)):
        with pytest.raises(BencodeError) as info:
            decode(data[:end])
        reason = info.value.reason
        assert reason in {"unexpected end of input", "string runs past end of input"}, (
            data[:end],
            reason,
        )
        assert 0 <= info.value.offset <= end


@pytest.mark.parametrize(("data", "value"), VALID)
def test_valid_vector_fed_byte_by_byte(data: bytes, value: BValue) -> None:
    # A stream reader retries as bytes arrive: only the complete value decodes.
    buffer = b""
    results = []
    for byte in data:
        buffer += bytes([byte])
        try:
            results.append(decode_prefix(buffer))
        except BencodeError as e:
            assert "end" in e.reason
    assert results == [(value, len(data))]


@pytest.mark.parametrize(("data", "value"), VALID)
def test_valid_vector_followed_by_raw_bytes(data: bytes, value: BValue) -> None:
    tail = b"\x00raw piece bytes e:l"
    assert decode_prefix(data + tail) == (value, len(data))
    assert decode_prefix(b"xx" + data + tail, start=2) == (value, len(data) + 2)
    with pytest.raises(BencodeError) as info:
        decode(data + tail)
    assert (info.value.reason, info.value.offset) == ("trailing data after value", len(data))


# (input, reason, offset). Names after "#" are libtorrent's test names.
MALFORMED: list[tuple[bytes, str, int]] = [
    (b"", "unexpected end of input", 0),  # empty_string
    (b"e", "unexpected 'e'", 0),  # premature_e
    (b"x", "invalid type byte 0x78", 0),
    (b"-10:foobar", "invalid type byte 0x2d", 0),  # negative_length_prefix
    (b" i1e", "invalid type byte 0x20", 0),
    # integers
    (b"ie", "invalid integer", 1),  # nodigit_int
    (b"i-e", "invalid integer", 2),  # minus_int
    (b"i35412-5633e", "invalid integer", 6),  # interior_minus_int
    (b"i92337203t854775807e", "invalid integer", 9),  # int_invalid_digit
    (b"i--1e", "invalid integer", 2),
    (b"i+1e", "invalid integer", 1),
    (b"i1.5e", "invalid integer", 2),
    (b"i 1e", "invalid integer", 1),
    (b"i\xd9\xa1e", "invalid integer", 1),  # an Arabic-Indic digit, not ASCII
    (b"i01e", "non-canonical integer", 0),  # int_leading_zero
    (b"i00e", "non-canonical integer", 0),
    (b"i-01e", "non-canonical integer", 0),
    (b"i-0e", "non-canonical integer", 0),
    (b"i" + b"1" * 41 + b"e", "integer longer than 40 digits", 0),  # int_overflow2
    (b"i-" + b"1" * 41 + b"e", "integer longer than 40 digits", 0),
    (b"i" + b"1" * 10_000, "integer longer than 40 digits", 0),
    (b"i", "unexpected end of input", 1),  # unexpected_eof_int
    (b"i10", "unexpected end of input", 3),  # unexpected_eof_int2
    (b"i-", "unexpected end of input", 2),  # int_truncated
    # strings
    (b"06:foobar", "non-canonical string length", 0),  # leading_zero_length_prefix
    (b"00:", "non-canonical string length", 0),
    (b"100:..", "string runs past end of input", 0),  # partial_string
    (b"99999999:foobar", "string longer than 1048576 bytes", 0),  # close_overflow_length_prefix
    (b"999999:foobar", "string runs past end of input", 0),
    (b"1048577:x", "string longer than 1048576 bytes", 0),
    (b"199999999:foobar", "string longer than 1048576 bytes", 0),  # overflow_length_prefix2
    (b"18446744073709551615:foobar", "string longer than 1048576 bytes", 0),
    (b"1" * 21 + b":x", "string longer than 1048576 bytes", 0),
    (b"1" * 5000, "string longer than 1048576 bytes", 0),
    (b"3", "unexpected end of input", 1),
    (b"3x", "expected ':' after string length", 1),
    (b"3-:abc", "expected ':' after string length", 1),
    # lists
    (b"l", "unexpected end of input", 1),
    (b"l2:..", "unexpected end of input", 5),  # unepected_eof
    (b"l2:..0", "unexpected end of input", 6),  # unepected_eof2
    (b"li1e", "unexpected end of input", 4),
    (b"lx", "invalid type byte 0x78", 1),
    # dictionaries
    (b"d", "unexpected end of input", 1),
    (b"d1:ai1e1:be", "dictionary key without value", 10),  # dict_key_novalue
    (b"d1:ae", "dictionary key without value", 4),
    (b"di5e1:ae", "dictionary key is not a string", 4),  # dict_nonstring_key
    (b"di2ei0ee", "dictionary key is not a string", 4),  # expected_string
    (b"dlee1:ae", "dictionary key is not a string", 3),
    (b"ddee1:ae", "dictionary key is not a string", 3),
    (b"df00:", "invalid type byte 0x66", 1),  # expected_string_dict_key2
    (b"d1000:..e", "string runs past end of input", 1),  # unexpected_eof_dict_key
    (b"d1000:", "string runs past end of input", 1),  # unexpected_eof_dict_key2
    (b"d1000", "unexpected end of input", 5),  # expected_colon_dict
    (b"d2:abi1e2:aai2ee", "unsorted dictionary key", 12),  # dict_unordered_keys
    (b"d2:bai1e2:aai2ee", "unsorted dictionary key", 12),
    (b"d2:aai1e1:ai2ee", "unsorted dictionary key", 11),
    (b"d1:bi1e1:ai2ee", "unsorted dictionary key", 10),
    (b"d1:ai1e1:ai2ee", "duplicate dictionary key", 10),
    (b"d2:aai1e2:aai2ee", "duplicate dictionary key", 12),  # dict_duplicate_key
    (b"d1:ad1:bi1e1:ai2eee", "unsorted dictionary key", 14),
    # parse_length_overflow: lengths that run far past the input
    (b"d1:a1919191010:11111", "string longer than 1048576 bytes", 4),
    (b"d2143289344:a4:aaaae", "string longer than 1048576 bytes", 1),
    (b"d214328934114:a4:aaaae", "string longer than 1048576 bytes", 1),
    (b"d9205357638345293824:a4:aaaae", "string longer than 1048576 bytes", 1),
    (b"d1:a9205357638345293824:11111", "string longer than 1048576 bytes", 4),
    # trailing data
    (b"i1ei2e", "trailing data after value", 3),
    (b"lee", "trailing data after value", 2),
    (b"0:0:", "trailing data after value", 2),
    (b"dee", "trailing data after value", 2),
    (b"4:spam\n", "trailing data after value", 6),
    # invalid_encoding: a KRPC message whose 'id' value is cut short
    (
        bytes.fromhex(
            "64313a6164323a6964323a2a2119899fcd5fc9bc80c176fee0c6842df6fcb8393a696e666f5f"
            "6861ae6832303a1478d5b0dcf6824232a0d688eb48570189404ebc65313a7139"
            "3a6765745f7065657278ff3a74383aaad4a1887a8dc3d6313a7931ae7165"
        ),
        "invalid type byte 0x19",
        13,
    ),
]


@pytest.mark.parametrize(("data", "reason", "offset"), MALFORMED)
def test_malformed_input_gives_its_reason(data: bytes, reason: str, offset: int) -> None:
    with pytest.raises(BencodeError) as info:
        decode(data)
    assert (info.value.reason, info.value.offset) == (reason, offset)
    assert str(info.value) == f"{reason} at byte {offset}"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("data", "reason", "offset"), MALFORMED)
def test_malformed_input_fails_the_same_at_an_offset(data: bytes, reason: str, offset: int) -> None:
    if reason == "trailing data after value":
        return  # decode_prefix stops at the end of the value by design
    with pytest.raises(BencodeError) as info:
        decode_prefix(b"junk" + data, start=4)
    assert (info.value.reason, info.value.offset) == (reason, offset + 4)


def test_string_length_of_exactly_the_limit_is_accepted() -> None:
    data = b"1048576:" + b"\x01" * (1 << 20)
    assert decode(data, Limits(max_size=2 << 20)) == b"\x01" * (1 << 20)


def test_string_limit_is_configurable() -> None:
    limits = Limits(max_string=3)
    assert decode(b"3:abc", limits) == b"abc"
    with pytest.raises(BencodeError, match="string longer than 3 bytes at byte 0"):
        decode(b"4:abcd", limits)


def test_integer_digit_limit_is_configurable() -> None:
    limits = Limits(max_int_digits=3)
    assert decode(b"i-999e", limits) == -999
    with pytest.raises(BencodeError, match="integer longer than 3 digits"):
        decode(b"i1000e", limits)


@pytest.mark.parametrize("kind", [b"l", b"d1:a"])
def test_depth_limit(kind: bytes) -> None:
    # depth_limit: as deep as allowed decodes; one more level does not.
    def nested(depth: int) -> bytes:
        if kind == b"l":
            return b"l" * depth + b"e" * depth
        return b"d1:a" * (depth - 1) + b"le" + b"e" * (depth - 1)

    limits = Limits(max_depth=10)
    decode(nested(10), limits)
    with pytest.raises(BencodeError) as info:
        decode(nested(11), limits)
    assert info.value.reason == "nesting deeper than 10"
    # The default limit, far below Python's recursion limit: no RecursionError.
    with pytest.raises(BencodeError, match="nesting deeper than 32"):
        decode(b"l" * 100_000 + b"e" * 100_000)


def test_token_limit() -> None:
    # item_limit: each string is one token, the list two (open and close).
    limits = Limits(max_tokens=1000)
    assert decode(b"l" + b"0:" * 998 + b"e", limits) == [b""] * 998
    with pytest.raises(BencodeError) as info:
        decode(b"l" + b"0:" * 999 + b"e", limits)
    assert info.value.reason == "more than 1000 tokens"
    with pytest.raises(BencodeError, match="more than 100000 tokens"):
        decode(b"l" + b"i0e" * 200_000 + b"e", Limits(max_size=1 << 21))


def test_size_limit() -> None:
    # exceed_buf_limit: the whole input is refused before any parsing.
    limits = Limits(max_size=8)
    assert decode(b"l3:fooe", limits) == [b"foo"]
    with pytest.raises(BencodeError) as info:
        decode(b"l3:fooi1ee", limits)
    assert (info.value.reason, info.value.offset) == ("input larger than 8 bytes", 0)
    # decode_prefix bounds what lies from `start` on.
    assert decode_prefix(b"xxxxl3:fooe", limits, start=4) == ([b"foo"], 11)


@pytest.mark.parametrize("start", [-1, 4, 100])
def test_start_outside_the_input(start: int) -> None:
    with pytest.raises(BencodeError, match="start offset outside the input"):
        decode_prefix(b"i1e", start=start)


def test_start_at_the_end_is_an_unexpected_end() -> None:
    with pytest.raises(BencodeError, match="unexpected end of input at byte 3"):
        decode_prefix(b"i1e", start=3)


def test_list_and_dict_of_a_thousand_items() -> None:
    # list_ints / dict_ints
    data = b"l" + b"".join(b"i%de" % i for i in range(1000)) + b"e"
    assert decode(data) == list(range(1000))
    data = b"d" + b"".join(b"4:%04di%de" % (i, i) for i in range(1000)) + b"e"
    assert decode(data) == {b"%04d" % i: i for i in range(1000)}


def test_a_megabyte_string_is_returned_whole() -> None:
    # string_prefix1
    payload = bytes(range(256)) * 4096
    value, end = decode_prefix(b"1048576:" + payload + b"tail", Limits(max_size=2 << 20))
    assert value == payload
    assert end == 8 + len(payload)


def test_encode_sorts_keys_and_accepts_text() -> None:
    value = {"spam": ["a", b"b", 1], b"cow": "moo", "": {}}
    assert encode(value) == b"d0:de3:cow3:moo4:spaml1:a1:bi1eee"  # type: ignore[arg-type]
    assert encode("é") == b"2:\xc3\xa9"
    assert encode((1, 2)) == b"li1ei2ee"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [True, None, 1.5, {1: 2}, {"a": 1, b"a": 2}, [object()], {b"k": {2.0}}],
)
def test_encode_refuses_what_bencode_cannot_carry(value: object) -> None:
    with pytest.raises(BencodeEncodeError):
        encode(value)  # type: ignore[arg-type]


# (input, value, unsorted keys, repeated keys) under limits that forgive both.
LENIENT_LIMITS = Limits(sorted_keys=False, unique_keys=False)
LENIENT: list[tuple[bytes, BValue, int, int]] = [
    (b"d1:bi1e1:ai2ee", {b"b": 1, b"a": 2}, 1, 0),
    (b"d1:ai1e1:ai2ee", {b"a": 1}, 0, 1),  # the first value wins, as in libtorrent
    (b"d1:ai1e1:bi2e1:ai3ee", {b"a": 1, b"b": 2}, 1, 1),
    (b"d2:aai1e1:ai2ee", {b"aa": 1, b"a": 2}, 1, 0),
    (b"d1:ad1:xi1e1:xi2ee1:ai3ee", {b"a": {b"x": 1}}, 0, 2),
    (b"l d1:ci1e1:bi2ee de d1:ai1e1:ai1ee e".replace(b" ", b""),
     [{b"c": 1, b"b": 2}, {}, {b"a": 1}], 1, 1),
    (b"d1:ali1ei2ee1:ale1:a0:e", {b"a": [1, 2]}, 0, 2),  # a repeat's value is still parsed
]  # fmt: skip


@pytest.mark.parametrize(("data", "value", "unsorted", "repeated"), LENIENT)
def test_lenient_limits_forgive_key_order_and_repeats(
    data: bytes, value: BValue, unsorted: int, repeated: int
) -> None:
    assert _counts(scan(data, LENIENT_LIMITS)) == (value, len(data), unsorted, repeated)
    assert decode(data, LENIENT_LIMITS) == value
    # The default limits (KRPC's and the peer wire's build on them) refuse what was forgiven.
    with pytest.raises(BencodeError, match=r"(unsorted|duplicate) dictionary key"):
        decode(data)
    if not repeated:
        assert _counts(scan(data, Limits(sorted_keys=False))) == (value, len(data), unsorted, 0)
    else:
        with pytest.raises(BencodeError, match="duplicate dictionary key"):
            decode(data, Limits(sorted_keys=False))
    if not unsorted:
        assert _counts(scan(data, Limits(unique_keys=False))) == (value, len(data), 0, repeated)


@pytest.mark.parametrize(("data", "value", "unsorted", "repeated"), LENIENT)
def test_lenient_vector_fed_byte_by_byte(
    data: bytes, value: BValue, unsorted: int, repeated: int
) -> None:
    buffer = b""
    results = []
    for byte in data:
        buffer += bytes([byte])
        try:
            results.append(_counts(scan(buffer, LENIENT_LIMITS)))
        except BencodeError as e:
            assert "end" in e.reason
    assert results == [(value, len(data), unsorted, repeated)]


def _counts(found: Scan) -> tuple[BValue, int, int, int]:
    return found.value, found.end, found.unsorted_keys, found.duplicate_keys


def test_scan_counts_tokens_as_the_limit_does() -> None:
    # d, 1:a, i1e, 1:b, l, i2e, e, e: eight tokens, and a limit of eight is enough.
    data = b"d1:ai1e1:bli2eee"
    assert scan(data) == Scan({b"a": 1, b"b": [2]}, len(data), 0, 0, 8)
    assert scan(data, Limits(max_tokens=8)).tokens == 8
    with pytest.raises(BencodeError, match="more than 7 tokens"):
        scan(data, Limits(max_tokens=7))
    assert scan(b"i1ee") == Scan(1, 3, 0, 0, 1)


def test_deep_values_encode_and_decode_without_recursion() -> None:
    depth = 5000
    value: BValue = b"x"
    for _ in range(depth):
        value = {b"d": [value]}
    data = encode(value)
    assert data == b"d1:dl" * depth + b"1:x" + b"ee" * depth
    # Compared through their encodings: == on values this deep recurses too.
    assert encode(decode(data, Limits(max_depth=2 * depth))) == data
    with pytest.raises(BencodeError, match="nesting deeper than 32"):
        decode(data)


# --- properties ---------------------------------------------------------------------------

values: st.SearchStrategy[BValue] = st.recursive(
    st.integers() | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.binary(max_size=8), children, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_round_trip(value: BValue) -> None:
    data = encode(value)
    assert decode(data) == value
    assert decode_prefix(data + b"e1:x", start=0) == (value, len(data))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_bencode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except BencodeError as e:
        assert 0 <= e.offset <= len(data)
        return
    # Whatever the strict decoder accepts is canonical: it encodes back to itself.
    assert encode(value) == data


# Bytes that are likely to form (nearly) valid bencode, to reach deep states.
bencodish = st.lists(
    st.sampled_from([b"i", b"e", b"l", b"d", b"0", b"1", b"2", b":", b"-", b"a", b"3:abc", b"i1e"]),
    max_size=60,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(bencodish, st.sampled_from([DEFAULT_LIMITS, Limits(max_depth=2, max_tokens=8)]))
def test_bencode_like_bytes_raise_only_bencode_error(data: bytes, limits: Limits) -> None:
    try:
        value = decode(data, limits)
    except BencodeError:
        return
    assert encode(value) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=20))
def test_decode_prefix_consistency(data: bytes, tail: bytes) -> None:
    # What decode_prefix accepts, decode accepts alone, and the tail does not matter.
    try:
        value, end = decode_prefix(data)
    except BencodeError:
        return
    assert 0 < end <= len(data)
    assert decode(data[:end]) == value
    assert encode(value) == data[:end]
    assert decode_prefix(data[:end] + tail) == (value, end)


@settings(max_examples=200, deadline=None)
@given(values, st.data())
def test_truncated_encodings_report_an_unexpected_end(value: BValue, data: st.DataObject) -> None:
    encoded = encode(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(BencodeError) as info:
        decode(encoded[:cut])
    assert info.value.reason in {"unexpected end of input", "string runs past end of input"}


@settings(max_examples=500, deadline=None)
@given(bencodish)
def test_lenient_limits_raise_only_bencode_error_and_agree_with_strict(data: bytes) -> None:
    try:
        found = scan(data, LENIENT_LIMITS)
    except BencodeError:
        return
    assert 0 < found.end <= len(data)
    try:
        strict = decode_prefix(data)
    except BencodeError:
        assert found.unsorted_keys or found.duplicate_keys
        return
    # Whatever strict decoding accepts, lenient decoding reads alike and forgives nothing.
    assert (found.value, found.end, found.unsorted_keys, found.duplicate_keys) == (
        *strict,
        0,
        0,
    )
