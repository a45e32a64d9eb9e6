"""Proof transcripts: what a probe exchanged with a peer and checked, never content.

One transcript per sighting, written in the sighting's own transaction
into `proof_transcript`: its body is a JSON object in canonical form
(keys sorted by code point, no whitespace, `,` and `:` as separators,
non-ASCII characters as themselves, UTF-8), stored as bytes exactly as
written, with the SHA-256 of those bytes. What the object holds depends
on the network and its `version`; docs/proof-transcripts.md describes
BitTorrent's version 1 field by field.

Readers take the bytes as stored (`load_transcripts`): re-encoding a
parsed body is not how it is checked; its digest is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, select

from atalaya.store.tables import proof_transcript

TRANSCRIPT_VERSION: Final = 1
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
# Ids per query when reading many transcripts (SQLite's bound on parameters is far above).
_CHUNK: Final = 500


class TranscriptError(ValueError):
    """A document that has no canonical JSON form (NaN, a non-string key, an unknown type)."""


def canonical_body(document: Mapping[str, Any]) -> bytes:
    """The canonical JSON bytes of `document` (see the module docstring)."""
    try:
        text = json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        # UnicodeEncodeError (a lone surrogate) is a ValueError too.
        raise TranscriptError(f"no canonical JSON form: {exc}") from exc


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def iso_utc(at: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ`: UTC, always with microseconds."""
    if at.tzinfo is None:
        raise TranscriptError("a transcript time must be aware (UTC)")
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def endpoint(ip: str, port: int) -> str:
    """`ip:port`, or `[ip]:port` for IPv6 (RFC 3986), so the port is never ambiguous."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def transcript_row(
    sighting_id: int, body: bytes, version: int = TRANSCRIPT_VERSION
) -> dict[str, Any]:
    """The `proof_transcript` row for a sighting's transcript body."""
    return {
        "sighting_id": sighting_id,
        "version": version,
        "body": body,
        "sha256": body_sha256(body),
    }


def load_transcripts(conn: Connection, sighting_ids: Iterable[int]) -> dict[int, bytes]:
    """The transcript bodies of these sightings, by sighting id, as stored (raw bytes).

    Sightings without a transcript (older ones, other networks) are absent
    from the result.
    """
    ids = sorted(set(sighting_ids))
    found: dict[int, bytes] = {}
    t = proof_transcript.c
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for sighting_id, body in conn.execute(
            select(t.sighting_id, t.body).where(t.sighting_id.in_(chunk))
        ):
            found[int(sighting_id)] = bytes(body)
    return found
