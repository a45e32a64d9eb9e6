"""What a timestamp covers: the canonical encoding of sightings and the merkle root over a batch.

Canonical encoding of one sighting row (version 1)
--------------------------------------------------
The row is every column of the `sighting` table, whatever columns the
table has at the time, taken by name:

1. Columns whose value is NULL are left out, so that a nullable column
   added by a later migration leaves the encoding of older rows unchanged.
2. Every other value becomes text:
   - boolean: `true` or `false`;
   - integer: decimal digits, `-` first when negative, no leading zeros;
   - floating point: Python's `repr` of the double (the shortest text that
     reads back as the same double: `0.5`, `1e-05`, `inf`, `nan`);
   - date and time: UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (a value without a
     time zone was written in UTC);
   - text: itself;
   - bytes: lower-case hex;
   - JSON (lists and objects): canonical JSON as below, of the value.
3. The row is then the JSON object {column name: text}, written as
   canonical JSON: keys sorted by code point, no whitespace (`,` and `:`
   as separators), every character outside ASCII as a `\\uXXXX` escape
   (UTF-16 surrogate pairs above U+FFFF), i.e. Python's
   `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
   The bytes are that text in ASCII.

Batch and root
--------------
A batch is a run of sightings sorted by id (ascending). Its leaves are the
rows' canonical encodings in that order; its root is the RFC 9162 merkle
tree head over them with SHA-256, leaf hash SHA-256(0x00 || encoding),
node hash SHA-256(0x01 || left || right) (see `atalaya.evidence.merkle`).
The message given to the TSA is the root's 32 bytes, so the token's
message imprint is SHA-256(root). `openssl ts -verify -data root.bin` or
`-digest <SHA-256(root) in hex>` checks it.

The audit chain's head is stamped the same way with the head record's
hash (32 bytes, from its 64 hex digits) as the message: that hash already
covers every record before it (see `atalaya.audit.encoding`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atalaya.evidence.merkle import leaf_hash, root_of

ENCODING_VERSION = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class EncodingError(ValueError):
    """A row holding a value with no canonical text form (an unknown type)."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def value_text(value: Any) -> str:
    """The text form of one non-NULL column value (rule 2 of the module docstring)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return at.strftime(TIME_FORMAT)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        try:
            # NaN has no JSON form; JSON columns never hold one, so refuse it.
            return json.dumps(
                value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise EncodingError(f"a JSON value has no canonical form: {exc}") from exc
    raise EncodingError(f"no canonical text form for a value of type {type(value).__name__}")


def encode_row(row: Mapping[Any, Any]) -> bytes:
    """The canonical encoding of one row given as {column name: value}."""
    document = {str(name): value_text(value) for name, value in row.items() if value is not None}
    return canonical_json(document).encode("ascii")


def row_leaf(row: Mapping[Any, Any]) -> bytes:
    return leaf_hash(encode_row(row))


@dataclass(frozen=True)
class Batch:
    """Sightings first_id..last_id (those present, sorted by id) and their tree."""

    ids: tuple[int, ...]
    leaves: tuple[bytes, ...]

    @property
    def first_id(self) -> int:
        return self.ids[0]

    @property
    def last_id(self) -> int:
        return self.ids[-1]

    @property
    def root(self) -> bytes:
        return root_of(self.leaves)


def batch_of(rows: Iterable[Mapping[Any, Any]], id_column: str = "id") -> Batch:
    """The batch of `rows`, sorted here by id whatever order they came in."""
    pairs = sorted(((int(row[id_column]), row_leaf(row)) for row in rows), key=lambda p: p[0])
    if not pairs:
        raise EncodingError("a batch needs at least one sighting")
    ids = tuple(p[0] for p in pairs)
    if len(set(ids)) != len(ids):
        raise EncodingError("two rows of a batch have the same id")
    return Batch(ids, tuple(p[1] for p in pairs))


# The stored list of a batch's leaves: per leaf its id as 8 bytes big-endian
# and its 32-byte hash, in id order. The root authenticates the hashes; the
# ids only say which row a changed leaf was, so a verifier can name it.
LEAF_ENTRY = 40


def pack_leaves(batch: Batch) -> bytes:
    pairs = zip(batch.ids, batch.leaves, strict=True)
    return b"".join(i.to_bytes(8, "big", signed=True) + h for i, h in pairs)


def unpack_leaves(data: bytes) -> Batch:
    if not data or len(data) % LEAF_ENTRY:
        raise EncodingError(f"a stored leaf list is a multiple of {LEAF_ENTRY} bytes")
    entries = [data[i : i + LEAF_ENTRY] for i in range(0, len(data), LEAF_ENTRY)]
    return Batch(
        tuple(int.from_bytes(e[:8], "big", signed=True) for e in entries),
        tuple(e[8:] for e in entries),
    )


def audit_head_message(head_hash: str) -> bytes:
    """The 32 bytes stamped for an audit head: its hash, from hex."""
    if len(head_hash) != 64:
        raise EncodingError("an audit head hash is 64 hex digits")
    try:
        return bytes.fromhex(head_hash)
    except ValueError as exc:
        raise EncodingError("an audit head hash is 64 hex digits") from exc


def changed_ids(stamped: Batch, rows: Sequence[Mapping[Any, Any]]) -> tuple[list[int], list[int]]:
    """(ids of rows that differ from or are missing against the stamp, ids not stamped).

    `rows` are the sightings now in the stamped id range.
    """
    stamped_by_id = dict(zip(stamped.ids, stamped.leaves, strict=True))
    now = {int(row["id"]): row_leaf(row) for row in rows}
    changed = sorted(i for i, leaf in stamped_by_id.items() if now.get(i) != leaf)
    added = sorted(i for i in now if i not in stamped_by_id)
    return changed, added
