"""eMule protocol obfuscation between two clients over TCP, sans-I/O.

An eMule or aMule that *requires* obfuscation (aMule's `[Obfuscation]
IsClientCryptLayerRequired`) closes any connection whose first byte is an
eD2K protocol byte. Obfuscation is RC4 keyed from the target's user hash,
so only a client that knows whom it calls can open one; a source found in
Kad comes with its user hash (the Kad answer id) and a byte of connect
options (tag 0xF3: bit 0 supports, bit 1 requests, bit 2 requires; aMule
2.3.3 sets only one of them, see `wants_obfuscation`).

The handshake, as aMule's `EncryptedStreamSocket` does it (client A
connects to client B, whose user hash it knows)::

    A -> B  <marker 1><random key 4>                     in clear
            <sync 4><methods supported 1><method preferred 1><padding length 1><padding>
    B -> A  <sync 4><method selected 1><padding length 1><padding>

Everything after the 5 clear bytes is RC4, a stream per direction: A sends
with MD5(B's user hash + 34 + random key) and receives with MD5(B's user
hash + 203 + random key); the first 1024 bytes of each key stream are
discarded. The marker is any byte but the three eD2K protocol bytes; sync
is 0x835E6FC4 (little-endian, as every eD2K integer); method 0 (plain
obfuscation) is the only one. A side must not send again before it has the
other's whole message: aMule's B drops a connection whose first read holds
more than A's handshake, so payload waits until B has answered.

Obfuscation hides the protocol from a line filter; it is not secrecy and
proves nothing about the peer. It changes no byte of the eD2K stream
inside it. Bounds: the peer's padding is at most `max_padding` bytes
(255 by construction), so a handshake is at most 261 bytes; anything that
breaks the handshake is an `ObfuscationError` and the stream stays broken.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from Crypto.Cipher import ARC4

from atalaya.networks.ed2k.wire import HASH_SIZE, Ed2kError

MAGIC_REQUESTER: Final = 34  # keys what the connecting side sends
MAGIC_SERVER: Final = 203  # keys what the accepting side sends
MAGIC_SYNC: Final = 0x835E6FC4
SYNC_BYTES: Final = MAGIC_SYNC.to_bytes(4, "little")
METHOD_OBFUSCATION: Final = 0x00
DISCARD: Final = 1024  # key stream bytes thrown away before use
RANDOM_KEY_SIZE: Final = 4
MAX_PADDING: Final = 255  # a padding length is one byte
# aMule pads with 0..CryptoPaddingLenght (254 by default) random bytes.
DEFAULT_SEND_PADDING: Final = 254
# The bytes that open a plain eD2K stream (eDonkey, eMule, packed eMule).
PROTOCOL_BYTES: Final = frozenset({0xE3, 0xC5, 0xD4})

# Connect options (Kad source tag 0xF3, aMule's CPrefs::GetMyConnectOptions).
CRYPT_SUPPORTED: Final = 0x01
CRYPT_REQUESTED: Final = 0x02
CRYPT_REQUIRED: Final = 0x04


class ObfuscationError(Ed2kError):
    """The obfuscation handshake failed; the connection is of no further use."""


class SyncError(ObfuscationError):
    """The magic sync value did not decrypt: a plain peer, a wrong user hash, or noise."""


class MethodError(ObfuscationError):
    """The peer chose or offered no method we speak (only 0, obfuscation, exists)."""


class PaddingError(ObfuscationError):
    """The peer's padding is longer than our limit."""


class PlainStreamError(ObfuscationError):
    """A responder that requires obfuscation got a plain eD2K stream."""


def wants_obfuscation(options: int) -> bool:
    """Whether a peer's connect options ask for obfuscation: it requests or requires it.

    The supported bit is not needed: aMule 2.3.3 publishes one bit only
    (its `GetMyConnectOptions` lacks parentheses around each `?:`, so the
    first true of callback, required, requested, supported wins): 0x02 by
    default, 0x04 when it requires obfuscation. A peer that asks for it
    supports it.
    """
    return bool(options & (CRYPT_REQUESTED | CRYPT_REQUIRED))


def requires_obfuscation(options: int) -> bool:
    return bool(options & CRYPT_REQUIRED)


def key(user_hash: bytes, magic: int, random_key: bytes) -> bytes:
    """One direction's RC4 key: MD5(<target user hash 16><magic 1><random key 4>)."""
    if len(user_hash) != HASH_SIZE or len(random_key) != RANDOM_KEY_SIZE:
        raise ValueError("a user hash is 16 bytes and a random key 4")
    data = user_hash + bytes([magic]) + random_key
    return hashlib.md5(data, usedforsecurity=False).digest()


def stream(key_bytes: bytes) -> ARC4.ARC4Cipher:
    """An RC4 stream past its first 1024 bytes, as eMule uses it."""
    return ARC4.new(key_bytes, drop=DISCARD)


def random_marker() -> int:
    """A random first byte that no plain eD2K stream starts with."""
    while True:
        marker = secrets.randbelow(256)
        if marker not in PROTOCOL_BYTES:
            return marker


@dataclass(frozen=True)
class ObfuscationLimits:
    max_padding: int = MAX_PADDING  # longest padding accepted from the peer
    send_padding: int = DEFAULT_SEND_PADDING  # longest padding we send (chosen at random)


class _State(Enum):
    MARKER = auto()
    RANDOM_KEY = auto()
    SYNC = auto()
    HEADER = auto()
    PADDING = auto()
    ESTABLISHED = auto()


class _Handshake:
    """What both sides share: reading the peer's handshake a byte at a time."""

    def __init__(self, limits: ObfuscationLimits | None) -> None:
        self._limits = limits or ObfuscationLimits()
        if not 0 <= self._limits.send_padding <= MAX_PADDING:
            raise ValueError(f"send padding is 0..{MAX_PADDING}")
        self._send: ARC4.ARC4Cipher | None = None
        self._receive: ARC4.ARC4Cipher | None = None
        self._state = _State.SYNC
        self._wanted = 0
        self._buffer = bytearray()
        self._error: ObfuscationError | None = None
        self._out = bytearray()
        self.handshake_bytes = 0  # handshake bytes received from the peer
        self.peer_padding: int | None = None

    @property
    def established(self) -> bool:
        return self._state is _State.ESTABLISHED

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def encrypt(self, data: bytes) -> bytes:
        """Payload to send, encrypted; only once the handshake is done."""
        if not self.established or self._send is None:
            raise RuntimeError("no payload before the obfuscation handshake is complete")
        return self._send.encrypt(data)

    def receive(self, data: bytes) -> bytes:
        """Feed what the socket gave; returns the decrypted payload after the handshake."""
        if self._error is not None:
            raise self._error
        if self.established:
            assert self._receive is not None
            return self._receive.decrypt(data)
        try:
            return self._negotiate(memoryview(data))
        except ObfuscationError as exc:
            self._error = exc
            self._buffer.clear()
            raise

    def _negotiate(self, data: memoryview) -> bytes:
        at = 0
        while not self.established:
            take = min(self._wanted, len(data) - at)
            chunk = bytes(data[at : at + take])
            at += take
            self.handshake_bytes += take
            if self._receive is not None:
                chunk = self._receive.decrypt(chunk)
            self._buffer += chunk
            self._wanted -= take
            if self._wanted:
                return b""
            message = bytes(self._buffer)
            self._buffer.clear()
            self._step(message)
        rest = bytes(data[at:])
        assert self._receive is not None
        return self._receive.decrypt(rest) if rest else b""

    def _step(self, message: bytes) -> None:
        raise NotImplementedError

    def _check_sync(self, message: bytes) -> None:
        if message != SYNC_BYTES:
            raise SyncError(
                f"the sync value decrypts to {message.hex()}, not {SYNC_BYTES.hex()}: "
                "the peer does not obfuscate with this key"
            )

    def _padding(self, length: int) -> None:
        if length > self._limits.max_padding:
            raise PaddingError(f"padding of {length} bytes (limit {self._limits.max_padding})")
        self.peer_padding = length
        self._state, self._wanted = _State.PADDING, length
        if not length:
            self._complete()

    def _complete(self) -> None:
        self._state, self._wanted = _State.ESTABLISHED, 0

    def _own_padding(self, padding: bytes | None) -> bytes:
        if padding is None:
            return secrets.token_bytes(secrets.randbelow(self._limits.send_padding + 1))
        if len(padding) > MAX_PADDING:
            raise ValueError(f"padding is at most {MAX_PADDING} bytes")
        return padding


class Initiator(_Handshake):
    """The connecting side (client A): it knows the target's user hash.

    ``handshake`` is sent at once; payload may be sent (``encrypt``) once
    ``established``, which the peer's answer makes so.
    """

    def __init__(
        self,
        target_user_hash: bytes,
        *,
        random_key: bytes | None = None,
        marker: int | None = None,
        padding: bytes | None = None,
        limits: ObfuscationLimits | None = None,
    ) -> None:
        super().__init__(limits)
        random_key = secrets.token_bytes(RANDOM_KEY_SIZE) if random_key is None else random_key
        marker = random_marker() if marker is None else marker
        if marker in PROTOCOL_BYTES or not 0 <= marker <= 0xFF:
            raise ValueError(f"marker 0x{marker:02x} is an eD2K protocol byte or not a byte")
        own_padding = self._own_padding(padding)
        self.random_key = random_key
        self._send = stream(key(target_user_hash, MAGIC_REQUESTER, random_key))
        self._receive = stream(key(target_user_hash, MAGIC_SERVER, random_key))
        body = SYNC_BYTES + bytes([METHOD_OBFUSCATION, METHOD_OBFUSCATION, len(own_padding)])
        self.handshake = bytes([marker]) + random_key + self._send.encrypt(body + own_padding)
        self._out += self.handshake
        self._state, self._wanted = _State.SYNC, 4

    def _step(self, message: bytes) -> None:
        if self._state is _State.SYNC:
            self._check_sync(message)
            self._state, self._wanted = _State.HEADER, 2
        elif self._state is _State.HEADER:
            if message[0] != METHOD_OBFUSCATION:
                raise MethodError(f"the peer selected method {message[0]}")
            self._padding(message[1])
        else:  # the padding: random bytes, read and ignored
            self._complete()


class Responder(_Handshake):
    """The accepting side (client B), keyed by its own user hash.

    A real peer's part, here for tests and fake peers: it reads A's
    handshake and answers it. ``plain_allowed`` lets a plain stream
    through untouched, as a client that supports but does not require
    obfuscation does; otherwise a plain stream is a `PlainStreamError`.
    """

    def __init__(
        self,
        own_user_hash: bytes,
        *,
        padding: bytes | None = None,
        plain_allowed: bool = False,
        limits: ObfuscationLimits | None = None,
    ) -> None:
        super().__init__(limits)
        if len(own_user_hash) != HASH_SIZE:
            raise ValueError("a user hash is 16 bytes")
        self._user_hash = own_user_hash
        self._own = self._own_padding(padding)
        self._plain_allowed = plain_allowed
        self.plain = False
        self.peer_methods: tuple[int, int] | None = None
        self._state, self._wanted = _State.MARKER, 1

    def encrypt(self, data: bytes) -> bytes:
        return data if self.plain else super().encrypt(data)

    def receive(self, data: bytes) -> bytes:
        if self.plain:
            return data
        return super().receive(data)

    def _negotiate(self, data: memoryview) -> bytes:
        if self._state is _State.MARKER and len(data) and data[0] in PROTOCOL_BYTES:
            if not self._plain_allowed:
                raise PlainStreamError("a plain eD2K stream where obfuscation is required")
            self.plain = True
            self._state = _State.ESTABLISHED
            return bytes(data)
        return super()._negotiate(data)

    def _step(self, message: bytes) -> None:
        if self._state is _State.MARKER:
            self._state, self._wanted = _State.RANDOM_KEY, RANDOM_KEY_SIZE
        elif self._state is _State.RANDOM_KEY:
            self._receive = stream(key(self._user_hash, MAGIC_REQUESTER, message))
            self._send = stream(key(self._user_hash, MAGIC_SERVER, message))
            self._state, self._wanted = _State.SYNC, 4
        elif self._state is _State.SYNC:
            self._check_sync(message)
            self._state, self._wanted = _State.HEADER, 3
        elif self._state is _State.HEADER:
            # aMule answers whatever was offered or preferred: obfuscation
            # is the only method there is.
            self.peer_methods = (message[0], message[1])
            self._padding(message[2])
        else:
            self._complete()

    def _complete(self) -> None:
        super()._complete()
        assert self._send is not None
        body = SYNC_BYTES + bytes([METHOD_OBFUSCATION, len(self._own)]) + self._own
        self._out += self._send.encrypt(body)
