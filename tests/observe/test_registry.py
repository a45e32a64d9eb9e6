"""The network registry: what it lists, how a name is found, and `atalaya watch <name>` from it."""

from __future__ import annotations

import re

import pytest

from atalaya.hashsets.algorithms import is_known
from atalaya.observe.bittorrent.cli import watch_bittorrent
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.registry import (
    UnknownNetworkError,
    get_network,
    label_of,
    names,
    networks,
    registered,
)
from tests.support.cli import run_atalaya
from tests.support.quiet_network import QuietNetwork

NAME = re.compile(r"[a-z][a-z0-9]{1,19}")  # fits sighting.network and a command name


def test_bittorrent_is_registered_with_its_command() -> None:
    assert get_network("bittorrent") is BITTORRENT
    assert label_of("bittorrent") == "BitTorrent"
    assert BITTORRENT.watch_command() is watch_bittorrent


def test_every_registered_network_is_well_formed() -> None:
    assert len(set(names())) == len(networks())
    for network in networks():
        assert NAME.fullmatch(network.name), network.name
        assert network.label.strip() == network.label != ""
        assert network.kinds and all(is_known(k) for k in network.kinds)
        assert all(is_known(a) for a in network.sources)
        assert callable(network.watch_command())


@pytest.mark.parametrize("name", ["", "BitTorrent", "gnutella", "x" * 500])
def test_an_unknown_name_is_refused_naming_the_known_ones(name: str) -> None:
    with pytest.raises(UnknownNetworkError, match="expected one of bittorrent, ed2k") as caught:
        get_network(name)
    assert len(str(caught.value)) < 160
    assert label_of(name) == name  # an old sighting's network still reads as itself


def test_registered_adds_for_the_with_only() -> None:
    quiet = QuietNetwork()
    with registered(quiet):
        assert names() == ("bittorrent", "ed2k", "quiet")
        assert get_network("quiet") is quiet and label_of("quiet") == "Quiet net"
    assert names() == ("bittorrent", "ed2k")
    with pytest.raises(RuntimeError), registered(quiet):
        raise RuntimeError
    assert names() == ("bittorrent", "ed2k")


def test_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="registered already"), registered(BITTORRENT):
        pass
    twice = (QuietNetwork(), QuietNetwork(label="Another"))
    with pytest.raises(ValueError, match="registered already"), registered(*twice):
        pass
    assert names() == ("bittorrent", "ed2k")


def test_atalaya_watch_has_one_command_per_registered_network() -> None:
    listed = run_atalaya("watch", "--help")
    assert listed.returncode == 0 and "bittorrent" in listed.stdout
    assert "quiet" not in listed.stdout
    with registered(QuietNetwork()):
        listed = run_atalaya("watch", "--help")
        assert "bittorrent" in listed.stdout and "quiet" in listed.stdout
        ran = run_atalaya("watch", "quiet")
        assert (ran.returncode, ran.stdout) == (0, "quiet: nothing to watch\n")
    gone = run_atalaya("watch", "quiet")
    assert gone.returncode == 2 and "No such command 'quiet'" in gone.stderr
