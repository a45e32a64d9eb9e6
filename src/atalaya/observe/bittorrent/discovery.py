"""Recognise known files inside a torrent from its metadata alone.

A torrent that no watch list names may still carry a known file: its BEP 52
pieces root equals the file's `btv2_root`, or (v1) the hash of a piece that
holds only the start of that file equals its `btv1_<piece length>`
fingerprint. Hash-set holders compute both with `atalaya hashsets fingerprint`,
so the content itself never has to leave them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from atalaya.hashsets.algorithms import BTV2_ROOT, is_known
from atalaya.hashsets.index import Match, MatchIndex, fetch_details
from atalaya.networks.bittorrent.metainfo import Metainfo

MAX_PATH = 500  # characters of a file's path kept in a reason


@dataclass(frozen=True)
class FileMatch:
    """A file of a torrent that is a known file of a hash set."""

    file_index: int
    path: str
    algorithm: str  # btv2_root or btv1_<piece length>
    digest: bytes
    match: Match

    @property
    def reason(self) -> str:
        return (
            f"file {self.path!r} of the torrent has {self.algorithm} {self.digest.hex()}, "
            f"the fingerprint of {self.match.file_key} in hash set {self.match.hash_set}"
        )


def fingerprints(meta: Metainfo) -> list[tuple[int, str, bytes]]:
    """(file index, algorithm, digest) for every fingerprint the metadata exposes."""
    found = [(index, BTV2_ROOT, root) for index, root in meta.v2_roots()]
    found += [(fp.file_index, fp.algorithm, fp.sha1) for fp in meta.first_pieces()]
    # Piece lengths outside 16 KiB…16 MiB have no fingerprints in any hash set.
    return [item for item in found if is_known(item[1])]


def match_in_store(engine: Engine, meta: Metainfo) -> list[FileMatch]:
    """`match_metainfo` without an index: the torrent's few fingerprints looked up in the store."""
    found = fingerprints(meta)
    if not found:
        return []
    details = fetch_details(engine, [(algorithm, digest) for _, algorithm, digest in found])
    return _file_matches(meta, found, details)


def match_metainfo(index: MatchIndex, engine: Engine, meta: Metainfo) -> list[FileMatch]:
    """Every (file, hash set) pair that the torrent's fingerprints match."""
    candidates = [item for item in fingerprints(meta) if index.contains(item[1], item[2])]
    if not candidates:
        return []
    details = index.details(engine, [(algorithm, digest) for _, algorithm, digest in candidates])
    return _file_matches(meta, candidates, details)


def _file_matches(
    meta: Metainfo,
    candidates: list[tuple[int, str, bytes]],
    details: dict[tuple[str, bytes], list[Match]],
) -> list[FileMatch]:
    matches: list[FileMatch] = []
    for file_index, algorithm, digest in candidates:
        # The path is the torrent's (the suspect's words): bounded, and only ever quoted.
        path = ("/".join(meta.files[file_index].path) or meta.name)[:MAX_PATH]
        for match in details.get((algorithm, digest), []):
            matches.append(FileMatch(file_index, path, algorithm, digest, match))
    return matches
