"""The toy protocol's datagrams, sans-I/O: bytes in, values out, and the reverse.

Every datagram: magic `TOY1`, a type byte, a 4-byte transaction id chosen by
the asker, the 32-byte SHA-256 asked about. ASK ends there. NOPE too. HAVE
goes on with a client name (1 length byte, at most 32 bytes of UTF-8) and the
file (2 length bytes, at most MAX_FILE bytes), which is its proof: the asker
hashes it and drops it. Anything else is a CodecError, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"TOY1"
ASK, HAVE, NOPE = 1, 2, 3
DIGEST_SIZE = 32
MAX_CLIENT = 32
MAX_FILE = 1024
_HEAD = len(MAGIC) + 1 + 4 + DIGEST_SIZE
MAX_DATAGRAM = _HEAD + 1 + MAX_CLIENT + 2 + MAX_FILE


class CodecError(ValueError):
    """A datagram that is not a toy protocol message."""


@dataclass(frozen=True)
class Ask:
    txid: bytes
    digest: bytes


@dataclass(frozen=True)
class Have:
    txid: bytes
    digest: bytes
    client: str  # peer-supplied: decoded with replacement, never trusted
    data: bytes


@dataclass(frozen=True)
class Nope:
    txid: bytes
    digest: bytes


Message = Ask | Have | Nope


def encode(message: Message) -> bytes:
    if len(message.txid) != 4 or len(message.digest) != DIGEST_SIZE:
        raise ValueError("a transaction id has 4 bytes and a digest 32")
    kind = ASK if isinstance(message, Ask) else HAVE if isinstance(message, Have) else NOPE
    head = MAGIC + bytes([kind]) + message.txid + message.digest
    if not isinstance(message, Have):
        return head
    client = message.client.encode("utf-8")
    if len(client) > MAX_CLIENT or len(message.data) > MAX_FILE:
        raise ValueError("client name or file too long for a toy datagram")
    return (
        head + bytes([len(client)]) + client + len(message.data).to_bytes(2, "big") + message.data
    )


def decode(datagram: bytes) -> Message:
    """The message in one datagram; CodecError if it is none."""
    if len(datagram) > MAX_DATAGRAM:
        raise CodecError(f"datagram of {len(datagram)} bytes, at most {MAX_DATAGRAM}")
    if len(datagram) < _HEAD or datagram[:4] != MAGIC:
        raise CodecError("not a toy datagram")
    kind, txid, digest = datagram[4], datagram[5:9], datagram[9:_HEAD]
    rest = datagram[_HEAD:]
    if kind in (ASK, NOPE):
        if rest:
            raise CodecError("trailing bytes")
        return Ask(txid, digest) if kind == ASK else Nope(txid, digest)
    if kind != HAVE:
        raise CodecError(f"unknown message type {kind}")
    if not rest or rest[0] > MAX_CLIENT or len(rest) < 1 + rest[0] + 2:
        raise CodecError("truncated client name")
    client = rest[1 : 1 + rest[0]].decode("utf-8", errors="replace")
    at = 1 + rest[0]
    size = int.from_bytes(rest[at : at + 2], "big")
    data = rest[at + 2 :]
    if size > MAX_FILE or len(data) != size:
        raise CodecError(f"file of {len(data)} bytes where {size} (at most {MAX_FILE}) announced")
    return Have(txid, digest, client, data)
