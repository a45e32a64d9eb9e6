"""Probe one eD2K peer over TCP: the asyncio driver of `networks.ed2k.probe`.

Every decision belongs to the sans-I/O `Ed2kProbe`; this layer connects,
writes what the probe has to send, reads with the arrival instant from
`clock`, fires the probe's timer and closes. Whatever the peer does,
`probe_peer` returns a result; a failure is a typed error in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeAlias

from atalaya.networks.ed2k import probe as sansio
from atalaya.networks.ed2k.obfuscation import Initiator
from atalaya.networks.ed2k.probe import Ed2kProbe, ProbeErrorKind, ProbeLimits, ProbeTimeouts

Ed2kProbeResult: TypeAlias = sansio.Ed2kProbeResult[datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def probe_peer(
    ip: str,
    port: int,
    file_hash: bytes,
    *,
    file_size: int | None,
    user_hash: bytes,
    bind_ip: str | None = None,
    timeouts: ProbeTimeouts | None = None,
    limits: ProbeLimits | None = None,
    clock: Callable[[], datetime] = utc_now,
    aich_master: bytes | None = None,
    obfuscate_for: bytes | None = None,
) -> Ed2kProbeResult:
    """Probe the peer at ip:port for the file and report what it showed.

    `aich_master`, the file's AICH master hash from the operator's reference,
    lets a peer that offers AICH be proven by one 180 KiB block.
    `obfuscate_for`, the peer's user hash, opens the connection with eMule's
    protocol obfuscation keyed from it (a peer may require it).
    """
    loop = asyncio.get_running_loop()
    probe: Ed2kProbe[datetime] = Ed2kProbe(
        ip,
        port,
        file_hash,
        file_size=file_size,
        user_hash=user_hash,
        now=loop.time(),
        timeouts=timeouts,
        limits=limits,
        aich_master=aich_master,
        obfuscator=Initiator(obfuscate_for) if obfuscate_for is not None else None,
    )
    writer: asyncio.StreamWriter | None = None
    try:
        local_addr = (bind_ip, 0) if bind_ip else None
        try:
            reader, opened = await asyncio.wait_for(
                asyncio.open_connection(ip, port, local_addr=local_addr), _left(probe, loop)
            )
            writer = opened
        except TimeoutError:
            _fire(probe, loop)
        except ConnectionRefusedError as exc:
            probe.fail(ProbeErrorKind.REFUSED, str(exc))
        except OSError as exc:
            probe.fail(ProbeErrorKind.UNREACHABLE, str(exc) or type(exc).__name__)
        else:
            sockname = opened.get_extra_info("sockname")
            local = (str(sockname[0]), int(sockname[1])) if sockname else None
            probe.connected(local, loop.time(), clock())
            await _pump(probe, reader, opened, clock)
    finally:
        if writer is not None:
            await _close(probe, writer)
    result = probe.result
    assert result is not None, "the driver returns only once the probe is done"
    return replace(result, finished_at=clock())


def _left(probe: Ed2kProbe[datetime], loop: asyncio.AbstractEventLoop) -> float:
    timer = probe.get_timer()
    return 0.0 if timer is None else max(0.0, timer - loop.time())


def _fire(probe: Ed2kProbe[datetime], loop: asyncio.AbstractEventLoop) -> None:
    # asyncio may wake a hair early; the timer has fired all the same.
    timer = probe.get_timer()
    probe.handle_timer(max(loop.time(), timer if timer is not None else 0.0))


async def _pump(
    probe: Ed2kProbe[datetime],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    clock: Callable[[], datetime],
) -> None:
    loop = asyncio.get_running_loop()
    while not probe.done:
        data = probe.data_to_send()
        if data:
            try:
                writer.write(data)
                await asyncio.wait_for(writer.drain(), _left(probe, loop) or 0.001)
            except TimeoutError:
                probe.fail(ProbeErrorKind.TIMEOUT, "the peer reads nothing we send")
                return
            except OSError as exc:
                probe.fail(ProbeErrorKind.CLOSED, str(exc) or type(exc).__name__)
                return
        left = _left(probe, loop)
        if left <= 0:
            _fire(probe, loop)
            continue
        try:
            chunk = await asyncio.wait_for(reader.read(probe.read_size), left)
        except TimeoutError:
            _fire(probe, loop)
            continue
        except OSError as exc:
            probe.fail(ProbeErrorKind.CLOSED, str(exc) or type(exc).__name__)
            return
        probe.receive_data(chunk, loop.time(), clock())


async def _close(probe: Ed2kProbe[datetime], writer: asyncio.StreamWriter) -> None:
    # The probe's last words (a cancel, so the peer frees its slot) go out first.
    last = probe.data_to_send()
    try:
        if last:
            writer.write(last)
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError):
        writer.transport.abort()
