"""The canonical encoding of an audit record, which its hash is taken over.

Canonical JSON: an object with every field, keys sorted, no whitespace,
ASCII only (other characters as \\u escapes), no NaN or infinities, and the
time as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC. `parse_canonical` is the exact
inverse and refuses anything that is not byte-for-byte canonical, so one
record has one encoding and one hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64  # prev_hash of the first record
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
OUTCOMES = frozenset({"ok", "denied", "error"})
MAX_ENCODED_BYTES = 1 << 20
# Column sizes of audit_record: longer values would be cut or refused by the database.
MAX_LENGTHS = {
    "username": 100,
    "unit": 200,
    "client_address": 45,
    "action": 40,
    "object_type": 40,
    "object_id": 200,
}
_ACTION = re.compile(r"[a-z][a-z0-9_]{0,39}")
_HASH = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_KEYS = frozenset(
    {
        "seq",
        "at",
        "user_id",
        "username",
        "unit",
        "client_address",
        "action",
        "object_type",
        "object_id",
        "outcome",
        "details",
        "prev_hash",
    }
)


class AuditEncodingError(ValueError):
    """A record that has no canonical encoding, or bytes that are not one."""


@dataclass(frozen=True)
class AuditFields:
    """Everything an audit record's hash covers (all of it but the hash)."""

    seq: int
    at: datetime  # timezone-aware; encoded in UTC with microseconds
    action: str
    outcome: str
    prev_hash: str
    user_id: int | None = None
    username: str | None = None
    unit: str | None = None
    client_address: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def format_time(at: datetime) -> str:
    if at.tzinfo is None or at.utcoffset() is None:
        raise AuditEncodingError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def _canonical_json(value: Any) -> str:
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise AuditEncodingError(f"audit details are not plain JSON: {exc}") from exc


def normalise_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """`details` as it will read back from the database: plain JSON types only.

    Tuples become lists; keys must be strings (JSON would turn others into
    strings silently, and then the stored record would differ from the one
    the caller meant).
    """
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise AuditEncodingError("audit details must be a JSON object")
    _check_keys(details, 0)
    result = json.loads(_canonical_json(details))
    assert isinstance(result, dict)
    return result


def _check_keys(value: Any, depth: int) -> None:
    if depth > 32:
        raise AuditEncodingError("audit details nest deeper than 32 levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditEncodingError(f"audit details keys must be strings, not {key!r}")
            _check_keys(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item, depth + 1)


def check_fields(fields: AuditFields) -> None:
    """Raise AuditEncodingError unless every field fits the schema."""
    if isinstance(fields.seq, bool) or not isinstance(fields.seq, int) or fields.seq < 1:
        raise AuditEncodingError(f"audit seq must be a positive integer, not {fields.seq!r}")
    if fields.user_id is not None and (
        isinstance(fields.user_id, bool) or not isinstance(fields.user_id, int)
    ):
        raise AuditEncodingError(f"audit user_id must be an integer, not {fields.user_id!r}")
    if not isinstance(fields.action, str) or not _ACTION.fullmatch(fields.action):
        raise AuditEncodingError(
            f"audit action {fields.action!r} must be lower-case letters, digits and _"
        )
    if fields.outcome not in OUTCOMES:
        raise AuditEncodingError(f"audit outcome {fields.outcome!r} is not one of ok|denied|error")
    if not isinstance(fields.prev_hash, str) or not _HASH.fullmatch(fields.prev_hash):
        raise AuditEncodingError("audit prev_hash must be 64 lower-case hex digits")
    for name, limit in MAX_LENGTHS.items():
        value = getattr(fields, name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise AuditEncodingError(f"audit {name} must be text of at most {limit} characters")
    if not isinstance(fields.details, dict):
        raise AuditEncodingError("audit details must be a JSON object")
    if not isinstance(fields.at, datetime):
        raise AuditEncodingError("audit time must be a datetime")


def canonical_bytes(fields: AuditFields) -> bytes:
    """The canonical encoding of `fields` (see the module docstring)."""
    check_fields(fields)
    _check_keys(fields.details, 0)
    document = {
        "seq": fields.seq,
        "at": format_time(fields.at),
        "user_id": fields.user_id,
        "username": fields.username,
        "unit": fields.unit,
        "client_address": fields.client_address,
        "action": fields.action,
        "object_type": fields.object_type,
        "object_id": fields.object_id,
        "outcome": fields.outcome,
        "details": fields.details,
        "prev_hash": fields.prev_hash,
    }
    encoded = _canonical_json(document).encode("ascii")
    if len(encoded) > MAX_ENCODED_BYTES:
        raise AuditEncodingError(f"an audit record may encode to at most {MAX_ENCODED_BYTES} bytes")
    return encoded


def record_hash(fields: AuditFields, key: bytes | None = None) -> str:
    """The record's `hash`: hex HMAC-SHA256 of the canonical encoding under `key`.

    Without a key, plain SHA-256: the chain's records before it was keyed.
    """
    if key is None:
        return hashlib.sha256(canonical_bytes(fields)).hexdigest()
    return hmac.new(key, canonical_bytes(fields), hashlib.sha256).hexdigest()


def parse_canonical(data: bytes) -> AuditFields:
    """The fields encoded in `data`; AuditEncodingError unless it is canonical."""
    if not isinstance(data, bytes | bytearray):
        raise AuditEncodingError("an audit encoding is bytes")
    if len(data) > MAX_ENCODED_BYTES:
        raise AuditEncodingError(f"an audit record encodes to at most {MAX_ENCODED_BYTES} bytes")
    try:
        document = json.loads(bytes(data).decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AuditEncodingError(f"not an audit record encoding: {exc}") from exc
    if not isinstance(document, dict) or set(document) != _KEYS:
        raise AuditEncodingError("an audit record encoding is an object with exactly its fields")
    at = document["at"]
    if not isinstance(at, str) or not _TIME.fullmatch(at):
        raise AuditEncodingError(f"audit time {at!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        moment = datetime.strptime(at, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise AuditEncodingError(f"audit time {at!r} is not a valid instant") from exc
    try:
        fields = AuditFields(
            seq=document["seq"],
            at=moment,
            user_id=document["user_id"],
            username=document["username"],
            unit=document["unit"],
            client_address=document["client_address"],
            action=document["action"],
            object_type=document["object_type"],
            object_id=document["object_id"],
            outcome=document["outcome"],
            details=document["details"],
            prev_hash=document["prev_hash"],
        )
        again = canonical_bytes(fields)
    except RecursionError as exc:
        raise AuditEncodingError("audit details nest too deep") from exc
    if again != bytes(data):
        raise AuditEncodingError("audit record bytes are valid JSON but not the canonical encoding")
    return fields
