from __future__ import annotations

import contextlib
import csv
import io
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atalaya.enrich.asn_csv import AsnCsvError, AsnCsvLimits, parse_asn_csv, parse_asn_text

SAMPLE = """\
1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."
1.0.4.0,1.0.7.255,38803,Gtelecom Pty Ltd
2001:200::,2001:200:ffff:ffff:ffff:ffff:ffff:ffff,2500,"WIDE ""Project"" Org"
"""


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_address_rows_of_both_versions() -> None:
    table = parse_asn_csv(lines(SAMPLE))
    assert len(table) == 3
    assert table.lookup(IPv4Address("1.0.0.0")) == (13335, "Cloudflare, Inc.")
    assert table.lookup(IPv4Address("1.0.0.255")) == (13335, "Cloudflare, Inc.")
    assert table.lookup(IPv4Address("1.0.1.0")) is None
    assert table.lookup(IPv4Address("1.0.6.1")) == (38803, "Gtelecom Pty Ltd")
    assert table.lookup(IPv6Address("2001:200::1")) == (2500, 'WIDE "Project" Org')
    assert table.lookup(IPv6Address("2001:201::")) is None
    assert table.lookup(IPv4Address("0.0.0.0")) is None


def test_numeric_rows_are_ipv4_unless_they_exceed_it() -> None:
    v4 = parse_asn_csv(["16777216,16777471,13335,Cloudflare\n"])
    assert v4.lookup(IPv4Address("1.0.0.7")) == (13335, "Cloudflare")
    v6 = parse_asn_csv(
        [
            "42540528726795050063891204319802818560,42540528806023212578155541913346768895,2500,WIDE\n"
        ]
    )
    assert v6.lookup(IPv6Address("2001:200::5")) == (2500, "WIDE")
    assert v6.lookup(IPv4Address("1.0.0.7")) is None


def test_ipv6_tables_with_the_longest_numbers() -> None:
    """ip-location-db's asn-ipv6-num.csv: integers up to 39 digits (fd00:: has 39)."""
    spans = [
        ("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 64500, "Made-up Six"),
        ("fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 64501, "Lab, made up"),
    ]
    numeric = "".join(
        f'{int(ip_address(a))},{int(ip_address(b))},{asn},"{org}"\n' for a, b, asn, org in spans
    )
    written = "".join(f'{a},{b},{asn},"{org}"\n' for a, b, asn, org in spans)
    assert len(str(int(ip_address("fd00::")))) == 39
    for text in (numeric, written):
        table = parse_asn_text(text)
        assert len(table) == 2
        assert table.lookup(IPv6Address("2001:db8:1:2:a:b:c:d")) == (64500, "Made-up Six")
        assert table.lookup(IPv6Address("fd77:1:2:3::a")) == (64501, "Lab, made up")
        assert table.lookup(IPv6Address("2001:db9::")) is None
        assert table.lookup(IPv4Address("32.1.13.184")) is None


def test_three_fields_and_blank_lines() -> None:
    table = parse_asn_csv(["\n", "10.0.0.0,10.0.0.9,64512\r\n", "  \n"])
    assert table.lookup(IPv4Address("10.0.0.3")) == (64512, None)


def test_overlapping_ranges_let_the_later_or_narrower_win() -> None:
    table = parse_asn_csv(
        [
            "0,99,1,outer\n",
            "10,19,2,inner\n",
            "90,120,3,later\n",
            "50,50,4,same start a\n",
            "50,60,5,same start b\n",
        ]
    )

    def at(n: int) -> int | None:
        found = table.lookup(IPv4Address(n))
        return found[0] if found else None

    assert [at(n) for n in (0, 9, 10, 19, 20, 49)] == [1, 1, 2, 2, 1, 1]
    assert [at(n) for n in (50, 51, 60, 61, 89, 90, 120, 121)] == [4, 5, 5, 1, 1, 3, 3, None]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1.0.0.0,1.0.0.255\n", "2 fields"),
        ("1.0.0.0,1.0.0.255,1,a,b\n", "5 fields"),
        ("1.0.0.9,1.0.0.0,1,x\n", "ends before it starts"),
        ("1.0.0.0,::1,1,x\n", "different kinds"),
        ("1.0.0.0,16777217,1,x\n", "different kinds"),
        ("bad,1.0.0.1,1,x\n", "not an address or a number"),
        ("1.0.0.0,1.0.0.1,AS1,x\n", "not an AS number"),
        ("1.0.0.0,1.0.0.1,\u00b2,x\n", "not an AS number"),
        ("1.0.0.0,1.0.0.1,99999999999,x\n", "not an AS number"),
        ("+5,6,1,x\n", "not an address or a number"),
        ("1" * 45 + ",1,1,x\n", "too large"),
        ('1.0.0.0,1.0.0.1,1,"unclosed\n', "line 1"),
        ("٣,٤,1,x\n", "not an address"),
    ],
)
def test_bad_lines_fail_with_their_reason(line: str, message: str) -> None:
    with pytest.raises(AsnCsvError, match=message):
        parse_asn_csv(lines(line))


def test_limits() -> None:
    with pytest.raises(AsnCsvError, match="longer than"):
        parse_asn_csv(["1.0.0.0,1.0.0.1,1," + "x" * 2000 + "\n"])
    with pytest.raises(AsnCsvError, match="more than 2 lines"):
        parse_asn_csv(["0,0,1\n", "1,1,1\n", "2,2,1\n"], AsnCsvLimits(max_rows=2))
    long_org = parse_asn_csv(["0,0,1," + "y" * 400 + "\n"])
    found = long_org.lookup(IPv4Address(0))
    assert found is not None and found[1] == "y" * 300


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=6))
def test_any_text_parses_or_fails_with_the_typed_error(text_lines: list[str]) -> None:
    with contextlib.suppress(AsnCsvError):
        parse_asn_csv([line + "\n" for line in text_lines])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2**32 - 1),
            st.integers(min_value=0, max_value=2**20),
            st.integers(min_value=0, max_value=2**32 - 1),
            st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
        ),
        max_size=20,
    ),
    st.booleans(),
)
def test_disjoint_ranges_round_trip(
    rows: list[tuple[int, int, int, str]], as_addresses: bool
) -> None:
    # Make the drawn ranges disjoint, then write them as the CSV a package ships.
    spans: list[tuple[int, int, int, str]] = []
    taken = -1
    for drawn, width, asn, org in sorted(rows):
        start = max(drawn, taken + 1)
        end = min(start + width, 2**32 - 1)
        if start > end:
            continue
        spans.append((start, end, asn, org))
        taken = end
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for start, end, asn, org in spans:
        bounds = (str(ip_address(start)), str(ip_address(end))) if as_addresses else (start, end)
        writer.writerow([*bounds, asn, org])
    table = parse_asn_csv(lines(out.getvalue()))
    for start, end, asn, org in spans:
        for n in {start, end, (start + end) // 2}:
            assert table.lookup(IPv4Address(n)) == (asn, org.strip()[:300] or None)
        if start > 0 and (not spans or all(not (s <= start - 1 <= e) for s, e, _, _ in spans)):
            assert table.lookup(IPv4Address(start - 1)) is None


ranges_strategy = st.lists(
    st.tuples(
        st.integers(0, 200),
        st.integers(0, 60),
        st.integers(1, 2**32 - 1),
        st.text(alphabet=st.sampled_from('ab ,"x'), max_size=6),
    ),
    max_size=25,
)


def write_csv(rows: list[tuple[int, int, int, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for start, width, asn, org in rows:
        writer.writerow([start, start + width, asn, org])
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(ranges_strategy)
def test_overlaps_resolve_to_the_latest_start_then_the_narrowest(
    rows: list[tuple[int, int, int, str]],
) -> None:
    table = parse_asn_text(write_csv(rows))
    for probe in range(0, 262):
        covering = [(s, s + w, a) for s, w, a, _ in rows if s <= probe <= s + w]
        found = table.lookup(IPv4Address(probe))
        if not covering:
            assert found is None
            continue
        best_start = max(c[0] for c in covering)
        best_end = min(c[1] for c in covering if c[0] == best_start)
        winners = {c[2] for c in covering if c[:2] == (best_start, best_end)}
        assert found is not None and found[0] in winners


@settings(max_examples=300, deadline=None)
@given(ranges_strategy, st.booleans())
def test_whole_text_and_line_parsers_agree(
    rows: list[tuple[int, int, int, str]], crlf: bool
) -> None:
    text = write_csv(rows)
    if crlf:
        text = text.replace("\n", "\r\n")
    by_text = parse_asn_text(text)
    by_line = parse_asn_csv(lines(text))
    assert len(by_text) == len(by_line)
    for probe in range(0, 262):
        assert by_text.lookup(IPv4Address(probe)) == by_line.lookup(IPv4Address(probe))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('0123456789,"\r\na:. '), max_size=120))
def test_whole_text_parser_fails_only_with_the_typed_error(text: str) -> None:
    with contextlib.suppress(AsnCsvError):
        parse_asn_text(text)
