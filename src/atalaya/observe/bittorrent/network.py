"""BitTorrent as a network plug-in: what the registry knows of it.

It watches infohashes, v1 (`btih`, SHA-1) and v2 (`btih2`, SHA-256), each
taken as it is from the hash sets that carry them. File fingerprints
(`btv2_root`, `btv1_*`) are not watch targets: discovery matches them
against torrents it finds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from atalaya.hashsets.algorithms import BTIH, BTIH2


@dataclass(frozen=True)
class BittorrentNetwork:
    name: str = "bittorrent"
    label: str = "BitTorrent"
    kinds: tuple[str, ...] = (BTIH, BTIH2)
    sources: tuple[str, ...] = (BTIH, BTIH2)

    def derive(self, algorithm: str, value: bytes) -> tuple[str, bytes] | None:
        if algorithm in self.sources:
            return algorithm, value
        return None

    def watch_command(self) -> Callable[..., None]:
        # Imported when the command line is built, so that reading the
        # registry (the web app's filters) does not load the observer, and
        # the command's module may name this one.
        from atalaya.observe.bittorrent.cli import watch_bittorrent  # noqa: PLC0415

        return watch_bittorrent


BITTORRENT = BittorrentNetwork()
