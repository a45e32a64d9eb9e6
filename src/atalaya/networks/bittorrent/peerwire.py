"""BitTorrent peer wire protocol, sans-I/O (BEP 3, 5, 6, 9, 10, 11, 52).

Shaped like h11: a `PeerConnection` is fed bytes with `receive_data` (b"" for
end of stream), hands back typed events from `next_event` (or `NEED_DATA`),
and turns messages into bytes with `send`. It never touches a socket or a
clock. The peer is assumed hostile: every length is bounded before anything
is buffered, and every malformed input ends in a `PeerWireError`; once raised,
the connection stays broken and raises the same error again.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from random import Random
from typing import Final, TypeAlias

from atalaya.networks.bittorrent import bencode
from atalaya.networks.bittorrent.bencode import BencodeError, BValue, Limits

PROTOCOL: Final = b"BitTorrent protocol"
HANDSHAKE_LENGTH: Final = 68
BLOCK_SIZE: Final = 16 * 1024
METADATA_PIECE_SIZE: Final = 16 * 1024
# A piece message is 9 bytes of header plus a block; a ut_metadata data
# message is 2 bytes plus a short dictionary plus a 16 KiB piece. 1 KiB of
# slack covers both and the BEP 52 hashes message (48 + 512 * 32 bytes).
DEFAULT_MAX_MESSAGE_LENGTH: Final = BLOCK_SIZE + 1024
DEFAULT_MAX_BUFFER: Final = 256 * 1024
DEFAULT_MAX_METADATA_SIZE: Final = 8 * 1024 * 1024
DEFAULT_MAX_OUTSTANDING: Final = 256
# What we advertise in our extension handshake; the peer sends us these ids.
DEFAULT_EXTENSIONS: Final[Mapping[str, int]] = {"ut_metadata": 1, "ut_pex": 2}

# Message ids.
CHOKE: Final = 0
UNCHOKE: Final = 1
INTERESTED: Final = 2
NOT_INTERESTED: Final = 3
HAVE: Final = 4
BITFIELD: Final = 5
REQUEST: Final = 6
PIECE: Final = 7
CANCEL: Final = 8
PORT: Final = 9
SUGGEST: Final = 13
HAVE_ALL: Final = 14
HAVE_NONE: Final = 15
REJECT: Final = 16
ALLOWED_FAST: Final = 17
EXTENDED: Final = 20
HASH_REQUEST: Final = 21
HASHES: Final = 22
HASH_REJECT: Final = 23

_FAST_IDS: Final = frozenset({SUGGEST, HAVE_ALL, HAVE_NONE, REJECT, ALLOWED_FAST})
# Payloads are already bounded by the message length; these bound the structure.
_EXTENSION_LIMITS: Final = Limits(
    max_size=1 << 24,
    max_depth=8,
    max_tokens=4096,
    max_string=1 << 24,
    # Real clients' encoders are not all strict; libtorrent accepts unsorted keys too.
    sorted_keys=False,
)
_MAX_CLIENT_NAME: Final = 200
_U32: Final = struct.Struct(">I")
_THREE_U32: Final = struct.Struct(">III")
_HASH_HEADER: Final = struct.Struct(">32sIIII")


class PeerWireError(ValueError):
    """The peer (or the caller) broke the peer wire protocol or its bounds."""


# --------------------------------------------------------------------------
# Handshake and reserved bits


def make_reserved(
    *, extension: bool = False, fast: bool = False, dht: bool = False, v2: bool = False
) -> bytes:
    """The 8 reserved handshake bytes with the named bits set."""
    raw = bytearray(8)
    if extension:
        raw[5] |= 0x10  # BEP 10
    if v2:
        raw[7] |= 0x10  # BEP 52 upgrade
    if fast:
        raw[7] |= 0x04  # BEP 6
    if dht:
        raw[7] |= 0x01  # BEP 5
    return bytes(raw)


@dataclass(frozen=True, slots=True)
class Handshake:
    """The 68-byte opening: protocol string, reserved bits, infohash, peer id."""

    infohash: bytes
    peer_id: bytes
    reserved: bytes = bytes(8)

    def __post_init__(self) -> None:
        if len(self.infohash) != 20 or len(self.peer_id) != 20 or len(self.reserved) != 8:
            raise PeerWireError("handshake needs a 20-byte infohash and peer id, 8 reserved")

    @property
    def extension(self) -> bool:
        return bool(self.reserved[5] & 0x10)

    @property
    def fast(self) -> bool:
        return bool(self.reserved[7] & 0x04)

    @property
    def dht(self) -> bool:
        return bool(self.reserved[7] & 0x01)

    @property
    def v2(self) -> bool:
        return bool(self.reserved[7] & 0x10)

    def encode(self) -> bytes:
        return bytes([len(PROTOCOL)]) + PROTOCOL + self.reserved + self.infohash + self.peer_id


def decode_handshake(data: bytes) -> Handshake:
    """Parse exactly one 68-byte handshake."""
    if len(data) != HANDSHAKE_LENGTH:
        raise PeerWireError(f"handshake must be {HANDSHAKE_LENGTH} bytes, got {len(data)}")
    _check_handshake_prefix(data)
    return Handshake(infohash=data[28:48], peer_id=data[48:68], reserved=data[20:28])


def _check_handshake_prefix(data: bytes | bytearray) -> None:
    if data[:1] and data[0] != len(PROTOCOL):
        raise PeerWireError(f"handshake protocol string length {data[0]}, expected 19")
    head = bytes(data[1:20])
    if head != PROTOCOL[: len(head)]:
        raise PeerWireError("handshake protocol string is not 'BitTorrent protocol'")


# --------------------------------------------------------------------------
# Messages and events


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class Choke:
    pass


@dataclass(frozen=True, slots=True)
class Unchoke:
    pass


@dataclass(frozen=True, slots=True)
class Interested:
    pass


@dataclass(frozen=True, slots=True)
class NotInterested:
    pass


@dataclass(frozen=True, slots=True)
class Have:
    index: int


@dataclass(frozen=True, slots=True)
class Bitfield:
    """Pieces held, most significant bit of the first byte is piece 0."""

    bits: bytes

    def has(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.bits) and bool(self.bits[byte] & (0x80 >> (index & 7)))

    def count(self) -> int:
        return sum(bin(b).count("1") for b in self.bits)

    def indices(self) -> list[int]:
        return [i for i in range(len(self.bits) * 8) if self.has(i)]

    @classmethod
    def from_indices(cls, indices: set[int] | frozenset[int], num_pieces: int) -> Bitfield:
        raw = bytearray((num_pieces + 7) // 8)
        for i in indices:
            if not 0 <= i < num_pieces:
                raise PeerWireError(f"piece {i} outside 0..{num_pieces - 1}")
            raw[i >> 3] |= 0x80 >> (i & 7)
        return cls(bytes(raw))


def validate_bitfield(bits: bytes, num_pieces: int) -> None:
    """A bitfield must be exactly ceil(n/8) bytes with the spare bits zero."""
    expected = (num_pieces + 7) // 8
    if len(bits) != expected:
        raise PeerWireError(f"bitfield of {len(bits)} bytes for {num_pieces} pieces")
    spare = expected * 8 - num_pieces
    if spare and bits[-1] & ((1 << spare) - 1):
        raise PeerWireError("bitfield has spare bits set")


@dataclass(frozen=True, slots=True)
class Request:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Piece:
    index: int
    begin: int
    block: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Port:
    """BEP 5: the sender's DHT port."""

    port: int


@dataclass(frozen=True, slots=True)
class Suggest:
    index: int


@dataclass(frozen=True, slots=True)
class HaveAll:
    pass


@dataclass(frozen=True, slots=True)
class HaveNone:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class AllowedFast:
    index: int


@dataclass(frozen=True, slots=True)
class HashRequest:
    """BEP 52: ask for `length` hashes of one layer of a file's merkle tree."""

    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int


@dataclass(frozen=True, slots=True)
class Hashes:
    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class HashReject:
    pieces_root: bytes
    base_layer: int
    index: int
    length: int
    proof_layers: int


@dataclass(frozen=True, slots=True)
class ExtensionHandshake:
    """BEP 10 handshake. A field the peer sent with the wrong type reads as absent."""

    m: dict[str, int] = field(default_factory=dict)
    v: str | None = None
    p: int | None = None
    yourip: str | None = None
    reqq: int | None = None
    metadata_size: int | None = None
    upload_only: bool | None = None
    # The bencoded payload exactly as received (empty when built here): the
    # peer's own words, kept for the proof transcript; bounded by the message size.
    raw: bytes = field(default=b"", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    """BEP 9 request for one 16 KiB piece of the info dictionary."""

    piece: int


@dataclass(frozen=True, slots=True)
class MetadataData:
    piece: int
    total_size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MetadataReject:
    piece: int


@dataclass(frozen=True, slots=True)
class PexPeer:
    ip: str
    port: int
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Pex:
    """BEP 11 peer exchange: peers the sender connected to or dropped."""

    added: tuple[PexPeer, ...] = ()
    dropped: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownExtended:
    """An extension message under an id we did not advertise, or of unknown type."""

    ext_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    message_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer ended the stream at a message boundary."""


class NeedData(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA

Message: TypeAlias = (
    Handshake
    | KeepAlive
    | Choke
    | Unchoke
    | Interested
    | NotInterested
    | Have
    | Bitfield
    | Request
    | Piece
    | Cancel
    | Port
    | Suggest
    | HaveAll
    | HaveNone
    | Reject
    | AllowedFast
    | HashRequest
    | Hashes
    | HashReject
    | ExtensionHandshake
    | MetadataRequest
    | MetadataData
    | MetadataReject
    | Pex
    | UnknownExtended
    | UnknownMessage
)
Event: TypeAlias = Message | ConnectionClosed

_EXTENDED_NAMES: Final = {
    MetadataRequest: "ut_metadata",
    MetadataData: "ut_metadata",
    MetadataReject: "ut_metadata",
    Pex: "ut_pex",
}


# --------------------------------------------------------------------------
# The connection


class PeerConnection:
    """One side of a peer wire connection; the same class serves both sides."""

    def __init__(
        self,
        *,
        num_pieces: int | None = None,
        local_extensions: Mapping[str, int] = DEFAULT_EXTENSIONS,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_block: int = BLOCK_SIZE,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        max_outstanding_requests: int = DEFAULT_MAX_OUTSTANDING,
    ) -> None:
        if max_buffer < max_message_length + 4:
            raise ValueError("max_buffer must hold at least one whole message")
        for name, ext_id in local_extensions.items():
            if not 1 <= ext_id <= 255:
                raise ValueError(f"extension id for {name} must be 1..255")
        self.max_message_length = max_message_length
        self.max_buffer = max_buffer
        self.max_block = max_block
        self.max_metadata_size = max_metadata_size
        self.max_outstanding_requests = max_outstanding_requests
        self._local_ext_by_id = {v: k for k, v in local_extensions.items()}
        self._local_ext = dict(local_extensions)
        self._remote_ext: dict[str, int] = {}
        self._num_pieces: int | None = None
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._error: PeerWireError | None = None
        self._closed = False
        self.local_handshake: Handshake | None = None
        self.peer_handshake: Handshake | None = None
        self.peer_extension_handshake: ExtensionHandshake | None = None
        self._possession_seen = False
        # (index, begin) -> length; insertion-ordered so the oldest go first.
        self._outstanding: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._cancelled: OrderedDict[tuple[int, int], int] = OrderedDict()
        if num_pieces is not None:
            self.set_num_pieces(num_pieces)

    # -- state ---------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf) - self._pos

    @property
    def num_pieces(self) -> int | None:
        return self._num_pieces

    def set_num_pieces(self, num_pieces: int) -> None:
        """Once the piece count is known, piece indices and bitfields are checked."""
        if not 0 < num_pieces < 1 << 31:
            raise PeerWireError(f"piece count {num_pieces} out of range")
        self._num_pieces = num_pieces

    @property
    def fast(self) -> bool:
        """Both sides set the BEP 6 bit."""
        return bool(
            self.local_handshake
            and self.peer_handshake
            and self.local_handshake.fast
            and self.peer_handshake.fast
        )

    @property
    def extension_protocol(self) -> bool:
        """Both sides set the BEP 10 bit."""
        return bool(
            self.local_handshake
            and self.peer_handshake
            and self.local_handshake.extension
            and self.peer_handshake.extension
        )

    @property
    def peer_extensions(self) -> Mapping[str, int]:
        """Extension name -> id the peer wants us to use when sending it."""
        return self._remote_ext

    @property
    def outstanding_requests(self) -> int:
        return len(self._outstanding)

    # -- receiving -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; b"" means the peer closed its side."""
        if self._error is not None:
            raise self._error
        if self._eof:
            if data:
                raise self._fail("data received after end of stream")
            return
        if not data:
            self._eof = True
            return
        if self.buffered + len(data) > self.max_buffer:
            raise self._fail(f"more than {self.max_buffer} bytes buffered")
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_event(self) -> Event | NeedData:
        """The next complete event, or NEED_DATA until more bytes arrive."""
        if self._error is not None:
            raise self._error
        if self._closed:
            return ConnectionClosed()
        try:
            event = self._parse_one()
        except PeerWireError as exc:
            self._error = exc
            raise
        if event is NEED_DATA and self._eof:
            if self.buffered:
                raise self._fail("connection closed in the middle of a message")
            self._closed = True
            return ConnectionClosed()
        return event

    def _fail(self, message: str) -> PeerWireError:
        self._error = PeerWireError(message)
        return self._error

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return out

    def _parse_one(self) -> Event | NeedData:
        avail = self.buffered
        if self.peer_handshake is None:
            _check_handshake_prefix(self._buf[self._pos : self._pos + min(avail, 20)])
            if avail < HANDSHAKE_LENGTH:
                return NEED_DATA
            hs = decode_handshake(self._take(HANDSHAKE_LENGTH))
            self.peer_handshake = hs
            return hs
        if avail < 4:
            return NEED_DATA
        (length,) = _U32.unpack_from(self._buf, self._pos)
        limit = self.max_message_length
        if self._num_pieces is not None:
            limit = max(limit, 1 + (self._num_pieces + 7) // 8)
        if length > limit:
            raise PeerWireError(f"message length {length} exceeds limit {limit}")
        if avail < 4 + length:
            return NEED_DATA
        self._pos += 4
        if length == 0:
            return KeepAlive()
        body = self._take(length)
        return self._dispatch(body[0], body[1:])

    def _dispatch(self, mid: int, payload: bytes) -> Event:
        if mid in _FAST_IDS and not self.fast:
            raise PeerWireError(f"fast extension message {mid} without BEP 6 negotiated")
        if mid in (CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE_ALL, HAVE_NONE):
            _expect_len(payload, 0, mid)
            if mid == CHOKE:
                if not self.fast:
                    # Without BEP 6 a choke silently drops our requests; blocks
                    # already in flight may still arrive.
                    for key, length in self._outstanding.items():
                        self._remember_cancelled(key, length)
                    self._outstanding.clear()
                return Choke()
            if mid == UNCHOKE:
                return Unchoke()
            if mid == INTERESTED:
                return Interested()
            if mid == NOT_INTERESTED:
                return NotInterested()
            self._possession(mid)
            return HaveAll() if mid == HAVE_ALL else HaveNone()
        if mid in (HAVE, SUGGEST, ALLOWED_FAST):
            _expect_len(payload, 4, mid)
            (index,) = _U32.unpack(payload)
            self._check_index(index)
            if mid == HAVE:
                return Have(index)
            return Suggest(index) if mid == SUGGEST else AllowedFast(index)
        if mid == BITFIELD:
            self._possession(mid)
            if self._num_pieces is not None:
                validate_bitfield(payload, self._num_pieces)
            return Bitfield(payload)
        if mid in (REQUEST, CANCEL, REJECT):
            _expect_len(payload, 12, mid)
            index, begin, length = _THREE_U32.unpack(payload)
            self._check_index(index)
            if not 0 < length <= self.max_block:
                raise PeerWireError(f"block length {length} outside 1..{self.max_block}")
            if mid == REQUEST:
                return Request(index, begin, length)
            if mid == CANCEL:
                return Cancel(index, begin, length)
            key = (index, begin)
            if self._outstanding.get(key) == length:
                del self._outstanding[key]
            elif self._cancelled.get(key) == length:
                del self._cancelled[key]
            else:
                raise PeerWireError(f"reject for a block never requested ({index}, {begin})")
            return Reject(index, begin, length)
        if mid == PIECE:
            if len(payload) < 8:
                raise PeerWireError("piece message shorter than its header")
            index, begin = struct.unpack_from(">II", payload)
            block = payload[8:]
            self._check_index(index)
            self._match_block(index, begin, len(block))
            return Piece(index, begin, block)
        if mid == PORT:
            _expect_len(payload, 2, mid)
            return Port(struct.unpack(">H", payload)[0])
        if mid in (HASH_REQUEST, HASH_REJECT):
            _expect_len(payload, _HASH_HEADER.size, mid)
            args = _HASH_HEADER.unpack(payload)
            return HashRequest(*args) if mid == HASH_REQUEST else HashReject(*args)
        if mid == HASHES:
            if len(payload) < _HASH_HEADER.size or (len(payload) - _HASH_HEADER.size) % 32:
                raise PeerWireError("hashes message is not a header plus 32-byte hashes")
            root, base, index, length, proofs = _HASH_HEADER.unpack_from(payload)
            rest = payload[_HASH_HEADER.size :]
            hashes = tuple(rest[i : i + 32] for i in range(0, len(rest), 32))
            return Hashes(root, base, index, length, proofs, hashes)
        if mid == EXTENDED:
            if not self.extension_protocol:
                raise PeerWireError("extension message without BEP 10 negotiated")
            if not payload:
                raise PeerWireError("extension message without an extension id")
            return self._extended(payload[0], payload[1:])
        return UnknownMessage(mid, payload)

    def _possession(self, mid: int) -> None:
        # BEP 3 and BEP 6 allow one bitfield / have_all / have_none, right at the start.
        if self._possession_seen:
            raise PeerWireError(f"second possession message (id {mid})")
        self._possession_seen = True

    def _check_index(self, index: int) -> None:
        if self._num_pieces is not None and index >= self._num_pieces:
            raise PeerWireError(f"piece index {index} beyond {self._num_pieces} pieces")

    def _match_block(self, index: int, begin: int, length: int) -> None:
        key = (index, begin)
        for pending in (self._outstanding, self._cancelled):
            wanted = pending.get(key)
            if wanted is None:
                continue
            if length != wanted:
                raise PeerWireError(
                    f"piece ({index}, {begin}) carries {length} bytes, {wanted} requested"
                )
            del pending[key]
            return
        raise PeerWireError(f"piece ({index}, {begin}) was never requested")

    def _remember_cancelled(self, key: tuple[int, int], length: int) -> None:
        self._cancelled[key] = length
        while len(self._cancelled) > self.max_outstanding_requests:
            self._cancelled.popitem(last=False)

    def _extended(self, ext_id: int, payload: bytes) -> Event:
        if ext_id == 0:
            hs = decode_extension_handshake(payload)
            for name, rid in hs.m.items():
                if rid == 0:
                    self._remote_ext.pop(name, None)
                else:
                    self._remote_ext[name] = rid
            self.peer_extension_handshake = hs
            return hs
        ext_name = self._local_ext_by_id.get(ext_id)
        if ext_name == "ut_metadata":
            msg = decode_metadata_message(payload, self.max_metadata_size)
            return msg if msg is not None else UnknownExtended(ext_id, payload)
        if ext_name == "ut_pex":
            return decode_pex(payload)
        return UnknownExtended(ext_id, payload)

    # -- sending -------------------------------------------------------------

    def send(self, message: Message) -> bytes:
        """The bytes that carry `message`; checks it against the connection state."""
        if self._closed or self._error is not None:
            raise PeerWireError("connection is closed")
        if isinstance(message, Handshake):
            if self.local_handshake is not None:
                raise PeerWireError("handshake already sent")
            self.local_handshake = message
            return message.encode()
        if self.local_handshake is None:
            raise PeerWireError("the handshake must be sent first")
        if isinstance(message, Request):
            key = (message.index, message.begin)
            if not 0 < message.length <= self.max_block:
                raise PeerWireError(f"request length {message.length} outside 1..{self.max_block}")
            if key not in self._outstanding and (
                len(self._outstanding) >= self.max_outstanding_requests
            ):
                raise PeerWireError(f"more than {self.max_outstanding_requests} requests pending")
            self._cancelled.pop(key, None)
            self._outstanding[key] = message.length
        elif isinstance(message, Cancel):
            key = (message.index, message.begin)
            length = self._outstanding.pop(key, None)
            if length is not None:
                self._remember_cancelled(key, length)
        if isinstance(message, ExtensionHandshake):
            return encode_extended(0, encode_extension_handshake(message))
        ext_name = _EXTENDED_NAMES.get(type(message))
        if ext_name is not None:
            ext_id = self._remote_ext.get(ext_name)
            if ext_id is None:
                raise PeerWireError(f"peer did not offer {ext_name}")
            if isinstance(message, Pex):
                return encode_extended(ext_id, encode_pex(message))
            if isinstance(message, MetadataRequest | MetadataData | MetadataReject):
                return encode_extended(ext_id, encode_metadata_message(message))
        if isinstance(message, UnknownExtended):
            return encode_extended(message.ext_id, message.payload)
        return encode_message(message)


def _expect_len(payload: bytes, n: int, mid: int) -> None:
    if len(payload) != n:
        raise PeerWireError(f"message {mid} has {len(payload)} payload bytes, expected {n}")


# --------------------------------------------------------------------------
# Stand-alone encoders and decoders


def _frame(mid: int, payload: bytes = b"") -> bytes:
    return _U32.pack(1 + len(payload)) + bytes([mid]) + payload


def encode_message(message: Message) -> bytes:
    """Bytes for a core message (everything but the extension messages)."""
    try:
        match message:
            case Handshake():
                return message.encode()
            case KeepAlive():
                return bytes(4)
            case Choke():
                return _frame(CHOKE)
            case Unchoke():
                return _frame(UNCHOKE)
            case Interested():
                return _frame(INTERESTED)
            case NotInterested():
                return _frame(NOT_INTERESTED)
            case HaveAll():
                return _frame(HAVE_ALL)
            case HaveNone():
                return _frame(HAVE_NONE)
            case Have(index):
                return _frame(HAVE, _U32.pack(index))
            case Suggest(index):
                return _frame(SUGGEST, _U32.pack(index))
            case AllowedFast(index):
                return _frame(ALLOWED_FAST, _U32.pack(index))
            case Bitfield(bits):
                return _frame(BITFIELD, bits)
            case Request(index, begin, length):
                return _frame(REQUEST, _THREE_U32.pack(index, begin, length))
            case Cancel(index, begin, length):
                return _frame(CANCEL, _THREE_U32.pack(index, begin, length))
            case Reject(index, begin, length):
                return _frame(REJECT, _THREE_U32.pack(index, begin, length))
            case Piece(index, begin, block):
                return _frame(PIECE, struct.pack(">II", index, begin) + block)
            case Port(port):
                return _frame(PORT, struct.pack(">H", port))
            case HashRequest(root, base, index, length, proofs):
                return _frame(HASH_REQUEST, _pack_hash_header(root, base, index, length, proofs))
            case HashReject(root, base, index, length, proofs):
                return _frame(HASH_REJECT, _pack_hash_header(root, base, index, length, proofs))
            case Hashes(root, base, index, length, proofs, hashes):
                if any(len(h) != 32 for h in hashes):
                    raise PeerWireError("hashes must be 32 bytes each")
                header = _pack_hash_header(root, base, index, length, proofs)
                return _frame(HASHES, header + b"".join(hashes))
            case UnknownMessage(mid, payload):
                if not 0 <= mid <= 255:
                    raise PeerWireError(f"message id {mid} out of range")
                return _frame(mid, payload)
    except struct.error as exc:
        raise PeerWireError(f"cannot encode {message!r}: {exc}") from exc
    raise PeerWireError(f"{type(message).__name__} needs a connection to be encoded")


def _pack_hash_header(root: bytes, base: int, index: int, length: int, proofs: int) -> bytes:
    if len(root) != 32:
        raise PeerWireError("pieces root must be 32 bytes")
    return _HASH_HEADER.pack(root, base, index, length, proofs)


def encode_extended(ext_id: int, payload: bytes) -> bytes:
    if not 0 <= ext_id <= 255:
        raise PeerWireError(f"extension id {ext_id} out of range")
    return _frame(EXTENDED, bytes([ext_id]) + payload)


def _decode_dict(payload: bytes, what: str) -> tuple[dict[bytes, BValue], int]:
    try:
        value, end = bencode.decode_prefix(payload, _EXTENSION_LIMITS)
    except BencodeError as exc:
        raise PeerWireError(f"{what}: {exc}") from exc
    if not isinstance(value, dict):
        raise PeerWireError(f"{what} is not a dictionary")
    return value, end


def _int_field(d: Mapping[bytes, BValue], key: bytes, lo: int, hi: int) -> int | None:
    value = d.get(key)
    if isinstance(value, int) and lo <= value <= hi:
        return value
    return None


def decode_extension_handshake(payload: bytes) -> ExtensionHandshake:
    """Parse a BEP 10 handshake dictionary (the payload after the extension id)."""
    d, end = _decode_dict(payload, "extension handshake")
    if end != len(payload):
        raise PeerWireError("extension handshake has trailing bytes")
    m: dict[str, int] = {}
    raw_m = d.get(b"m")
    if isinstance(raw_m, dict):
        for key, value in raw_m.items():
            if isinstance(value, int) and 0 <= value <= 255:
                try:
                    m[key.decode("utf-8")] = value
                except UnicodeDecodeError:
                    continue
    v = d.get(b"v")
    client = v.decode("utf-8", "replace")[:_MAX_CLIENT_NAME] if isinstance(v, bytes) else None
    yourip: str | None = None
    raw_ip = d.get(b"yourip")
    if isinstance(raw_ip, bytes) and len(raw_ip) in (4, 16):
        yourip = str(ipaddress.ip_address(raw_ip))
    upload_only = d.get(b"upload_only")
    return ExtensionHandshake(
        m=m,
        v=client,
        p=_int_field(d, b"p", 1, 65535),
        yourip=yourip,
        reqq=_int_field(d, b"reqq", 0, 1 << 31),
        metadata_size=_int_field(d, b"metadata_size", 0, 1 << 62),
        upload_only=bool(upload_only) if isinstance(upload_only, int) else None,
        raw=bytes(payload),
    )


def encode_extension_handshake(hs: ExtensionHandshake) -> bytes:
    d: dict[bytes, BValue] = {b"m": {k.encode(): v for k, v in hs.m.items()}}
    if hs.v is not None:
        d[b"v"] = hs.v.encode()
    if hs.p is not None:
        d[b"p"] = hs.p
    if hs.yourip is not None:
        d[b"yourip"] = ipaddress.ip_address(hs.yourip).packed
    if hs.reqq is not None:
        d[b"reqq"] = hs.reqq
    if hs.metadata_size is not None:
        d[b"metadata_size"] = hs.metadata_size
    if hs.upload_only is not None:
        d[b"upload_only"] = int(hs.upload_only)
    return bencode.encode(d)


def metadata_piece_count(total_size: int) -> int:
    return (total_size + METADATA_PIECE_SIZE - 1) // METADATA_PIECE_SIZE


def decode_metadata_message(
    payload: bytes, max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE
) -> MetadataRequest | MetadataData | MetadataReject | None:
    """Parse a BEP 9 message; None for a msg_type BEP 9 says to ignore."""
    d, end = _decode_dict(payload, "ut_metadata message")
    msg_type = d.get(b"msg_type")
    piece = d.get(b"piece")
    if not isinstance(msg_type, int) or not isinstance(piece, int):
        raise PeerWireError("ut_metadata message without integer msg_type and piece")
    max_pieces = metadata_piece_count(max_metadata_size)
    if not 0 <= piece < max_pieces:
        raise PeerWireError(f"ut_metadata piece {piece} outside 0..{max_pieces - 1}")
    rest = payload[end:]
    if msg_type == 1:
        total = d.get(b"total_size")
        if not isinstance(total, int) or not 0 < total <= max_metadata_size:
            raise PeerWireError(f"ut_metadata total_size {total!r} outside 1..{max_metadata_size}")
        count = metadata_piece_count(total)
        if piece >= count:
            raise PeerWireError(f"ut_metadata piece {piece} beyond {count} pieces")
        expected = min(METADATA_PIECE_SIZE, total - piece * METADATA_PIECE_SIZE)
        if len(rest) != expected:
            raise PeerWireError(f"ut_metadata piece {piece} has {len(rest)} bytes, not {expected}")
        return MetadataData(piece, total, rest)
    if rest:
        raise PeerWireError("ut_metadata request or reject has trailing bytes")
    if msg_type == 0:
        return MetadataRequest(piece)
    if msg_type == 2:
        return MetadataReject(piece)
    return None


def encode_metadata_message(message: MetadataRequest | MetadataData | MetadataReject) -> bytes:
    if isinstance(message, MetadataRequest):
        return bencode.encode({b"msg_type": 0, b"piece": message.piece})
    if isinstance(message, MetadataReject):
        return bencode.encode({b"msg_type": 2, b"piece": message.piece})
    head: dict[bytes, BValue] = {
        b"msg_type": 1,
        b"piece": message.piece,
        b"total_size": message.total_size,
    }
    return bencode.encode(head) + message.data


def _compact_peers(raw: BValue | None, size: int, what: str) -> list[tuple[str, int]]:
    if raw is None:
        return []
    if not isinstance(raw, bytes):
        raise PeerWireError(f"ut_pex {what} is not a string")
    if len(raw) % size:
        raise PeerWireError(f"ut_pex {what} is not a multiple of {size} bytes")
    out = []
    for i in range(0, len(raw), size):
        ip = str(ipaddress.ip_address(raw[i : i + size - 2]))
        out.append((ip, int.from_bytes(raw[i + size - 2 : i + size], "big")))
    return out


def decode_pex(payload: bytes) -> Pex:
    """Parse a BEP 11 message: added/added.f/dropped and their IPv6 twins."""
    d, end = _decode_dict(payload, "ut_pex message")
    if end != len(payload):
        raise PeerWireError("ut_pex message has trailing bytes")
    added: list[PexPeer] = []
    dropped: list[tuple[str, int]] = []
    for suffix, size in ((b"", 6), (b"6", 18)):
        peers = _compact_peers(d.get(b"added" + suffix), size, "added" + suffix.decode())
        raw_flags = d.get(b"added" + suffix + b".f")
        # Flags are advisory; a flags string of the wrong length is ignored.
        flags = raw_flags if isinstance(raw_flags, bytes) else b""
        if len(flags) != len(peers):
            flags = bytes(len(peers))
        added += (PexPeer(ip, port, f) for (ip, port), f in zip(peers, flags, strict=True))
        dropped += _compact_peers(d.get(b"dropped" + suffix), size, "dropped" + suffix.decode())
    return Pex(tuple(added), tuple(dropped))


def _pack_peer(ip: str, port: int) -> bytes:
    try:
        return ipaddress.ip_address(ip).packed + port.to_bytes(2, "big")
    except (ValueError, OverflowError) as exc:
        raise PeerWireError(f"cannot encode peer {ip}:{port}") from exc


def encode_pex(pex: Pex) -> bytes:
    d: dict[bytes, BValue] = {}
    for suffix, size in ((b"", 6), (b"6", 18)):
        added = [p for p in pex.added if len(_pack_peer(p.ip, p.port)) == size]
        dropped = [p for p in pex.dropped if len(_pack_peer(*p)) == size]
        if added or not suffix:
            d[b"added" + suffix] = b"".join(_pack_peer(p.ip, p.port) for p in added)
            d[b"added" + suffix + b".f"] = bytes(p.flags for p in added)
        if dropped or not suffix:
            d[b"dropped" + suffix] = b"".join(_pack_peer(*p) for p in dropped)
    return bencode.encode(d)


# --------------------------------------------------------------------------
# Peer ids


_AZUREUS: Final = {
    "7T": "aTorrent",
    "AG": "Ares",
    "A~": "Ares",
    "AZ": "Vuze",
    "BB": "BitBuddy",
    "BC": "BitComet",
    "BF": "Bitflu",
    "BI": "BiglyBT",
    "BT": "BitTorrent",
    "BW": "BitWombat",
    "CD": "Enhanced CTorrent",
    "CT": "CTorrent",
    "DE": "Deluge",
    "FD": "Free Download Manager",
    "FW": "FrostWire",
    "HL": "Halite",
    "KG": "KGet",
    "KT": "KTorrent",
    "LT": "libtorrent",
    "lt": "rTorrent",
    "LW": "LimeWire",
    "MO": "MonoTorrent",
    "PI": "PicoTorrent",
    "qB": "qBittorrent",
    "QD": "QQDownload",
    "SD": "Thunder",
    "SZ": "Shareaza",
    "TL": "Tribler",
    "TR": "Transmission",
    "TT": "TuoTu",
    "UM": "µTorrent Mac",
    "UT": "µTorrent",
    "UW": "µTorrent Web",
    "VG": "Vagaa",
    "WD": "WebTorrent Desktop",
    "WW": "WebTorrent",
    "XL": "Xunlei",
    "ZT": "ZipTorrent",
}
_SHADOW: Final = {
    "A": "ABC",
    "O": "Osprey Permaseed",
    "Q": "BTQueue",
    "R": "Tribler",
    "S": "Shadow",
    "T": "BitTornado",
    "U": "UPnP NAT Bit Torrent",
}
_SHADOW_DIGITS: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-"
_AZUREUS_RE: Final = re.compile(rb"-([A-Za-z0-9~]{2})([A-Za-z0-9]{4})-")
_MAINLINE_RE: Final = re.compile(rb"M(\d{1,2})-(\d{1,2})-(\d{1,2})-")
_ARIA2_RE: Final = re.compile(rb"A2-(\d{1,2})-(\d{1,2})-(\d{1,2})-")


def _azureus_version(code: str, raw: str) -> str:
    digits = [int(c, 36) for c in raw]
    if code == "TR":
        # Transmission: "-TR3000-" is 3.00; from 4.0 on, "-TR4060-" is 4.0.6.
        # A trailing Z marks a development build, X a beta.
        tag = {"Z": "+", "X": " beta"}.get(raw[3], "")
        if digits[0] >= 4:
            return f"{digits[0]}.{digits[1]}.{digits[2]}{tag}"
        return f"{digits[0]}.{raw[1]}{raw[2]}{tag}"
    parts = digits[:3] if digits[3] == 0 else digits
    return ".".join(str(p) for p in parts)


def client_from_peer_id(peer_id: bytes) -> str | None:
    """A client name and version read from a peer id, or None if it follows no convention.

    Peers choose their own ids, so this is a claim to record, not an identification.
    """
    if len(peer_id) != 20:
        return None
    m = _AZUREUS_RE.match(peer_id)
    if m:
        code, ver = m.group(1).decode(), m.group(2).decode()
        name = _AZUREUS.get(code, f"unknown client {code}")
        return f"{name} {_azureus_version(code, ver)}"
    m = _MAINLINE_RE.match(peer_id)
    if m:
        return "BitTorrent (Mainline) " + ".".join(str(int(g)) for g in m.groups())
    m = _ARIA2_RE.match(peer_id)
    if m:
        return "aria2 " + ".".join(str(int(g)) for g in m.groups())
    first = chr(peer_id[0])
    if first in _SHADOW:
        version = []
        for b in peer_id[1:6]:
            c = chr(b)
            if c == "-":
                break
            if c not in _SHADOW_DIGITS:
                return None
            version.append(str(_SHADOW_DIGITS.index(c)))
        # Shadow-style ids end their version with dashes; without them this is noise.
        if version and b"---" in peer_id[len(version) + 1 : 9]:
            return f"{_SHADOW[first]} {'.'.join(version)}"
    return None


def make_peer_id(prefix: bytes, rng: Random) -> bytes:
    """A 20-byte peer id: `prefix` then random printable characters."""
    if len(prefix) > 20:
        raise ValueError("peer id prefix longer than 20 bytes")
    alphabet = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return prefix + bytes(rng.choice(alphabet) for _ in range(20 - len(prefix)))


def reserved_names(reserved: bytes) -> list[str]:
    """Names of the known reserved bits that are set, for records."""
    hs = Handshake(bytes(20), bytes(20), reserved)
    flags = {"extension": hs.extension, "fast": hs.fast, "dht": hs.dht, "v2": hs.v2}
    return [name for name, on in flags.items() if on]
