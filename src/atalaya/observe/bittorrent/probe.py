"""Probe one BitTorrent peer over TCP: the asyncio driver of `networks.bittorrent.probe`.

Every decision (what to send, what the peer proved, when a phase has run
out of time) belongs to the sans-I/O `ProbeMachine`. This layer only
connects, writes what the machine has to send, reads what the peer sends
with the arrival instant from `clock`, fires the machine's timer, and
closes. Whatever the peer does, `probe_peer` returns a `ProbeResult`; a
failure is a typed `ProbeError` in it, never an exception.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeAlias

from atalaya.networks.bittorrent import probe as machine_probe
from atalaya.networks.bittorrent.metainfo import Metainfo
from atalaya.networks.bittorrent.probe import (
    ProbeError,
    ProbeErrorKind,
    ProbeLimits,
    ProbeMachine,
    ProbeTimeouts,
)

__all__ = [
    "ProbeError",
    "ProbeErrorKind",
    "ProbeLimits",
    "ProbeResult",
    "ProbeTimeouts",
    "probe_peer",
    "utc_now",
]

# What one probe established, its times in UTC as `clock` gave them on arrival.
ProbeResult: TypeAlias = machine_probe.ProbeResult[datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def probe_peer(
    ip: str,
    port: int,
    infohash: bytes,
    *,
    torrent: Metainfo | None = None,
    bind_ip: str | None = None,
    peer_id: bytes,
    pieces_to_verify: int = 1,
    rng: random.Random,
    fetch_metadata: bool = False,
    timeouts: ProbeTimeouts | None = None,
    limits: ProbeLimits | None = None,
    client_name: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    on_connected: Callable[[str, int], None] | None = None,
    aliases: Iterable[bytes] = (),
    full_file: int | None = None,
) -> ProbeResult:
    """Probe the peer at ip:port for `infohash` and report what it showed.

    `torrent` supplies piece hashes; without it, the info dictionary is
    fetched from the peer (ut_metadata) when pieces are to be verified or
    `fetch_metadata` is set. `bind_ip` picks our source address.
    `on_connected` hears our end of the connection (ip, port) as soon as it
    exists, before the peer can tell anyone else about it (PEX). `aliases`
    are other names of the same torrent (a hybrid's v1 and v2 hashes) that
    the peer's handshake may answer with. `full_file` is the index of a file
    to download whole, hashing it as it streams by (see `StreamedFile`).
    """
    loop = asyncio.get_running_loop()
    machine: ProbeMachine[datetime] = ProbeMachine(
        ip,
        port,
        infohash,
        peer_id=peer_id,
        rng=rng,
        now=loop.time(),
        torrent=torrent,
        pieces_to_verify=pieces_to_verify,
        fetch_metadata=fetch_metadata,
        timeouts=timeouts,
        limits=limits,
        client_name=client_name,
        aliases=aliases,
        full_file=full_file,
    )
    streams: _Streams | None = None
    try:
        streams = await _connect(machine, ip, port, bind_ip, clock, on_connected)
        if streams is not None:
            await _pump(machine, *streams, clock)
    finally:
        if streams is not None:
            await _close(streams[1])
    result = machine.result
    assert result is not None, "the driver returns only once the machine is done"
    return replace(result, finished_at=clock())


def _timer_fired(machine: ProbeMachine[datetime], loop: asyncio.AbstractEventLoop) -> None:
    # asyncio may wake a hair before the instant asked for; the timer has fired all the same.
    timer = machine.get_timer()
    machine.handle_timer(max(loop.time(), timer if timer is not None else 0.0))


def _time_left(machine: ProbeMachine[datetime], loop: asyncio.AbstractEventLoop) -> float:
    timer = machine.get_timer()
    return 0.0 if timer is None else max(0.0, timer - loop.time())


_Streams: TypeAlias = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(
    machine: ProbeMachine[datetime],
    ip: str,
    port: int,
    bind_ip: str | None,
    clock: Callable[[], datetime],
    on_connected: Callable[[str, int], None] | None,
) -> _Streams | None:
    """The connection, told to the machine; None when there is none (the machine knows why)."""
    loop = asyncio.get_running_loop()
    local_addr = (bind_ip, 0) if bind_ip else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(ip, port, local_addr=local_addr), _time_left(machine, loop)
        )
    except TimeoutError:
        _timer_fired(machine, loop)
        return None
    except ConnectionRefusedError as exc:
        machine.fail(ProbeErrorKind.REFUSED, str(exc))
        return None
    except OSError as exc:
        machine.fail(ProbeErrorKind.UNREACHABLE, str(exc) or type(exc).__name__)
        return None
    at = clock()
    sockname = writer.get_extra_info("sockname")
    local = (str(sockname[0]), int(sockname[1])) if sockname else None
    if local is not None and on_connected is not None:
        on_connected(*local)
    machine.connected(local, loop.time(), at)
    return reader, writer


async def _pump(
    machine: ProbeMachine[datetime],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    clock: Callable[[], datetime],
) -> None:
    """Bytes both ways and the timer, until the machine is done."""
    loop = asyncio.get_running_loop()
    while not machine.done:
        await _flush(machine, writer)
        if machine.done:
            return
        left = _time_left(machine, loop)
        if left <= 0:
            _timer_fired(machine, loop)
            continue
        try:
            data = await asyncio.wait_for(reader.read(machine.read_size), left)
        except TimeoutError:
            _timer_fired(machine, loop)
            continue
        except OSError as exc:  # reset, broken pipe…
            machine.fail(ProbeErrorKind.CLOSED, str(exc) or type(exc).__name__)
            return
        machine.receive_data(data, loop.time(), clock())


async def _flush(machine: ProbeMachine[datetime], writer: asyncio.StreamWriter) -> None:
    data = machine.data_to_send()
    if not data:
        return
    try:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), machine.timeouts.block)
    except TimeoutError:
        machine.fail(ProbeErrorKind.TIMEOUT, "peer reads nothing we send")
    except OSError as exc:
        machine.fail(ProbeErrorKind.CLOSED, str(exc) or type(exc).__name__)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError):
        # A peer that reads nothing keeps our last bytes unsent: drop them.
        writer.transport.abort()
