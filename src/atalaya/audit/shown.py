"""Which leads a search, a map, a list or an export showed, kept compactly in its record.

"Who saw lead X?" needs every record that showed it, not only the filters
and a count. The ids go into the record's details as sorted ranges,
`{"lead_ids": "3-7,12,40-41"}`: lead ids are handed out in order, so a
selection is mostly runs. A long text (a wide export of scattered ids) is
kept zlib-compressed and base64-encoded under `lead_ids_z` instead, so the
record stays far below its size limit. `shows(details, lead_id)` answers for
either form; bad text answers False, never raises.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

SHOWN_KEY = "lead_ids"
PACKED_KEY = "lead_ids_z"
# Above this many characters the ranges are compressed.
MAX_PLAIN = 16_384
# What a packed text may expand to: more than any record can have shown.
MAX_UNPACKED = 1 << 24
_RANGES = re.compile(r"[0-9]{1,20}(?:-[0-9]{1,20})?(?:,[0-9]{1,20}(?:-[0-9]{1,20})?)*")


def id_ranges(ids: Iterable[int]) -> str:
    """`ids` as sorted ranges: [1, 2, 3, 7, 9, 10] -> "1-3,7,9-10"."""
    parts: list[str] = []
    start = end = None
    for value in sorted(set(ids)):
        if end is not None and value == end + 1:
            end = value
            continue
        if start is not None:
            parts.append(str(start) if start == end else f"{start}-{end}")
        start = end = value
    if start is not None:
        parts.append(str(start) if start == end else f"{start}-{end}")
    return ",".join(parts)


def shown_details(ids: Iterable[int]) -> dict[str, str]:
    """The details entry naming the leads shown: {"lead_ids": ranges} or {"lead_ids_z": …}."""
    text = id_ranges(ids)
    if len(text) <= MAX_PLAIN:
        return {SHOWN_KEY: text}
    packed = base64.b64encode(zlib.compress(text.encode("ascii"), 9)).decode("ascii")
    return {PACKED_KEY: packed}


def parse_id_ranges(text: str) -> list[tuple[int, int]]:
    """The (first, last) ranges in `text`; ValueError unless it is what `id_ranges` writes."""
    if text == "":
        return []
    if not _RANGES.fullmatch(text):
        raise ValueError("not a list of lead id ranges")
    out: list[tuple[int, int]] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(f"range {part} runs backwards")
        out.append((low, high))
    return out


def shown_ranges(details: Mapping[str, Any]) -> list[tuple[int, int]] | None:
    """The ranges a record's details name, None when it names none (or not readably)."""
    text = details.get(SHOWN_KEY)
    packed = details.get(PACKED_KEY)
    try:
        if isinstance(packed, str):
            decoder = zlib.decompressobj()
            raw = decoder.decompress(base64.b64decode(packed, validate=True), MAX_UNPACKED)
            if decoder.unconsumed_tail:
                return None
            text = raw.decode("ascii")
        if not isinstance(text, str):
            return None
        return parse_id_ranges(text)
    except (ValueError, binascii.Error, zlib.error, UnicodeDecodeError):
        return None


def shows(details: Mapping[str, Any], lead_id: int) -> bool:
    """Whether a record with these details showed lead `lead_id`."""
    ranges = shown_ranges(details)
    return ranges is not None and any(low <= lead_id <= high for low, high in ranges)
