"""eD2K client-to-client messages a prober needs, as values; sans-I/O.

Opcodes and layouts follow aMule (src/include/protocol/ed2k/Client2Client/
TCP.h and BaseClient.cpp). `decode(packet)` turns a packet into one of the
message classes below or `Unknown`; every class has `encode()` giving the
frame. Lengths a peer states are checked against what it sent and against
limits, so that a lie costs one `Ed2kError`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final, TypeAlias

from atalaya.networks.ed2k.aich import HASH_SIZE as AICH_HASH_SIZE
from atalaya.networks.ed2k.aich import RecoveryData, read_recovery_data
from atalaya.networks.ed2k.packets import Packet, Protocol, encode_packet
from atalaya.networks.ed2k.tags import (
    DEFAULT_LIMITS,
    Tag,
    TagLimits,
    find,
    read_tag_list,
    write_tag_list,
)
from atalaya.networks.ed2k.wire import HASH_SIZE, Ed2kError, Reader, Writer

# eDonkey opcodes (protocol 0xE3).
OP_HELLO: Final = 0x01
OP_SENDINGPART: Final = 0x46
OP_REQUESTPARTS: Final = 0x47
OP_FILEREQANSNOFIL: Final = 0x48
OP_HELLOANSWER: Final = 0x4C
OP_SETREQFILEID: Final = 0x4F
OP_FILESTATUS: Final = 0x50
OP_HASHSETREQUEST: Final = 0x51
OP_HASHSETANSWER: Final = 0x52
OP_STARTUPLOADREQ: Final = 0x54
OP_ACCEPTUPLOADREQ: Final = 0x55
OP_CANCELTRANSFER: Final = 0x56
OP_OUTOFPARTREQS: Final = 0x57
OP_REQUESTFILENAME: Final = 0x58
OP_REQFILENAMEANSWER: Final = 0x59
OP_QUEUERANK: Final = 0x5C
# eMule extension opcodes (protocol 0xC5).
OP_COMPRESSEDPART: Final = 0x40
OP_QUEUERANKING: Final = 0x60
OP_COMPRESSEDPART_I64: Final = 0xA1
OP_SENDINGPART_I64: Final = 0xA2
OP_REQUESTPARTS_I64: Final = 0xA3
OP_AICHREQUEST: Final = 0x9B
OP_AICHANSWER: Final = 0x9C
OP_AICHFILEHASHANS: Final = 0x9D
OP_AICHFILEHASHREQ: Final = 0x9E

# Hello tags (aMule src/include/tags/ClientTags.h).
CT_NAME: Final = 0x01
CT_PORT: Final = 0x0F
CT_VERSION: Final = 0x11
CT_EMULE_UDPPORTS: Final = 0xF9
CT_EMULE_MISCOPTIONS1: Final = 0xFA
CT_EMULE_VERSION: Final = 0xFB
CT_EMULE_MISCOPTIONS2: Final = 0xFE

# Client ids below this are "LowID": the peer is firewalled and the id is
# a server-given handle, not its address.
LOW_ID_LIMIT: Final = 0x0100_0000
# A block request or answer never spans more than one eD2K block (180 KiB,
# aMule's EMBLOCKSIZE); more is a lie or an attack.
MAX_BLOCK: Final = 184_320
MAX_NAME: Final = 4096
MAX_PARTS: Final = 65_535  # the count field is 16 bits


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise Ed2kError(f"{what} is {HASH_SIZE} bytes, not {len(value)}")


@dataclass(frozen=True, slots=True)
class Hello:
    """HELLO (with the hash-size byte) or HELLO ANSWER (without, ``answer``)."""

    user_hash: bytes
    client_id: int
    port: int
    tags: tuple[Tag, ...]
    server_ip: int = 0
    server_port: int = 0
    answer: bool = False

    def __post_init__(self) -> None:
        _check_hash(self.user_hash, "a user hash")

    @property
    def low_id(self) -> bool:
        return self.client_id < LOW_ID_LIMIT

    @property
    def address(self) -> str | None:
        """The address a HighID stands for (eD2K ids are the IPv4 in little-endian order)."""
        if self.low_id:
            return None
        return str(ipaddress.IPv4Address(self.client_id.to_bytes(4, "little")))

    @property
    def nick(self) -> str | None:
        tag = find(self.tags, CT_NAME)
        return tag.text() if tag is not None and isinstance(tag.value, bytes) else None

    @property
    def aich_version(self) -> int:
        """The AICH version the peer offers (bits 29-31 of misc options 1); 0: none."""
        tag = find(self.tags, CT_EMULE_MISCOPTIONS1)
        if tag is None or not isinstance(tag.value, int) or isinstance(tag.value, bool):
            return 0
        return (tag.integer() >> 29) & 0x07

    @property
    def emule_version(self) -> int | None:
        tag = find(self.tags, CT_EMULE_VERSION)
        return tag.integer() if tag is not None and isinstance(tag.value, int) else None

    def encode(self) -> bytes:
        writer = Writer()
        if not self.answer:
            writer.u8(HASH_SIZE)
        writer.hash16(self.user_hash).u32(self.client_id).u16(self.port)
        write_tag_list(writer, self.tags)
        writer.u32(self.server_ip).u16(self.server_port)
        opcode = OP_HELLOANSWER if self.answer else OP_HELLO
        return encode_packet(Protocol.EDONKEY, opcode, writer.getvalue())


@dataclass(frozen=True, slots=True)
class FileRequest:
    """A message that is only a file hash: SETREQFILEID, REQUESTFILENAME,
    HASHSETREQUEST, STARTUPLOADREQ, FILEREQANSNOFIL."""

    opcode: int
    file_hash: bytes

    def __post_init__(self) -> None:
        _check_hash(self.file_hash, "a file hash")

    def encode(self) -> bytes:
        return encode_packet(Protocol.EDONKEY, self.opcode, self.file_hash)


@dataclass(frozen=True, slots=True)
class FilenameAnswer:
    file_hash: bytes
    name: bytes

    def encode(self) -> bytes:
        writer = Writer().hash16(self.file_hash).u16(len(self.name)).raw(self.name)
        return encode_packet(Protocol.EDONKEY, OP_REQFILENAMEANSWER, writer.getvalue())


@dataclass(frozen=True, slots=True)
class FileStatus:
    """Which parts the peer has. ``parts`` empty means the peer says it is complete."""

    file_hash: bytes
    parts: tuple[bool, ...]

    @property
    def complete(self) -> bool:
        return not self.parts

    def encode(self) -> bytes:
        writer = Writer().hash16(self.file_hash).u16(len(self.parts))
        bits = bytearray((len(self.parts) + 7) // 8)
        for i, has in enumerate(self.parts):
            if has:
                bits[i // 8] |= 1 << (i % 8)
        writer.raw(bytes(bits))
        return encode_packet(Protocol.EDONKEY, OP_FILESTATUS, writer.getvalue())


@dataclass(frozen=True, slots=True)
class HashsetAnswer:
    file_hash: bytes
    part_hashes: tuple[bytes, ...]

    def encode(self) -> bytes:
        writer = Writer().hash16(self.file_hash).u16(len(self.part_hashes))
        for part in self.part_hashes:
            writer.hash16(part)
        return encode_packet(Protocol.EDONKEY, OP_HASHSETANSWER, writer.getvalue())


@dataclass(frozen=True, slots=True)
class Signal:
    """A message with no payload: ACCEPTUPLOADREQ, CANCELTRANSFER, OUTOFPARTREQS."""

    opcode: int

    def encode(self) -> bytes:
        return encode_packet(Protocol.EDONKEY, self.opcode, b"")


@dataclass(frozen=True, slots=True)
class QueueRank:
    """Our place in the peer's upload queue (eDonkey 32-bit or eMule 16-bit form)."""

    rank: int
    emule: bool = True

    def encode(self) -> bytes:
        if self.emule:
            payload = Writer().u16(self.rank).raw(bytes(10)).getvalue()
            return encode_packet(Protocol.EMULE, OP_QUEUERANKING, payload)
        return encode_packet(Protocol.EDONKEY, OP_QUEUERANK, Writer().u32(self.rank).getvalue())


@dataclass(frozen=True, slots=True)
class RequestParts:
    """Up to three byte ranges [start, end) of one file."""

    file_hash: bytes
    ranges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        _check_hash(self.file_hash, "a file hash")
        if not 1 <= len(self.ranges) <= 3:
            raise Ed2kError("a part request holds one to three ranges")
        for start, end in self.ranges:
            if not 0 <= start < end or end - start > MAX_BLOCK:
                raise Ed2kError(f"range {start}..{end} is empty or over one block")

    @property
    def large(self) -> bool:
        return any(end > 0xFFFF_FFFF for _, end in self.ranges)

    def encode(self) -> bytes:
        padded = list(self.ranges) + [(0, 0)] * (3 - len(self.ranges))
        writer = Writer().hash16(self.file_hash)
        if self.large:
            for start, _ in padded:
                writer.u64(start)
            for _, end in padded:
                writer.u64(end)
            return encode_packet(Protocol.EMULE, OP_REQUESTPARTS_I64, writer.getvalue())
        for start, _ in padded:
            writer.u32(start)
        for _, end in padded:
            writer.u32(end)
        return encode_packet(Protocol.EDONKEY, OP_REQUESTPARTS, writer.getvalue())


@dataclass(frozen=True, slots=True)
class SendingPart:
    """Bytes [start, start + len(data)) of a file; ``compressed`` when sent as a
    COMPRESSEDPART (``data`` is then the zlib stream, ``size`` the plain length)."""

    file_hash: bytes
    start: int
    data: bytes
    compressed: bool = False
    size: int | None = None

    def encode(self) -> bytes:
        large = self.start + len(self.data) > 0xFFFF_FFFF
        writer = Writer().hash16(self.file_hash)
        if self.compressed:
            if self.size is None:
                raise Ed2kError("a compressed part states its plain size")
            (writer.u64(self.start) if large else writer.u32(self.start)).u32(self.size)
            opcode = OP_COMPRESSEDPART_I64 if large else OP_COMPRESSEDPART
            return encode_packet(Protocol.EMULE, opcode, writer.raw(self.data).getvalue())
        end = self.start + len(self.data)
        if large:
            writer.u64(self.start).u64(end)
            payload = writer.raw(self.data).getvalue()
            return encode_packet(Protocol.EMULE, OP_SENDINGPART_I64, payload)
        writer.u32(self.start).u32(end).raw(self.data)
        return encode_packet(Protocol.EDONKEY, OP_SENDINGPART, writer.getvalue())


@dataclass(frozen=True, slots=True)
class AichRequest:
    """OP_AICHREQUEST: the recovery data of one part, under the master hash we trust."""

    file_hash: bytes
    part: int
    master: bytes

    def __post_init__(self) -> None:
        _check_hash(self.file_hash, "a file hash")
        if len(self.master) != AICH_HASH_SIZE:
            raise Ed2kError(f"an AICH master hash is {AICH_HASH_SIZE} bytes")

    def encode(self) -> bytes:
        writer = Writer().hash16(self.file_hash).u16(self.part).raw(self.master)
        return encode_packet(Protocol.EMULE, OP_AICHREQUEST, writer.getvalue())


@dataclass(frozen=True, slots=True)
class AichAnswer:
    """OP_AICHANSWER: a part's recovery data, or (``recovery`` None) the peer's refusal."""

    file_hash: bytes
    part: int | None = None
    master: bytes | None = None
    recovery: RecoveryData | None = None

    def encode(self) -> bytes:
        writer = Writer().hash16(self.file_hash)
        if self.recovery is not None and self.part is not None and self.master is not None:
            writer.u16(self.part).raw(self.master).raw(self.recovery.encode())
        return encode_packet(Protocol.EMULE, OP_AICHANSWER, writer.getvalue())


@dataclass(frozen=True, slots=True)
class AichFileHash:
    """OP_AICHFILEHASHREQ (``master`` None) or its answer, the peer's AICH master hash."""

    file_hash: bytes
    master: bytes | None = None

    def encode(self) -> bytes:
        writer = Writer().hash16(self.file_hash)
        if self.master is None:
            return encode_packet(Protocol.EMULE, OP_AICHFILEHASHREQ, writer.getvalue())
        writer.raw(self.master)
        return encode_packet(Protocol.EMULE, OP_AICHFILEHASHANS, writer.getvalue())


@dataclass(frozen=True, slots=True)
class Unknown:
    """A packet this prober does not need; kept so the caller can log its opcode."""

    protocol: Protocol
    opcode: int
    size: int


Message: TypeAlias = (
    Hello
    | FileRequest
    | FilenameAnswer
    | FileStatus
    | HashsetAnswer
    | Signal
    | QueueRank
    | RequestParts
    | SendingPart
    | AichRequest
    | AichAnswer
    | AichFileHash
    | Unknown
)

_FILE_REQUESTS: Final = frozenset(
    {OP_SETREQFILEID, OP_REQUESTFILENAME, OP_HASHSETREQUEST, OP_STARTUPLOADREQ, OP_FILEREQANSNOFIL}
)
_SIGNALS: Final = frozenset({OP_ACCEPTUPLOADREQ, OP_CANCELTRANSFER, OP_OUTOFPARTREQS})


def decode(packet: Packet, limits: TagLimits = DEFAULT_LIMITS) -> Message:
    """The message in ``packet``; malformed payloads raise `Ed2kError`."""
    reader = Reader(packet.payload)
    if packet.protocol is Protocol.EDONKEY:
        message = _decode_edonkey(packet.opcode, reader, limits)
    else:
        message = _decode_emule(packet.opcode, reader)
    if message is None:
        return Unknown(packet.protocol, packet.opcode, len(packet.payload))
    reader.end(type(message).__name__)
    return message


def _decode_edonkey(opcode: int, reader: Reader, limits: TagLimits) -> Message | None:
    if opcode in (OP_HELLO, OP_HELLOANSWER):
        answer = opcode == OP_HELLOANSWER
        if not answer:
            size = reader.u8("hello hash size")
            if size != HASH_SIZE:
                raise Ed2kError(f"hello with a {size}-byte user hash")
        user_hash = reader.hash16("user hash")
        client_id = reader.u32("client id")
        port = reader.u16("port")
        tags = read_tag_list(reader, limits)
        # Some old clients end after the tags; the server fields are optional.
        server_ip = reader.u32("server ip") if reader.remaining >= 6 else 0
        server_port = reader.u16("server port") if reader.remaining >= 2 else 0
        return Hello(user_hash, client_id, port, tags, server_ip, server_port, answer)
    if opcode in _FILE_REQUESTS:
        return FileRequest(opcode, reader.hash16("file hash"))
    if opcode in _SIGNALS:
        return Signal(opcode)
    if opcode == OP_REQFILENAMEANSWER:
        file_hash = reader.hash16("file hash")
        length = reader.u16("name length")
        if length > MAX_NAME:
            raise Ed2kError(f"file name of {length} bytes (limit {MAX_NAME})")
        return FilenameAnswer(file_hash, reader.take(length, "file name"))
    if opcode == OP_FILESTATUS:
        file_hash = reader.hash16("file hash")
        count = reader.u16("part count")
        raw = reader.take((count + 7) // 8, "part bitmap")
        return FileStatus(file_hash, tuple(bool(raw[i // 8] >> (i % 8) & 1) for i in range(count)))
    if opcode == OP_HASHSETANSWER:
        file_hash = reader.hash16("file hash")
        count = reader.u16("part hash count")
        return HashsetAnswer(file_hash, tuple(reader.hash16("part hash") for _ in range(count)))
    if opcode == OP_QUEUERANK:
        return QueueRank(reader.u32("queue rank"), emule=False)
    if opcode == OP_REQUESTPARTS:
        return _request_parts(reader, wide=False)
    if opcode == OP_SENDINGPART:
        return _sending_part(reader, wide=False)
    return None


def _decode_emule(opcode: int, reader: Reader) -> Message | None:
    if opcode == OP_QUEUERANKING:
        rank = reader.u16("queue ranking")
        reader.take(min(reader.remaining, 10), "queue ranking padding")
        return QueueRank(rank, emule=True)
    if opcode == OP_REQUESTPARTS_I64:
        return _request_parts(reader, wide=True)
    if opcode == OP_SENDINGPART_I64:
        return _sending_part(reader, wide=True)
    if opcode in (OP_COMPRESSEDPART, OP_COMPRESSEDPART_I64):
        file_hash = reader.hash16("file hash")
        start = reader.u64("start") if opcode == OP_COMPRESSEDPART_I64 else reader.u32("start")
        size = reader.u32("plain size")
        if size > MAX_BLOCK:
            raise Ed2kError(f"compressed part of {size} bytes (limit {MAX_BLOCK})")
        return SendingPart(file_hash, start, reader.rest(), compressed=True, size=size)
    if opcode == OP_AICHREQUEST:
        file_hash = reader.hash16("file hash")
        part = reader.u16("AICH part")
        return AichRequest(file_hash, part, reader.take(AICH_HASH_SIZE, "AICH master hash"))
    if opcode == OP_AICHANSWER:
        file_hash = reader.hash16("file hash")
        if not reader.remaining:
            return AichAnswer(file_hash)
        part = reader.u16("AICH part")
        master = reader.take(AICH_HASH_SIZE, "AICH master hash")
        return AichAnswer(file_hash, part, master, read_recovery_data(reader))
    if opcode == OP_AICHFILEHASHREQ:
        return AichFileHash(reader.hash16("file hash"))
    if opcode == OP_AICHFILEHASHANS:
        file_hash = reader.hash16("file hash")
        return AichFileHash(file_hash, reader.take(AICH_HASH_SIZE, "AICH master hash"))
    return None


def _request_parts(reader: Reader, *, wide: bool) -> RequestParts:
    file_hash = reader.hash16("file hash")
    read = reader.u64 if wide else reader.u32
    starts = [read("range start") for _ in range(3)]
    ends = [read("range end") for _ in range(3)]
    ranges = tuple((s, e) for s, e in zip(starts, ends, strict=True) if (s, e) != (0, 0))
    return RequestParts(file_hash, ranges)


def _sending_part(reader: Reader, *, wide: bool) -> SendingPart:
    file_hash = reader.hash16("file hash")
    read = reader.u64 if wide else reader.u32
    start = read("start")
    end = read("end")
    if end < start or end - start > MAX_BLOCK:
        raise Ed2kError(f"part {start}..{end} is reversed or over one block")
    if end - start != reader.remaining:
        raise Ed2kError(f"part says {end - start} bytes and carries {reader.remaining}")
    return SendingPart(file_hash, start, reader.rest())
