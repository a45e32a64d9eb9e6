"""The toy network's declaration: the one object the registry needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from atalaya.hashsets.algorithms import SHA256


@dataclass(frozen=True)
class ToyNetwork:
    name: str = "toy"
    label: str = "Toy net"
    kinds: tuple[str, ...] = (SHA256,)
    sources: tuple[str, ...] = (SHA256,)

    def derive(self, algorithm: str, value: bytes) -> tuple[str, bytes] | None:
        return (SHA256, value) if algorithm == SHA256 else None

    def watch_command(self) -> Callable[..., None]:
        # As BitTorrent's: the command's module names this one.
        from tests.support.toynet.cli import watch_toy

        return watch_toy


TOY = ToyNetwork()
