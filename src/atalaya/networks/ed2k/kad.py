"""Kad2 over UDP: the messages a well-behaved node needs to find a file's sources; sans-I/O.

Layouts follow aMule (src/kademlia/net/KademliaUDPListener.cpp,
src/include/protocol/kad2/Client2Client/UDP.h). A datagram is
`<0xE4><opcode><payload>`, or `<0xE5><opcode><zlib payload>` when packed.

Two byte orders meet here, and both are aMule's:

- 128-bit ids (node ids, targets, a file's MD4 as a Kad key) travel as four
  32-bit words, most significant word first, each word little-endian
  (`CFileDataIO::WriteUInt128`). A file hash's bytes are the id's big-endian
  form, so `kad_id_from_hash` reads them as one big-endian integer.
- IPv4 addresses are 32-bit integers in host order (a.b.c.d is
  a<<24|b<<16|c<<8|d), written little-endian: the reverse of eD2K's
  client ids.

Obfuscated datagrams (RC4 with the receiver's key) are not handled: aMule
answers plain Kad2 unless told to require obfuscation, and the lab says so.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final, TypeAlias

from atalaya.networks.ed2k.packets import inflate
from atalaya.networks.ed2k.tags import (
    DEFAULT_LIMITS,
    Tag,
    TagLimits,
    find,
    read_kad_tag_list,
    write_kad_tag_list,
)
from atalaya.networks.ed2k.wire import HASH_SIZE, Ed2kError, Reader, Writer

KADEMLIA_HEADER: Final = 0xE4
KADEMLIA_PACKED: Final = 0xE5
KADEMLIA_VERSION: Final = 0x08  # aMule 2.3.3's Kad version ("0.49b")

BOOTSTRAP_REQ: Final = 0x01
BOOTSTRAP_RES: Final = 0x09
HELLO_REQ: Final = 0x11
HELLO_RES: Final = 0x19
REQ: Final = 0x21
HELLO_RES_ACK: Final = 0x22
RES: Final = 0x29
SEARCH_SOURCE_REQ: Final = 0x34
SEARCH_RES: Final = 0x3B
PING: Final = 0x60
PONG: Final = 0x61

# Kad request types: how many contacts the asker wants back.
FIND_NODE: Final = 0x0B  # KADEMLIA_FIND_NODE: 11 contacts
FIND_VALUE: Final = 0x02  # KADEMLIA_FIND_VALUE: 2 contacts
STORE: Final = 0x04

# Source tags in a SEARCH_RES (aMule src/include/tags/FileTags.h).
TAG_SOURCETYPE: Final = 0xFF
TAG_SOURCEIP: Final = 0xFE
TAG_SOURCEPORT: Final = 0xFD
TAG_SOURCEUPORT: Final = 0xFC
TAG_SERVERPORT: Final = 0xFA
TAG_SERVERIP: Final = 0xFB
TAG_BUDDYHASH: Final = 0xF8
TAG_ENCRYPTION: Final = 0xF3
TAG_FILESIZE: Final = 0x02

# A UDP datagram is at most 64 KiB; a packed one may inflate to more.
MAX_DATAGRAM: Final = 65_535
MAX_INFLATED: Final = 256 * 1024
MAX_CONTACTS: Final = 256
MAX_RESULTS: Final = 300


class KadError(Ed2kError):
    """A Kad datagram that cannot be read."""


def read_id(reader: Reader, what: str) -> int:
    value = 0
    for _ in range(4):
        value = (value << 32) | reader.u32(what)
    return value


def write_id(writer: Writer, value: int) -> Writer:
    if not 0 <= value < 1 << 128:
        raise KadError("a Kad id is 128 bits")
    for shift in (96, 64, 32, 0):
        writer.u32((value >> shift) & 0xFFFF_FFFF)
    return writer


def kad_id_from_hash(file_hash: bytes) -> int:
    """The Kad key of an MD4 (eD2K file hash, user hash): its bytes read big-endian."""
    if len(file_hash) != HASH_SIZE:
        raise KadError(f"a hash is {HASH_SIZE} bytes, not {len(file_hash)}")
    return int.from_bytes(file_hash, "big")


def hash_from_kad_id(value: int) -> bytes:
    return value.to_bytes(HASH_SIZE, "big")


def ip_from_kad(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def ip_to_kad(address: str) -> int:
    return int(ipaddress.IPv4Address(address))


@dataclass(frozen=True, slots=True)
class Contact:
    node_id: int
    ip: str
    udp_port: int
    tcp_port: int
    version: int

    def write(self, writer: Writer) -> None:
        write_id(writer, self.node_id)
        writer.u32(ip_to_kad(self.ip)).u16(self.udp_port).u16(self.tcp_port).u8(self.version)

    @classmethod
    def read(cls, reader: Reader) -> Contact:
        node_id = read_id(reader, "contact id")
        ip = ip_from_kad(reader.u32("contact ip"))
        return cls(
            node_id, ip, reader.u16("udp port"), reader.u16("tcp port"), reader.u8("version")
        )


@dataclass(frozen=True, slots=True)
class BootstrapReq:
    pass


@dataclass(frozen=True, slots=True)
class BootstrapRes:
    node_id: int
    tcp_port: int
    version: int
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class Hello:
    """HELLO_REQ, or HELLO_RES when ``response``."""

    node_id: int
    tcp_port: int
    version: int
    tags: tuple[Tag, ...] = ()
    response: bool = False


@dataclass(frozen=True, slots=True)
class HelloAck:
    node_id: int
    tags: tuple[Tag, ...] = ()


@dataclass(frozen=True, slots=True)
class Req:
    """Ask ``receiver`` for contacts close to ``target`` (``kind``: how many)."""

    kind: int
    target: int
    receiver: int


@dataclass(frozen=True, slots=True)
class Res:
    target: int
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class SearchSourceReq:
    target: int
    start: int
    file_size: int


@dataclass(frozen=True, slots=True)
class SearchResult:
    answer: int  # for a source search: the source's user hash as a Kad id
    tags: tuple[Tag, ...]

    def source(self) -> Source | None:
        return Source.from_tags(self.answer, self.tags)


@dataclass(frozen=True, slots=True)
class SearchRes:
    sender: int
    target: int
    results: tuple[SearchResult, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    udp_port: int  # the port the answering node saw us on


@dataclass(frozen=True, slots=True)
class Source:
    """A peer Kad says holds the file. Types 1 and 4 are reachable (HighID);
    3 and 5 are firewalled behind a buddy (LowID): found, never probed."""

    user_hash: bytes
    ip: str | None
    tcp_port: int | None
    udp_port: int | None
    source_type: int
    buddy: bool
    # Its connect options (tag 0xF3, aMule's GetMyConnectOptions): bit 0
    # supports obfuscation, 1 requests it, 2 requires it; 0 when absent.
    crypt_options: int = 0

    @property
    def reachable(self) -> bool:
        return self.source_type in (1, 4) and self.ip is not None and bool(self.tcp_port)

    @classmethod
    def from_tags(cls, answer: int, tags: tuple[Tag, ...]) -> Source | None:
        kind = find(tags, TAG_SOURCETYPE)
        if kind is None or not isinstance(kind.value, int):
            return None
        ip_tag = find(tags, TAG_SOURCEIP)
        port_tag = find(tags, TAG_SOURCEPORT)
        udp_tag = find(tags, TAG_SOURCEUPORT)
        ip = None
        if ip_tag is not None and isinstance(ip_tag.value, int) and 0 < ip_tag.value < 1 << 32:
            ip = ip_from_kad(ip_tag.value)
        return cls(
            user_hash=hash_from_kad_id(answer),
            ip=ip,
            tcp_port=_port(port_tag),
            udp_port=_port(udp_tag),
            source_type=kind.value,
            buddy=find(tags, TAG_BUDDYHASH) is not None,
            crypt_options=_crypt(find(tags, TAG_ENCRYPTION)),
        )


def _crypt(tag: Tag | None) -> int:
    if tag is None or not isinstance(tag.value, int) or isinstance(tag.value, bool):
        return 0
    return tag.value & 0xFF


def _port(tag: Tag | None) -> int | None:
    if tag is None or not isinstance(tag.value, int) or not 0 < tag.value <= 0xFFFF:
        return None
    return tag.value


KadMessage: TypeAlias = (
    BootstrapReq
    | BootstrapRes
    | Hello
    | HelloAck
    | Req
    | Res
    | SearchSourceReq
    | SearchRes
    | Ping
    | Pong
)


def encode(message: KadMessage) -> bytes:
    """The datagram for ``message`` (never packed: aMule reads both)."""
    writer = Writer()
    if isinstance(message, BootstrapReq):
        opcode = BOOTSTRAP_REQ
    elif isinstance(message, BootstrapRes):
        opcode = BOOTSTRAP_RES
        write_id(writer, message.node_id).u16(message.tcp_port).u8(message.version)
        writer.u16(len(message.contacts))
        for contact in message.contacts:
            contact.write(writer)
    elif isinstance(message, Hello):
        opcode = HELLO_RES if message.response else HELLO_REQ
        write_id(writer, message.node_id).u16(message.tcp_port).u8(message.version)
        write_kad_tag_list(writer, message.tags)
    elif isinstance(message, HelloAck):
        opcode = HELLO_RES_ACK
        write_id(writer, message.node_id)
        write_kad_tag_list(writer, message.tags)
    elif isinstance(message, Req):
        opcode = REQ
        writer.u8(message.kind)
        write_id(writer, message.target)
        write_id(writer, message.receiver)
    elif isinstance(message, Res):
        opcode = RES
        write_id(writer, message.target).u8(len(message.contacts))
        for contact in message.contacts:
            contact.write(writer)
    elif isinstance(message, SearchSourceReq):
        opcode = SEARCH_SOURCE_REQ
        write_id(writer, message.target).u16(message.start & 0x7FFF).u64(message.file_size)
    elif isinstance(message, SearchRes):
        opcode = SEARCH_RES
        write_id(writer, message.sender)
        write_id(writer, message.target).u16(len(message.results))
        for result in message.results:
            write_id(writer, result.answer)
            write_kad_tag_list(writer, result.tags)
    elif isinstance(message, Ping):
        opcode = PING
    else:
        opcode = PONG
        writer.u16(message.udp_port)
    return bytes([KADEMLIA_HEADER, opcode]) + writer.getvalue()


def decode(datagram: bytes, limits: TagLimits = DEFAULT_LIMITS) -> KadMessage | None:
    """The message in one datagram; None for opcodes a source search never needs.

    Malformed or oversized datagrams raise `KadError` (or another `Ed2kError`).
    """
    if len(datagram) > MAX_DATAGRAM:
        raise KadError(f"datagram of {len(datagram)} bytes")
    if len(datagram) < 2:
        raise KadError("datagram shorter than its header")
    header, opcode = datagram[0], datagram[1]
    payload = datagram[2:]
    if header == KADEMLIA_PACKED:
        payload = inflate(payload, MAX_INFLATED)
    elif header != KADEMLIA_HEADER:
        raise KadError(f"not a Kad2 datagram (header 0x{header:02x})")
    reader = Reader(payload)
    message = _decode(opcode, reader, limits)
    if message is not None:
        reader.end(type(message).__name__)
    return message


def _contacts(reader: Reader, count: int) -> tuple[Contact, ...]:
    if count > MAX_CONTACTS:
        raise KadError(f"{count} contacts (limit {MAX_CONTACTS})")
    return tuple(Contact.read(reader) for _ in range(count))


def _decode(opcode: int, reader: Reader, limits: TagLimits) -> KadMessage | None:
    if opcode == BOOTSTRAP_REQ:
        return BootstrapReq()
    if opcode == BOOTSTRAP_RES:
        node_id = read_id(reader, "node id")
        tcp_port, version = reader.u16("tcp port"), reader.u8("version")
        return BootstrapRes(node_id, tcp_port, version, _contacts(reader, reader.u16("count")))
    if opcode in (HELLO_REQ, HELLO_RES):
        node_id = read_id(reader, "node id")
        tcp_port, version = reader.u16("tcp port"), reader.u8("version")
        tags = read_kad_tag_list(reader, limits)
        return Hello(node_id, tcp_port, version, tags, response=opcode == HELLO_RES)
    if opcode == HELLO_RES_ACK:
        return HelloAck(read_id(reader, "node id"), read_kad_tag_list(reader, limits))
    if opcode == REQ:
        kind = reader.u8("request type") & 0x1F
        if kind == 0:
            raise KadError("request of type 0")
        return Req(kind, read_id(reader, "target"), read_id(reader, "receiver"))
    if opcode == RES:
        target = read_id(reader, "target")
        return Res(target, _contacts(reader, reader.u8("count")))
    if opcode == SEARCH_SOURCE_REQ:
        target = read_id(reader, "target")
        start = reader.u16("start") & 0x7FFF
        return SearchSourceReq(target, start, reader.u64("file size"))
    if opcode == SEARCH_RES:
        sender = read_id(reader, "sender")
        target = read_id(reader, "target")
        count = reader.u16("result count")
        if count > MAX_RESULTS:
            raise KadError(f"{count} results (limit {MAX_RESULTS})")
        results = tuple(
            SearchResult(read_id(reader, "answer"), read_kad_tag_list(reader, limits))
            for _ in range(count)
        )
        return SearchRes(sender, target, results)
    if opcode == PING:
        return Ping()
    if opcode == PONG:
        port = reader.u16("pong port")
        # aMule checks a minimum size only; later versions may add fields.
        reader.rest()
        return Pong(port)
    return None
