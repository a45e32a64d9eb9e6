"""Re-checking a proof transcript's pieces against the torrent metadata, offline.

Transcript body version 1 (JSON, written by the observer): `item` {kind,
value}, `metadata` {info_hash}, and `pieces`, each {index, offset, length,
algorithm "sha1"|"sha256", computed, expected, ok, file_index, proof_path}.

- v1 (`sha1`): `expected` must be the 20 bytes at 20*index of the info
  dictionary's `pieces` string;
- v2 (`sha256`): `expected` (the piece's layer hash), hashed up the
  `proof_path` with the file-relative piece index (index minus the file's
  first piece) deciding at each level whether the sibling is on the left
  (bit set) or the right, must give the `pieces root` of file `file_index`
  in the info dictionary's file tree (BEP 52: SHA-256 of the two children
  concatenated);
- and for both: a piece marked `ok` has `computed` equal to `expected`, a
  piece marked failed has them differ (a failed verification, recorded as
  such, is not a fault of the transcript).

The bytes received were hashed and dropped by the observer: what can be
re-checked is that the hashes it states are the metadata's, and that the
metadata is the torrent the sighting names (its info-hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from atalaya.networks.bittorrent.metainfo import Metainfo, MetainfoError, parse_info

MAX_TRANSCRIPT_BYTES = 4 * 1024 * 1024
MAX_PIECES = 100_000
MAX_PROOF_PATH = 64
TRANSCRIPT_VERSION = 1


@dataclass
class PieceCheck:
    """What one transcript's pieces showed: counts, and problems in words (es, en)."""

    checked: int = 0
    verified: int = 0  # ok, and computed == expected == the metadata's hash
    failed: int = 0  # recorded by the observer as failed verifications
    problems: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Torrent:
    """One metadata file: its parsed info dictionary and its two info-hashes."""

    info: Metainfo
    sha1: str
    sha256: str


def load_torrent(data: bytes) -> Torrent:
    """The info dictionary `data` parsed (bounded); MetainfoError when it is not one."""
    return Torrent(
        parse_info(data),
        hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )


def hex_field(value: Any, size: int) -> bytes | None:
    """`value` as `size` bytes when it is their hex spelling, else None."""
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def int_field(value: Any) -> int | None:
    """`value` when it is a JSON integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_transcript(body: bytes) -> dict[str, Any]:
    """The transcript as a JSON object; ValueError naming what is wrong."""
    if len(body) > MAX_TRANSCRIPT_BYTES:
        raise ValueError(f"larger than {MAX_TRANSCRIPT_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON: {str(exc)[:100]}") from exc
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("version") != TRANSCRIPT_VERSION:
        raise ValueError(f"version {str(doc.get('version'))[:20]} is not {TRANSCRIPT_VERSION}")
    pieces = doc.get("pieces", [])
    if not isinstance(pieces, list) or len(pieces) > MAX_PIECES:
        raise ValueError(f"'pieces' is not a list of at most {MAX_PIECES}")
    return doc


def _v2_root(expected: bytes, relative: int, path: list[bytes]) -> bytes:
    node = expected
    for sibling in path:
        if relative & 1:
            node = hashlib.sha256(sibling + node).digest()
        else:
            node = hashlib.sha256(node + sibling).digest()
        relative >>= 1
    return node


def check_piece(piece: Any, torrent: Torrent, label: str, result: PieceCheck) -> None:
    result.checked += 1
    if not isinstance(piece, dict):
        result.problems.append((f"{label}: no es un objeto", f"{label}: not an object"))
        return
    index = int_field(piece.get("index"))
    algorithm = piece.get("algorithm")
    size = 20 if algorithm == "sha1" else 32 if algorithm == "sha256" else 0
    expected = hex_field(piece.get("expected"), size) if size else None
    computed = hex_field(piece.get("computed"), size) if size else None
    ok = piece.get("ok")
    if index is None or expected is None or computed is None or not isinstance(ok, bool):
        result.problems.append(
            (
                f"{label}: índice, algoritmo o hashes ilegibles",
                f"{label}: unreadable index, algorithm or hashes",
            )
        )
        return
    label = f"{label} [{algorithm} {index}]"
    info = torrent.info
    if algorithm == "sha1":
        if not info.pieces or not 0 <= index < info.num_pieces:
            result.problems.append(
                (
                    f"{label}: los metadatos no tienen pieza v1 {index}",
                    f"{label}: the metadata has no v1 piece {index}",
                )
            )
            return
        if info.piece_hash_v1(index) != expected:
            result.problems.append(
                (
                    f"{label}: el hash esperado no es el de los metadatos",
                    f"{label}: the expected hash is not the metadata's",
                )
            )
            return
    else:
        file_index = int_field(piece.get("file_index"))
        raw_path = piece.get("proof_path")
        path = (
            [hex_field(p, 32) for p in raw_path]
            if isinstance(raw_path, list) and len(raw_path) <= MAX_PROOF_PATH
            else None
        )
        if file_index is None or not 0 <= file_index < len(info.files) or path is None:
            result.problems.append(
                (
                    f"{label}: fichero o camino de prueba ilegible",
                    f"{label}: unreadable file index or proof path",
                )
            )
            return
        entry = info.files[file_index]
        first = entry.offset // info.piece_length
        relative = index - first
        if entry.pieces_root is None or relative < 0 or None in path:
            result.problems.append(
                (
                    f"{label}: el fichero {file_index} no tiene raíz v2 o la pieza no es suya",
                    f"{label}: file {file_index} has no v2 root or the piece is not in it",
                )
            )
            return
        steps = [p for p in path if p is not None]
        if relative >> len(steps) or _v2_root(expected, relative, steps) != entry.pieces_root:
            result.problems.append(
                (
                    f"{label}: el camino de prueba no lleva a la raíz del fichero {file_index}",
                    f"{label}: the proof path does not lead to file {file_index}'s pieces root",
                )
            )
            return
    if ok and computed != expected:
        result.problems.append(
            (
                f"{label}: marcada verificada pero el hash calculado no es el esperado",
                f"{label}: marked verified but the computed hash is not the expected one",
            )
        )
    elif ok:
        result.verified += 1
    elif computed == expected:
        result.problems.append(
            (
                f"{label}: marcada fallida pero el hash calculado es el esperado",
                f"{label}: marked failed but the computed hash is the expected one",
            )
        )
    else:
        result.failed += 1


def check_transcript(
    doc: Mapping[str, Any],
    torrents: Mapping[str, Torrent],
    label: str,
    result: PieceCheck,
) -> None:
    """Check every piece of `doc` against the torrent its `metadata.info_hash` names.

    `torrents`: by info-hash (v1 and v2 hex both map to the same torrent).
    """
    pieces = doc.get("pieces") or []
    if not pieces:
        return
    meta = doc.get("metadata")
    named = meta.get("info_hash") if isinstance(meta, dict) else None
    torrent = torrents.get(named.lower()) if isinstance(named, str) else None
    if torrent is None:
        result.problems.append(
            (
                f"{label}: nombra metadatos {str(named)[:64]} que no están en el paquete",
                f"{label}: names metadata {str(named)[:64]} that is not in the package",
            )
        )
        return
    for number, piece in enumerate(pieces):
        check_piece(piece, torrent, f"{label} #{number}", result)


__all__ = [
    "MetainfoError",
    "PieceCheck",
    "Torrent",
    "check_transcript",
    "load_torrent",
    "parse_transcript",
]
