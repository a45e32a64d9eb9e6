"""eD2K as a network plug-in: it watches eD2K file hashes (MD4 of MD4s) from the hash sets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from atalaya.hashsets.algorithms import ED2K


@dataclass(frozen=True)
class Ed2kNetwork:
    name: str = "ed2k"
    label: str = "eD2K (eMule)"
    kinds: tuple[str, ...] = (ED2K,)
    sources: tuple[str, ...] = (ED2K,)

    def derive(self, algorithm: str, value: bytes) -> tuple[str, bytes] | None:
        if algorithm == ED2K and len(value) == 16:
            return ED2K, value
        return None

    def watch_command(self) -> Callable[..., None]:
        # Imported when the command line is built (see the BitTorrent plug-in).
        from atalaya.observe.ed2k.cli import watch_ed2k  # noqa: PLC0415

        return watch_ed2k


ED2K_NETWORK = Ed2kNetwork()
