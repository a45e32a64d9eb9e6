"""The eD2K proof transcript (version 1), sans-I/O: a probe's result in, canonical bytes out.

docs/proof-transcripts.md describes it field by field. It holds what the
peer said (hello, file name, part map, hash set, AICH recovery data) and
what was checked (the part's MD4, or one block's SHA-1 against its AICH
leaf), never content: with it and the sighting's eD2K hash, anyone can
redo every check offline (`atalaya.evidence.verify_ed2k`). Peer text is
cut to a bound; every list is bounded by the protocol's own limits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from atalaya import __version__
from atalaya.networks.ed2k.hashing import PART_SIZE
from atalaya.observe.ed2k.probe import Ed2kProbeResult
from atalaya.observe.transcripts import TRANSCRIPT_VERSION, canonical_body, endpoint, iso_utc

NETWORK: Final = "ed2k"
CONTENT_NOTE: Final = (
    "Bytes received from the peer were hashed in memory as they arrived and then dropped; "
    "no content was kept."
)
MAX_TEXT: Final = 200
MAX_NAME: Final = 500
MAX_DETAIL: Final = 500


def _hex(data: bytes | None) -> str | None:
    return data.hex() if data is not None else None


def _time(at: datetime | None) -> str | None:
    return iso_utc(at) if at is not None else None


def _text(value: str | None, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def _bitmap(parts: tuple[bool, ...]) -> str:
    """FILESTATUS's bitmap as sent: part i is bit (i % 8) of byte i // 8."""
    bits = bytearray((len(parts) + 7) // 8)
    for i, has in enumerate(parts):
        if has:
            bits[i // 8] |= 1 << (i % 8)
    return bits.hex()


def transcript_document(
    result: Ed2kProbeResult,
    *,
    item_value: str,
    file_size: int | None,
    aich_source: str | None,
) -> dict[str, Any]:
    """The version 1 eD2K transcript of one probe, as a JSON-ready object."""
    return {
        "version": TRANSCRIPT_VERSION,
        "network": NETWORK,
        "observer": f"atalaya/{__version__}",
        "item": {"kind": "ed2k", "value": item_value},
        "local": (
            endpoint(result.local_ip, result.local_port)
            if result.local_ip is not None and result.local_port is not None
            else None
        ),
        "remote": endpoint(result.ip, result.port),
        "obfuscated": result.obfuscated,
        "content_kept": False,
        "content_note": CONTENT_NOTE,
        "started_at": _time(result.connected_at),
        "ended_at": _time(result.finished_at),
        "hello": _hello(result),
        "file": {
            "size": file_size,
            "name": _text(result.file_name, MAX_NAME),
            "status_complete": result.have_fraction is not None and not result.part_map,
            "status_bitmap_hex": _bitmap(result.part_map),
            "status_parts": len(result.part_map),
            "parts_total": result.parts_total,
            "parts_held": result.parts_held,
        },
        "hashset": [h.hex() for h in result.part_hashes] or None,
        "aich": _aich(result, aich_source),
        "check": _check(result),
        "clock": {"offset_s": None, "source": "none: not measured", "measured_at": None},
        "error": (
            {
                "kind": str(result.error.kind),
                "phase": result.error.phase,
                "detail": _text(result.error.detail, MAX_DETAIL),
            }
            if result.error is not None
            else None
        ),
    }


def encode_transcript(
    result: Ed2kProbeResult,
    *,
    item_value: str,
    file_size: int | None,
    aich_source: str | None,
) -> bytes:
    return canonical_body(
        transcript_document(
            result, item_value=item_value, file_size=file_size, aich_source=aich_source
        )
    )


def _hello(result: Ed2kProbeResult) -> dict[str, Any] | None:
    if result.user_hash is None:
        return None
    return {
        "user_hash": result.user_hash.hex(),
        "client_id": result.client_id,
        "low_id": result.low_id,
        "port": result.client_port,
        "client": _text(result.client),
        "nick": _text(result.nick),
        "aich_version": result.aich_version,
    }


def _aich(result: Ed2kProbeResult, source: str | None) -> dict[str, Any] | None:
    if result.aich_master is None:
        return None
    return {
        "master_hash": result.aich_master.hex(),
        "master_source": source,
        "part": result.verified_part if result.aich_hashes else None,
        "recovery": [[ident, digest.hex()] for ident, digest in result.aich_hashes],
        "note": _text(result.aich_note, MAX_DETAIL),
    }


def _check(result: Ed2kProbeResult) -> dict[str, Any] | None:
    """The one hash check of downloaded bytes, passed or failed; null when none was made."""
    if result.block_digest is not None and result.block_offset is not None:
        return {
            "kind": "aich_block",
            "algorithm": "sha1",
            "part": result.verified_part,
            "offset": result.block_offset,
            "length": result.block_length,
            "computed": result.block_digest.hex(),
            "expected": _hex(result.block_expected),
            "ok": result.proof,
        }
    if result.part_digest is None or result.verified_part is None:
        return None
    if result.part_hashes:
        kind, expected = "part_md4", result.part_hashes[result.verified_part]
    else:
        kind, expected = "file_md4", result.file_hash
    start = result.verified_part * PART_SIZE
    return {
        "kind": kind,
        "algorithm": "md4",
        "part": result.verified_part,
        "offset": start,
        "length": result.bytes_downloaded,
        "computed": result.part_digest.hex(),
        "expected": expected.hex(),
        "ok": result.proof,
    }
