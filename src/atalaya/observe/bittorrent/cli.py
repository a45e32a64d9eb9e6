"""`atalaya watch bittorrent`: the BitTorrent observer, run from the command line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.text import Text

from atalaya.console import err, out, print_json, store_engine
from atalaya.errors import AtalayaError
from atalaya.hashsets.algorithms import BTV1_PIECE_SIZES, BTV1_PREFIX, BTV2_ROOT, infohash_kind
from atalaya.hashsets.categories import CategoryError, parse_internal
from atalaya.hashsets.index import MatchIndex
from atalaya.networks.bittorrent.magnet import MagnetError, parse_magnet
from atalaya.observe.bittorrent.dht_state import default_state_path
from atalaya.observe.bittorrent.fence import parse_fence
from atalaya.observe.bittorrent.launch import (
    DEFAULT_DHT_PORT,
    describe,
    parse_binds,
    plan_launch,
)
from atalaya.observe.bittorrent.network import BITTORRENT
from atalaya.observe.bittorrent.observer import (
    BittorrentObserver,
    FleetSettings,
    ObserverConfig,
    ObserverStats,
    save_run_state,
)
from atalaya.observe.clock import DEFAULT_INTERVAL_S, DEFAULT_MAX_OFFSET_S, ClockSettings
from atalaya.observe.leases import DEFAULT_LEASE_SECONDS, MIN_LEASE_SECONDS, require_fleet_engine
from atalaya.observe.watchlist import load_targets


def _parse_infohash(text: str) -> bytes:
    """A v1 (40 hex) or v2 (64 hex) infohash, or the topic of a magnet link."""
    text = text.strip()
    if text.startswith("magnet:"):
        try:
            magnet = parse_magnet(text)
        except MagnetError as exc:
            raise AtalayaError(f"--infohash: {exc}") from exc
        found = magnet.infohash_v1 or magnet.infohash_v2
        if found is None:
            raise AtalayaError("--infohash: the magnet link names no BitTorrent infohash")
        return found
    if len(text) not in (40, 64) or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise AtalayaError(
            f"--infohash {text!r}: expected 40 hex digits (v1), 64 (v2) or a magnet link"
        )
    return bytes.fromhex(text)


def watch_bittorrent(
    ctx: typer.Context,
    dht_bootstrap: Annotated[
        list[str] | None,
        typer.Option(
            "--dht-bootstrap",
            help="DHT node to start from, HOST:PORT (repeatable); "
            "default: the public routers and the contacts saved by the last run.",
        ),
    ] = None,
    tracker: Annotated[
        list[str] | None, typer.Option("--tracker", help="Tracker URL, http or udp (repeatable).")
    ] = None,
    infohash: Annotated[
        list[str] | None,
        typer.Option("--infohash", help="Also watch this infohash or magnet link (repeatable)."),
    ] = None,
    bind: Annotated[
        list[str] | None,
        typer.Option(
            "--bind",
            help="Local address to observe from, at most one IPv4 and one IPv6 "
            "(default: every local address).",
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="UDP port of the DHT (0: any free one)."),
    ] = DEFAULT_DHT_PORT,
    allow_network: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-network",
            help="Talk only to addresses in this CIDR range (repeatable); default: any peer.",
        ),
    ] = None,
    dht_state: Annotated[
        Path | None,
        typer.Option(
            "--dht-state",
            help="File keeping the node id and DHT contacts between runs (default: "
            "~/.local/state/atalaya/dht.json, unless --dht-bootstrap names the nodes).",
        ),
    ] = None,
    no_dht: Annotated[
        bool, typer.Option("--no-dht", help="Find peers through trackers only.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Print what the run would use (addresses, bootstrap "
            "nodes, networks, rates) and exit.",
        ),
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.0, help="Stop after this many seconds (default: Ctrl-C)."),
    ] = None,
    discover: Annotated[
        bool, typer.Option("--discover", help="Crawl the DHT for torrents carrying known files.")
    ] = False,
    pieces: Annotated[
        int, typer.Option("--pieces", min=0, max=64, help="Pieces to download and verify per peer.")
    ] = 2,
    probes: Annotated[
        int, typer.Option("--probes", min=1, max=512, help="Peers probed at once.")
    ] = 16,
    interval: Annotated[
        float, typer.Option("--interval", min=1.0, help="Seconds between lookups of a target.")
    ] = 30.0,
    full_file: Annotated[
        bool,
        typer.Option(
            "--full-file",
            help="Download the whole watched file from each peer and recompute its own "
            "MD5/SHA-1/SHA-256 against the hash set (the content is hashed and dropped).",
        ),
    ] = False,
    full_file_category: Annotated[
        list[str] | None,
        typer.Option(
            "--full-file-category",
            help="Do --full-file only for files of this category (repeatable), e.g. severe_abuse.",
        ),
    ] = None,
    full_file_max_bytes: Annotated[
        int,
        typer.Option(
            "--full-file-max-bytes",
            min=1,
            help="Largest file downloaded whole; a larger one is proven by pieces only, "
            "and its sighting says so.",
        ),
    ] = 2 * 1024**3,
    ntp_server: Annotated[
        str | None,
        typer.Option(
            "--ntp-server",
            envvar="ATALAYA_NTP_SERVER",
            help="NTP server (HOST or HOST:PORT) to measure the clock against when chronyd "
            "does not answer `chronyc tracking`.",
        ),
    ] = None,
    max_clock_offset: Annotated[
        float,
        typer.Option(
            "--max-clock-offset",
            envvar="ATALAYA_MAX_CLOCK_OFFSET",
            min=0.0,
            help="Seconds the clock may be off its time source; beyond, sightings are not "
            "recorded as evidence.",
        ),
    ] = DEFAULT_MAX_OFFSET_S,
    clock_interval: Annotated[
        float,
        typer.Option(
            "--clock-interval", min=1.0, help="Seconds between measurements of the clock's offset."
        ),
    ] = DEFAULT_INTERVAL_S,
    fleet: Annotated[
        bool,
        typer.Option(
            "--fleet",
            help="Share the watch list with the other observers on this PostgreSQL store: "
            "watch only the targets this run leases (see `atalaya fleet status`).",
        ),
    ] = False,
    lease_seconds: Annotated[
        float,
        typer.Option(
            "--lease-seconds",
            min=MIN_LEASE_SECONDS,
            help="With --fleet: how long a lease lasts unrenewed; a stopped observer's "
            "targets go to the others within about this time.",
        ),
    ] = DEFAULT_LEASE_SECONDS,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Watch every infohash on the watch list: find peers, prove possession, record sightings.

    Without --dht-bootstrap the run joins the public DHT through the public
    routers; --allow-network fences a run in (a lab, a test network). With
    --fleet, several observers share the watch list through leases in one
    PostgreSQL store.
    """
    if fleet and discover:
        raise AtalayaError(
            "--fleet and --discover: discovered torrents are not leased yet; "
            "run discovery on one observer without --fleet"
        )
    fence = parse_fence(allow_network)
    binds = parse_binds(bind or [])
    state_path = dht_state
    if state_path is None and not dht_bootstrap:
        state_path = default_state_path()
    plan = asyncio.run(
        plan_launch(
            binds=binds,
            port=port,
            fence=fence,
            bootstrap=dht_bootstrap or [],
            trackers=tracker or [],
            state_path=state_path,
            use_dht=not no_dht,
        )
    )
    if check:
        for line_text in describe(plan):
            out.print(line_text, markup=False)
        if (problem := plan.problem()) is not None:
            raise AtalayaError(problem)
        return
    if (problem := plan.problem()) is not None:
        raise AtalayaError(problem)
    engine = store_engine(ctx)
    if fleet:
        require_fleet_engine(engine)
    named = [_parse_infohash(h) for h in infohash or []]
    targets = load_targets(engine, BITTORRENT, [(infohash_kind(h), h) for h in named])
    if not targets and not discover:
        raise AtalayaError(
            "the watch list is empty: import a hash set with infohashes, pass --infohash, "
            "or use --discover"
        )
    index = None
    if discover:
        algorithms = [BTV2_ROOT] + [f"{BTV1_PREFIX}{size}" for size in BTV1_PIECE_SIZES]
        index = MatchIndex.from_store(engine, algorithms=algorithms)
        if len(index) == 0:
            err.print("note: no btv2_root/btv1 fingerprints imported; discovery cannot match")
    config = ObserverConfig(
        bind_ips=tuple(binds.values()),
        dht_port=port,
        dht_bootstrap=plan.bootstrap,
        dht_node_ids=dict(plan.state.node_ids),
        external_ip=plan.state.external_ip,
        allowed_networks=tuple(str(n) for n in fence) if fence is not None else None,
        trackers=tuple(tracker or []),
        use_dht=not no_dht,
        discover=discover,
        pieces_to_verify=pieces,
        max_concurrent_probes=probes,
        lookup_interval=interval,
        full_file=full_file,
        full_file_categories=frozenset(_categories(full_file_category or [])),
        max_full_file_bytes=full_file_max_bytes,
        clock=ClockSettings(
            ntp_server=ntp_server, max_offset_s=max_clock_offset, interval_s=clock_interval
        ),
    )
    line = _StatusLine(duration)
    fleet_settings = (
        FleetSettings(host=socket.gethostname(), pid=os.getpid(), lease_seconds=lease_seconds)
        if fleet
        else None
    )
    observer = BittorrentObserver(
        engine, targets, config, index=index, on_update=line.update, fleet=fleet_settings
    )
    reading = observer.clock_guard.measure()
    offset = f"{reading.offset_s:+.6f} s" if reading.offset_s is not None else "unknown"
    err.print(f"clock offset {offset} ({reading.source})", markup=False)
    if (refusal := observer.clock_guard.refusal()) is not None:
        err.print(f"warning: {refusal}", style="bold red", markup=False)
    where = ", ".join(binds.values()) or "every local address"
    source = (
        "no DHT"
        if no_dht
        else f"DHT from {len(plan.bootstrap)} node(s)"
        + (" (public routers and saved contacts)" if plan.from_routers else "")
    )
    shared = f"a leased share of {len(targets)}" if fleet else str(len(targets))
    err.print(
        f"watching {shared} infohash(es) from {where}, {source}"
        + (f" for {duration:g} s" if duration is not None else " until Ctrl-C")
        + (" with discovery" if discover else "")
    )
    try:
        stats = _run_until_interrupted(observer, duration, line)
    except OSError as exc:
        raise AtalayaError(f"cannot observe from {where} (port {port}): {exc}") from exc
    if state_path is not None and not no_dht:
        save_run_state(state_path, plan.state, observer)
    summary = {"run_id": observer.run_id, **asdict(stats)}
    if json_out:
        print_json(summary)
    else:
        out.print(
            f"run {observer.run_id}: {stats.targets} targets, {stats.peers_found} peers found, "
            f"{stats.probed} probed, {stats.holding} holding, {stats.verified} verified, "
            f"{stats.failed_verification} failed verification, {stats.sightings} sightings"
            + (f", {stats.discovered} discovered" if discover else "")
            + (f", {stats.not_evidence} not recorded (clock)" if stats.not_evidence else "")
            + (f", leases taken {stats.leases_taken}, lost {stats.leases_lost}" if fleet else "")
        )
        if stats.clock_refusal is not None or stats.not_evidence:
            err.print(
                f"warning: {stats.clock_refusal or 'the clock was off its bound during the run'}",
                style="bold red",
                markup=False,
            )


def _categories(names: list[str]) -> list[int]:
    try:
        return [int(parse_internal(name)) for name in names]
    except CategoryError as exc:
        raise AtalayaError(f"--full-file-category: {exc}") from exc


class _StatusLine:
    """A live one-line status on stderr, refreshed as the observer reports."""

    def __init__(self, duration: float | None) -> None:
        self.live = Live(console=err, refresh_per_second=4, transient=True)
        self.started = time.monotonic()
        self.duration = duration

    def update(self, stats: ObserverStats) -> None:
        elapsed = time.monotonic() - self.started
        limit = f"/{self.duration:g}" if self.duration is not None else ""
        self.live.update(
            Text(
                f"{elapsed:5.0f}{limit} s  targets {stats.targets}  peers {stats.peers_found}  "
                f"probed {stats.probed}  holding {stats.holding}  verified {stats.verified}  "
                f"failed {stats.failed_verification}  sightings {stats.sightings}"
                + (f"  discovered {stats.discovered}" if stats.discovered else "")
            )
        )


def _run_until_interrupted(
    observer: BittorrentObserver, duration: float | None, line: _StatusLine
) -> ObserverStats:
    async def main() -> ObserverStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Ctrl-C and SIGTERM end the run the same way --duration does: the
        # observer drains its queue, so no sighting already made is lost.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            return await observer.run(duration=duration, stop=stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    with line.live:
        return asyncio.run(main())
