"""Block-at-a-time hex lines agree with the line-at-a-time readers they replace.

Random inputs mix clean hashes with everything the slow paths judge (blank
lines, comments, CRLF, spaces, bad bytes, over-long lines, a BOM, no final
newline), read in blocks small enough to cut lines anywhere.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.errors import AtalayaError
from atalaya.hashsets import cli, hexlines
from atalaya.hashsets.formats import DigestBatch, LinesReader, Record, Rejected

_HEX = "0123456789abcdefABCDEF"


def _hex(length: int) -> st.SearchStrategy[bytes]:
    return st.text(_HEX, min_size=length, max_size=length).map(str.encode)


_LINE = st.one_of(
    _hex(40),
    _hex(32),
    _hex(64),
    _hex(40).map(lambda h: h + b"\r"),
    _hex(40).map(lambda h: b" " + h),
    _hex(39),
    _hex(40).map(lambda h: h[:10] + b"g" + h[11:]),
    _hex(40).map(lambda h: h[:20] + b"\xff" + h[21:]),
    st.sampled_from([b"", b"   ", b"# comment", b"\t", b"\r", b"\xef\xbb\xbf" + b"a" * 40]),
    st.integers(1018, 1030).map(lambda n: b"b" * n),
    st.binary(max_size=12),
)


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_LINE, max_size=30))
    text = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    if lines and draw(st.booleans()):
        text += b"\n"
    if draw(st.booleans()):
        text = b"\xef\xbb\xbf" + text
    return text


def _expand(items: Iterator[Record | Rejected | DigestBatch]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(item.records() if isinstance(item, DigestBatch) else [item])
    return sorted(out, key=lambda r: r.ordinal)


@pytest.mark.parametrize("block_bytes", [1, 7, 100, 1 << 20])
@pytest.mark.parametrize("algorithm", [None, "btih", "md5"])
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=_documents())
def test_plain_list_batches_yield_what_lines_yield(
    document: bytes, algorithm: str | None, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hexlines, "BLOCK_BYTES", block_bytes)

    def reader() -> LinesReader:
        return LinesReader(
            io.BytesIO(document), source="list.txt", category="abuse", algorithm=algorithm
        )

    assert _expand(reader().batches()) == list(reader())


def _old_stdin_lines(stream: io.BytesIO) -> Iterator[tuple[str, str]]:
    """`atalaya match`'s stdin reader before hexlines (its reference)."""
    n = 0
    while raw := stream.readline(cli.MAX_MATCH_LINE + 1):
        n += 1
        if len(raw) > cli.MAX_MATCH_LINE and not raw.endswith(b"\n"):
            while (rest := stream.readline(1 << 16)) and not rest.endswith(b"\n"):
                pass
        yield f"line {n}", raw.decode("utf-8", "replace")


def _old_match(
    document: bytes, algorithm: str | None, skip_invalid: bool
) -> tuple[list[tuple[str, bytes]], int, str | None]:
    queries, skipped, error = cli._parse_hashes(
        list(_old_stdin_lines(io.BytesIO(document))), algorithm, skip_invalid
    )
    return queries, skipped, str(error) if error else None


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def _new_match(
    document: bytes, algorithm: str | None, skip_invalid: bool, batch: int
) -> tuple[list[tuple[str, bytes]], int, str | None]:
    queries: list[tuple[str, bytes]] = []
    skipped = 0
    error: AtalayaError | None = None
    for part in cli._stdin_batches(batch, algorithm, skip_invalid):
        queries.extend((name, digest) for _, name, digest in part.pairs())
        skipped += part.skipped
        error = part.error or error
    return queries, skipped, str(error) if error else None


@pytest.mark.parametrize("block_bytes", [1, 7, 1 << 20])
@pytest.mark.parametrize("batch", [1, 3, 100_000])
@pytest.mark.parametrize(
    ("algorithm", "skip_invalid"), [(None, False), (None, True), ("md5", True)]
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=_documents())
def test_match_stdin_batches_read_what_lines_read(
    document: bytes,
    algorithm: str | None,
    skip_invalid: bool,
    batch: int,
    block_bytes: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hexlines, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(sys, "stdin", _Stdin(document))
    assert _new_match(document, algorithm, skip_invalid, batch) == _old_match(
        document, algorithm, skip_invalid
    )


def test_a_uniform_block_is_decoded_whole() -> None:
    digests = np.random.default_rng(7).integers(0, 256, size=(1000, 20), dtype=np.uint8)
    text = b"".join(row.tobytes().hex().encode() + b"\n" for row in digests)
    (block,) = hexlines.blocks(io.BytesIO(text), max_line=1024)
    clean = hexlines.clean_lines(block, {40})
    assert clean.mask.all()
    positions, decoded = clean.by_length[40]
    assert np.array_equal(positions, np.arange(1000))
    assert np.array_equal(decoded, digests)


def test_an_over_long_line_is_cut_and_skipped_in_bounded_pieces() -> None:
    text = b"a" * 40 + b"\n" + b"x" * 5000 + b"\n" + b"b" * 40
    lines = [
        block.raw_line(i)
        for block in hexlines.blocks(io.BytesIO(text), max_line=100, block_bytes=64)
        for i in range(len(block))
    ]
    assert lines == [b"a" * 40 + b"\n", b"x" * 101 + b"\n", b"b" * 40]
