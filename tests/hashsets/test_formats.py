from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.hashsets.formats import (
    MAX_JSON_DEPTH,
    HashSetFormatError,
    HashSetReader,
    Record,
    Rejected,
    format_for,
    open_reader,
)

CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media"


class OneByte(io.RawIOBase):
    """A stream that hands out one byte per read, to test chunk boundaries everywhere."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= len(self._data) or len(buffer) == 0:
            return 0
        buffer[0] = self._data[self._pos]
        self._pos += 1
        return 1


def read(
    fmt: str,
    data: bytes,
    *,
    category: str | None = None,
    algorithm: str | None = None,
    one_byte: bool = False,
) -> tuple[list[Record | Rejected], HashSetReader]:
    make: Callable[[], Any] = (lambda: OneByte(data)) if one_byte else (lambda: io.BytesIO(data))
    reader = open_reader(
        fmt, make(), source="set.x", reopen=make, category=category, algorithm=algorithm
    )
    return list(reader), reader


def records(items: list[Record | Rejected]) -> list[Record]:
    assert all(isinstance(i, Record) for i in items), items
    return [i for i in items if isinstance(i, Record)]


def rejected(items: list[Record | Rejected]) -> list[Rejected]:
    return [i for i in items if isinstance(i, Rejected)]


def fails(fmt: str, data: bytes, **kwargs: Any) -> HashSetFormatError:
    with pytest.raises(HashSetFormatError) as info:
        read(fmt, data, **kwargs)
    exc = info.value
    assert str(exc).startswith(f"set.x:{exc.line}: ")
    assert "\n" not in str(exc)
    # The same error, on the same line, when the bytes arrive one at a time.
    with pytest.raises(HashSetFormatError) as again:
        read(fmt, data, one_byte=True, **kwargs)
    assert str(again.value) == str(exc)
    return exc


def rand_hex(rng: random.Random, size: int) -> str:
    return rng.randbytes(size).hex()


# ------------------------------------------------------------------ format choice


def test_format_from_extension_or_option() -> None:
    assert format_for(Path("a/b.JSON")) == "vics"
    assert format_for(Path("b.csv")) == "csv"
    assert format_for(Path("b.txt")) == "lines"
    assert format_for(Path("b")) == "lines"
    assert format_for(Path("b.json"), "lines") == "lines"
    with pytest.raises(ValueError, match="unknown format"):
        format_for(Path("b.json"), "xml")


# --------------------------------------------------------------------------- VICS


def vics_doc(media: list[Any], context: str | None = CONTEXT) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if context is not None:
        doc["@odata.context"] = context
    doc["value"] = media
    return doc


def media(rng: random.Random, mid: int, category: Any = 1) -> dict[str, Any]:
    return {
        "MediaID": mid,
        "Category": category,
        "MD5": rand_hex(rng, 16).upper(),
        "SHA1": rand_hex(rng, 20).upper(),
        "MediaSize": rng.randint(1, 10**9),
        "DateUpdated": "2026-01-02T03:04:05.0000Z",
        "IsPrecategorized": "true",
        "MediaFiles": [{"FileName": f"synthetic-{mid}.bin", "Deleted": False}],
    }


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("one_byte", [False, True])
def test_vics_reads_records_and_keeps_extras(indent: int | None, one_byte: bool) -> None:
    rng = random.Random(1)
    recs = [media(rng, i, category=c) for i, c in enumerate([1, 2, "3", 0], 1)]
    data = json.dumps(vics_doc(recs), indent=indent).encode()
    items, reader = read("vics", data, one_byte=one_byte)
    got = records(items)
    assert reader.version == CONTEXT
    assert [r.ordinal for r in got] == [1, 2, 3, 4]
    for src, rec in zip(recs, got, strict=True):
        assert rec.hashes == {
            "md5": bytes.fromhex(src["MD5"]),
            "sha1": bytes.fromhex(src["SHA1"]),
        }
        assert rec.category_label == str(src["Category"])
        assert rec.attributes is not None
        assert rec.attributes["MediaID"] == src["MediaID"]
        assert rec.attributes["MediaFiles"] == src["MediaFiles"]
        assert "MD5" not in rec.attributes and "Category" not in rec.attributes
        assert rec.line is None


def test_vics_locates_records_by_line() -> None:
    rng = random.Random(2)
    recs = [media(rng, i) for i in range(1, 6)]
    recs[3]["MD5"] = "not hex at all"
    text = json.dumps(vics_doc(recs), indent=2)
    data = text.encode()
    items, reader = read("vics", data)
    bad = rejected(items)
    assert len(bad) == 1 and bad[0].ordinal == 4 and "MD5" in bad[0].message
    expected = {}
    ordinal = 0
    for n, line in enumerate(text.splitlines(), 1):
        if line == "    {":  # indent=2: each media record opens at this depth
            ordinal += 1
            expected[ordinal] = n
    assert reader.locate({4}) == {4: expected[4]}
    assert reader.locate({1, 5}) == {1: expected[1], 5: expected[5]}


def test_vics_bom_sha256_and_odata_metadata() -> None:
    rng = random.Random(3)
    digest = rand_hex(rng, 32)
    doc = {"odata.metadata": "v1.3", "value": [{"SHA256": digest, "category": "A"}]}
    items, reader = read("vics", b"\xef\xbb\xbf" + json.dumps(doc).encode())
    (rec,) = records(items)
    assert rec.hashes == {"sha256": bytes.fromhex(digest)}
    assert rec.category_label == "A"
    assert rec.attributes is None
    assert reader.version == "v1.3"


def test_vics_context_is_optional() -> None:
    rng = random.Random(4)
    items, reader = read("vics", json.dumps(vics_doc([media(rng, 1)], None)).encode())
    assert len(records(items)) == 1
    assert reader.version is None


def test_vics_missing_category_uses_default_or_is_rejected() -> None:
    rng = random.Random(5)
    a, b = media(rng, 1), media(rng, 2, category=None)
    del a["Category"]
    data = json.dumps(vics_doc([a, b])).encode()
    bad = rejected(read("vics", data)[0])
    assert [r.ordinal for r in bad] == [1, 2]
    assert all("no category" in r.message for r in bad)
    got = records(read("vics", data, category="abuse")[0])
    assert [r.category_label for r in got] == ["abuse", "abuse"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MD5": "0" * 31}, "md5 must be 32 hex digits"),
        ({"SHA1": "g" * 40}, "not hex digits"),
        ({"MD5": 12345}, "must be a string"),
        ({"MD5": None, "SHA1": ""}, "no MD5 or SHA1"),
        ({"Category": True}, "must be an integer or a label"),
        ({"Category": [1]}, "must be an integer or a label"),
        ({"Category": "x" * 101}, "longer than 100"),
        ({"Category": "a\x00b"}, "NUL"),
    ],
)
def test_vics_bad_records_are_rejected_alone(change: dict[str, Any], message: str) -> None:
    rng = random.Random(6)
    recs = [media(rng, 1), media(rng, 2), media(rng, 3)]
    recs[1].update(change)
    items, _ = read("vics", json.dumps(vics_doc(recs)).encode())
    assert [type(i).__name__ for i in items] == ["Record", "Rejected", "Record"]
    assert message in rejected(items)[0].message


def test_vics_non_object_records_and_case_exports_are_rejected() -> None:
    rng = random.Random(7)
    case = {"CaseID": "x", "Media": [media(rng, 1)]}
    items, _ = read("vics", json.dumps(vics_doc([5, "x", None, [], case])).encode())
    bad = rejected(items)
    assert len(bad) == 5
    assert "not a number" in bad[0].message or "a number" in bad[0].message
    assert "case export" in bad[4].message


def pretty(doc: Any) -> bytes:
    return json.dumps(doc, indent=2).encode()


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"", 1, "empty file"),
        (b"[1, 2]", 1, "top level is not a JSON object"),
        (b'"value"', 1, "top level is not a JSON object"),
        (b'{"a":\n[1,\n2]}', 3, 'no "value" array'),
        (b'{"value":\n{"a": 2}}', 2, '"value" must be an array'),
        (b'{"value": 7}', 1, '"value" must be an array'),
        (b'{"value": [\n{"MD5": "00",\n"x": tru}]}', 3, "invalid JSON"),
        (b'{"value": [\n{"MD5": "00"}\n]} {"more": 1}', 3, "invalid JSON"),
        (b'{"value": [\n{"MD5": "00\xff"}]}', 2, "invalid JSON"),
        (b'{"value": [\n{"a": 1e999}]}', 2, "invalid JSON"),
        (b'{"value": [\n{"a": NaN}]}', 2, "invalid JSON"),
        (b'{"value": [\n{"a": 18446744073709551616}]}', 2, "invalid JSON"),
        (b'{"value": [\n{"a": 1,\n', 2, "invalid JSON"),  # EOF: the last line
    ],
)
def test_vics_documents_that_are_not_what_they_claim(data: bytes, line: int, message: str) -> None:
    exc = fails("vics", data)
    assert exc.line == line
    assert message in exc.message


def test_vics_truncated_file_is_rejected_at_its_end() -> None:
    rng = random.Random(8)
    data = pretty(vics_doc([media(rng, i) for i in range(1, 4)]))
    cut = data[: len(data) * 2 // 3]
    exc = fails("vics", cut)
    assert "invalid JSON" in exc.message
    assert exc.line == cut.count(b"\n") + 1


def test_vics_deep_nesting_is_refused_before_parsing() -> None:
    deep = b'{"value": [{"MD5": "x", "a":\n' + b"[" * 200_000 + b"]" * 200_000 + b"}]}"
    exc = fails("vics", deep)
    assert f"deeper than {MAX_JSON_DEPTH}" in exc.message
    assert exc.line == 2


def test_vics_brackets_inside_strings_do_not_count() -> None:
    rng = random.Random(9)
    rec = media(rng, 1)
    rec["Comments"] = "[" * 1000 + '\\"{' * 500 + "\\"
    items, _ = read("vics", json.dumps(vics_doc([rec, media(rng, 2)])).encode())
    assert len(records(items)) == 2
    items, _ = read("vics", json.dumps(vics_doc([rec])).encode(), one_byte=True)
    assert records(items)[0].attributes == {
        k: v for k, v in rec.items() if k not in ("MD5", "SHA1", "Category")
    }


def test_vics_huge_record_is_refused() -> None:
    rng = random.Random(10)
    big = media(rng, 2)
    big["Comments"] = "x" * (5 << 20)
    data = pretty(vics_doc([media(rng, 1), big]))
    with pytest.raises(HashSetFormatError, match="larger than 4 MiB") as info:
        read("vics", data)
    lines_before = data[: data.index(b'"MediaID": 2')].count(b"\n")
    assert info.value.line == lines_before  # the line where that record opens


# ---------------------------------------------------------------------------- CSV


def test_csv_all_columns() -> None:
    rng = random.Random(11)
    md5, sha1, sha256, ed2k = (rand_hex(rng, n) for n in (16, 20, 32, 16))
    btih1, btih2, root, piece = (
        rand_hex(rng, 20),
        rand_hex(rng, 32),
        rand_hex(rng, 32),
        rand_hex(rng, 20),
    )
    data = (
        "MD5, sha1 ,sha256,ed2k,btih,btv2_root,btv1_16384,category,name\r\n"
        f'{md5},{sha1.upper()},{sha256},{ed2k},{btih1},{root},{piece},A,"a, b.bin"\r\n'
        f",,,,{btih2},,,2,\r\n"
    ).encode()
    got = records(read("csv", data)[0])
    assert got[0].hashes == {
        "md5": bytes.fromhex(md5),
        "sha1": bytes.fromhex(sha1),
        "sha256": bytes.fromhex(sha256),
        "ed2k": bytes.fromhex(ed2k),
        "btih": bytes.fromhex(btih1),
        "btv2_root": bytes.fromhex(root),
        "btv1_16384": bytes.fromhex(piece),
    }
    assert (got[0].category_label, got[0].name, got[0].line) == ("A", "a, b.bin", 2)
    assert got[1].hashes == {"btih2": bytes.fromhex(btih2)}
    assert (got[1].category_label, got[1].name, got[1].line) == ("2", None, 3)


def test_csv_lines_count_multiline_fields_and_blank_lines() -> None:
    rng = random.Random(12)
    a, b = rand_hex(rng, 20), rand_hex(rng, 20)
    data = f'sha1,name\n{a},"two\nlines"\n\n{b},x\n'.encode()
    got = records(read("csv", data, category="abuse")[0])
    assert [(r.line, r.ordinal, r.name) for r in got] == [(2, 1, "two\nlines"), (5, 2, "x")]
    assert [r.category_label for r in got] == ["abuse", "abuse"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("sha1,colour", "unknown column 'colour'"),
        ("sha1,btv1_1000", "unknown column 'btv1_1000'"),
        ("sha1,SHA1,category", "appears twice"),
        ("category,name", "no hash column"),
        ("sha1", "no category column"),
        ("", "no hash column"),
    ],
)
def test_csv_wrong_columns(header: str, message: str) -> None:
    rng = random.Random(13)
    exc = fails("csv", f"{header}\n{rand_hex(rng, 20)},1\n".encode())
    assert exc.line == 1
    assert message in exc.message


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{sha1},1,extra", "3 fields, the header has 2"),
        ("{sha1}", "1 fields, the header has 2"),
        ("{short},1", "sha1 must be 40 hex digits, got 39"),
        ("{nonhex},1", "not hex digits"),
        (",1", "no hash in this row"),
        ("{sha1},", "no category"),
    ],
)
def test_csv_bad_rows_are_rejected_alone(row: str, message: str) -> None:
    rng = random.Random(14)
    good = rand_hex(rng, 20)
    sha1 = rand_hex(rng, 20)
    bad_row = row.format(sha1=sha1, short=sha1[:-1], nonhex="z" * 40)
    data = f"sha1,category\n{good},1\n{bad_row}\n{good},1\n".encode()
    items, _ = read("csv", data)
    assert [type(i).__name__ for i in items] == ["Record", "Rejected", "Record"]
    (bad,) = rejected(items)
    assert bad.line == 3
    assert message in bad.message


def test_csv_size_column_is_a_size_attribute() -> None:
    rng = random.Random(21)
    rows = [rand_hex(rng, 16) for _ in range(6)]
    data = (
        "ed2k,category,size\n"
        f"{rows[0]},1,9728000\n"
        f"{rows[1]},1,\n"
        f"{rows[2]},1, 42 \n"
        f"{rows[3]},1,-5\n"
        f"{rows[4]},1,0\n"
        f"{rows[5]},1,99999999999999999999\n"
    ).encode()
    items, _ = read("csv", data)
    good = [i for i in items if isinstance(i, Record)]
    assert [r.attributes for r in good] == [{"size": 9728000}, None, {"size": 42}]
    assert [(r.line, r.message) for r in rejected(items)] == [
        (5, "size '-5' is not a whole number of bytes"),
        (6, "size 0 out of range (1 to 9223372036854775807)"),
        (7, "size '99999999999999999999' is not a whole number of bytes"),
    ]


def test_csv_btih_length_decides_version() -> None:
    rng = random.Random(15)
    data = f"btih,category\n{rand_hex(rng, 24)},1\n".encode()
    (bad,) = rejected(read("csv", data)[0])
    assert "40 (v1) or 64 (v2)" in bad.message


def test_csv_undecodable_name_rejects_its_row_only() -> None:
    rng = random.Random(16)
    data = b"sha1,name,category\n" + rand_hex(rng, 20).encode() + b",caf\xe9,1\n"
    data += rand_hex(rng, 20).encode() + b",ok,1\n"
    items, _ = read("csv", data)
    assert "not valid UTF-8" in rejected(items)[0].message
    assert records(items[1:])[0].name == "ok"


def test_csv_malformed_quoting_and_truncation() -> None:
    rng = random.Random(17)
    exc = fails("csv", f'sha1,category\n{rand_hex(rng, 20)},"1\n'.encode())
    assert "malformed CSV" in exc.message
    assert exc.line == 2
    truncated = f"sha1,category\n{rand_hex(rng, 20)},1\n{rand_hex(rng, 20)[:17]}".encode()
    items, _ = read("csv", truncated)
    assert rejected(items)[0].line == 3


@pytest.mark.slow  # 2 MiB, then again one byte per read
def test_csv_empty_file_and_long_line() -> None:
    assert "empty file" in fails("csv", b"").message
    exc = fails("csv", b"sha1,name\n" + b"x" * (2 << 20) + b"\n", category="a")
    assert exc.line == 2 and "longer than" in exc.message


# -------------------------------------------------------------------- plain lists


def test_lines_infer_algorithm_and_skip_comments() -> None:
    rng = random.Random(18)
    md5, sha1, sha256 = rand_hex(rng, 16), rand_hex(rng, 20), rand_hex(rng, 32)
    data = f"\ufeff# synthetic\n\n{md5}\r\n  {sha1.upper()}  \n# x\n{sha256}".encode()
    got = records(read("lines", data, category="B")[0])
    assert [r.hashes for r in got] == [
        {"md5": bytes.fromhex(md5)},
        {"sha1": bytes.fromhex(sha1)},
        {"sha256": bytes.fromhex(sha256)},
    ]
    assert [r.line for r in got] == [3, 4, 6]
    assert {r.category_label for r in got} == {"B"}


def test_lines_with_algorithm() -> None:
    rng = random.Random(19)
    ed2k, v1, v2 = rand_hex(rng, 16), rand_hex(rng, 20), rand_hex(rng, 32)
    got = records(read("lines", f"{ed2k}\n".encode(), category="1", algorithm="ed2k")[0])
    assert got[0].hashes == {"ed2k": bytes.fromhex(ed2k)}
    got = records(read("lines", f"{v1}\n{v2}\n".encode(), category="1", algorithm="btih")[0])
    assert [set(r.hashes) for r in got] == [{"btih"}, {"btih2"}]
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        read("lines", b"", category="1", algorithm="crc32")


def test_lines_need_a_category() -> None:
    assert "give --category" in fails("lines", b"00\n").message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("abc", "cannot tell the algorithm of a 3-character hash"),
        ("z" * 40, "not hex digits"),
        ("é" * 20, "not hex digits"),
        ("0" * 2000, "longer than 1024 bytes"),
        ("{md5} name.jpg", "cannot tell the algorithm"),
    ],
)
def test_lines_bad_lines_are_rejected_alone(line: str, message: str) -> None:
    rng = random.Random(20)
    good = rand_hex(rng, 16)
    data = f"{good}\n{line.format(md5=good)}\n{good}\n".encode()
    items, _ = read("lines", data, category="abuse")
    assert [type(i).__name__ for i in items] == ["Record", "Rejected", "Record"]
    (bad,) = rejected(items)
    assert (bad.line, bad.ordinal) == (2, 2)
    assert message in bad.message


def test_lines_wrong_length_for_given_algorithm_and_truncated_last_line() -> None:
    rng = random.Random(21)
    sha1 = rand_hex(rng, 20)
    items, _ = read("lines", f"{sha1}\n{sha1[:30]}".encode(), category="a", algorithm="sha1")
    (bad,) = rejected(items)
    assert bad.line == 2 and "sha1 must be 40 hex digits, got 30" in bad.message


# ------------------------------------------------------------ properties


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(fmt=st.sampled_from(["vics", "csv", "lines"]), data=st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_format_errors(fmt: str, data: bytes) -> None:
    try:
        items, reader = read(fmt, data, category="abuse")
        reader.locate({i.ordinal for i in items})
    except HashSetFormatError:
        pass


_json_values = st.recursive(
    # yajl holds integers in 64 bits; larger ones are "invalid JSON" (tested above).
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        _json_values
        | st.fixed_dictionaries(
            {"MD5": st.text(alphabet="0123456789abcdefABCDEFg ", max_size=34)},
            optional={"Category": _json_values, "SHA1": _json_values, "x": _json_values},
        ),
        max_size=5,
    ),
    indent=st.sampled_from([None, 1]),
)
def test_arbitrary_json_records_give_records_or_rejections(
    items: list[Any], indent: int | None
) -> None:
    data = json.dumps({"value": items}, indent=indent).encode()
    got, reader = read("vics", data, category="1")
    assert len(got) == len(items)
    assert [g.ordinal for g in got] == list(range(1, len(items) + 1))
    where = reader.locate({g.ordinal for g in got})
    assert set(where) == {g.ordinal for g in got}


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), fmt=st.sampled_from(["csv", "lines"]))
def test_arbitrary_text_raises_only_format_errors(text: str, fmt: str) -> None:
    with contextlib.suppress(HashSetFormatError):
        read(fmt, text.encode("utf-8", "surrogatepass"), category="c")


_digest = {"md5": 16, "sha1": 20, "sha256": 32}
_synthetic_records = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(sorted(_digest)), st.just(b""), min_size=1, max_size=3),
        st.sampled_from(["0", "1", "2", "3", "4", "A", "b", "abuse"]),
        st.none()
        | st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            min_size=1,
            max_size=30,
        ),
        st.randoms(use_true_random=False),
    ),
    max_size=20,
)


def _fill(spec: list[Any]) -> list[tuple[dict[str, bytes], str, str | None]]:
    out = []
    for algos, label, name, rng in spec:
        out.append(({a: rng.randbytes(_digest[a]) for a in algos}, label, name))
    return out


@settings(max_examples=100, deadline=None)
@given(spec=_synthetic_records)
def test_round_trip_csv(spec: list[Any]) -> None:
    sets = _fill(spec)
    buf = io.StringIO()
    import csv

    writer = csv.writer(buf)
    writer.writerow(["md5", "sha1", "sha256", "category", "name"])
    for hashes, label, name in sets:
        writer.writerow(
            [hashes[a].hex() if a in hashes else "" for a in ("md5", "sha1", "sha256")]
            + [label, name or ""]
        )
    got = records(read("csv", buf.getvalue().encode())[0])
    assert [(r.hashes, r.category_label, r.name) for r in got] == [
        (h, label, name or None) for h, label, name in sets
    ]


@settings(max_examples=100, deadline=None)
@given(spec=_synthetic_records, indent=st.sampled_from([None, 2]))
def test_round_trip_vics(spec: list[Any], indent: int | None) -> None:
    sets = _fill(spec)
    docs = []
    for n, (hashes, label, name) in enumerate(sets, 1):
        rec: dict[str, Any] = {"MediaID": n, "Category": int(label) if label.isdigit() else label}
        rec.update({a.upper(): v.hex() for a, v in hashes.items()})
        if name is not None:
            rec["Comments"] = name
        docs.append(rec)
    got = records(read("vics", json.dumps(vics_doc(docs), indent=indent).encode())[0])
    assert [(r.hashes, r.category_label) for r in got] == [(h, label) for h, label, _ in sets]
    assert [r.attributes for r in got] == [
        {"MediaID": n, **({"Comments": name} if name is not None else {})}
        for n, (_, _, name) in enumerate(sets, 1)
    ]


@settings(max_examples=100, deadline=None)
@given(spec=_synthetic_records)
def test_round_trip_lines(spec: list[Any]) -> None:
    sets = _fill(spec)
    lines = [next(iter(h.items())) for h, _, _ in sets]
    data = "".join(f"{v.hex()}\n" for _, v in lines).encode()
    got = records(read("lines", data, category="abuse")[0])
    assert [r.hashes for r in got] == [{a: v} for a, v in lines]
