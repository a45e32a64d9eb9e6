"""Probe one BitTorrent peer: what it claims to hold, and whether its data is real.

A thin asyncio layer over the sans-I/O `peerwire.PeerConnection`. One probe
is one TCP connection: handshake, extension handshake, possession
(bitfield / have_all / have_none / have), PEX, optionally the info dictionary
over ut_metadata (trusted only once it hashes to the infohash), then a few
randomly chosen whole pieces downloaded and verified against the torrent's
SHA-1 piece hashes (v1) or merkle piece layer (v2). Content is hashed in
memory and dropped.

Every phase has a time limit and the whole probe has one more; every buffer
and count is bounded. Whatever the peer does, `probe_peer` returns a
`ProbeResult`; a failure is a typed `ProbeError` in it, never an exception.
A peer whose data fails verification is recorded with `pieces_failed`, and
`proof` is true only with verified pieces and no failed ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from atalaya.networks.bittorrent import merkle
from atalaya.networks.bittorrent import peerwire as pw
from atalaya.networks.bittorrent.metainfo import Metainfo, MetainfoError, parse_info

# BEP 52 hash requests carry at most this many hashes (libtorrent's limit too).
_MAX_HASHES_PER_REQUEST: Final = 512
_SHA1: Final = 20


class ProbeErrorKind(StrEnum):
    """Why a probe stopped early."""

    TIMEOUT = "timeout"  # a phase ran past its time limit
    REFUSED = "refused"  # the TCP connection was refused
    UNREACHABLE = "unreachable"  # any other failure to connect
    CLOSED = "closed"  # the peer closed or reset the connection
    PROTOCOL = "protocol_error"  # the peer broke the protocol or a bound
    WRONG_INFOHASH = "wrong_infohash"  # the handshake answered another torrent
    CHOKED = "choked"  # the peer never unchoked us
    BAD_METADATA = "bad_metadata"  # ut_metadata refused, too large, or not matching the infohash


@dataclass(frozen=True)
class ProbeError:
    kind: ProbeErrorKind
    phase: str  # connect | handshake | settle | metadata | hashes | unchoke | download | pex
    detail: str


@dataclass(frozen=True)
class ProbeTimeouts:
    """Seconds per phase; `total` bounds the whole probe whatever the peer does."""

    connect: float = 5.0
    handshake: float = 5.0  # from connected to the peer's handshake
    settle: float = 2.0  # for the extension handshake and possession message
    metadata: float = 15.0
    hashes: float = 10.0
    unchoke: float = 20.0  # Transmission 3.00 rechokes every 10 s
    block: float = 10.0  # longest silence while blocks are outstanding
    pex_linger: float = 0.0  # at the end, wait up to this long for a first PEX peer
    total: float = 60.0


@dataclass(frozen=True)
class ProbeLimits:
    max_metadata_size: int = 8 * 1024 * 1024
    max_verify_bytes: int = 64 * 1024 * 1024  # content downloaded per probe
    pipeline: int = 16  # block requests outstanding at once
    max_pex_peers: int = 500
    max_haves: int = 1 << 16  # have messages that make a flood while the piece count is unknown
    max_control_messages: int = 100_000  # keep-alives, chokes, unknown messages…
    max_message_length: int = pw.DEFAULT_MAX_MESSAGE_LENGTH
    max_buffer: int = pw.DEFAULT_MAX_BUFFER
    read_size: int = 64 * 1024
    max_replies: int = 64  # rejects we send to a peer that requests from us


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProbeResult:
    """What one probe of one peer established. Times are UTC, taken on arrival."""

    ip: str
    port: int
    infohash: bytes  # as asked: 20-byte v1 or 32-byte v2
    connected_at: datetime | None = None
    handshake_at: datetime | None = None  # the peer's handshake arrived
    first_data_at: datetime | None = None  # the first block of content arrived
    finished_at: datetime | None = None
    peer_id: bytes | None = None
    client: str | None = None  # extension handshake `v`, else read from the peer id
    client_from_peer_id: str | None = None
    reserved: bytes | None = None
    listen_port: int | None = None  # extension handshake `p`
    yourip: str | None = None  # our address as the peer sees it
    metadata_size: int | None = None
    num_pieces: int | None = None
    pieces_held: int | None = None
    have_fraction: float | None = None  # None while the piece count is unknown
    pieces_verified: int = 0
    pieces_failed: int = 0
    pieces_unavailable: int = 0  # rejected by the peer, or unverifiable here
    bytes_downloaded: int = 0
    local_ip: str | None = None
    local_port: int | None = None
    pex_peers: tuple[tuple[str, int], ...] = ()
    metadata: Metainfo | None = None  # verified against the infohash
    info_dict: bytes | None = None  # raw verified info dictionary, when fetched here
    error: ProbeError | None = None

    @property
    def proof(self) -> bool:
        """Possession is proven only by verified pieces and no failed one."""
        return self.pieces_verified > 0 and self.pieces_failed == 0

    @property
    def reserved_bits(self) -> list[str]:
        return pw.reserved_names(self.reserved) if self.reserved else []


async def probe_peer(
    ip: str,
    port: int,
    infohash: bytes,
    *,
    torrent: Metainfo | None = None,
    bind_ip: str | None = None,
    peer_id: bytes,
    pieces_to_verify: int = 1,
    rng: random.Random,
    fetch_metadata: bool = False,
    timeouts: ProbeTimeouts | None = None,
    limits: ProbeLimits | None = None,
    client_name: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    on_connected: Callable[[str, int], None] | None = None,
) -> ProbeResult:
    """Probe the peer at ip:port for `infohash` and report what it showed.

    `torrent` supplies piece hashes; without it, the info dictionary is
    fetched from the peer (ut_metadata) when pieces are to be verified or
    `fetch_metadata` is set. `bind_ip` picks our source address.
    `on_connected` hears our end of the connection (ip, port) as soon as it
    exists, before the peer can tell anyone else about it (PEX).
    """
    if len(infohash) not in (20, 32):
        raise ValueError("infohash must be 20 (v1) or 32 (v2) bytes")
    if len(peer_id) != 20:
        raise ValueError("peer id must be 20 bytes")
    if torrent is not None and not torrent.matches(infohash):
        raise ValueError("torrent does not match the infohash")
    probe = _Probe(
        ip=ip,
        port=port,
        infohash=infohash,
        torrent=torrent,
        bind_ip=bind_ip,
        peer_id=peer_id,
        pieces_to_verify=pieces_to_verify,
        rng=rng,
        fetch_metadata=fetch_metadata,
        timeouts=timeouts or ProbeTimeouts(),
        limits=limits or ProbeLimits(),
        client_name=client_name,
        clock=clock,
        on_connected=on_connected,
    )
    return await probe.run()


class _ProbeStopError(Exception):
    """Ends a probe with a typed error."""

    def __init__(self, kind: ProbeErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass
class _Download:
    """Verification downloads in progress."""

    queue: deque[tuple[int, int, int]] = field(default_factory=deque)
    outstanding: set[tuple[int, int, int]] = field(default_factory=set)
    buffers: dict[int, bytearray] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)


class _Probe:
    def __init__(
        self,
        *,
        ip: str,
        port: int,
        infohash: bytes,
        torrent: Metainfo | None,
        bind_ip: str | None,
        peer_id: bytes,
        pieces_to_verify: int,
        rng: random.Random,
        fetch_metadata: bool,
        timeouts: ProbeTimeouts,
        limits: ProbeLimits,
        client_name: str | None,
        clock: Callable[[], datetime],
        on_connected: Callable[[str, int], None] | None = None,
    ) -> None:
        self.ip, self.port, self.infohash = ip, port, infohash
        self.on_connected = on_connected
        self.torrent = torrent
        self.bind_ip = bind_ip
        self.peer_id = peer_id
        self.pieces_to_verify = max(0, pieces_to_verify)
        self.rng = rng
        self.fetch_metadata = fetch_metadata
        self.timeouts = timeouts
        self.limits = limits
        self.client_name = client_name
        self.clock = clock
        self.conn = pw.PeerConnection(
            num_pieces=torrent.num_pieces if torrent else None,
            max_message_length=limits.max_message_length,
            max_buffer=max(limits.max_buffer, limits.max_message_length + 4 + limits.read_size),
            max_metadata_size=limits.max_metadata_size,
            max_outstanding_requests=max(limits.pipeline, 1),
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.phase = "connect"
        self.arrival: datetime | None = None
        # What the peer showed.
        self.connected_at: datetime | None = None
        self.handshake_at: datetime | None = None
        self.first_data_at: datetime | None = None
        self.peer_handshake: pw.Handshake | None = None
        self.ext: pw.ExtensionHandshake | None = None
        self.have_all = False
        self.have_none = False
        self.bitfield: pw.Bitfield | None = None
        self.haves: set[int] = set()
        self.have_messages = 0
        self.control_messages = 0
        self.replies = 0
        self.pex: dict[tuple[str, int], None] = {}
        self.choked = True
        self.local: tuple[str, int] | None = None
        # Metadata.
        self.metadata_pieces: dict[int, bytes] = {}
        self.metadata_rejected = False
        self.info_dict: bytes | None = None
        # The one BEP 52 hash request in flight (by pieces root) and its answer.
        self.hash_wanted: bytes | None = None
        self.hash_reply: pw.Hashes | pw.HashReject | None = None
        # Piece hashes fetched with BEP 52 and proven: file index -> {piece in file: hash}.
        self.layers: dict[int, dict[int, bytes]] = {}
        # Verification.
        self.download = _Download()
        self.verified = 0
        self.failed = 0
        self.unavailable = 0
        self.bytes_downloaded = 0

    # -- running -------------------------------------------------------------

    async def run(self) -> ProbeResult:
        error: ProbeError | None = None
        try:
            async with asyncio.timeout(self.timeouts.total):
                await self._run()
        except _ProbeStopError as stop:
            error = ProbeError(stop.kind, self.phase, stop.detail)
        except ValueError as exc:
            # PeerWireError, and any codec's typed error (all ValueErrors) on peer data.
            error = ProbeError(ProbeErrorKind.PROTOCOL, self.phase, str(exc))
        except TimeoutError:
            error = ProbeError(
                ProbeErrorKind.TIMEOUT, self.phase, f"probe ran past {self.timeouts.total} s"
            )
        except ConnectionRefusedError as exc:
            error = ProbeError(ProbeErrorKind.REFUSED, self.phase, str(exc))
        except (ConnectionError, EOFError) as exc:
            error = ProbeError(ProbeErrorKind.CLOSED, self.phase, str(exc) or type(exc).__name__)
        except OSError as exc:
            kind = ProbeErrorKind.UNREACHABLE if self.phase == "connect" else ProbeErrorKind.CLOSED
            error = ProbeError(kind, self.phase, str(exc) or type(exc).__name__)
        finally:
            await self._close()
        return self._result(error)

    async def _run(self) -> None:
        await self._connect()
        await self._handshake()
        await self._settle()
        if self._wants_metadata():
            self.phase = "metadata"
            await self._fetch_metadata()
        if self.torrent is not None:
            self._check_possession_against(self.torrent.num_pieces)
            if self.pieces_to_verify:
                await self._verify()
        if self.timeouts.pex_linger > 0:
            self.phase = "pex"
            await self._pump_until(lambda: bool(self.pex), self.timeouts.pex_linger)

    async def _connect(self) -> None:
        local_addr = (self.bind_ip, 0) if self.bind_ip else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.ip, self.port, local_addr=local_addr),
                self.timeouts.connect,
            )
        except TimeoutError as exc:
            raise _ProbeStopError(
                ProbeErrorKind.TIMEOUT, f"no connection in {self.timeouts.connect} s"
            ) from exc
        self.reader, self.writer = reader, writer
        self.connected_at = self.clock()
        sockname = writer.get_extra_info("sockname")
        if sockname:
            self.local = (str(sockname[0]), int(sockname[1]))
            if self.on_connected is not None:
                self.on_connected(*self.local)

    async def _close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, TimeoutError):
            # A peer that reads nothing keeps our last bytes unsent: drop them.
            writer.transport.abort()

    async def _handshake(self) -> None:
        self.phase = "handshake"
        reserved = pw.make_reserved(extension=True, fast=True)
        await self._send(pw.Handshake(self.infohash[:_SHA1], self.peer_id, reserved))
        if not await self._pump_until(
            lambda: self.peer_handshake is not None, self.timeouts.handshake
        ):
            raise _ProbeStopError(
                ProbeErrorKind.TIMEOUT, f"no handshake in {self.timeouts.handshake} s"
            )
        assert self.peer_handshake is not None
        if self.peer_handshake.info_hash != self.infohash[:_SHA1]:
            raise _ProbeStopError(
                ProbeErrorKind.WRONG_INFOHASH,
                f"peer answered infohash {self.peer_handshake.info_hash.hex()}",
            )
        out: list[pw.Message] = []
        if self.conn.extension_protocol:
            out.append(
                pw.ExtensionHandshake(
                    m=dict(pw.DEFAULT_EXTENSIONS), v=self.client_name, reqq=self.limits.pipeline
                )
            )
        if self.conn.fast:
            out.append(pw.HaveNone())  # BEP 6: one possession message is required
        await self._send(*out)

    async def _settle(self) -> None:
        """Give the peer a moment for its extension handshake and possession message."""
        self.phase = "settle"

        def settled() -> bool:
            ext_done = self.ext is not None or not self.conn.extension_protocol
            return ext_done and (self.have_all or self.have_none or self.bitfield is not None)

        # Not an error if this times out: BEP 3 lets a peer holding nothing stay silent.
        await self._pump_until(settled, self.timeouts.settle)

    # -- events --------------------------------------------------------------

    async def _send(self, *messages: pw.Message) -> None:
        assert self.writer is not None
        if not messages:
            return
        self.writer.write(b"".join(self.conn.send(m) for m in messages))
        try:
            await asyncio.wait_for(self.writer.drain(), self.timeouts.block)
        except TimeoutError as exc:
            raise _ProbeStopError(ProbeErrorKind.TIMEOUT, "peer reads nothing we send") from exc

    async def _next_event(self, deadline: float) -> pw.Event:
        """The next event from the peer, already applied to this probe's state."""
        assert self.reader is not None
        loop = asyncio.get_running_loop()
        while True:
            event = self.conn.next_event()
            if event is not pw.NEED_DATA:
                await self._apply(event)
                return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            room = self.conn.max_buffer - self.conn.buffered
            data = await asyncio.wait_for(
                self.reader.read(max(1, min(self.limits.read_size, room))), remaining
            )
            self.arrival = self.clock()
            self.conn.receive_data(data)

    async def _pump_until(self, done: Callable[[], bool], seconds: float) -> bool:
        """Handle events until `done()` or `seconds` pass; whether `done()` held."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not done():
            try:
                await self._next_event(deadline)
            except TimeoutError:
                return done()
        return True

    async def _apply(self, event: pw.Event) -> None:
        match event:
            case pw.Handshake():
                self.peer_handshake = event
                self.handshake_at = self.arrival
            case pw.ExtensionHandshake():
                self.ext = event
            case pw.HaveAll():
                self.have_all = True
            case pw.HaveNone():
                self.have_none = True
            case pw.Bitfield():
                self.bitfield = event
            case pw.Have(index):
                self.have_messages += 1
                n = self.conn.num_pieces
                # An honest peer sends each have once; allow for slack, not a flood.
                bound = 2 * n + 1024 if n else self.limits.max_haves
                if self.have_messages > bound:
                    raise _ProbeStopError(
                        ProbeErrorKind.PROTOCOL, f"more than {bound} have messages"
                    )
                self.haves.add(index)
            case pw.Pex(added):
                for peer in added:
                    if len(self.pex) >= self.limits.max_pex_peers:
                        break
                    self.pex[(peer.ip, peer.port)] = None
            case pw.Choke():
                self.choked = True
                self._count_control()
            case pw.Unchoke():
                self.choked = False
                self._count_control()
            case pw.Piece():
                self._on_block(event)
            case pw.Reject():
                self._on_reject(event)
            case pw.MetadataData(piece, total, data):
                if total != (self.ext.metadata_size if self.ext else None):
                    raise _ProbeStopError(
                        ProbeErrorKind.BAD_METADATA, "total_size differs from metadata_size"
                    )
                self.metadata_pieces[piece] = data
            case pw.MetadataReject():
                self.metadata_rejected = True
            case pw.Hashes() | pw.HashReject() if event.pieces_root == self.hash_wanted:
                self.hash_reply = event
            case pw.Request() if self.conn.fast and self.replies < self.limits.max_replies:
                # We hold nothing and choke the peer; BEP 6 asks us to say no.
                self.replies += 1
                await self._send(pw.Reject(event.index, event.begin, event.length))
            case pw.MetadataRequest(piece) if self.replies < self.limits.max_replies:
                self.replies += 1
                await self._send(pw.MetadataReject(piece))
            case pw.ConnectionClosed():
                raise _ProbeStopError(ProbeErrorKind.CLOSED, "peer closed the connection")
            case _:
                self._count_control()

    def _count_control(self) -> None:
        self.control_messages += 1
        if self.control_messages > self.limits.max_control_messages:
            raise _ProbeStopError(ProbeErrorKind.PROTOCOL, "flood of control messages")

    # -- metadata ------------------------------------------------------------

    def _wants_metadata(self) -> bool:
        return self.torrent is None and (self.fetch_metadata or self.pieces_to_verify > 0)

    async def _fetch_metadata(self) -> None:
        size = self.ext.metadata_size if self.ext else None
        if not self.conn.peer_extensions.get("ut_metadata") or not size:
            raise _ProbeStopError(ProbeErrorKind.BAD_METADATA, "peer offers no ut_metadata")
        if size > self.limits.max_metadata_size:
            raise _ProbeStopError(
                ProbeErrorKind.BAD_METADATA,
                f"metadata_size {size} over the limit {self.limits.max_metadata_size}",
            )
        count = pw.metadata_piece_count(size)
        wanted = deque(range(count))
        requested: set[int] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.metadata
        while len(self.metadata_pieces) < count:
            in_flight = len(requested - self.metadata_pieces.keys())
            batch: list[pw.Message] = []
            while wanted and in_flight + len(batch) < self.limits.pipeline:
                piece = wanted.popleft()
                requested.add(piece)
                batch.append(pw.MetadataRequest(piece))
            await self._send(*batch)
            try:
                await self._next_event(deadline)
            except TimeoutError as exc:
                raise _ProbeStopError(
                    ProbeErrorKind.TIMEOUT, f"metadata incomplete after {self.timeouts.metadata} s"
                ) from exc
            if self.metadata_rejected:
                raise _ProbeStopError(
                    ProbeErrorKind.BAD_METADATA, "peer rejected a metadata request"
                )
        info = b"".join(self.metadata_pieces[i] for i in range(count))
        self.metadata_pieces.clear()
        if not _info_matches(info, self.infohash):
            raise _ProbeStopError(
                ProbeErrorKind.BAD_METADATA, "info dictionary does not hash to the infohash"
            )
        try:
            torrent = parse_info(info)
        except MetainfoError as exc:
            raise _ProbeStopError(ProbeErrorKind.BAD_METADATA, f"info dictionary: {exc}") from exc
        self.info_dict = info
        self.torrent = torrent
        self.conn.set_num_pieces(torrent.num_pieces)

    def _check_possession_against(self, num_pieces: int) -> None:
        """A bitfield or have sent before the piece count was known is checked now."""
        if self.bitfield is not None:
            pw.validate_bitfield(self.bitfield.bits, num_pieces)
        if self.haves and max(self.haves) >= num_pieces:
            raise pw.PeerWireError(f"have for piece {max(self.haves)} of {num_pieces}")

    def _held(self) -> set[int] | None:
        """Pieces the peer claims; None for all of them."""
        if self.have_all:
            return None
        held = set(self.haves)
        if self.bitfield is not None:
            held.update(self.bitfield.indices())
        return held

    # -- verification --------------------------------------------------------

    async def _verify(self) -> None:
        torrent = self.torrent
        assert torrent is not None
        chosen = self._choose(torrent)
        if not chosen:
            return
        if torrent.version == "v2":
            self.phase = "hashes"
            chosen = await self._ensure_layers(torrent, chosen)
            if not chosen:
                return
        self.phase = "unchoke"
        await self._send(pw.Interested())
        if not await self._pump_until(lambda: not self.choked, self.timeouts.unchoke):
            raise _ProbeStopError(
                ProbeErrorKind.CHOKED, f"not unchoked within {self.timeouts.unchoke} s"
            )
        self.phase = "download"
        dl = self.download
        for piece in chosen:
            size = torrent.piece_size(piece)
            dl.queue.extend(
                (piece, begin, min(pw.BLOCK_SIZE, size - begin))
                for begin in range(0, size, pw.BLOCK_SIZE)
            )
            dl.received[piece] = 0
        loop = asyncio.get_running_loop()
        pipeline = max(1, min(self.limits.pipeline, (self.ext.reqq if self.ext else None) or 250))
        while dl.queue or dl.outstanding:
            if self.choked:
                self.phase = "unchoke"
                if not await self._pump_until(lambda: not self.choked, self.timeouts.unchoke):
                    raise _ProbeStopError(
                        ProbeErrorKind.CHOKED, "choked mid-download and never unchoked"
                    )
                self.phase = "download"
            batch: list[pw.Message] = []
            while dl.queue and len(dl.outstanding) + len(batch) < pipeline:
                piece, begin, length = dl.queue.popleft()
                if piece in dl.dropped:
                    continue
                dl.outstanding.add((piece, begin, length))
                batch.append(pw.Request(piece, begin, length))
            await self._send(*batch)
            if not dl.outstanding:
                continue
            try:
                await self._next_event(loop.time() + self.timeouts.block)
            except TimeoutError as exc:
                raise _ProbeStopError(
                    ProbeErrorKind.TIMEOUT, f"no block within {self.timeouts.block} s"
                ) from exc

    def _choose(self, torrent: Metainfo) -> list[int]:
        """Random whole pieces the peer claims, within the byte budget."""
        held = self._held()
        n = torrent.num_pieces
        # Bounded sampling: a few candidates per wanted piece is plenty.
        want = self.pieces_to_verify
        if held is None:
            candidates = self.rng.sample(range(n), min(n, 4 * want + 16))
        else:
            pool = sorted(i for i in held if i < n)
            candidates = self.rng.sample(pool, min(len(pool), 4 * want + 16))
        chosen: list[int] = []
        budget = self.limits.max_verify_bytes
        for piece in candidates:
            size = torrent.piece_size(piece)
            if size <= budget:
                chosen.append(piece)
                budget -= size
            if len(chosen) == want:
                break
        return sorted(chosen)

    def _on_block(self, block: pw.Piece) -> None:
        dl = self.download
        key = (block.index, block.begin, len(block.block))
        dl.outstanding.discard(key)
        if self.first_data_at is None:
            self.first_data_at = self.arrival
        self.bytes_downloaded += len(block.block)
        if block.index in dl.dropped or block.index not in dl.received:
            return
        torrent = self.torrent
        assert torrent is not None
        size = torrent.piece_size(block.index)
        if block.begin + len(block.block) > size:
            raise _ProbeStopError(ProbeErrorKind.PROTOCOL, "block beyond the end of its piece")
        buf = dl.buffers.get(block.index)
        if buf is None:
            buf = dl.buffers[block.index] = bytearray(size)
        buf[block.begin : block.begin + len(block.block)] = block.block
        dl.received[block.index] += len(block.block)
        if dl.received[block.index] >= size:
            del dl.received[block.index]
            data = dl.buffers.pop(block.index)
            if self._piece_ok(torrent, block.index, data):
                self.verified += 1
            else:
                self.failed += 1

    def _on_reject(self, reject: pw.Reject) -> None:
        dl = self.download
        key = (reject.index, reject.begin, reject.length)
        if key not in dl.outstanding:
            return
        dl.outstanding.discard(key)
        if self.choked:
            # BEP 6 peers reject what they drop when choking; ask again after unchoke.
            dl.queue.appendleft(key)
        elif reject.index not in dl.dropped:
            dl.dropped.add(reject.index)
            dl.buffers.pop(reject.index, None)
            dl.received.pop(reject.index, None)
            self.unavailable += 1

    def _piece_ok(self, torrent: Metainfo, piece: int, data: bytearray) -> bool:
        """Every hash the torrent has for this piece matches (v1 SHA-1, v2 merkle)."""
        checked = False
        if torrent.pieces:
            if hashlib.sha1(data, usedforsecurity=False).digest() != torrent.piece_hash_v1(piece):
                return False
            checked = True
        plen = torrent.piece_length
        for span in torrent.spans(piece):
            f = torrent.files[span.file_index]
            if f.pad or f.pieces_root is None:
                continue
            local = span.file_offset // plen
            expected = self._v2_hash(torrent, span.file_index, local)
            if expected is None:
                continue
            chunk = memoryview(data)[span.piece_offset : span.piece_offset + span.length]
            if not merkle.verify_piece(chunk, local, expected, plen):
                return False
            checked = True
        return checked

    def _v2_hash(self, torrent: Metainfo, file_index: int, local: int) -> bytes | None:
        """The v2 hash of piece `local` of a file, from the torrent or fetched; None if unknown."""
        hashes = torrent.piece_hashes_v2(file_index)
        if hashes is not None:
            return hashes[local] if local < len(hashes) else None
        return self.layers.get(file_index, {}).get(local)

    async def _ensure_layers(self, torrent: Metainfo, chosen: list[int]) -> list[int]:
        """Fetch (BEP 52) and check the piece hashes a bare v2 info dictionary lacks.

        Pieces whose hashes cannot be had are left out and counted unavailable.
        """
        keep = []
        for piece in chosen:
            spans = [s for s in torrent.spans(piece) if not torrent.files[s.file_index].pad]
            if len(spans) != 1:
                self.unavailable += 1
                continue
            span = spans[0]
            index = span.file_index
            local = span.file_offset // torrent.piece_length
            if self._v2_hash(torrent, index, local) is None:
                fetched = await self._request_layer(torrent, index, local)
                if fetched:
                    self.layers.setdefault(index, {}).update(fetched)
            if self._v2_hash(torrent, index, local) is not None:
                keep.append(piece)
            else:
                self.unavailable += 1
        return keep

    async def _request_layer(
        self, torrent: Metainfo, file_index: int, local_piece: int
    ) -> dict[int, bytes] | None:
        """Hashes of the file's piece layer around `local_piece`, proven to its root.

        A chunk of up to 512 hashes, by piece in the file; None if the peer
        would not give them or they do not lead to the file's pieces root.
        """
        f = torrent.files[file_index]
        root = f.pieces_root
        assert root is not None
        plen = torrent.piece_length
        height = merkle.piece_height(plen)
        npieces = len(torrent.file_pieces(file_index))
        width = 1 << max(0, (npieces - 1).bit_length())
        length = min(width, _MAX_HASHES_PER_REQUEST)
        start = local_piece // length * length
        # libtorrent counts proof layers from the base layer, so the uncles of a
        # chunk up to the root take log2(width) - 1 of them (more is refused).
        proof_layers = width.bit_length() - 2
        self.hash_wanted, self.hash_reply = root, None
        await self._send(
            pw.HashRequest(root, height, start, length, proof_layers if length < width else 0)
        )
        got = await self._pump_until(lambda: self.hash_reply is not None, self.timeouts.hashes)
        reply, self.hash_wanted, self.hash_reply = self.hash_reply, None, None
        if not got or reply is None:
            return None
        if not isinstance(reply, pw.Hashes) or (reply.base_layer, reply.index, reply.length) != (
            height,
            start,
            length,
        ):
            return None
        if len(reply.hashes) < length:
            return None
        base, uncles = reply.hashes[:length], reply.hashes[length:]
        try:
            node = merkle.root_from_layer(base, height, pad_to=length)
        except merkle.MerkleError:
            return None
        position = start // length
        level = height + length.bit_length() - 1
        for uncle in uncles:
            if 1 << (level - height) >= width:
                break
            node = hashlib.sha256(uncle + node if position & 1 else node + uncle).digest()
            position //= 2
            level += 1
        if 1 << (level - height) < width or node != root:
            return None
        return {start + i: h for i, h in enumerate(base) if start + i < npieces}

    # -- result --------------------------------------------------------------

    def _result(self, error: ProbeError | None) -> ProbeResult:
        hs = self.peer_handshake
        from_id = pw.client_from_peer_id(hs.peer_id) if hs else None
        ext = self.ext
        torrent = self.torrent
        n = torrent.num_pieces if torrent else None
        held = self._held()
        pieces_held: int | None
        fraction: float | None = None
        if held is None:
            pieces_held = n
            fraction = 1.0
        elif n is not None:
            pieces_held = len({i for i in held if i < n})
            fraction = pieces_held / n
        else:
            pieces_held = len(held)
            if self.have_none and not held:
                fraction = 0.0
        return ProbeResult(
            ip=self.ip,
            port=self.port,
            infohash=self.infohash,
            connected_at=self.connected_at,
            handshake_at=self.handshake_at,
            first_data_at=self.first_data_at,
            finished_at=self.clock(),
            peer_id=hs.peer_id if hs else None,
            client=(ext.v if ext and ext.v else None) or from_id,
            client_from_peer_id=from_id,
            reserved=hs.reserved if hs else None,
            listen_port=ext.p if ext else None,
            yourip=ext.yourip if ext else None,
            metadata_size=ext.metadata_size if ext else None,
            num_pieces=n,
            pieces_held=pieces_held if hs else None,
            have_fraction=fraction if hs else None,
            pieces_verified=self.verified,
            pieces_failed=self.failed,
            pieces_unavailable=self.unavailable,
            bytes_downloaded=self.bytes_downloaded,
            local_ip=self.local[0] if self.local else None,
            local_port=self.local[1] if self.local else None,
            pex_peers=tuple(self.pex),
            metadata=torrent,
            info_dict=self.info_dict,
            error=error,
        )


def _info_matches(info: bytes, infohash: bytes) -> bool:
    """Whether the info dictionary is the one `infohash` names (v1, v2 or v2 truncated)."""
    if len(infohash) == 32:
        return hashlib.sha256(info).digest() == infohash
    return infohash in (
        hashlib.sha1(info, usedforsecurity=False).digest(),
        hashlib.sha256(info).digest()[:_SHA1],
    )
