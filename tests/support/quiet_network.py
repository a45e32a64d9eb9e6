"""A network that watches nothing: the least a plug-in is, for tests of the registry's readers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from atalaya.console import out


def watch_quiet() -> None:
    """Watch the quiet network (it has nothing to watch)."""
    out.print("quiet: nothing to watch")


@dataclass(frozen=True)
class QuietNetwork:
    name: str = "quiet"
    label: str = "Quiet net"
    kinds: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def derive(self, algorithm: str, value: bytes) -> tuple[str, bytes] | None:
        return None

    def watch_command(self) -> Callable[..., None]:
        return watch_quiet
