"""Hostile BitTorrent peers on loopback, to show that an observer survives them.

Each `HostilePeer` listens on a 127.x address and a free port and misbehaves
in one way:

- ``liar``: a proper handshake and extension handshake, claims every piece
  (have_all, or a full bitfield without BEP 6), unchokes, and answers every
  block request with the right number of wrong bytes;
- ``malformed_extension``: a proper handshake, then an extension handshake
  whose bencode is broken;
- ``oversized``: a proper handshake, then a message length of 2**31;
- ``staller``: accepts the connection and never sends a byte;
- ``trickler``: sends its handshake one byte per `trickle_interval` seconds;
- ``have_flood``: a proper handshake, then an endless stream of have messages.

Everything is bounded: connections at once, the lifetime of each connection,
the bytes read from the client, and the messages a flood sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from types import TracebackType
from typing import Final, Literal, Self, get_args

from atalaya.lab.ports import is_loopback
from atalaya.networks.bittorrent import peerwire as pw

Behaviour = Literal["liar", "malformed_extension", "oversized", "staller", "trickler", "have_flood"]
BEHAVIOURS: Final[tuple[Behaviour, ...]] = get_args(Behaviour)

# A truncated dictionary: "m" maps to a dictionary that never closes.
MALFORMED_EXTENSION_PAYLOAD: Final = b"d1:md11:ut_metadatai1e6:ut_pexi"
OVERSIZED_LENGTH: Final = 1 << 31


class HostilePeer:
    """One misbehaving peer; an async context manager (start/stop)."""

    def __init__(
        self,
        ip: str,
        behaviour: Behaviour,
        *,
        infohash: bytes | None = None,
        num_pieces: int | None = None,
        port: int = 0,
        peer_id: bytes = b"-HP0001-hostilepeer!",
        seed: int = 0,
        max_connections: int = 16,
        connection_lifetime: float = 60.0,
        trickle_interval: float = 1.0,
        flood_messages: int = 1_000_000,
    ) -> None:
        if not is_loopback(ip):
            raise ValueError(f"hostile peers live on 127.0.0.0/8 only, got {ip!r}")
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}, expected one of {BEHAVIOURS}")
        if infohash is not None and len(infohash) != 20:
            raise ValueError("info_hash is the 20-byte handshake hash")
        if len(peer_id) != 20:
            raise ValueError("peer id must be 20 bytes")
        self.ip = ip
        self.port = port
        self.behaviour = behaviour
        self.infohash = infohash
        self.num_pieces = num_pieces
        self.peer_id = peer_id
        self.max_connections = max_connections
        self.connection_lifetime = connection_lifetime
        self.trickle_interval = trickle_interval
        self.flood_messages = flood_messages
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far
        self.blocks_served = 0  # wrong blocks the liar sent

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, self.ip, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2.0)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tasks) >= self.max_connections:
            writer.transport.abort()
            return
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with asyncio.timeout(self.connection_lifetime):
                await self._serve(reader, writer)
        except (OSError, TimeoutError, pw.PeerWireError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.behaviour == "staller":
            # Read (and drop) what the client sends so it never blocks on us; answer nothing.
            while await reader.read(4096):
                pass
            return
        conn = pw.PeerConnection(num_pieces=self.num_pieces)
        client = await self._read_handshake(reader, conn)
        reserved = pw.make_reserved(extension=True, fast=True)
        ours = pw.Handshake(self.infohash or client.infohash, self.peer_id, reserved)
        if self.behaviour == "trickler":
            for byte in conn.send(ours):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(self.trickle_interval)
            await self._drain_forever(reader)
            return
        writer.write(conn.send(ours))
        if self.behaviour == "malformed_extension":
            writer.write(pw.encode_extended(0, MALFORMED_EXTENSION_PAYLOAD))
            await writer.drain()
            await self._drain_forever(reader)
        elif self.behaviour == "oversized":
            writer.write(OVERSIZED_LENGTH.to_bytes(4, "big") + b"\x07" + bytes(1024))
            await writer.drain()
            await self._drain_forever(reader)
        elif self.behaviour == "have_flood":
            await self._flood(reader, writer)
        else:
            await self._lie(reader, writer, conn)

    async def _read_handshake(
        self, reader: asyncio.StreamReader, conn: pw.PeerConnection
    ) -> pw.Handshake:
        while True:
            event = conn.next_event()
            if isinstance(event, pw.Handshake):
                return event
            if event is not pw.NEED_DATA:
                raise pw.PeerWireError("no handshake")
            conn.receive_data(await reader.read(4096))

    async def _drain_forever(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(4096):
            pass

    async def _flood(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = self.num_pieces or 1024
        drain = asyncio.create_task(self._drain_forever(reader))
        # One batch encoded up front and sent again and again: the flood should
        # cost the client parsing time, not this peer encoding time.
        batch = 512
        payload = b"".join(pw.encode_message(pw.Have(self._rng.randrange(n))) for _ in range(batch))
        try:
            for _ in range(-(-self.flood_messages // batch)):
                writer.write(payload)
                await writer.drain()
        finally:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await drain

    async def _lie(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: pw.PeerConnection
    ) -> None:
        out: list[pw.Message] = []
        if conn.extension_protocol:
            out.append(pw.ExtensionHandshake(m={}, v="Hostile liar 1.0", reqq=256))
        if conn.fast:
            out.append(pw.HaveAll())
        elif self.num_pieces:
            out.append(pw.Bitfield.from_indices(frozenset(range(self.num_pieces)), self.num_pieces))
        out.append(pw.Unchoke())
        writer.write(b"".join(conn.send(m) for m in out))
        await writer.drain()
        while True:
            data = await reader.read(64 * 1024)
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is pw.NEED_DATA:
                    break
                if isinstance(event, pw.ConnectionClosed):
                    return
                if isinstance(event, pw.Request):
                    wrong = self._rng.randbytes(event.length)
                    writer.write(conn.send(pw.Piece(event.index, event.begin, wrong)))
                    self.blocks_served += 1
                elif isinstance(event, pw.Interested):
                    writer.write(conn.send(pw.Unchoke()))
            await writer.drain()
