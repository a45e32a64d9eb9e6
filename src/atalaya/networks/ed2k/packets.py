"""eD2K TCP framing: protocol byte, 32-bit length, opcode, payload; sans-I/O.

`<protocol 1><length 4 LE><opcode 1><payload length-1>`. The protocol byte
says whose opcode it is: 0xE3 eDonkey, 0xC5 eMule's extensions, 0xD4 an
eMule packet whose payload is zlib-compressed (it becomes 0xC5 once
inflated, as in aMule's `CPacket::UnPackPacket`).

The decoder is fed whatever the socket gave and hands back whole packets. A
hostile peer is bounded twice: the announced length before anything is
buffered, and the inflated size of a packed payload (a zip bomb stops at the
limit rather than after it).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from atalaya.networks.ed2k.wire import Ed2kError, Writer

HEADER_SIZE: Final = 6
# aMule refuses packets over 2,000,000 bytes (EMSocket.cpp MAX_PACKET_SIZE);
# the largest a prober needs is a hash-set answer of a big file (16 bytes a
# part) or a 10 KiB block, so 2 MB is both generous and aMule's own limit.
DEFAULT_MAX_PACKET: Final = 2_000_000


class Protocol(IntEnum):
    EDONKEY = 0xE3
    EMULE = 0xC5
    PACKED = 0xD4


class PacketError(Ed2kError):
    """A frame that cannot be read: unknown protocol, bad length, bad compression."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet as the protocol sees it: packed ones arrive already inflated."""

    protocol: Protocol
    opcode: int
    payload: bytes
    was_packed: bool = False


def encode_packet(protocol: Protocol, opcode: int, payload: bytes, *, pack: bool = False) -> bytes:
    """The frame for one packet; ``pack`` compresses an eMule packet's payload."""
    if pack:
        if protocol is not Protocol.EMULE:
            raise PacketError("only eMule extension packets are sent packed")
        protocol = Protocol.PACKED
        payload = zlib.compress(payload)
    if protocol is Protocol.PACKED and not pack:
        raise PacketError("say pack=True rather than Protocol.PACKED")
    return Writer().u8(int(protocol)).u32(len(payload) + 1).u8(opcode).raw(payload).getvalue()


def inflate(payload: bytes, limit: int) -> bytes:
    """A packed payload inflated, refusing to produce more than ``limit`` bytes."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, limit)
    except zlib.error as exc:
        raise PacketError(f"packed payload does not inflate: {exc}") from None
    if inflater.unconsumed_tail:
        raise PacketError(f"packed payload inflates to more than {limit} bytes")
    if not inflater.eof:
        raise PacketError("packed payload is cut short")
    return out


class PacketDecoder:
    """Turns a TCP byte stream into packets. Once broken it stays broken."""

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self._max_packet = max_packet
        self._buffer = bytearray()
        self._error: PacketError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        packets: list[Packet] = []
        try:
            while True:
                packet = self._next()
                if packet is None:
                    return packets
                packets.append(packet)
        except PacketError as exc:
            self._error = exc
            self._buffer.clear()
            raise

    def _next(self) -> Packet | None:
        if not self._buffer:
            return None
        # The protocol byte alone already tells a stranger from a peer, and
        # the length is judged as soon as it is complete.
        protocol = self._protocol(self._buffer[0])
        if len(self._buffer) < 5:
            return None
        length = int.from_bytes(self._buffer[1:5], "little")
        if length < 1:
            raise PacketError("packet length 0: there is no opcode")
        if length > self._max_packet:
            raise PacketError(f"packet of {length} bytes (limit {self._max_packet})")
        end = 5 + length
        if len(self._buffer) < end:
            return None
        opcode = self._buffer[5]
        payload = bytes(self._buffer[HEADER_SIZE:end])
        del self._buffer[:end]
        if protocol is Protocol.PACKED:
            return Packet(Protocol.EMULE, opcode, inflate(payload, self._max_packet), True)
        return Packet(protocol, opcode, payload)

    @staticmethod
    def _protocol(byte: int) -> Protocol:
        try:
            return Protocol(byte)
        except ValueError:
            raise PacketError(f"unknown protocol byte 0x{byte:02x}") from None
