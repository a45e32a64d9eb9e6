"""A fake eD2K peer on loopback, honest or hostile, to show that the eD2K observer survives them.

`Ed2kResponder` is the sans-I/O part: it holds one file in memory and
answers the client messages a prober sends as aMule does (hello answer
with AICH offered, file name, complete part map, hash set, AICH recovery
data, upload slot, parts). `FakeEd2kPeer` serves it on a 127.x address.

Behaviours besides ``honest``:

- ``liar``: everything right except the bytes of every part, which are wrong;
- ``aich_liar``: honest, but its AICH recovery data does not lead to the
  master hash (the probe must fall back to the part MD4, and prove it);
- ``malformed``: a hello answer cut short;
- ``oversized_tags``: a hello answer announcing a million tags;
- ``oversized_packet``: a frame announcing 2**31 bytes;
- ``zlib_bomb``: a packed packet that inflates far past the packet limit;
- ``staller``: accepts and never sends a byte;
- ``stalls_once``: honest, except that on its first connection it accepts
  the upload and then sends no data (as a busy aMule can): a second ask
  gets the part.

With ``obfuscation`` "supported" it also answers eMule's obfuscation
handshake (keyed by its user hash); with "required" it hangs up on a plain
eD2K stream, as an aMule with IsClientCryptLayerRequired does.

Everything is bounded: connections at once, each connection's lifetime,
and the bytes read from the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from types import TracebackType
from typing import Final, Literal, Self, get_args

from atalaya.lab.ports import is_loopback
from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k import messages as m
from atalaya.networks.ed2k.hashing import PART_SIZE, ed2k_hash
from atalaya.networks.ed2k.obfuscation import Responder
from atalaya.networks.ed2k.packets import PacketDecoder, PacketError, Protocol
from atalaya.networks.ed2k.tags import Tag
from atalaya.networks.ed2k.wire import Ed2kError, Writer

Behaviour = Literal[
    "honest",
    "liar",
    "aich_liar",
    "malformed",
    "oversized_tags",
    "oversized_packet",
    "zlib_bomb",
    "staller",
    "stalls_once",
]
BEHAVIOURS: Final[tuple[Behaviour, ...]] = get_args(Behaviour)
PeerObfuscation = Literal["none", "supported", "required"]
# aMule 2.3.3's eMule version tag, and its misc options 1 with AICH (bits 29-31).
AMULE_VERSION: Final = (3 << 24) | (2 << 17) | (3 << 10) | (3 << 7)
AICH_OPTIONS: Final = 1 << 29 | 1 << 28
_MAX_READ: Final = 1 << 20  # bytes read from one client before it is dropped
_CHUNK: Final = 10_240  # aMule sends a block in 10 KiB packets


def _md4_parts(content: bytes) -> tuple[bytes, ...]:
    from Crypto.Hash import MD4  # noqa: PLC0415 - only peers with more than one part need it

    parts = [content[i : i + PART_SIZE] for i in range(0, len(content), PART_SIZE)]
    digests = [MD4.new(p).digest() for p in parts]  # noqa: S303 - eD2K's own hash
    if len(content) % PART_SIZE == 0:
        digests.append(MD4.new(b"").digest())  # noqa: S303 - eD2K's own hash
    return tuple(digests)


def _frame(opcode: int, body: Writer) -> bytes:
    payload = body.getvalue()
    return (
        Writer().u8(int(Protocol.EDONKEY)).u32(len(payload) + 1).u8(opcode).raw(payload).getvalue()
    )


class Ed2kResponder:
    """Answers one connection's packets about one file, as aMule would (or as told to lie)."""

    def __init__(
        self,
        content: bytes,
        behaviour: Behaviour = "honest",
        *,
        user_hash: bytes,
        port: int,
        withhold_parts: bool = False,
    ) -> None:
        self.content = content
        self.behaviour = behaviour
        self.withhold_parts = withhold_parts
        self.file_hash = ed2k_hash(content)
        self.master = aich.master_hash(content)
        self.user_hash = user_hash
        self.port = port
        self.decoder = PacketDecoder()

    def hello_answer(self) -> bytes:
        if self.behaviour == "malformed":
            # A whole frame whose hello stops after the client id.
            return _frame(m.OP_HELLOANSWER, Writer().hash16(self.user_hash).u32(0x0100007F))
        if self.behaviour == "oversized_tags":
            body = Writer().hash16(self.user_hash).u32(0x0100007F).u16(self.port).u32(1_000_000)
            return _frame(m.OP_HELLOANSWER, body)
        if self.behaviour == "oversized_packet":
            return Writer().u8(0xE3).u32(1 << 31).u8(m.OP_HELLOANSWER).getvalue()
        tags = (
            Tag.string(m.CT_NAME, "fake-peer"),
            Tag.uint(m.CT_EMULE_VERSION, AMULE_VERSION),
            Tag.uint(m.CT_EMULE_MISCOPTIONS1, AICH_OPTIONS),
        )
        answer = m.Hello(self.user_hash, 0x0100007F, self.port, tags, answer=True).encode()
        if self.behaviour == "zlib_bomb":
            bomb = zlib.compress(bytes(64 * 1024 * 1024), 9)
            frame = Writer().u8(int(Protocol.PACKED)).u32(len(bomb) + 1).u8(m.OP_QUEUERANKING)
            answer += frame.raw(bomb).getvalue()
        return answer

    def answer(self, data: bytes) -> bytes:
        """What the peer writes back for `data`; raises Ed2kError on a client it cannot read."""
        out = bytearray()
        for packet in self.decoder.feed(data):
            out += self._answer(m.decode(packet))
        return bytes(out)

    def _answer(self, message: m.Message) -> bytes:
        if isinstance(message, m.Hello) and not message.answer:
            return self.hello_answer()
        if isinstance(message, m.FileRequest):
            if message.file_hash != self.file_hash:
                return m.FileRequest(m.OP_FILEREQANSNOFIL, message.file_hash).encode()
            if message.opcode == m.OP_REQUESTFILENAME:
                return m.FilenameAnswer(self.file_hash, b"synthetic.bin").encode()
            if message.opcode == m.OP_SETREQFILEID:
                return m.FileStatus(self.file_hash, ()).encode()
            if message.opcode == m.OP_HASHSETREQUEST:
                return m.HashsetAnswer(self.file_hash, _md4_parts(self.content)).encode()
            if message.opcode == m.OP_STARTUPLOADREQ:
                return m.Signal(m.OP_ACCEPTUPLOADREQ).encode()
        if isinstance(message, m.AichRequest):
            return self._aich(message)
        if isinstance(message, m.RequestParts):
            return b"" if self.withhold_parts else self._parts(message)
        return b""

    def _aich(self, request: m.AichRequest) -> bytes:
        size = len(self.content)
        usable = (
            request.file_hash == self.file_hash
            and request.master == self.master
            and request.part * PART_SIZE + aich.BLOCK_SIZE < size
        )
        if not usable:
            return m.AichAnswer(request.file_hash).encode()
        recovery = aich.recovery_data(self.content, request.part)
        if self.behaviour == "aich_liar":
            ident, _ = recovery.hashes[-1]
            recovery = aich.RecoveryData((*recovery.hashes[:-1], (ident, bytes(20))))
        return m.AichAnswer(self.file_hash, request.part, self.master, recovery).encode()

    def _parts(self, request: m.RequestParts) -> bytes:
        out = bytearray()
        for start, end in request.ranges:
            block = bytearray(self.content[start:end])
            if self.behaviour == "liar" and block:
                block[-1] ^= 0xFF
            for at in range(0, len(block), _CHUNK):
                chunk = bytes(block[at : at + _CHUNK])
                out += m.SendingPart(self.file_hash, start + at, chunk).encode()
        return bytes(out)


class FakeEd2kPeer:
    """One fake eD2K peer sharing `content` on `ip`; an async context manager."""

    def __init__(
        self,
        ip: str,
        content: bytes,
        behaviour: Behaviour = "honest",
        *,
        user_hash: bytes = bytes(range(16)),
        max_connections: int = 16,
        connection_lifetime: float = 60.0,
        obfuscation: PeerObfuscation = "none",
    ) -> None:
        if not is_loopback(ip):
            raise ValueError(f"fake eD2K peers live on 127.0.0.0/8 only, got {ip!r}")
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}, expected one of {BEHAVIOURS}")
        self.ip = ip
        self.content = content
        self.behaviour: Behaviour = behaviour
        self.user_hash = user_hash
        self.file_hash = ed2k_hash(content)
        self.master = aich.master_hash(content)
        self.obfuscation: PeerObfuscation = obfuscation
        self.port = 0
        self.connections = 0
        self.obfuscated_connections = 0  # handshakes completed
        self._gate = asyncio.Semaphore(max_connections)
        self._lifetime = connection_lifetime
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self.ip, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self.connections += 1
        try:
            async with self._gate:
                await asyncio.wait_for(self._talk(reader, writer), self._lifetime)
        except (TimeoutError, OSError, Ed2kError, PacketError):
            pass
        finally:
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        responder = Ed2kResponder(
            self.content,
            self.behaviour,
            user_hash=self.user_hash,
            port=self.port,
            withhold_parts=self.behaviour == "stalls_once" and self.connections == 1,
        )
        crypt = (
            None
            if self.obfuscation == "none"
            else Responder(self.user_hash, plain_allowed=self.obfuscation == "supported")
        )
        read = 0
        while read < _MAX_READ:
            data = await reader.read(65_536)
            if not data:
                return
            read += len(data)
            if self.behaviour == "staller":
                continue
            handshake = b""
            if crypt is not None:
                was_established = crypt.established
                data = crypt.receive(data)  # a refused stream is an Ed2kError: hang up
                handshake = crypt.data_to_send()
                if crypt.established and not was_established and not crypt.plain:
                    self.obfuscated_connections += 1
            reply = responder.answer(data) if data else b""
            if reply and crypt is not None:
                reply = crypt.encrypt(reply)
            if handshake or reply:
                writer.write(handshake + reply)
                await writer.drain()
