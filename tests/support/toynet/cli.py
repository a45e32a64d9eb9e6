"""`atalaya watch toy`: what the registry turns into a command for the toy network."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from atalaya.console import out, store_engine
from atalaya.errors import AtalayaError
from atalaya.observe.watchlist import load_targets
from tests.support.toynet.network import TOY
from tests.support.toynet.observer import observe


def _peer(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise AtalayaError(f"--peer {text[:64]!r}: expected HOST:PORT")
    return host, int(port)


def watch_toy(
    ctx: typer.Context,
    peer: Annotated[list[str], typer.Option("--peer", help="Toy peer to ask, HOST:PORT.")],
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, max=30.0, help="Seconds to wait for answers.")
    ] = 2.0,
) -> None:
    """Ask toy peers for every file on the toy watch list; record who sends one."""
    engine = store_engine(ctx)
    targets = load_targets(engine, TOY)
    if not targets:
        raise AtalayaError("the toy watch list is empty: import a hash set with sha256 hashes")
    stats = asyncio.run(observe(engine, targets, [_peer(p) for p in peer], timeout_s=timeout))
    out.print(
        f"toy: {stats.targets} targets, {stats.asked} asked, {stats.holding} holding, "
        f"{stats.verified} verified, {stats.sightings} sightings"
    )
