"""The networks Atalaya watches: one registry line per network plug-in.

A network brings what no other stage needs to know: its name, the kinds of
identifier it watches, which hash set rows become watch targets of which
kind, and its observer, run by `atalaya watch <name>`. Everything after the
observer (sightings, leads, the web) reads a network only as a name and a
label, from here; adding a network is a package under `networks/` and
`observe/` and one line in `NETWORKS` below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from atalaya.errors import AtalayaError
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.ed2k.network import ED2K_NETWORK


class Network(Protocol):
    """What a P2P network plugs in (python-threatexchange's SignalExchangeAPI, in small).

    A network is a hashable value (a frozen dataclass, typically): the
    command line is built once per set of registered networks.
    """

    @property
    def name(self) -> str:
        """The stable name stored with every sighting and typed after `atalaya watch`."""

    @property
    def label(self) -> str:
        """How people read the name (filters, pages)."""

    @property
    def kinds(self) -> tuple[str, ...]:
        """The identifier kinds the network watches: hash set algorithm names."""

    @property
    def sources(self) -> tuple[str, ...]:
        """The hash set algorithms whose rows `derive` turns into watch targets."""

    def derive(self, algorithm: str, value: bytes) -> tuple[str, bytes] | None:
        """The (kind, value) a hash set row is watched as; None if not by this network."""

    def watch_command(self) -> Callable[..., None]:
        """The Typer command function that `atalaya watch <name>` runs."""


# One line per network. Order is the order of menus and help.
NETWORKS: tuple[Network, ...] = (BITTORRENT, ED2K_NETWORK)

# Networks that tests add for a while (`registered`); never set otherwise.
_added: list[Network] = []


class UnknownNetworkError(AtalayaError):
    """A network name that no plug-in registers."""


def networks() -> tuple[Network, ...]:
    """Every registered network, in registry order."""
    return (*NETWORKS, *_added)


def names() -> tuple[str, ...]:
    return tuple(n.name for n in networks())


def get_network(name: str) -> Network:
    """The network called `name`; UnknownNetworkError, naming the known ones, if none is."""
    for network in networks():
        if network.name == name:
            return network
    known = ", ".join(names())
    raise UnknownNetworkError(f"unknown network {name[:64]!r}: expected one of {known}")


def label_of(name: str) -> str:
    """The label of network `name`; the name itself for one no longer registered."""
    for network in networks():
        if network.name == name:
            return network.label
    return name


@contextmanager
def registered(*extra: Network) -> Iterator[None]:
    """Add networks to the registry for the length of a `with` (tests' toy networks)."""
    taken = set(names())
    for network in extra:
        if network.name in taken:
            raise ValueError(f"network {network.name!r} is registered already")
        taken.add(network.name)
    _added.extend(extra)
    try:
        yield
    finally:
        for network in extra:
            _added.remove(network)
