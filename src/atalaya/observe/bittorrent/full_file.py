"""The strongest proof: the whole watched file from one peer, its own hashes recomputed.

With --full-file (or for the categories named), the observer downloads every
piece of the watched file from the peer it sighted, feeds the file's bytes
in order through MD5, SHA-1 and SHA-256 as they arrive, drops them, and
compares the digests with the reference file's hashes in the hash set.
Equal digests prove the peer offered exactly that file, the way courts have
long accepted: no torrent metadata has to be trusted for it.

Which file of the torrent is the watched one is read from the metadata
against the reference's own fingerprints (its BEP 52 pieces root, or its
first v1 piece), or is the torrent's only file. A file beyond the size
limit is not downloaded, and the sighting says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from atalaya.hashsets import lookup
from atalaya.hashsets.algorithms import BTV1_PREFIX, BTV2_ROOT, MD5, SHA1, SHA256
from atalaya.networks.bittorrent.metainfo import Metainfo
from atalaya.observe.bittorrent.probe import ProbeResult
from atalaya.observe.bittorrent.transcript import FullFileProof

FILE_ALGORITHMS = (MD5, SHA1, SHA256)  # the file's own hashes, as hash sets carry them


@dataclass(frozen=True)
class FullFilePlan:
    """The file of the torrent to download whole, and what its hashes must be."""

    file_key: str
    file_index: int
    length: int
    expected: dict[str, bytes]  # algorithm -> digest, of FILE_ALGORITHMS only


def reference_hashes(engine: Engine, file_key: str) -> dict[str, bytes]:
    """Every hash the hash sets hold for the file `file_key`, by algorithm."""
    with engine.connect() as conn:
        return lookup.hashes_of_file(conn, file_key)


def watched_file(meta: Metainfo, reference: dict[str, bytes]) -> int | None:
    """The index of the torrent's file that the reference hashes name; None if none can be told."""
    root = reference.get(BTV2_ROOT)
    if root is not None:
        for index, pieces_root in meta.v2_roots():
            if pieces_root == root:
                return index
    for first in meta.first_pieces():
        if reference.get(f"{BTV1_PREFIX}{first.piece_length}") == first.sha1:
            return first.file_index
    content = [i for i, f in enumerate(meta.files) if not f.pad and f.length > 0]
    return content[0] if len(content) == 1 else None


def plan_full_file(
    meta: Metainfo, file_key: str, reference: dict[str, bytes], max_bytes: int
) -> FullFilePlan | str:
    """The plan, or a sentence saying why the whole file will not be downloaded."""
    expected = {a: reference[a] for a in FILE_ALGORITHMS if a in reference}
    if not expected:
        return f"the hash sets hold no MD5, SHA-1 or SHA-256 for {file_key}"
    index = watched_file(meta, reference)
    if index is None:
        return (
            f"which of the torrent's {len(meta.files)} files is {file_key} cannot be told "
            "from its metadata"
        )
    length = meta.files[index].length
    if length > max_bytes:
        return (
            f"the file is {length} bytes, over the full-file limit of {max_bytes} bytes "
            "(--full-file-max-bytes): pieces only"
        )
    return FullFilePlan(file_key, index, length, expected)


def full_file_proof(plan: FullFilePlan, result: ProbeResult) -> FullFileProof | None:
    """What the streamed file proved against the plan; None when it was never attempted."""
    streamed = result.full_file
    if streamed is None:
        return None
    common = [a for a in plan.expected if a in streamed.digests]
    ok = (
        streamed.complete
        and bool(common)
        and all(streamed.digests[a] == plan.expected[a] for a in common)
    )
    notes = []
    if not streamed.complete:
        notes.append(f"received {streamed.received} of {streamed.length} bytes in order")
    return FullFileProof(
        file_key=plan.file_key,
        algorithms=dict(streamed.digests),
        expected=dict(plan.expected),
        ok=ok,
        bytes=streamed.received,
        first_byte_at=streamed.first_byte_at,
        last_byte_at=streamed.last_byte_at,
        file_index=plan.file_index,
        notes=tuple(notes),
    )
