"""Re-checking an eD2K proof transcript offline: the hash the peer's bytes made, and why it counts.

Transcript version 1 with `network` "ed2k" (atalaya.observe.ed2k.transcript):
`item` {kind "ed2k", value}, `file` {size}, `hashset` (the part hashes the
peer sent), `aich` {master_hash, master_source, part, recovery}, and `check`
{kind, algorithm, part, offset, length, computed, expected, ok}:

- `file_md4`: a file of one part downloaded whole; `expected` must be the
  eD2K hash the sighting names;
- `part_md4`: the MD4 of the part hashes in `hashset` (with or without
  eMule's extra empty-part hash) must be the eD2K hash the sighting names,
  and `expected` the hash of part `part` in that list;
- `aich_block`: the `recovery` hashes must rebuild the AICH tree of a
  file of `file.size` bytes from part `part`'s blocks up to `master_hash`,
  and `expected` be the leaf of the block at `offset` of `length` bytes;
- and for all: marked `ok` only when `computed` equals `expected`, marked
  failed only when they differ.

The AICH master hash is the operator's reference (`master_source`: an
ed2k link's h=, or the hash set); this checker shows the block belongs to
the file with that master hash, not where the master hash came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from Crypto.Hash import MD4

from atalaya.evidence.verify_pieces import PieceCheck, hex_field, int_field
from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k.hashing import EMPTY_PART_HASH, PART_SIZE

MAX_PART_HASHES = 65_535
MAX_RECOVERY = 2 * aich.MAX_RECOVERY_HASHES


def _md4(data: bytes) -> bytes:
    digest: bytes = MD4.new(data).digest()  # noqa: S303 - eD2K is defined on MD4
    return digest


def _makes_file_hash(parts: list[bytes], file_hash: bytes) -> bool:
    candidates = [parts]
    if parts and parts[-1] == EMPTY_PART_HASH:
        candidates.append(parts[:-1])
    else:
        candidates.append([*parts, EMPTY_PART_HASH])
    return any(len(c) > 1 and _md4(b"".join(c)) == file_hash for c in candidates)


def check_ed2k_transcript(doc: Mapping[str, Any], label: str, result: PieceCheck) -> None:
    """Check the one hash check an eD2K transcript records, if it records one."""
    check = doc.get("check")
    if check is None:
        return
    result.checked += 1
    problem = _problem(doc, check)
    if problem is not None:
        es, en = problem
        result.problems.append((f"{label}: {es}", f"{label}: {en}"))
        return
    if check["ok"]:
        result.verified += 1
    else:
        result.failed += 1


def _problem(doc: Mapping[str, Any], check: Any) -> tuple[str, str] | None:
    item = doc.get("item")
    file_hash = hex_field(item.get("value"), 16) if isinstance(item, dict) else None
    if not isinstance(check, dict) or file_hash is None:
        return ("comprobación o elemento ilegible", "unreadable check or item")
    kind = check.get("kind")
    size = 20 if kind == "aich_block" else 16
    computed = hex_field(check.get("computed"), size)
    expected = hex_field(check.get("expected"), size)
    part = int_field(check.get("part"))
    ok = check.get("ok")
    if computed is None or expected is None or part is None or not isinstance(ok, bool):
        return ("hashes, parte o resultado ilegibles", "unreadable hashes, part or outcome")
    if kind == "file_md4":
        if part != 0 or expected != file_hash:
            return (
                "el hash esperado no es el hash eD2K del avistamiento",
                "the expected hash is not the sighting's eD2K hash",
            )
    elif kind == "part_md4":
        raw = doc.get("hashset")
        parts = (
            [hex_field(h, 16) for h in raw]
            if isinstance(raw, list) and len(raw) <= MAX_PART_HASHES
            else None
        )
        if parts is None or None in parts:
            return ("conjunto de hashes de partes ilegible", "unreadable part hash set")
        hashes = [p for p in parts if p is not None]
        if not _makes_file_hash(hashes, file_hash):
            return (
                "los hashes de partes no forman el hash eD2K del avistamiento",
                "the part hashes do not make the sighting's eD2K hash",
            )
        if not 0 <= part < len(hashes) or hashes[part] != expected:
            return (
                f"el hash esperado no es el de la parte {part}",
                f"the expected hash is not part {part}'s",
            )
    elif kind == "aich_block":
        problem = _aich_problem(doc, check, part, expected)
        if problem is not None:
            return problem
    else:
        return (f"tipo de comprobación {str(kind)[:20]} desconocido", f"unknown check {kind!s:.20}")
    if ok and computed != expected:
        return (
            "marcada verificada pero el hash calculado no es el esperado",
            "marked verified but the computed hash is not the expected one",
        )
    if not ok and computed == expected:
        return (
            "marcada fallida pero el hash calculado es el esperado",
            "marked failed but the computed hash is the expected one",
        )
    return None


def _aich_problem(
    doc: Mapping[str, Any], check: Mapping[str, Any], part: int, expected: bytes
) -> tuple[str, str] | None:
    file = doc.get("file")
    size = int_field(file.get("size")) if isinstance(file, dict) else None
    tree = doc.get("aich")
    master = hex_field(tree.get("master_hash"), 20) if isinstance(tree, dict) else None
    raw = tree.get("recovery") if isinstance(tree, dict) else None
    hashes: list[tuple[int, bytes]] = []
    if isinstance(raw, list) and len(raw) <= MAX_RECOVERY:
        for entry in raw:
            ident = int_field(entry[0]) if isinstance(entry, list) and len(entry) == 2 else None
            digest = hex_field(entry[1], 20) if ident is not None else None
            if ident is None or digest is None:
                break
            hashes.append((ident, digest))
    if size is None or master is None or not isinstance(raw, list) or len(hashes) != len(raw):
        return ("árbol AICH ilegible", "unreadable AICH tree")
    if size <= 0 or size > 1 << 48 or part * PART_SIZE >= size:
        return ("tamaño o parte fuera de rango", "size or part out of range")
    try:
        checked = aich.check_part(size, part, master, hashes)
    except aich.AichError as exc:
        return (f"el árbol AICH no lleva al hash maestro: {exc}", f"the AICH tree fails: {exc}")
    offset, length = int_field(check.get("offset")), int_field(check.get("length"))
    leaf = next(
        (
            digest
            for block, digest in zip(checked.blocks, checked.block_hashes, strict=True)
            if block.offset == offset and block.size == length
        ),
        None,
    )
    if leaf is None or leaf != expected:
        return (
            "el hash esperado no es la hoja AICH de ese bloque",
            "the expected hash is not that block's AICH leaf",
        )
    return None
