"""KRPC, the DHT's message format (BEP 5), with BEP 32's IPv6, BEP 42's "ip", BEP 51's samples.

A datagram is one bencoded dictionary: a query (`y` = "q"), a response ("r")
or an error ("e"). `decode_message` turns bytes into one of the typed messages
below or raises `KrpcError`; `encode_message` does the reverse. Responses do not
name the query they answer, so `Response` carries every field any query's
answer may hold; the caller knows from the transaction id what it asked.

Every length is bounded: a datagram larger than `MAX_DATAGRAM`, a response with
more than `MAX_VALUES` peers, `MAX_NODES` nodes or `MAX_SAMPLES` samples is
refused whole. Unknown keys are ignored, as BEP 5 asks for forward compatibility.

IPv6 (BEP 32): a response carries IPv4 contacts in `nodes` (26 bytes each) and
IPv6 contacts in `nodes6` (38 bytes each: id, 16 address bytes, port), each
list bounded by `MAX_NODES`; peers in `values` may be IPv4 (6 bytes) or IPv6
(18 bytes); BEP 42's `ip` may be either. Queries that ask for nodes
(find_node, get_peers, sample_infohashes) may carry `want`, a list naming the
families wanted (`n4`, `n6`). `want` is read liberally but bounded, as
libtorrent reads it: a `want` that is not a list is taken as absent, items
that are not strings or name no family we know are skipped, and only the first
`MAX_WANT` items are looked at. It is a hint about what to put in an answer,
so a malformed one costs the asker nothing more than an answer without it,
while refusing the whole query would make us a worse neighbour for nodes of
some future BEP; bounding it keeps that liberality from costing work.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from atalaya.networks.bittorrent.bencode import (
    BencodeEncodeError,
    BencodeError,
    BValue,
    Limits,
    decode,
    encode,
)

Address: TypeAlias = tuple[str, int]

ID_LENGTH = 20
COMPACT_NODE_LENGTH = 26
COMPACT_NODE6_LENGTH = 38
COMPACT_PEER4_LENGTH = 6
COMPACT_PEER6_LENGTH = 18

# Real KRPC datagrams fit an Ethernet MTU; anything far larger is not a DHT node
# talking, and refusing it bounds the work a single datagram can cause.
MAX_DATAGRAM = 8192
MAX_TRANSACTION_ID = 32
MAX_TOKEN = 128
MAX_VERSION = 32
MAX_ERROR_MESSAGE = 1024
MAX_VALUES = 500
MAX_NODES = 200
MAX_SAMPLES = 300
MAX_METHOD = 64
MAX_COUNT = 1 << 40  # bound for "num"
MAX_INTERVAL = 1 << 31
MAX_WANT = 8  # items of a "want" list looked at; there are two families

WANT_N4 = b"n4"
WANT_N6 = b"n6"
WANTS = (WANT_N4, WANT_N6)

KRPC_LIMITS = Limits(
    max_size=MAX_DATAGRAM,
    max_depth=4,
    max_tokens=MAX_VALUES + 100,
    max_string=MAX_DATAGRAM,
    max_int_digits=20,
)

GENERIC_ERROR = 201
SERVER_ERROR = 202
PROTOCOL_ERROR = 203
METHOD_UNKNOWN = 204


class KrpcError(ValueError):
    """A datagram that is not a valid KRPC message within the limits.

    `transaction_id` is set when the datagram was a query whose `t` could be
    read, so that a node can answer with a protocol error (203).
    """

    def __init__(
        self,
        message: str,
        *,
        transaction_id: bytes | None = None,
        code: int = PROTOCOL_ERROR,
    ) -> None:
        super().__init__(message)
        self.reason = message
        self.transaction_id = transaction_id
        self.code = code


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A DHT contact: node id and UDP address (one entry of compact "nodes" or "nodes6")."""

    node_id: bytes
    ip: str
    port: int

    @property
    def addr(self) -> Address:
        return (self.ip, self.port)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    transaction_id: bytes
    sender_id: bytes
    version: bytes | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class FindNode:
    """`want`: the address families asked for (BEP 32), `WANT_N4` and/or `WANT_N6`."""

    transaction_id: bytes
    sender_id: bytes
    target: bytes
    want: tuple[bytes, ...] = ()
    version: bytes | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class GetPeers:
    transaction_id: bytes
    sender_id: bytes
    infohash: bytes
    want: tuple[bytes, ...] = ()
    version: bytes | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncePeer:
    transaction_id: bytes
    sender_id: bytes
    infohash: bytes
    port: int
    token: bytes
    implied_port: bool = False
    version: bytes | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleInfohashes:
    transaction_id: bytes
    sender_id: bytes
    target: bytes
    want: tuple[bytes, ...] = ()
    version: bytes | None = None
    read_only: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownQuery:
    """A query method this codec does not know; `target`/`info_hash` if it had them."""

    transaction_id: bytes
    sender_id: bytes
    method: bytes
    target: bytes | None = None
    infohash: bytes | None = None
    version: bytes | None = None
    read_only: bool = False


Query: TypeAlias = Ping | FindNode | GetPeers | AnnouncePeer | SampleInfohashes | UnknownQuery


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """Any response; fields a given answer lacks stay empty or None.

    `nodes` holds IPv4 contacts, `nodes6` IPv6 ones (BEP 32); `samples`, `num`
    and `interval` come from BEP 51; `requester` is BEP 42's "ip": the address
    the responder saw our datagram come from.
    """

    transaction_id: bytes
    sender_id: bytes
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()
    values: tuple[Address, ...] = ()
    token: bytes | None = None
    samples: tuple[bytes, ...] | None = None
    num: int | None = None
    interval: int | None = None
    requester: Address | None = None
    version: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReply:
    transaction_id: bytes
    code: int
    message: bytes
    requester: Address | None = None
    version: bytes | None = None


Message: TypeAlias = Query | Response | ErrorReply


# A frozen dataclass's __init__ sets each field through object.__setattr__,
# which was a third of building a response and its nodes; the slots' own
# descriptors set the same fields in half the time. `_new_response` and
# `_decode_contacts` build that way from values the decoder has checked.
def _slot_setters(cls: type) -> tuple[Callable[[object, object], None], ...]:
    """Each field's slot setter, in field order, for a plain frozen slotted dataclass."""
    names = [field.name for field in dataclasses.fields(cls)]
    if list(getattr(cls, "__slots__", ())) != names or hasattr(cls, "__post_init__"):
        # Building around __init__ would skip what it does beyond setting fields.
        raise TypeError(f"{cls.__name__} is not a plain slotted dataclass")
    return tuple(vars(cls)[name].__set__ for name in names)


_new_object = object.__new__
_set_node_id, _set_node_ip, _set_node_port = _slot_setters(NodeInfo)
_RESPONSE_SETTERS = _slot_setters(Response)


def _new_response(
    transaction_id: bytes,
    sender_id: bytes,
    nodes: tuple[NodeInfo, ...],
    nodes6: tuple[NodeInfo, ...],
    values: tuple[Address, ...],
    token: bytes | None,
    samples: tuple[bytes, ...] | None,
    num: int | None,
    interval: int | None,
    requester: Address | None,
    version: bytes | None,
) -> Response:
    """`Response(...)` with the fields in their order, at half the cost (see above)."""
    made: Response = _new_object(Response)
    (
        set_transaction_id,
        set_sender_id,
        set_nodes,
        set_nodes6,
        set_values,
        set_token,
        set_samples,
        set_num,
        set_interval,
        set_requester,
        set_version,
    ) = _RESPONSE_SETTERS
    set_transaction_id(made, transaction_id)
    set_sender_id(made, sender_id)
    set_nodes(made, nodes)
    set_nodes6(made, nodes6)
    set_values(made, values)
    set_token(made, token)
    set_samples(made, samples)
    set_num(made, num)
    set_interval(made, interval)
    set_requester(made, requester)
    set_version(made, version)
    return made


_QUERY_NAMES: dict[type, bytes] = {
    Ping: b"ping",
    FindNode: b"find_node",
    GetPeers: b"get_peers",
    AnnouncePeer: b"announce_peer",
    SampleInfohashes: b"sample_infohashes",
}


# --- compact forms ---------------------------------------------------------

# Formatting a dotted quad from tables of the 256 octets' texts, after one
# struct unpack, is nearly three times as fast as formatting each byte as an int.
_OCTETS = tuple(str(octet) for octet in range(256))
_OCTETS_DOT = tuple(f"{octet}." for octet in range(256))
_PEER4 = struct.Struct(">BBBBH")
_NODE4 = struct.Struct(f">{ID_LENGTH}sBBBBH")


def _ip_bytes(ip: str) -> bytes:
    try:
        return ipaddress.ip_address(ip).packed
    except ValueError:
        raise KrpcError(f"not an IP address: {ip!r}") from None


def encode_peer(addr: Address) -> bytes:
    """Compact peer info: 4 (or 16) address bytes and the port, big-endian."""
    ip, port = addr
    if not 0 <= port <= 0xFFFF:
        raise KrpcError(f"port {port} out of range")
    return _ip_bytes(ip) + port.to_bytes(2, "big")


def decode_peer(raw: bytes) -> Address:
    if len(raw) == COMPACT_PEER4_LENGTH:
        a, b, c, d, port = _PEER4.unpack(raw)
        dot = _OCTETS_DOT
        return f"{dot[a]}{dot[b]}{dot[c]}{_OCTETS[d]}", port
    if len(raw) == COMPACT_PEER6_LENGTH:
        return str(ipaddress.IPv6Address(raw[:16])), int.from_bytes(raw[16:], "big")
    raise KrpcError(f"compact peer of {len(raw)} bytes")


def encode_nodes(nodes: tuple[NodeInfo, ...] | list[NodeInfo]) -> bytes:
    """Compact "nodes": 26 bytes per IPv4 contact."""
    return _encode_contacts(nodes, COMPACT_PEER4_LENGTH, "nodes carry IPv4")


def encode_nodes6(nodes: tuple[NodeInfo, ...] | list[NodeInfo]) -> bytes:
    """Compact "nodes6" (BEP 32): 38 bytes per IPv6 contact."""
    return _encode_contacts(nodes, COMPACT_PEER6_LENGTH, "nodes6 carry IPv6")


def decode_nodes(raw: bytes) -> tuple[NodeInfo, ...]:
    return _decode_contacts(raw, COMPACT_NODE_LENGTH, "nodes")


def decode_nodes6(raw: bytes) -> tuple[NodeInfo, ...]:
    return _decode_contacts(raw, COMPACT_NODE6_LENGTH, "nodes6")


def _encode_contacts(
    nodes: tuple[NodeInfo, ...] | list[NodeInfo], peer_length: int, what: str
) -> bytes:
    if len(nodes) > MAX_NODES:
        raise KrpcError(f"more than {MAX_NODES} nodes")
    out = []
    for node in nodes:
        _check_id(node.node_id, "node id")
        packed = encode_peer(node.addr)
        if len(packed) != peer_length:
            raise KrpcError(f"compact {what} only, not {node.ip}")
        out.append(node.node_id + packed)
    return b"".join(out)


def _decode_contacts(raw: bytes, length: int, what: str) -> tuple[NodeInfo, ...]:
    if len(raw) % length:
        raise KrpcError(f"{what} of {len(raw)} bytes, not a multiple of {length}")
    if len(raw) // length > MAX_NODES:
        raise KrpcError(f"more than {MAX_NODES} {what}")
    if length == COMPACT_NODE_LENGTH:
        # One C-level unpack for every contact; see `_PEER4` and `_slot_setters`.
        dot, last = _OCTETS_DOT, _OCTETS
        new, set_id, set_ip, set_port = _new_object, _set_node_id, _set_node_ip, _set_node_port
        nodes = []
        for node_id, a, b, c, d, port in _NODE4.iter_unpack(raw):
            node = new(NodeInfo)
            set_id(node, node_id)
            set_ip(node, f"{dot[a]}{dot[b]}{dot[c]}{last[d]}")
            set_port(node, port)
            nodes.append(node)
        return tuple(nodes)
    return tuple(
        NodeInfo(raw[i : i + ID_LENGTH], *decode_peer(raw[i + ID_LENGTH : i + length]))
        for i in range(0, len(raw), length)
    )


def _decode_peers(raw: list[BValue]) -> tuple[Address, ...]:
    """The compact peers of "values", each checked as `decode_peer` checks it."""
    dot, last = _OCTETS_DOT, _OCTETS
    try:
        # A response's values are nearly always IPv4: unpacking refuses any
        # item that is not 6 bytes, and the loop below then reads each alone.
        return tuple(
            [
                (f"{dot[a]}{dot[b]}{dot[c]}{last[d]}", port)
                for a, b, c, d, port in map(_PEER4.unpack, raw)  # type: ignore[arg-type]
            ]
        )
    except (struct.error, TypeError):
        pass
    peers = []
    for item in raw:
        if not isinstance(item, bytes):
            raise KrpcError("a value is not a string")
        peers.append(decode_peer(item))
    return tuple(peers)


# --- decoding --------------------------------------------------------------


def decode_message(data: bytes) -> Message:
    """Decode one datagram; raise `KrpcError` for anything else."""
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise KrpcError("datagram is not bytes")
        data = bytes(data)
    if len(data) > MAX_DATAGRAM:
        raise KrpcError(f"datagram larger than {MAX_DATAGRAM} bytes")
    try:
        top = decode(data, KRPC_LIMITS)
    except BencodeError as exc:
        raise KrpcError(f"bad bencode: {exc}") from None
    if type(top) is not dict:
        raise KrpcError("message is not a dictionary")
    tid = _bytes(top, b"t", "transaction id", max_len=MAX_TRANSACTION_ID)
    kind = top.get(b"y")
    version = _opt_bytes(top, b"v", "version", max_len=MAX_VERSION)
    if kind == b"q":
        try:
            return _decode_query(top, tid, version)
        except KrpcError as exc:
            raise KrpcError(exc.reason, transaction_id=tid, code=exc.code) from None
    raw_ip = top.get(b"ip")
    requester = None if raw_ip is None else _compact_addr(top, raw_ip)
    if kind == b"r":
        return _decode_response(top, tid, version, requester)
    if kind == b"e":
        return _decode_error(top, tid, version, requester)
    raise KrpcError("message type 'y' is not q, r or e")


def _decode_query(top: dict[bytes, BValue], tid: bytes, version: bytes | None) -> Query:
    method = _bytes(top, b"q", "query method", max_len=MAX_METHOD)
    args = top.get(b"a")
    if not isinstance(args, dict):
        raise KrpcError("query arguments 'a' missing or not a dictionary")
    sender = _id(args, b"id", "sender id")
    ro = _opt_int(top, b"ro", "read-only flag", 0, 1)
    read_only = bool(ro)
    if method == b"ping":
        return Ping(transaction_id=tid, sender_id=sender, version=version, read_only=read_only)
    if method == b"find_node":
        return FindNode(
            transaction_id=tid,
            sender_id=sender,
            target=_id(args, b"target", "target"),
            want=_want(args),
            version=version,
            read_only=read_only,
        )
    if method == b"get_peers":
        return GetPeers(
            transaction_id=tid,
            sender_id=sender,
            infohash=_id(args, b"info_hash", "info_hash"),
            want=_want(args),
            version=version,
            read_only=read_only,
        )
    if method == b"announce_peer":
        port = _opt_int(args, b"port", "port", 0, 0xFFFF)
        implied = _opt_int(args, b"implied_port", "implied_port", 0, 1 << 31)
        if port is None and not implied:
            raise KrpcError("announce_peer without port")
        return AnnouncePeer(
            transaction_id=tid,
            sender_id=sender,
            infohash=_id(args, b"info_hash", "info_hash"),
            port=port or 0,
            token=_bytes(args, b"token", "token", max_len=MAX_TOKEN),
            implied_port=bool(implied),
            version=version,
            read_only=read_only,
        )
    if method == b"sample_infohashes":
        return SampleInfohashes(
            transaction_id=tid,
            sender_id=sender,
            target=_id(args, b"target", "target"),
            want=_want(args),
            version=version,
            read_only=read_only,
        )
    target = _opt_id(args, b"target", "target")
    infohash = _opt_id(args, b"info_hash", "info_hash")
    return UnknownQuery(
        transaction_id=tid,
        sender_id=sender,
        method=method,
        target=target,
        infohash=infohash,
        version=version,
        read_only=read_only,
    )


def _decode_response(
    top: dict[bytes, BValue], tid: bytes, version: bytes | None, requester: Address | None
) -> Response:
    body = top.get(b"r")
    if not isinstance(body, dict):
        raise KrpcError("response body 'r' missing or not a dictionary")
    sender = _id(body, b"id", "responder id")
    nodes_raw = _opt_bytes(body, b"nodes", "nodes", max_len=MAX_NODES * COMPACT_NODE_LENGTH)
    nodes = decode_nodes(nodes_raw) if nodes_raw is not None else ()
    nodes6_raw = _opt_bytes(body, b"nodes6", "nodes6", max_len=MAX_NODES * COMPACT_NODE6_LENGTH)
    nodes6 = decode_nodes6(nodes6_raw) if nodes6_raw is not None else ()
    values: tuple[Address, ...] = ()
    raw_values = body.get(b"values")
    if raw_values is not None:
        if not isinstance(raw_values, list):
            raise KrpcError("values is not a list")
        if len(raw_values) > MAX_VALUES:
            raise KrpcError(f"more than {MAX_VALUES} values")
        values = _decode_peers(raw_values)
    samples: tuple[bytes, ...] | None = None
    raw_samples = _opt_bytes(body, b"samples", "samples", max_len=MAX_SAMPLES * ID_LENGTH)
    if raw_samples is not None:
        if len(raw_samples) % ID_LENGTH:
            raise KrpcError(f"samples of {len(raw_samples)} bytes, not a multiple of 20")
        samples = tuple(
            [raw_samples[i : i + ID_LENGTH] for i in range(0, len(raw_samples), ID_LENGTH)]
        )
    return _new_response(
        tid,
        sender,
        nodes,
        nodes6,
        values,
        _opt_bytes(body, b"token", "token", max_len=MAX_TOKEN),
        samples,
        _opt_int(body, b"num", "num", 0, MAX_COUNT),
        _opt_int(body, b"interval", "interval", 0, MAX_INTERVAL),
        requester,
        version,
    )


def _decode_error(
    top: dict[bytes, BValue], tid: bytes, version: bytes | None, requester: Address | None
) -> ErrorReply:
    body = top.get(b"e")
    # BEP 5 says exactly [code, message]; extra elements are tolerated and ignored.
    if not isinstance(body, list) or len(body) < 2:
        raise KrpcError("error body 'e' is not a [code, message] list")
    code, message = body[0], body[1]
    if not isinstance(code, int) or not 0 <= code < 1 << 31:
        raise KrpcError("error code is not a small integer")
    if not isinstance(message, bytes):
        raise KrpcError("error message is not a string")
    if len(message) > MAX_ERROR_MESSAGE:
        raise KrpcError(f"error message longer than {MAX_ERROR_MESSAGE} bytes")
    return ErrorReply(
        transaction_id=tid, code=code, message=message, requester=requester, version=version
    )


# The helpers below test the common case first, with `type() is` (decoded
# values are never subclasses), and only then find which check failed.


def _bytes(d: dict[bytes, BValue], key: bytes, what: str, *, max_len: int) -> bytes:
    value = d.get(key)
    if type(value) is bytes and len(value) <= max_len:
        return value
    if value is None:
        raise KrpcError(f"{what} missing")
    if not isinstance(value, bytes):
        raise KrpcError(f"{what} is not a string")
    if len(value) > max_len:
        raise KrpcError(f"{what} longer than {max_len} bytes")
    return value


def _opt_bytes(d: dict[bytes, BValue], key: bytes, what: str, *, max_len: int) -> bytes | None:
    value = d.get(key)
    if value is None or (type(value) is bytes and len(value) <= max_len):
        return value
    return _bytes(d, key, what, max_len=max_len)


def _id(d: dict[bytes, BValue], key: bytes, what: str) -> bytes:
    value = d.get(key)
    if type(value) is bytes and len(value) == ID_LENGTH:
        return value
    value = _bytes(d, key, what, max_len=ID_LENGTH)
    if len(value) != ID_LENGTH:
        raise KrpcError(f"{what} is {len(value)} bytes, not 20")
    return value


def _opt_id(d: dict[bytes, BValue], key: bytes, what: str) -> bytes | None:
    if key not in d:
        return None
    return _id(d, key, what)


def _opt_int(d: dict[bytes, BValue], key: bytes, what: str, low: int, high: int) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise KrpcError(f"{what} is not an integer")
    if not low <= value <= high:
        raise KrpcError(f"{what} {value} outside {low}..{high}")
    return value


def _want(args: dict[bytes, BValue]) -> tuple[bytes, ...]:
    """The families a query wants, known ones only, in order, each once (see module doc)."""
    raw = args.get(b"want")
    if not isinstance(raw, list):
        return ()
    wanted: list[bytes] = []
    for item in raw[:MAX_WANT]:
        if isinstance(item, bytes) and item in WANTS and item not in wanted:
            wanted.append(item)
    return tuple(wanted)


def _compact_addr(top: dict[bytes, BValue], raw: BValue) -> Address:
    """BEP 42's "ip", present as `raw`."""
    if type(raw) is not bytes or len(raw) > COMPACT_PEER6_LENGTH:
        raw = _bytes(top, b"ip", "ip", max_len=COMPACT_PEER6_LENGTH)
    return decode_peer(raw)


# --- encoding --------------------------------------------------------------


def encode_message(message: Message) -> bytes:
    """Encode a message; `KrpcError` if a field could not be read back."""
    top: dict[bytes, BValue] = {}
    _check_len(message.transaction_id, MAX_TRANSACTION_ID, "transaction id")
    top[b"t"] = message.transaction_id
    if message.version is not None:
        _check_len(message.version, MAX_VERSION, "version")
        top[b"v"] = message.version
    if isinstance(message, Response):
        top[b"y"] = b"r"
        top[b"r"] = _response_body(message)
        if message.requester is not None:
            top[b"ip"] = encode_peer(message.requester)
    elif isinstance(message, ErrorReply):
        top[b"y"] = b"e"
        if not 0 <= message.code < 1 << 31:
            raise KrpcError("error code out of range")
        _check_len(message.message, MAX_ERROR_MESSAGE, "error message")
        top[b"e"] = [message.code, message.message]
        if message.requester is not None:
            top[b"ip"] = encode_peer(message.requester)
    else:
        top[b"y"] = b"q"
        method, args = _query_args(message)
        top[b"q"] = method
        top[b"a"] = args
        if message.read_only:
            top[b"ro"] = 1
    try:
        data = encode(top)
    except BencodeEncodeError as exc:
        raise KrpcError(f"cannot encode: {exc}") from None
    if len(data) > MAX_DATAGRAM:
        raise KrpcError(f"message larger than {MAX_DATAGRAM} bytes")
    return data


def _query_args(query: Query) -> tuple[bytes, dict[bytes, BValue]]:
    _check_id(query.sender_id, "sender id")
    args: dict[bytes, BValue] = {b"id": query.sender_id}
    if isinstance(query, UnknownQuery):
        _check_len(query.method, MAX_METHOD, "method")
        if query.method in _QUERY_NAMES.values():
            raise KrpcError("UnknownQuery names a known method")
        if query.target is not None:
            _check_id(query.target, "target")
            args[b"target"] = query.target
        if query.infohash is not None:
            _check_id(query.infohash, "info_hash")
            args[b"info_hash"] = query.infohash
        return query.method, args
    if isinstance(query, FindNode | SampleInfohashes):
        _check_id(query.target, "target")
        args[b"target"] = query.target
    elif isinstance(query, GetPeers):
        _check_id(query.infohash, "info_hash")
        args[b"info_hash"] = query.infohash
    if isinstance(query, FindNode | GetPeers | SampleInfohashes) and query.want:
        args[b"want"] = _check_want(query.want)
    elif isinstance(query, AnnouncePeer):
        _check_id(query.infohash, "info_hash")
        if not 0 <= query.port <= 0xFFFF:
            raise KrpcError("port out of range")
        _check_len(query.token, MAX_TOKEN, "token")
        args[b"info_hash"] = query.infohash
        args[b"port"] = query.port
        args[b"token"] = query.token
        if query.implied_port:
            args[b"implied_port"] = 1
    return _QUERY_NAMES[type(query)], args


def _response_body(response: Response) -> dict[bytes, BValue]:
    _check_id(response.sender_id, "responder id")
    body: dict[bytes, BValue] = {b"id": response.sender_id}
    if response.nodes:
        body[b"nodes"] = encode_nodes(response.nodes)
    if response.nodes6:
        body[b"nodes6"] = encode_nodes6(response.nodes6)
    if response.values:
        if len(response.values) > MAX_VALUES:
            raise KrpcError(f"more than {MAX_VALUES} values")
        body[b"values"] = [encode_peer(peer) for peer in response.values]
    if response.token is not None:
        _check_len(response.token, MAX_TOKEN, "token")
        body[b"token"] = response.token
    if response.samples is not None:
        if len(response.samples) > MAX_SAMPLES:
            raise KrpcError(f"more than {MAX_SAMPLES} samples")
        for sample in response.samples:
            _check_id(sample, "sample")
        body[b"samples"] = b"".join(response.samples)
    if response.num is not None:
        if not 0 <= response.num <= MAX_COUNT:
            raise KrpcError("num out of range")
        body[b"num"] = response.num
    if response.interval is not None:
        if not 0 <= response.interval <= MAX_INTERVAL:
            raise KrpcError("interval out of range")
        body[b"interval"] = response.interval
    return body


def _check_want(want: tuple[bytes, ...]) -> list[BValue]:
    # Only what decodes back the same: known families, each once.
    if not isinstance(want, tuple) or not set(want) <= set(WANTS) or len(set(want)) != len(want):
        raise KrpcError(f"want must name n4 and/or n6, each once, not {want!r}")
    return list(want)


def _check_id(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != ID_LENGTH:
        raise KrpcError(f"{what} must be 20 bytes")


def _check_len(value: bytes, max_len: int, what: str) -> None:
    if not isinstance(value, bytes) or len(value) > max_len:
        raise KrpcError(f"{what} must be bytes of at most {max_len}")
