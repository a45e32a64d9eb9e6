"""Torrents of lab content, made by libtorrent itself (a real third-party encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import libtorrent as lt

TorrentVersion = Literal["v1", "v2", "hybrid"]
TORRENT_VERSIONS: tuple[TorrentVersion, ...] = get_args(TorrentVersion)

_FLAGS: dict[TorrentVersion, int] = {
    "v1": lt.create_torrent.v1_only,
    "v2": lt.create_torrent.v2_only,
    "hybrid": 0,
}


@dataclass(frozen=True)
class InfoHashes:
    """A torrent's info-hashes: v1 (SHA-1) and/or v2 (SHA-256), raw bytes."""

    v1: bytes | None
    v2: bytes | None

    @property
    def tracker_hashes(self) -> tuple[bytes, ...]:
        """The 20-byte hashes announced to trackers (v2 truncated, BEP 52)."""
        return tuple(h[:20] for h in (self.v1, self.v2) if h is not None)


def make_torrent(
    content: Path,
    *,
    version: TorrentVersion,
    piece_size: int,
    trackers: Sequence[str] = (),
    pad_files: bool = False,
) -> bytes:
    """The .torrent bytes for `content` (a file or a folder), made by libtorrent.

    `piece_size` must be a power of two of at least 16 KiB. Hybrid torrents
    always align files on piece boundaries with BEP 47 pad files; `pad_files`
    asks for the same in a v1 torrent (v2 has no pad files).
    """
    if version not in _FLAGS:
        raise ValueError(f"unknown torrent version {version!r}, expected one of {TORRENT_VERSIONS}")
    if piece_size < 16384 or piece_size & (piece_size - 1):
        raise ValueError(f"piece size must be a power of two >= 16384, got {piece_size}")
    content = content.resolve()
    if not content.exists():
        raise FileNotFoundError(content)
    flags = _FLAGS[version]
    if pad_files and version == "v1":
        flags |= lt.create_torrent.canonical_files
    creator = lt.create_torrent(lt.list_files(str(content)), piece_size, flags)
    for tier, url in enumerate(trackers):
        creator.add_tracker(url, tier)
    creator.set_creator("atalaya lab")
    lt.set_piece_hashes(creator, str(content.parent))
    data: bytes = lt.bencode(creator.generate())
    return data


def infohashes(torrent: bytes) -> InfoHashes:
    """The info-hashes of a .torrent, as libtorrent computes them."""
    hashes = lt.torrent_info(torrent).info_hashes()
    return InfoHashes(
        v1=hashes.v1.to_bytes() if hashes.has_v1() else None,
        v2=hashes.v2.to_bytes() if hashes.has_v2() else None,
    )
