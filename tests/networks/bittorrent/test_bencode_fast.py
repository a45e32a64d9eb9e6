"""Bencode's compiled path (bencode2, then our limits) against the pure-Python decoder.

`decode` must give exactly what `decode_pure` gives: the same value, or a
`BencodeError` with the same reason and offset, for any input and limits.
The vectors below sit on each limit, where the walk over bencode2's value
decides; the properties feed arbitrary, bencode-like and mutated valid bytes.
"""

from __future__ import annotations

import bencode2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.networks.bittorrent import bencode
from atalaya.networks.bittorrent.bencode import (
    DEFAULT_LIMITS,
    BencodeError,
    BValue,
    Limits,
    decode,
    decode_pure,
    encode,
)
from atalaya.networks.bittorrent.krpc import KRPC_LIMITS

SMALL = Limits(max_size=64, max_depth=2, max_tokens=8, max_string=64, max_int_digits=3)
LIMITS = [DEFAULT_LIMITS, KRPC_LIMITS, SMALL, Limits(max_int_digits=0), Limits(max_string=4)]


def outcome(decoder: object, data: bytes, limits: Limits) -> tuple[str, object]:
    try:
        return "value", decoder(data, limits)  # type: ignore[operator]
    except BencodeError as e:
        return "error", (e.reason, e.offset, str(e))


def assert_agree(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[str, object]:
    fast = outcome(decode, data, limits)
    assert fast == outcome(decode_pure, data, limits), data
    return fast


def test_the_compiled_extension_is_loaded() -> None:
    # Without it bencode2 falls back to Python and `decode` to the pure path.
    assert bencode2.COMPILED
    assert DEFAULT_LIMITS._fast is not None
    assert KRPC_LIMITS._fast is not None


def test_valid_strict_input_does_not_reach_the_pure_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*_: object) -> BValue:
        raise AssertionError("the pure decoder ran")

    monkeypatch.setattr(bencode, "decode_pure", refuse)
    data = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
    top = decode(data, KRPC_LIMITS)
    assert isinstance(top, dict)
    assert top[b"q"] == b"ping"


@pytest.mark.parametrize(
    ("limits", "data", "value"),
    [
        (Limits(sorted_keys=False), b"d1:bi1e1:ai2ee", {b"b": 1, b"a": 2}),
        (Limits(unique_keys=False), b"d1:ai1e1:ai2ee", {b"a": 1}),
    ],
)
def test_lenient_limits_use_the_pure_decoder(
    limits: Limits, data: bytes, value: BValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bencode2, "bdecode", lambda _: pytest.fail("bencode2 ran"))
    assert limits._fast is None
    assert decode(data, limits) == value


@pytest.mark.parametrize("error", [ValueError, RecursionError, OverflowError])
def test_any_bencode2_failure_is_decoded_again(
    error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_: bytes) -> BValue:
        raise error("from bencode2")

    monkeypatch.setattr(bencode2, "bdecode", fail)
    assert decode(b"li1ee") == [1]
    with pytest.raises(BencodeError) as info:
        decode(b"i01e")
    assert (info.value.reason, info.value.offset) == ("non-canonical integer", 0)


def test_other_input_types_keep_the_pure_decoder() -> None:
    # bencode2 returns bytes where the pure decoder slices its input.
    items: object = decode(bytearray(b"l1:ae"))  # type: ignore[arg-type]
    assert items == [bytearray(b"a")]
    string: object = decode(bytearray(b"1:a"))  # type: ignore[arg-type]
    assert type(string) is bytearray


# (limits, input just within, input one past, reason, offset of the failure)
LIMIT_VECTORS: list[tuple[Limits, bytes, bytes, str, int]] = [
    (Limits(max_depth=3), b"llleee", b"lllleeee", "nesting deeper than 3", 3),
    (Limits(max_depth=2), b"d1:ad1:ai1eee", b"d1:ad1:ad1:ai1eeee", "nesting deeper than 2", 8),
    (Limits(max_depth=1), b"l1:ae", b"ll1:aee", "nesting deeper than 1", 1),
    (Limits(max_depth=0), b"i1e", b"le", "nesting deeper than 0", 0),
    # tokens: a list is two, each item one; a dict's key is one more.
    (Limits(max_tokens=4), b"li1ei2ee", b"li1ei2ei3ee", "more than 4 tokens", 10),
    (Limits(max_tokens=4), b"d1:ai1ee", b"d1:ai1e1:bi2ee", "more than 4 tokens", 10),
    (Limits(max_tokens=6), b"llelee", b"llelelee", "more than 6 tokens", 6),
    (Limits(max_tokens=1), b"i1e", b"le", "more than 1 tokens", 1),
    (Limits(max_tokens=0), b"", b"i1e", "more than 0 tokens", 0),
    # integer digits, the minus sign not counted
    (Limits(max_int_digits=3), b"i-999e", b"i-1000e", "integer longer than 3 digits", 0),
    (Limits(max_int_digits=3), b"li999ee", b"li1000ee", "integer longer than 3 digits", 1),
    (Limits(max_int_digits=3), b"d1:ai999ee", b"d1:ai1000ee", "integer longer than 3 digits", 4),
    (Limits(max_int_digits=1), b"i9e", b"i10e", "integer longer than 1 digits", 0),
    (Limits(max_int_digits=0), b"0:", b"i0e", "integer longer than 0 digits", 0),
    (
        DEFAULT_LIMITS,
        b"i" + b"9" * 40 + b"e",
        b"i1" + b"0" * 40 + b"e",
        "integer longer than 40 digits",
        0,
    ),
    # string length, and the input's size
    (Limits(max_string=3), b"3:abc", b"4:abcd", "string longer than 3 bytes", 0),
    (Limits(max_string=3), b"l3:abce", b"l3:abc4:abcde", "string longer than 3 bytes", 6),
    (Limits(max_string=3), b"d3:abci1ee", b"d4:abcdi1ee", "string longer than 3 bytes", 1),
    (Limits(max_size=5), b"3:abc", b"4:abcd", "input larger than 5 bytes", 0),
]


@pytest.mark.parametrize(("limits", "within", "past", "reason", "offset"), LIMIT_VECTORS)
def test_each_limit_at_its_edge(
    limits: Limits, within: bytes, past: bytes, reason: str, offset: int
) -> None:
    if within:
        assert assert_agree(within, limits)[0] == "value"
    assert assert_agree(past, limits) == ("error", (reason, offset, f"{reason} at byte {offset}"))


def test_krpc_limits_at_their_edges() -> None:
    # KRPC: depth 4, 600 tokens, 20-digit integers, 8 KiB.
    assert assert_agree(b"d1:ad1:ald1:ai1eeeee", KRPC_LIMITS)[0] == "value"
    assert assert_agree(b"d1:ad1:ald1:ali1eeeeee", KRPC_LIMITS)[1][:2] == (  # type: ignore[index]
        "nesting deeper than 4",
        13,
    )
    peers = b"l" + b"6:abcdef" * 598 + b"e"
    assert assert_agree(peers, KRPC_LIMITS)[0] == "value"
    assert assert_agree(peers[:-1] + b"6:abcdefe", KRPC_LIMITS)[1][:2] == (  # type: ignore[index]
        "more than 600 tokens",
        1 + 8 * 599,
    )
    assert assert_agree(b"i-" + b"9" * 20 + b"e", KRPC_LIMITS)[0] == "value"
    assert assert_agree(b"i-1" + b"0" * 20 + b"e", KRPC_LIMITS)[0] == "error"


def test_integers_past_pythons_digit_limit_are_refused_as_ours() -> None:
    # CPython refuses int() of 4,301 digits with ValueError inside bencode2.
    data = b"i" + b"7" * 5000 + b"e"
    assert assert_agree(data) == (
        "error",
        ("integer longer than 40 digits", 0, "integer longer than 40 digits at byte 0"),
    )
    # A limit above CPython's is held to CPython's, still as a BencodeError.
    generous = Limits(max_int_digits=10_000)
    assert assert_agree(data, generous)[1][:2] == ("integer longer than 4300 digits", 0)  # type: ignore[index]
    assert assert_agree(b"i-" + b"7" * 4300 + b"e", generous)[0] == "value"


def test_nesting_past_bencode2s_own_bound_still_decodes_when_our_limit_allows() -> None:
    deep = b"l" * 5000 + b"e" * 5000
    limits = Limits(max_depth=6000, max_tokens=20_000)
    # Compared through their encodings: == on values this deep recurses.
    assert encode(decode(deep, limits)) == encode(decode_pure(deep, limits)) == deep
    with pytest.raises(BencodeError, match="nesting deeper than 32 at byte 32"):
        decode(b"l" * 100_000 + b"e" * 100_000)


def test_failures_inside_and_after_a_value_agree() -> None:
    for data in [
        b"d1:bi1e1:ai2ee",
        b"d1:ai1e1:ai2ee",
        b"di1ei2ee",
        b"i-0e",
        b"i01e",
        b"03:abc",
        b"i1ei2e",
        b"l1:ae1:x",
        b"d1:a",
        b"",
        b"e",
        b"d0:i1e0:i2ee",
        b"d1:ai1e2:aai2e1:ai3ee",
        b"d2:aai1e1:ai2ee",
    ]:
        assert assert_agree(data)[0] == "error", data


# --- properties ---------------------------------------------------------------------------

values: st.SearchStrategy[BValue] = st.recursive(
    st.integers(-(10**45), 10**45) | st.binary(max_size=12) | st.sampled_from([0, -1, b""]),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=3), children, max_size=5)
    ),
    max_leaves=30,
)
bencodish = st.lists(
    st.sampled_from(
        [b"i", b"e", b"l", b"d", b"0", b"1", b"2", b":", b"-", b"a", b"1:a", b"1:b", b"i1e", b"0:"]
    ),
    max_size=60,
).map(b"".join)
limits_any = st.sampled_from(LIMITS)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=200), limits_any)
def test_arbitrary_bytes_agree(data: bytes, limits: Limits) -> None:
    assert_agree(data, limits)


@settings(max_examples=600, deadline=None)
@given(bencodish, limits_any)
def test_bencode_like_bytes_agree(data: bytes, limits: Limits) -> None:
    assert_agree(data, limits)


@settings(max_examples=400, deadline=None)
@given(values, limits_any)
def test_valid_encodings_agree(value: BValue, limits: Limits) -> None:
    kind, _ = assert_agree(encode(value), limits)
    if limits == DEFAULT_LIMITS and kind == "value":
        assert decode(encode(value)) == value


@settings(max_examples=600, deadline=None)
@given(values, st.data(), limits_any)
def test_mutated_valid_encodings_agree(value: BValue, data: st.DataObject, limits: Limits) -> None:
    raw = encode(value)
    pos = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(pos, min(len(raw), pos + 4)))
    junk = data.draw(st.binary(max_size=3) | st.sampled_from([b"e", b"0", b"i0e", b"1:a", b"le"]))
    for mutated in (
        raw[:pos] + junk + raw[end:],  # replaced
        raw[:pos] + junk + raw[pos:],  # inserted
        raw[:pos] + raw[end:],  # deleted
        raw[:end] + raw[pos:],  # repeated
        raw[:pos],  # cut
    ):
        assert_agree(mutated, limits)
