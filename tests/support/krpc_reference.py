"""`krpc.decode_message` as it was before the compiled bencode path: the reference for the tests.

Until bencode.py decoded strict input with bencode2 and krpc.py read
compact peers and nodes with `struct`, a datagram went through the
pure-Python decoder and the field checks below, one helper call per field.
This is that code, unchanged but for building the package's own message
classes, kept for the differential tests (tests/networks/bittorrent) and
`bench/bench_krpc.py` to compare the fast path with; the application no
longer uses it.
"""

from __future__ import annotations

import ipaddress

from atalaya.networks.bittorrent.bencode import BencodeError, BValue, decode_pure
from atalaya.networks.bittorrent.krpc import (
    COMPACT_NODE6_LENGTH,
    COMPACT_NODE_LENGTH,
    COMPACT_PEER4_LENGTH,
    COMPACT_PEER6_LENGTH,
    ID_LENGTH,
    KRPC_LIMITS,
    MAX_COUNT,
    MAX_DATAGRAM,
    MAX_ERROR_MESSAGE,
    MAX_INTERVAL,
    MAX_METHOD,
    MAX_NODES,
    MAX_SAMPLES,
    MAX_TOKEN,
    MAX_TRANSACTION_ID,
    MAX_VALUES,
    MAX_VERSION,
    MAX_WANT,
    WANTS,
    Address,
    AnnouncePeer,
    ErrorReply,
    FindNode,
    GetPeers,
    KrpcError,
    Message,
    NodeInfo,
    Ping,
    Query,
    Response,
    SampleInfohashes,
    UnknownQuery,
)


def decode_nodes(raw: bytes) -> tuple[NodeInfo, ...]:
    return _decode_contacts(raw, COMPACT_NODE_LENGTH, "nodes")


def decode_nodes6(raw: bytes) -> tuple[NodeInfo, ...]:
    return _decode_contacts(raw, COMPACT_NODE6_LENGTH, "nodes6")


def decode_peer(raw: bytes) -> Address:
    if len(raw) == COMPACT_PEER4_LENGTH:
        ip = f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    elif len(raw) == COMPACT_PEER6_LENGTH:
        ip = str(ipaddress.IPv6Address(raw[:16]))
    else:
        raise KrpcError(f"compact peer of {len(raw)} bytes")
    return ip, int.from_bytes(raw[-2:], "big")


def _decode_contacts(raw: bytes, length: int, what: str) -> tuple[NodeInfo, ...]:
    if len(raw) % length:
        raise KrpcError(f"{what} of {len(raw)} bytes, not a multiple of {length}")
    if len(raw) // length > MAX_NODES:
        raise KrpcError(f"more than {MAX_NODES} {what}")
    return tuple(
        NodeInfo(raw[i : i + ID_LENGTH], *decode_peer(raw[i + ID_LENGTH : i + length]))
        for i in range(0, len(raw), length)
    )


def decode_message(data: bytes) -> Message:
    """Decode one datagram; raise `KrpcError` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise KrpcError("datagram is not bytes")
    data = bytes(data)
    if len(data) > MAX_DATAGRAM:
        raise KrpcError(f"datagram larger than {MAX_DATAGRAM} bytes")
    try:
        top = decode_pure(data, KRPC_LIMITS)
    except BencodeError as exc:
        raise KrpcError(f"bad bencode: {exc}") from None
    if not isinstance(top, dict):
        raise KrpcError("message is not a dictionary")
    tid = _bytes(top, b"t", "transaction id", max_len=MAX_TRANSACTION_ID)
    kind = top.get(b"y")
    version = _opt_bytes(top, b"v", "version", max_len=MAX_VERSION)
    if kind == b"q":
        try:
            return _decode_query(top, tid, version)
        except KrpcError as exc:
            raise KrpcError(exc.reason, transaction_id=tid, code=exc.code) from None
    requester = _opt_compact_addr(top, b"ip")
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
        peers = []
        for item in raw_values:
            if not isinstance(item, bytes):
                raise KrpcError("a value is not a string")
            peers.append(decode_peer(item))
        values = tuple(peers)
    samples: tuple[bytes, ...] | None = None
    raw_samples = _opt_bytes(body, b"samples", "samples", max_len=MAX_SAMPLES * ID_LENGTH)
    if raw_samples is not None:
        if len(raw_samples) % ID_LENGTH:
            raise KrpcError(f"samples of {len(raw_samples)} bytes, not a multiple of 20")
        samples = tuple(
            raw_samples[i : i + ID_LENGTH] for i in range(0, len(raw_samples), ID_LENGTH)
        )
    return Response(
        transaction_id=tid,
        sender_id=sender,
        nodes=nodes,
        nodes6=nodes6,
        values=values,
        token=_opt_bytes(body, b"token", "token", max_len=MAX_TOKEN),
        samples=samples,
        num=_opt_int(body, b"num", "num", 0, MAX_COUNT),
        interval=_opt_int(body, b"interval", "interval", 0, MAX_INTERVAL),
        requester=requester,
        version=version,
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


def _bytes(d: dict[bytes, BValue], key: bytes, what: str, *, max_len: int) -> bytes:
    value = d.get(key)
    if value is None:
        raise KrpcError(f"{what} missing")
    if not isinstance(value, bytes):
        raise KrpcError(f"{what} is not a string")
    if len(value) > max_len:
        raise KrpcError(f"{what} longer than {max_len} bytes")
    return value


def _opt_bytes(d: dict[bytes, BValue], key: bytes, what: str, *, max_len: int) -> bytes | None:
    if key not in d:
        return None
    return _bytes(d, key, what, max_len=max_len)


def _id(d: dict[bytes, BValue], key: bytes, what: str) -> bytes:
    value = _bytes(d, key, what, max_len=ID_LENGTH)
    if len(value) != ID_LENGTH:
        raise KrpcError(f"{what} is {len(value)} bytes, not 20")
    return value


def _opt_id(d: dict[bytes, BValue], key: bytes, what: str) -> bytes | None:
    if key not in d:
        return None
    return _id(d, key, what)


def _opt_int(d: dict[bytes, BValue], key: bytes, what: str, low: int, high: int) -> int | None:
    if key not in d:
        return None
    value = d[key]
    if not isinstance(value, int):
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


def _opt_compact_addr(d: dict[bytes, BValue], key: bytes) -> Address | None:
    raw = _opt_bytes(d, key, "ip", max_len=COMPACT_PEER6_LENGTH)
    return None if raw is None else decode_peer(raw)
