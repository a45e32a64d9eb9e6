"""`atalaya watch ed2k`: probe eD2K sources for every watched eD2K file."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from atalaya.console import err, out, print_json, store_engine
from atalaya.errors import AtalayaError
from atalaya.hashsets.algorithms import ED2K
from atalaya.networks.ed2k.links import parse_link
from atalaya.networks.ed2k.wire import Ed2kError
from atalaya.observe.ed2k.network import ED2K_NETWORK
from atalaya.observe.ed2k.observer import (
    AICH_FROM_HASH_SET,
    AICH_FROM_LINK,
    Ed2kConfig,
    Ed2kObserver,
    Ed2kStats,
    Obfuscate,
    aich_masters,
    default_state_path,
    file_sizes,
    load_user_hash,
)
from atalaya.observe.watchlist import load_targets


def parse_source(text: str, option: str = "--source") -> tuple[str, int]:
    """HOST:PORT of an eD2K client or Kad node, IPv4 (eD2K has no IPv6)."""
    host, sep, port_text = text.strip().rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
        port = int(port_text)
    except ValueError:
        address, port = None, 0
    if not sep or address is None or not 0 < port < 65536:
        raise AtalayaError(f"{option} {text[:80]!r}: expected IPV4:PORT, e.g. 192.0.2.7:4662")
    return str(address), port


def parse_ed2k_source(text: str) -> tuple[str, int, bytes | None]:
    """IPV4:PORT of an eD2K client, with /USERHASH (32 hex digits) when it is known.

    The user hash is what keys an obfuscated connection: a client that
    requires obfuscation cannot be reached without it.
    """
    address, slash, hash_text = text.strip().partition("/")
    ip, port = parse_source(address)
    if not slash:
        return ip, port, None
    try:
        user_hash = bytes.fromhex(hash_text)
    except ValueError:
        user_hash = b""
    if len(user_hash) != 16:
        raise AtalayaError(
            f"--source {text[:80]!r}: a user hash is 32 hex digits, "
            "e.g. 192.0.2.7:4662/0123456789abcdef0123456789abcdef"
        )
    return ip, port, user_hash


def watch_ed2k(
    ctx: typer.Context,
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="eD2K client to probe, IPV4:PORT or IPV4:PORT/USERHASH (32 hex digits; "
            "needed to reach a client that requires obfuscation) (repeatable).",
        ),
    ] = None,
    obfuscate: Annotated[
        Obfuscate,
        typer.Option(
            "--obfuscate",
            help="Protocol obfuscation: 'auto' when a Kad source asks for it or a --source "
            "names its user hash; 'always' whenever the user hash is known; 'never'.",
        ),
    ] = Obfuscate.AUTO,
    kad_bootstrap: Annotated[
        list[str] | None,
        typer.Option(
            "--kad-bootstrap",
            help="Kad node to start from, IPV4:UDPPORT (repeatable): each round, every "
            "watched file's sources are searched in Kad and probed.",
        ),
    ] = None,
    link: Annotated[
        list[str] | None,
        typer.Option(
            "--link", help="Also watch the file of this ed2k://|file|…| link (repeatable)."
        ),
    ] = None,
    bind: Annotated[
        str | None, typer.Option("--bind", help="Local IPv4 address to probe from.")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.0, help="Stop after this many seconds (default: Ctrl-C)."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=1.0, help="Seconds between rounds of probes.")
    ] = 300.0,
    probes: Annotated[int, typer.Option("--probes", min=1, max=256, help="Probes at once.")] = 8,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="File keeping our eD2K user hash between runs "
            "(default: ~/.local/state/atalaya/ed2k.json).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Probe eD2K clients for every eD2K hash on the watch list: prove possession, record sightings.

    Each peer is asked for the file, then one part is downloaded from it alone
    and its MD4 compared with the expected hash (the whole file for files of
    one part); when the file's AICH master hash is known (a link's h=, a hash
    set) and the peer offers AICH, one 180 KiB block checked against the AICH
    tree is enough. The content is hashed and dropped. With --kad-bootstrap,
    each round also asks Kad for every file's sources and probes them; a
    firewalled (LowID) source is recorded as found, never as proof.
    """
    named = [parse_ed2k_source(s) for s in source or []]
    sources = [(ip, port) for ip, port, _ in named]
    user_hashes = {(ip, port): user for ip, port, user in named if user is not None}
    kad_nodes = [parse_source(s, "--kad-bootstrap") for s in kad_bootstrap or []]
    if not sources and not kad_nodes:
        raise AtalayaError(
            "name eD2K clients to probe with --source IPV4:PORT, "
            "or Kad nodes to find them with --kad-bootstrap IPV4:PORT"
        )
    links = []
    for text in link or []:
        try:
            links.append(parse_link(text))
        except Ed2kError as exc:
            raise AtalayaError(f"--link: {exc}") from exc
    if bind is not None:
        try:
            bind = str(ipaddress.IPv4Address(bind))
        except ValueError:
            raise AtalayaError(f"--bind {bind[:60]!r}: expected an IPv4 address") from None
    engine = store_engine(ctx)
    targets = load_targets(engine, ED2K_NETWORK, [(ED2K, item.file_hash) for item in links])
    if not targets:
        raise AtalayaError(
            "the watch list has no eD2K hash: import a hash set with ed2k hashes or pass --link"
        )
    sizes = file_sizes(engine, targets)
    sizes.update({item.file_hash: item.size for item in links})
    # A trusted AICH master hash (a hash set's, or a link's h=) lets a peer
    # that offers AICH be proven by one 180 KiB block instead of a part.
    aich = {k: (v, AICH_FROM_HASH_SET) for k, v in aich_masters(engine, targets).items()}
    aich.update({i.file_hash: (i.aich, AICH_FROM_LINK) for i in links if i.aich is not None})
    unsized = sum(1 for t in targets if t.value not in sizes)
    state_path = state or default_state_path()
    try:
        user_hash = load_user_hash(state_path)
    except OSError as exc:
        raise AtalayaError(f"--state {state_path}: {exc.strerror or exc}") from exc
    config = Ed2kConfig(
        tuple(sources),
        source_user_hashes=user_hashes,
        obfuscate=obfuscate,
        bind_ip=bind,
        interval=interval,
        max_concurrent=probes,
        user_hash=user_hash,
        kad_bootstrap=tuple(kad_nodes),
    )
    err.print(
        f"watching {len(targets)} eD2K file(s) on {len(sources)} source(s)"
        + (f" and in Kad from {len(kad_nodes)} node(s)" if kad_nodes else "")
        + (f" for {duration:g} s" if duration is not None else " until Ctrl-C")
    )
    if unsized:
        err.print(
            f"note: {unsized} file(s) have no known size: only files of more than one part "
            "can be proven for them (give the size with --link)"
        )

    def progress(stats: Ed2kStats) -> None:
        if stats.probed % 50 == 0:
            err.print(f"probed {stats.probed}, sightings {stats.sightings}")

    observer = Ed2kObserver(engine, targets, sizes, config, on_update=progress, aich=aich)
    stats = asyncio.run(_run(observer, duration))
    summary = {"run_id": observer.run_id, **asdict(stats)}
    if json_out:
        print_json(summary)
    else:
        out.print(
            f"run {observer.run_id}: {stats.targets} files, {stats.sources} sources, "
            f"{stats.probed} probed, {stats.holding} holding, {stats.verified} verified, "
            f"{stats.failed_verification} failed verification, {stats.not_sharing} not sharing, "
            f"{stats.unreachable} unreachable, {stats.sightings} sightings"
            + (
                f"; {stats.kad_searches} Kad searches found {stats.kad_sources} sources, "
                f"{stats.unprobed} firewalled (recorded, not probed)"
                if kad_nodes
                else ""
            )
            + (f" ({stats.retried} probes asked again after a stall)" if stats.retried else "")
            + (f"; {stats.obfuscated} obfuscated" if stats.obfuscated else "")
            + (
                f" ({stats.plain_fallbacks} asked again in plain eD2K)"
                if stats.plain_fallbacks
                else ""
            )
        )


async def _run(observer: Ed2kObserver, duration: float | None) -> Ed2kStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C and SIGTERM end the run as --duration does: what is written stays.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await observer.run(duration=duration, stop=stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
