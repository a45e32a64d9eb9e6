"""The toy observer: ask each peer for each watched file, hash what it sends, write sightings.

A thin asyncio layer over the codec: one UDP socket, one ASK per (peer,
target), each answer matched to its question by peer address, transaction
id and digest, and stamped on arrival. Asks are bounded in number, in
flight and in time.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from atalaya.observe.sightings import Sighting, SightingWriter, new_run_id
from atalaya.observe.watchlist import WatchTarget
from tests.support.toynet.codec import Ask, CodecError, Have, Message, Nope, decode, encode

MAX_ASKS = 10_000
IN_FLIGHT = 32
FOUND_BY = "peer list"

Address = tuple[str, int]
Key = tuple[Address, bytes, bytes]  # (peer, txid, digest)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ToyStats:
    targets: int = 0
    asked: int = 0
    holding: int = 0
    verified: int = 0
    failed_verification: int = 0
    unanswered: int = 0
    sightings: int = 0


class _Answers(asyncio.DatagramProtocol):
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.waiting: dict[Key, asyncio.Future[tuple[Message, datetime]]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        arrived = self.clock()  # the instant a sighting records
        try:
            message = decode(data)
        except CodecError:
            return  # a hostile or confused peer: nothing to match
        key = ((addr[0], addr[1]), message.txid, message.digest)
        future = self.waiting.get(key)
        if future is not None and not future.done() and not isinstance(message, Ask):
            future.set_result((message, arrived))


async def observe(
    engine: Engine,
    targets: Sequence[WatchTarget],
    peers: Sequence[Address],
    *,
    bind_ip: str = "127.0.0.1",
    timeout_s: float = 2.0,
    clock: Callable[[], datetime] = utc_now,
) -> ToyStats:
    """Ask every peer for every target once; write a sighting for each file a peer sent."""
    stats = ToyStats(targets=len(targets))
    writer = SightingWriter(engine)
    run_id = new_run_id()
    loop = asyncio.get_running_loop()
    transport, answers = await loop.create_datagram_endpoint(
        lambda: _Answers(clock), local_addr=(bind_ip, 0)
    )
    local_ip, local_port = transport.get_extra_info("sockname")[:2]
    gate = asyncio.Semaphore(IN_FLIGHT)
    sightings: list[Sighting] = []

    async def ask(peer: Address, target: WatchTarget) -> None:
        txid = secrets.token_bytes(4)
        key = (peer, txid, target.value)
        async with gate:
            answers.waiting[key] = loop.create_future()
            transport.sendto(encode(Ask(txid, target.value)), peer)
            stats.asked += 1
            try:
                message, arrived = await asyncio.wait_for(answers.waiting[key], timeout_s)
            except TimeoutError:
                stats.unanswered += 1
                return
            finally:
                answers.waiting.pop(key, None)
        if isinstance(message, Nope) or not isinstance(message, Have):
            return
        stats.holding += 1
        proven = hashlib.sha256(message.data).digest() == target.value
        stats.verified += proven
        stats.failed_verification += not proven
        sightings.append(
            Sighting(
                network="toy",
                item_kind=target.kind,
                item_value=target.hex,
                ip=peer[0],
                port=peer[1],
                seen_at=arrived,
                found_by=FOUND_BY,
                run_id=run_id,
                client=message.client,
                have_fraction=1.0,
                pieces_verified=int(proven),
                pieces_failed=int(not proven),
                bytes_downloaded=len(message.data),
                file_key=target.file_key,
                category=target.category,
                hash_set=target.hash_set,
                hash_set_sha256=target.hash_set_sha256,
                local_ip=str(local_ip),
                local_port=int(local_port),
                details={"reason": target.reason},
            )
        )

    try:
        pairs = [(p, t) for p in dict.fromkeys(peers) for t in targets][:MAX_ASKS]
        await asyncio.gather(*(ask(p, t) for p, t in pairs))
    finally:
        transport.close()
    stats.sightings = writer.write(sightings)
    return stats
