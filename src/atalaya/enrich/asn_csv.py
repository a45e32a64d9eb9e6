"""ip-location-db ASN tables: `start,end,asn,organisation` per line, in memory.

The `@ip-location-db/asn` package ships these CSVs (inclusive ranges, as
addresses or as integers) instead of a MaxMind-format file. Parsing is
sans-I/O and bounded; any problem is an `AsnCsvError`.
"""

from __future__ import annotations

import csv
import heapq
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from itertools import accumulate, compress, pairwise
from operator import ge, itemgetter

_MAX_V4 = 2**32 - 1
_MAX_V6 = 2**128 - 1
MAX_ASN = 2**32 - 1


class AsnCsvError(ValueError):
    """A line of an ASN table is not `start,end,asn,organisation`."""


@dataclass(frozen=True)
class AsnCsvLimits:
    max_rows: int = 5_000_000
    max_line: int = 1_000  # characters in one line
    max_org: int = 300  # characters kept of an organisation name


DEFAULT_LIMITS = AsnCsvLimits()


def _bound(text: str, line: int) -> tuple[int, int]:
    """(version, integer) of one range end, written as an address or an integer."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        if len(text) > 39:
            raise AsnCsvError(f"line {line}: number {text[:20]}… too large for an address")
        value = int(text)
        if value > _MAX_V6:
            raise AsnCsvError(f"line {line}: number {text[:40]} too large for an address")
        return 0, value  # version decided by the table (see _Side)
    try:
        address = ip_address(text)
    except ValueError:
        raise AsnCsvError(f"line {line}: {text[:60]!r} is not an address or a number") from None
    return address.version, int(address)


def _resolve_overlaps(
    rows: list[tuple[int, int, int, str | None]],
) -> list[tuple[int, int, int, str | None]]:
    """Disjoint ranges from overlapping ones: at each address the covering
    range that starts last wins, then the narrowest, then the later row."""
    starting: dict[int, list[int]] = {}
    bounds: set[int] = set()
    for i, (start, end, _, _) in enumerate(rows):
        starting.setdefault(start, []).append(i)
        bounds.update((start, end + 1))
    active: list[tuple[int, int, int]] = []  # (-start, end, -row): the winner on top
    out: list[tuple[int, int, int, str | None]] = []
    ordered = sorted(bounds)
    for here, following in pairwise(ordered):
        for i in starting.get(here, ()):
            heapq.heappush(active, (-rows[i][0], rows[i][1], -i))
        while active and active[0][1] < here:
            heapq.heappop(active)
        if not active:
            continue
        _, _, asn, org = rows[-active[0][2]]
        if out and out[-1][1] == here - 1 and out[-1][2:] == (asn, org):
            out[-1] = (out[-1][0], following - 1, asn, org)
        else:
            out.append((here, following - 1, asn, org))
    return out


class AsnTable:
    """Sorted, disjoint inclusive ranges per IP version, looked up by bisection."""

    def __init__(self) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}
        self._values: dict[int, list[tuple[int, str | None]]] = {4: [], 6: []}

    def __len__(self) -> int:
        return len(self._starts[4]) + len(self._starts[6])

    def _load(self, version: int, rows: list[tuple[int, int, int, str | None]]) -> None:
        rows.sort(key=itemgetter(0))
        starts = [r[0] for r in rows]
        reach = list(accumulate((r[1] for r in rows), max))
        # Row i+1 overlaps an earlier row where the furthest end so far
        # reaches its start; such runs are resolved apart (data has a few).
        joined = list(compress(range(len(rows) - 1), map(ge, reach, starts[1:])))
        if joined:
            resolved: list[tuple[int, int, int, str | None]] = []
            done = 0
            k = 0
            while k < len(joined):
                first = last = joined[k]
                while k + 1 < len(joined) and joined[k + 1] == last + 1:
                    k += 1
                    last += 1
                k += 1
                resolved += rows[done:first]
                resolved += _resolve_overlaps(rows[first : last + 2])
                done = last + 2
            rows = resolved + rows[done:]
        self._starts[version] = [r[0] for r in rows]
        self._ends[version] = [r[1] for r in rows]
        self._values[version] = [(r[2], r[3]) for r in rows]

    def lookup(self, ip: IPv4Address | IPv6Address) -> tuple[int, str | None] | None:
        """(asn, organisation) of the range holding `ip`, or None."""
        version = ip.version
        value = int(ip)
        starts = self._starts[version]
        i = bisect_right(starts, value) - 1
        if i >= 0 and value <= self._ends[version][i]:
            return self._values[version][i]
        return None


# The common line: numbers or plain addresses, an unquoted organisation.
_PLAIN = re.compile(r"([0-9a-fA-F.:]{1,45}),([0-9a-fA-F.:]{1,45}),([0-9]{1,10})(?:,([^\",\r\n]*))?")


def _fields(line: str, line_no: int) -> list[str]:
    plain = _PLAIN.fullmatch(line)
    if plain is not None:
        return [g for g in plain.groups() if g is not None]
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error as exc:
        raise AsnCsvError(f"line {line_no}: {exc}") from None
    return rows[0] if rows else []


def parse_asn_csv(lines: Iterable[str], limits: AsnCsvLimits = DEFAULT_LIMITS) -> AsnTable:
    """Parse an ASN table from text lines; AsnCsvError on any bad line.

    One record a line (a quoted organisation may hold commas and quotes, not
    line breaks). Integer rows belong to IPv4 unless a bound exceeds 2**32-1
    or the file also holds IPv6 address rows (ip-location-db keeps one
    version a file).
    """
    rows: dict[int, list[tuple[int, int, int, str | None]]] = {4: [], 6: [], 0: []}
    for line_no, raw in enumerate(lines, start=1):
        if len(raw) > limits.max_line:
            raise AsnCsvError(f"line {line_no}: longer than {limits.max_line} characters")
        if line_no > limits.max_rows:
            raise AsnCsvError(f"more than {limits.max_rows} lines")
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        fields = _fields(line, line_no)
        if len(fields) not in (3, 4):
            raise AsnCsvError(f"line {line_no}: {len(fields)} fields, want 3 or 4")
        first, second = fields[0], fields[1]
        if (
            first.isdigit()
            and second.isdigit()
            and first.isascii()
            and second.isascii()
            and len(first) < 39
            and len(second) < 39
        ):
            # The common integer row, without the general path's checks.
            v1 = v2 = 0
            start, end = int(first), int(second)
        else:
            v1, start = _bound(first, line_no)
            v2, end = _bound(second, line_no)
        if v1 != v2:
            raise AsnCsvError(f"line {line_no}: range ends of different kinds")
        if end < start:
            raise AsnCsvError(f"line {line_no}: range ends before it starts")
        asn_text = fields[2].strip()
        if (
            not (asn_text.isascii() and asn_text.isdigit())
            or len(asn_text) > 10
            or int(asn_text) > MAX_ASN
        ):
            raise AsnCsvError(f"line {line_no}: {asn_text[:20]!r} is not an AS number")
        org = fields[3].strip()[: limits.max_org] if len(fields) == 4 else ""
        rows[v1].append((start, end, int(asn_text), org or None))
    numeric = rows.pop(0)
    if numeric:
        version = 6 if rows[6] or any(r[1] > _MAX_V4 for r in numeric) else 4
        rows[version].extend(numeric)
    table = AsnTable()
    for version in (4, 6):
        table._load(version, rows[version])
    return table


# A whole file of integer rows, as ip-location-db's `-num.csv` files are:
# matched in one pass, checked, converted with `map`. Anything else (or any
# doubt) goes through `parse_asn_csv`, which says precisely what is wrong.
_NUMERIC_ROW = re.compile(
    r'^([0-9]{1,38}),([0-9]{1,38}),([0-9]{1,10})(?:,([^",\r\n]{0,900})|,"((?:[^"\r\n]|""){0,900})")?\r?$',
    re.MULTILINE,
)


def parse_asn_text(text: str, limits: AsnCsvLimits = DEFAULT_LIMITS) -> AsnTable:
    """Parse a whole ASN table; the same result and errors as `parse_asn_csv`."""
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if lines > limits.max_rows:
        raise AsnCsvError(f"more than {limits.max_rows} lines")
    found = _NUMERIC_ROW.findall(text)
    blank = sum(1 for line in text.splitlines() if not line.strip()) if len(found) != lines else 0
    if not found or len(found) + blank != lines or blank:
        return parse_asn_csv(text.splitlines(keepends=True), limits)
    starts = list(map(int, (f[0] for f in found)))
    ends = list(map(int, (f[1] for f in found)))
    asns = list(map(int, (f[2] for f in found)))
    if max(asns) > MAX_ASN or any(e < s for s, e in zip(starts, ends, strict=True)):
        return parse_asn_csv(text.splitlines(keepends=True), limits)
    orgs = [
        (plain or quoted.replace('""', '"')).strip()[: limits.max_org] or None
        for _, _, _, plain, quoted in found
    ]
    version = 6 if max(ends) > _MAX_V4 else 4
    table = AsnTable()
    table._load(version, list(zip(starts, ends, asns, orgs, strict=True)))
    return table
