"""What the lab shares: a fixed catalogue of synthetic files and their torrents.

Each torrent has a purpose that says what a hash set generated for the lab
knows about it:

- ``watched``: its files and its info-hashes are in the hash set;
- ``unwatched``: nothing of it is in the hash set;
- ``discover_v2_root``: a v2 multi-file torrent; one of its files is in the
  hash set (so its BEP 52 pieces root is), its info-hash is not;
- ``discover_v1_piece``: a v1 multi-file torrent whose BEP 47 pad files put
  one file on a piece boundary; that file is in the hash set (so its
  `btv1_<piece size>` first-piece SHA-1 is), the info-hash is not;
- ``transmission``: like ``watched``, v1 only, seeded by Transmission alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from atalaya.hashsets.fingerprint import Fingerprint, fingerprint_file
from atalaya.lab.files import write_random_file
from atalaya.lab.torrents import InfoHashes, TorrentVersion, infohashes, make_torrent

Purpose = Literal["watched", "unwatched", "discover_v2_root", "discover_v1_piece", "transmission"]
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)
# Made-up assignments of labels of the internal scale (hashsets.categories).
CATEGORIES = ("severe_abuse", "abuse", "exploitative")


@dataclass(frozen=True)
class PlannedFile:
    """One synthetic file: where it lies under the torrent's root and how it is made."""

    path: str  # relative to the content folder, "/"-separated
    size: int
    seed: int
    watched: bool
    category: str | None


@dataclass(frozen=True)
class PlannedTorrent:
    name: str
    version: TorrentVersion
    piece_size: int
    purpose: Purpose
    files: tuple[PlannedFile, ...]
    pad_files: bool = False

    @property
    def root(self) -> str:
        """The path given to the torrent creator: the file, or the folder of several."""
        return self.files[0].path.split("/")[0]

    @property
    def infohash_watched(self) -> bool:
        return self.purpose in ("watched", "transmission")


def catalogue(
    *, seed: int = 1, file_size: int = 200_000, transmission: bool = False
) -> list[PlannedTorrent]:
    """The lab's torrents, the same for the same arguments.

    Sizes are deliberately not multiples of the piece size, so last pieces
    are short and v1 multi-file torrents need pad files.
    """
    counter = iter(range(1_000))
    categories = iter(CATEGORIES * 10)

    def file(path: str, extra: int, watched: bool) -> PlannedFile:
        n = next(counter)
        category = next(categories) if watched else None
        return PlannedFile(path, file_size + extra, seed * 1_000 + n, watched, category)

    def single(name: str, version: TorrentVersion, piece: int, purpose: Purpose) -> PlannedTorrent:
        watched = purpose in ("watched", "transmission")
        extra = 1_111 * (next(counter) % 7)
        return PlannedTorrent(name, version, piece, purpose, (file(f"{name}.bin", extra, watched),))

    plan = [
        single("lab-watched-v1", "v1", 32_768, "watched"),
        single("lab-watched-v2", "v2", 16_384, "watched"),
        single("lab-watched-hybrid", "hybrid", 16_384, "watched"),
        single("lab-unwatched-v1", "v1", 16_384, "unwatched"),
        single("lab-unwatched-hybrid", "hybrid", 32_768, "unwatched"),
        PlannedTorrent(
            "lab-discover-v2",
            "v2",
            16_384,
            "discover_v2_root",
            (
                file("lab-discover-v2/1-notes.bin", 3_333, watched=False),
                file("lab-discover-v2/2-found-by-root.bin", 7_777, watched=True),
            ),
        ),
        PlannedTorrent(
            "lab-discover-v1",
            "v1",
            16_384,
            "discover_v1_piece",
            (
                file("lab-discover-v1/1-intro.bin", 5_555, watched=False),
                file("lab-discover-v1/2-found-by-piece.bin", 9_999, watched=True),
            ),
            pad_files=True,
        ),
    ]
    if transmission:
        plan.append(single("lab-transmission-v1", "v1", 32_768, "transmission"))
    return plan


@dataclass(frozen=True)
class BuiltTorrent:
    """A planned torrent whose files are written and whose .torrent is made."""

    plan: PlannedTorrent
    torrent: bytes
    hashes: InfoHashes
    fingerprints: dict[str, Fingerprint]  # by PlannedFile.path, for every file


def build(plan: PlannedTorrent, content_dir: Path, trackers: Sequence[str]) -> BuiltTorrent:
    """Write the torrent's files under `content_dir` and make its .torrent with `trackers`."""
    fingerprints = {}
    for planned in plan.files:
        path = write_random_file(content_dir / planned.path, planned.size, planned.seed)
        fingerprints[planned.path] = fingerprint_file(path)
    torrent = make_torrent(
        content_dir / plan.root,
        version=plan.version,
        piece_size=plan.piece_size,
        trackers=trackers,
        pad_files=plan.pad_files,
    )
    return BuiltTorrent(plan, torrent, infohashes(torrent), fingerprints)
