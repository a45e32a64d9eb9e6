"""The BitTorrent proof transcript (version 1), sans-I/O: a probe's result in, bytes out.

The document is described field by field in docs/proof-transcripts.md;
`transcript_document` builds it and `encode_transcript` gives its canonical
bytes. Everything the peer wrote is attacker-controlled: bytes go in as
hex, text is cut to a bound and never trusted to be well-formed, and every
list has a length limit, so a hostile peer cannot make a transcript large
or unencodable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from atalaya import __version__
from atalaya.networks.bittorrent.metainfo import Metainfo
from atalaya.networks.bittorrent.probe import PieceCheck
from atalaya.observe.bittorrent.probe import ProbeResult
from atalaya.observe.clock import ClockReading
from atalaya.observe.transcripts import (
    TRANSCRIPT_VERSION,
    canonical_body,
    endpoint,
    iso_utc,
)

NETWORK: Final = "bittorrent"
CONTENT_NOTE: Final = (
    "Bytes received from the peer were hashed in memory as they arrived and then dropped; "
    "no content was kept."
)
MAX_TEXT: Final = 200  # characters of a peer-supplied string (client name)
MAX_DETAIL: Final = 500  # characters of an error's detail
MAX_EXTENSION_BYTES: Final = 16 * 1024
MAX_BITFIELD_BYTES: Final = 64 * 1024
MAX_PIECES: Final = 10_000  # piece checks listed; the rest are counted in pieces_omitted


@dataclass(frozen=True)
class FullFileProof:
    """A whole file downloaded from one peer and hashed as it streamed by (see --full-file)."""

    file_key: str  # "algorithm:hex" of the reference file
    algorithms: dict[str, bytes]  # computed: sha1, md5, sha256 …
    expected: dict[str, bytes]  # from the hash set, for each algorithm it has
    ok: bool
    bytes: int
    first_byte_at: datetime | None
    last_byte_at: datetime | None
    file_index: int | None = None
    notes: tuple[str, ...] = field(default=())


def metadata_key(meta: Metainfo) -> bytes:
    """The name `torrent_metadata` keys this torrent by: v1, else v2."""
    key = meta.infohash_v1 or meta.infohash_v2
    assert key is not None, "parsed metadata has at least one name"
    return key


def transcript_document(
    result: ProbeResult,
    *,
    item_kind: str,
    item_value: str,
    clock: ClockReading | None,
    full_file: FullFileProof | None = None,
) -> dict[str, Any]:
    """The version 1 transcript of one probe, as a JSON-ready object."""
    checks = result.checks[:MAX_PIECES]
    return {
        "version": TRANSCRIPT_VERSION,
        "network": NETWORK,
        "observer": f"atalaya/{__version__}",
        "item": {"kind": item_kind, "value": item_value},
        "local": (
            endpoint(result.local_ip, result.local_port)
            if result.local_ip is not None and result.local_port is not None
            else None
        ),
        "remote": endpoint(result.ip, result.port),
        "content_kept": False,
        "content_note": CONTENT_NOTE,
        "started_at": _time(result.connected_at),
        "ended_at": _time(result.finished_at),
        "handshake": _handshake(result),
        "extension_handshake": _extension(result),
        "availability": _availability(result),
        "metadata": _metadata(result.metadata),
        "pieces": [_check(c) for c in checks],
        "pieces_omitted": len(result.checks) - len(checks) + result.checks_omitted,
        "full_file": _full_file(full_file) if full_file is not None else None,
        "clock": _clock(clock),
        "error": _error(result),
    }


def encode_transcript(
    result: ProbeResult,
    *,
    item_kind: str,
    item_value: str,
    clock: ClockReading | None,
    full_file: FullFileProof | None = None,
) -> bytes:
    """The canonical bytes of `transcript_document`."""
    return canonical_body(
        transcript_document(
            result, item_kind=item_kind, item_value=item_value, clock=clock, full_file=full_file
        )
    )


# --- parts ---------------------------------------------------------------------------


def _time(at: datetime | None) -> str | None:
    return iso_utc(at) if at is not None else None


def _hex(data: bytes | None) -> str | None:
    return data.hex() if data is not None else None


def _text(value: str | None, limit: int = MAX_TEXT) -> str | None:
    """Peer text, cut to `limit` characters and made encodable (lone surrogates replaced)."""
    if value is None:
        return None
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def _handshake(result: ProbeResult) -> dict[str, Any]:
    sent = result.sent_handshake
    return {
        "sent": (
            {
                "reserved": sent.reserved.hex(),
                "info_hash": sent.infohash.hex(),
                "peer_id": sent.peer_id.hex(),
            }
            if sent is not None
            else None
        ),
        "received": (
            {
                "reserved": _hex(result.reserved),
                "info_hash": _hex(result.handshake_infohash),
                "peer_id": _hex(result.peer_id),
            }
            if result.peer_id is not None
            else None
        ),
    }


def _extension(result: ProbeResult) -> dict[str, Any]:
    raw = result.extension_raw
    return {
        "received_hex": raw[:MAX_EXTENSION_BYTES].hex() if raw is not None else None,
        "received_length": len(raw) if raw is not None else None,
        "client": _text(result.client),
    }


def _availability(result: ProbeResult) -> dict[str, Any]:
    if result.have_all:
        kind = "have_all"
    elif result.bitfield is not None:
        kind = "bitfield"
    elif result.haves:
        kind = "haves"
    elif result.have_none:
        kind = "have_none"
    else:
        kind = "none"
    bits = result.bitfield
    return {
        "kind": kind,
        "bitfield_hex": bits[:MAX_BITFIELD_BYTES].hex() if bits is not None else None,
        "have_messages": result.haves,
        "have_count": result.pieces_held,
        "num_pieces": result.num_pieces,
    }


def _metadata(meta: Metainfo | None) -> dict[str, Any] | None:
    if meta is None:
        return None
    return {
        "info_hash": metadata_key(meta).hex(),
        "info_sha1": _hex(meta.infohash_v1),
        "info_sha256": _hex(meta.infohash_v2),
        "piece_length": meta.piece_length,
    }


def _check(check: PieceCheck[datetime]) -> dict[str, Any]:
    return {
        "index": check.piece,
        "offset": check.offset,
        "length": check.length,
        "algorithm": check.algorithm,
        "computed": check.computed.hex(),
        "expected": check.expected.hex(),
        "ok": check.ok,
        "first_byte_at": _time(check.first_byte_at),
        "last_byte_at": _time(check.last_byte_at),
        "file_index": check.file_index,
        "proof_path": [h.hex() for h in check.proof_path],
    }


def _full_file(proof: FullFileProof) -> dict[str, Any]:
    return {
        "file_key": proof.file_key,
        "file_index": proof.file_index,
        "algorithms": {name: digest.hex() for name, digest in sorted(proof.algorithms.items())},
        "expected": {name: digest.hex() for name, digest in sorted(proof.expected.items())},
        "ok": proof.ok,
        "bytes": proof.bytes,
        "first_byte_at": _time(proof.first_byte_at),
        "last_byte_at": _time(proof.last_byte_at),
        "notes": list(proof.notes),
    }


def _clock(reading: ClockReading | None) -> dict[str, Any]:
    if reading is None:
        return {"offset_s": None, "source": "none: not measured", "measured_at": None}
    return {
        "offset_s": reading.offset_s,
        "source": _text(reading.source),
        "measured_at": iso_utc(reading.measured_at),
    }


def _error(result: ProbeResult) -> dict[str, Any] | None:
    error = result.error
    if error is None:
        return None
    return {
        "kind": str(error.kind),
        "phase": error.phase,
        "detail": _text(error.detail, MAX_DETAIL),
    }
