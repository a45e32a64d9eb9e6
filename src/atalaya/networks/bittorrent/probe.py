"""Probe one BitTorrent peer, sans-I/O: what it claims to hold, and whether its data is real.

`ProbeMachine` holds every decision of a probe; its caller owns the socket
and the clocks::

    machine = ProbeMachine(ip, port, infohash, peer_id=pid, rng=rng, now=t)
    machine.connected(local_endpoint, now, at)     # once the TCP connection exists
    machine.receive_data(data, now, at)            # each read; b"" when the peer closed
    machine.handle_timer(now)                      # when now >= machine.get_timer()
    machine.fail(kind, detail)                     # the socket failed (refused, reset…)
    sock.send(machine.data_to_send())              # after each of the calls above
    machine.result                                 # once machine.done

`now` is a monotonic float that only times phases. `at` is the wall-clock
instant the caller read the bytes at, of any type it likes: the machine
never reads or computes it, only copies it into the result (`connected_at`,
`handshake_at`, `first_data_at`), so the time a sighting records is the
caller's arrival time, from the clock the caller was given.

One probe is one TCP connection: handshake, extension handshake, possession
(bitfield / have_all / have_none / have), PEX, optionally the info
dictionary over ut_metadata (trusted only once it hashes to the infohash),
then a few randomly chosen whole pieces downloaded and verified against the
torrent's SHA-1 piece hashes (v1) or merkle piece layer (v2, fetched with
BEP 52 hash requests when a bare info dictionary lacks it). Content is
hashed in memory and dropped.

A hybrid torrent (BEP 52) has two names, and a peer may answer a handshake
with either: libtorrent 2, once an address has spoken v2 to it, answers
that address's v1 handshakes with the truncated v2 hash. The handshake is
accepted under the name asked, the torrent's other name when the torrent
is given, and any `aliases` the caller knows to be the same torrent.

Every phase has a time limit and the whole probe has one more; every buffer
and count is bounded. Whatever the peer sends, the machine ends with a
`ProbeResult`; a failure is a typed `ProbeError` in it, never an exception.
While it is not done its timer is always set, so it cannot stall.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Generic, TypeVar

from atalaya.networks.bittorrent import merkle
from atalaya.networks.bittorrent import peerwire as pw
from atalaya.networks.bittorrent.metainfo import Metainfo, MetainfoError, parse_info

# BEP 52 hash requests carry at most this many hashes (libtorrent's limit too).
_MAX_HASHES_PER_REQUEST: Final = 512
_SHA1: Final = 20

At = TypeVar("At")  # the caller's wall-clock instant, carried untouched


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
    max_checks: int = 10_000  # piece checks kept for the transcript; the rest are counted


@dataclass(frozen=True)
class PieceCheck(Generic[At]):
    """One hash check of downloaded bytes against the torrent's metadata.

    v1: SHA-1 over the whole piece, `offset` counted in the torrent's piece
    space. v2: the BEP 52 layer hash (SHA-256 merkle) of the part of the
    piece that is one file's, `offset` counted in that file, with
    `proof_path` the sibling hashes from that layer hash up to the file's
    pieces root (empty when the file is a single piece: its layer hash is the
    root). A hybrid's piece is checked both ways: two checks.
    """

    piece: int  # torrent-wide piece index
    offset: int
    length: int
    algorithm: str  # "sha1" | "sha256"
    computed: bytes
    expected: bytes
    ok: bool
    first_byte_at: At | None = None
    last_byte_at: At | None = None
    file_index: int | None = None  # v2: the file the bytes belong to
    proof_path: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class StreamedFile(Generic[At]):
    """A whole file downloaded from one peer, hashed in order as it arrived, and dropped."""

    file_index: int
    length: int  # the file's size
    received: int  # bytes of it hashed, in order from its first
    digests: dict[str, bytes]  # every algorithm over the whole file; {} when incomplete
    first_byte_at: At | None
    last_byte_at: At | None

    @property
    def complete(self) -> bool:
        return self.received == self.length


STREAM_ALGORITHMS: Final = ("md5", "sha1", "sha256")


class _FileStream(Generic[At]):
    """Feeds one file's bytes, in order, through its hashes as its pieces complete.

    Pieces complete nearly in order (they are requested in order, a bounded
    pipeline at a time), so the few that come early wait in memory until
    the bytes before them have been hashed.
    """

    def __init__(self, index: int, offset: int, length: int, first: int, plen: int) -> None:
        self.index, self.offset, self.length = index, offset, length
        self.plen = plen
        self.next = first
        self.waiting: dict[int, bytes] = {}
        self.hashers = {
            name: hashlib.new(name, usedforsecurity=False) for name in STREAM_ALGORITHMS
        }
        self.received = 0
        self.first_at: At | None = None
        self.last_at: At | None = None

    def add(self, piece: int, data: bytearray, first_at: At, last_at: At) -> None:
        start = piece * self.plen
        lo = max(start, self.offset) - start
        hi = min(start + len(data), self.offset + self.length) - start
        if hi <= lo or piece < self.next:
            return
        if self.first_at is None:
            self.first_at = first_at
        self.waiting[piece] = bytes(data[lo:hi])
        while self.next in self.waiting:
            chunk = self.waiting.pop(self.next)
            for hasher in self.hashers.values():
                hasher.update(chunk)
            self.received += len(chunk)
            self.next += 1
            self.last_at = last_at

    def result(self) -> StreamedFile[At]:
        complete = self.received == self.length
        return StreamedFile(
            self.index,
            self.length,
            self.received,
            {n: h.digest() for n, h in self.hashers.items()} if complete else {},
            self.first_at,
            self.last_at,
        )


@dataclass(frozen=True)
class ProbeResult(Generic[At]):
    """What one probe of one peer established; times are the caller's, taken on arrival."""

    ip: str
    port: int
    infohash: bytes  # as asked: 20-byte v1 or 32-byte v2
    connected_at: At | None = None
    handshake_at: At | None = None  # the peer's handshake arrived
    first_data_at: At | None = None  # the first block of content arrived
    finished_at: At | None = None  # stamped by the caller once the connection is closed
    peer_id: bytes | None = None
    client: str | None = None  # extension handshake `v`, else read from the peer id
    client_from_peer_id: str | None = None
    reserved: bytes | None = None
    handshake_infohash: bytes | None = None  # the 20 bytes the peer's handshake named
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
    # What was exchanged, for the proof transcript.
    sent_handshake: pw.Handshake | None = None
    extension_raw: bytes | None = None  # the peer's extension handshake payload, as received
    bitfield: bytes | None = None  # the peer's bitfield message, as received
    have_all: bool = False
    have_none: bool = False
    haves: int = 0  # distinct pieces named by have messages
    checks: tuple[PieceCheck[At], ...] = ()
    checks_omitted: int = 0  # beyond `ProbeLimits.max_checks`
    full_file: StreamedFile[At] | None = None  # asked for with `full_file`, and attempted

    @property
    def proof(self) -> bool:
        """Possession is proven only by verified pieces and no failed one."""
        return self.pieces_verified > 0 and self.pieces_failed == 0

    @property
    def reserved_bits(self) -> list[str]:
        return pw.reserved_names(self.reserved) if self.reserved else []


class _StopError(Exception):
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


@dataclass(frozen=True)
class _LayerRequest:
    """The one BEP 52 hash request in flight, and what its answer must prove."""

    piece: int  # the chosen piece (torrent-wide index) waiting for it
    file_index: int
    local: int  # the same piece, counted in its file
    root: bytes
    height: int
    start: int
    length: int
    width: int
    npieces: int


class ProbeMachine(Generic[At]):
    """One probe of one peer as a state machine: events and `now` in, bytes and a result out."""

    def __init__(
        self,
        ip: str,
        port: int,
        infohash: bytes,
        *,
        peer_id: bytes,
        rng: random.Random,
        now: float,
        torrent: Metainfo | None = None,
        pieces_to_verify: int = 1,
        fetch_metadata: bool = False,
        timeouts: ProbeTimeouts | None = None,
        limits: ProbeLimits | None = None,
        client_name: str | None = None,
        aliases: Iterable[bytes] = (),
        full_file: int | None = None,
    ) -> None:
        if len(infohash) not in (20, 32):
            raise ValueError("infohash must be 20 (v1) or 32 (v2) bytes")
        if len(peer_id) != 20:
            raise ValueError("peer id must be 20 bytes")
        if torrent is not None and not torrent.matches(infohash):
            raise ValueError("torrent does not match the infohash")
        self.ip, self.port, self.infohash = ip, port, infohash
        self.torrent = torrent
        self.peer_id = peer_id
        self.pieces_to_verify = max(0, pieces_to_verify)
        # The index of a file to download whole and hash as it streams by.
        self.full_file = full_file
        self.stream: _FileStream[At] | None = None
        self.rng = rng
        self.fetch_metadata = fetch_metadata
        self.timeouts = timeouts or ProbeTimeouts()
        self.limits = limits or ProbeLimits()
        self.client_name = client_name
        # Every 20-byte name a handshake may answer with for this torrent.
        names = {infohash[:_SHA1], *(a[:_SHA1] for a in aliases if len(a) in (20, 32))}
        if torrent is not None:
            names.update(torrent.swarm_hashes)
        self.names = frozenset(names)
        limits = self.limits
        self.conn = pw.PeerConnection(
            num_pieces=torrent.num_pieces if torrent else None,
            max_message_length=limits.max_message_length,
            max_buffer=max(limits.max_buffer, limits.max_message_length + 4 + limits.read_size),
            max_metadata_size=limits.max_metadata_size,
            max_outstanding_requests=max(limits.pipeline, 1),
        )
        self._out = bytearray()
        self._phase = "connect"
        self._deadline: float | None = now + self.timeouts.connect
        self._end = now + self.timeouts.total
        self._done = False
        self._error: ProbeError | None = None
        # What the peer showed.
        self.connected_at: At | None = None
        self.handshake_at: At | None = None
        self.first_data_at: At | None = None
        self.local: tuple[str, int] | None = None
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
        # Metadata.
        self.metadata_count = 0
        self.metadata_wanted: deque[int] = deque()
        self.metadata_requested: set[int] = set()
        self.metadata_pieces: dict[int, bytes] = {}
        self.metadata_rejected = False
        self.info_dict: bytes | None = None
        # BEP 52 piece layers: the chosen pieces still to look at, those kept,
        # the request in flight and its answer, and the hashes proven so far
        # (file index -> {piece in file: hash}).
        self.hash_pieces: deque[int] = deque()
        self.hash_keep: list[int] = []
        self.layer_request: _LayerRequest | None = None
        self.hash_reply: pw.Hashes | pw.HashReject | None = None
        self.layers: dict[int, dict[int, bytes]] = {}
        # The proven chunks of fetched layers, to give each piece its proof path
        # (file index -> [(first piece in file, chunk hashes, uncles up to the root)]),
        # and the levels of whole layers the torrent gave, by file index.
        self.layer_chunks: dict[int, list[tuple[int, tuple[bytes, ...], tuple[bytes, ...]]]] = {}
        self.layer_levels: dict[int, list[list[bytes]]] = {}
        self.sent_handshake: pw.Handshake | None = None
        self.checks: list[PieceCheck[At]] = []
        self.checks_omitted = 0
        self.first_at: dict[int, At] = {}  # piece -> when its first block arrived
        # Verification.
        self.download = _Download()
        self.mid_download = False  # choked again after the download began
        self.verified = 0
        self.failed = 0
        self.unavailable = 0
        self.bytes_downloaded = 0

    # -- the caller's side -----------------------------------------------------

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def done(self) -> bool:
        return self._done

    @property
    def read_size(self) -> int:
        """How many bytes to read next: the buffer never has to refuse them."""
        room = self.conn.max_buffer - self.conn.buffered
        return max(1, min(self.limits.read_size, room))

    def get_timer(self) -> float | None:
        """When `handle_timer` is due; None once the probe is done."""
        if self._done:
            return None
        if self._deadline is None:
            return self._end
        return min(self._deadline, self._end)

    def data_to_send(self) -> bytes:
        """Bytes for the peer, in order; each byte is returned once."""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def result(self) -> ProbeResult[At] | None:
        """What the probe established, once it is done."""
        return self._result() if self._done else None

    def connected(self, local: tuple[str, int] | None, now: float, at: At) -> None:
        """The TCP connection exists; `local` is our end of it."""
        if self._done or self._phase != "connect":
            return
        self.connected_at = at
        self.local = local
        self._guard(self._start_handshake, now)

    def receive_data(self, data: bytes, now: float, at: At) -> None:
        """Bytes the peer sent, read at `at`; b"" when the peer closed its side."""
        if self._done or self._phase == "connect":
            return
        self._guard(lambda n: self._receive(data, n, at), now)

    def handle_timer(self, now: float) -> None:
        """Call when `now` has reached `get_timer()`; early calls change nothing."""
        if self._done:
            return
        self._guard(self._timer, now)

    def fail(self, kind: ProbeErrorKind, detail: str) -> None:
        """The connection failed in a way only the caller sees (refused, reset, unreachable)."""
        if not self._done:
            self._finish(ProbeError(kind, self._phase, detail))

    # -- running -----------------------------------------------------------------

    def _guard(self, step: Callable[[float], None], now: float) -> None:
        try:
            step(now)
        except _StopError as stop:
            self._finish(ProbeError(stop.kind, self._phase, stop.detail))
        except ValueError as exc:
            # PeerWireError, and any codec's typed error (all ValueErrors) on peer data.
            self._finish(ProbeError(ProbeErrorKind.PROTOCOL, self._phase, str(exc)))

    def _finish(self, error: ProbeError | None = None) -> None:
        self._done = True
        self._error = error
        self._deadline = None

    def _enter(self, phase: str, now: float, seconds: float) -> None:
        self._phase = phase
        self._deadline = now + seconds

    def _send(self, *messages: pw.Message) -> None:
        for message in messages:
            self._out += self.conn.send(message)

    def _receive(self, data: bytes, now: float, at: At) -> None:
        if not data:
            self.conn.receive_data(b"")
            self._events(now, at)
            return
        view = memoryview(data)
        while view and not self._done:
            # Whole events are taken out after each slice, so any amount fits.
            room = self.conn.max_buffer - self.conn.buffered
            self.conn.receive_data(bytes(view[:room]))
            view = view[room:]
            self._events(now, at)

    def _events(self, now: float, at: At) -> None:
        while not self._done:
            event = self.conn.next_event()
            if event is pw.NEED_DATA:
                return
            self._apply(event, at)
            self._advance(now)

    def _timer(self, now: float) -> None:
        if now >= self._end:
            raise _StopError(ProbeErrorKind.TIMEOUT, f"probe ran past {self.timeouts.total} s")
        if self._deadline is None or now < self._deadline:
            return
        t = self.timeouts
        timeout, choked = ProbeErrorKind.TIMEOUT, ProbeErrorKind.CHOKED
        match self._phase:
            case "connect":
                raise _StopError(timeout, f"no connection in {t.connect} s")
            case "handshake":
                raise _StopError(timeout, f"no handshake in {t.handshake} s")
            case "settle":
                # Not an error: BEP 3 lets a peer holding nothing stay silent.
                self._settled(now)
            case "metadata":
                raise _StopError(timeout, f"metadata incomplete after {t.metadata} s")
            case "hashes":
                self._layer_answered(now)
            case "unchoke":
                if self.mid_download:
                    raise _StopError(choked, "choked mid-download and never unchoked")
                raise _StopError(choked, f"not unchoked within {t.unchoke} s")
            case "download":
                raise _StopError(timeout, f"no block within {t.block} s")
            case "pex":
                self._finish()
            case _:  # pragma: no cover - every phase is named above
                raise AssertionError(self._phase)

    def _advance(self, now: float) -> None:
        """After each event: move on if what this phase waits for has happened."""
        match self._phase:
            case "handshake" if self.peer_handshake is not None:
                self._handshake_answered(now)
            case "settle" if self._settle_done():
                self._settled(now)
            case "metadata":
                self._metadata_progress(now)
            case "hashes" if self.hash_reply is not None:
                self._layer_answered(now)
            case "unchoke" if not self.choked:
                self._enter("download", now, self.timeouts.block)
                self._download_progress(now)
            case "download":
                self._download_progress(now)
            case "pex" if self.pex:
                self._finish()
            case _:
                pass

    # -- handshake and settling ----------------------------------------------------

    def _start_handshake(self, now: float) -> None:
        self._enter("handshake", now, self.timeouts.handshake)
        reserved = pw.make_reserved(extension=True, fast=True)
        self.sent_handshake = pw.Handshake(self.infohash[:_SHA1], self.peer_id, reserved)
        self._send(self.sent_handshake)

    def _handshake_answered(self, now: float) -> None:
        assert self.peer_handshake is not None
        if self.peer_handshake.infohash not in self.names:
            raise _StopError(
                ProbeErrorKind.WRONG_INFOHASH,
                f"peer answered infohash {self.peer_handshake.infohash.hex()}",
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
        self._send(*out)
        self._enter("settle", now, self.timeouts.settle)

    def _settle_done(self) -> bool:
        ext_done = self.ext is not None or not self.conn.extension_protocol
        return ext_done and (self.have_all or self.have_none or self.bitfield is not None)

    def _settled(self, now: float) -> None:
        wants = self.fetch_metadata or self.pieces_to_verify > 0 or self.full_file is not None
        if self.torrent is None and wants:
            self._start_metadata(now)
        else:
            self._metadata_known(now)

    # -- metadata --------------------------------------------------------------------

    def _start_metadata(self, now: float) -> None:
        self._enter("metadata", now, self.timeouts.metadata)
        size = self.ext.metadata_size if self.ext else None
        if not self.conn.peer_extensions.get("ut_metadata") or not size:
            raise _StopError(ProbeErrorKind.BAD_METADATA, "peer offers no ut_metadata")
        if size > self.limits.max_metadata_size:
            raise _StopError(
                ProbeErrorKind.BAD_METADATA,
                f"metadata_size {size} over the limit {self.limits.max_metadata_size}",
            )
        self.metadata_count = pw.metadata_piece_count(size)
        self.metadata_wanted = deque(range(self.metadata_count))
        self._request_metadata()

    def _request_metadata(self) -> None:
        in_flight = len(self.metadata_requested - self.metadata_pieces.keys())
        batch: list[pw.Message] = []
        while self.metadata_wanted and in_flight + len(batch) < self.limits.pipeline:
            piece = self.metadata_wanted.popleft()
            self.metadata_requested.add(piece)
            batch.append(pw.MetadataRequest(piece))
        self._send(*batch)

    def _metadata_progress(self, now: float) -> None:
        if self.metadata_rejected:
            raise _StopError(ProbeErrorKind.BAD_METADATA, "peer rejected a metadata request")
        if len(self.metadata_pieces) < self.metadata_count:
            self._request_metadata()
            return
        info = b"".join(self.metadata_pieces[i] for i in range(self.metadata_count))
        self.metadata_pieces.clear()
        if not _info_matches(info, self.infohash):
            raise _StopError(
                ProbeErrorKind.BAD_METADATA, "info dictionary does not hash to the infohash"
            )
        try:
            torrent = parse_info(info)
        except MetainfoError as exc:
            raise _StopError(ProbeErrorKind.BAD_METADATA, f"info dictionary: {exc}") from exc
        self.info_dict = info
        self.torrent = torrent
        self.conn.set_num_pieces(torrent.num_pieces)
        self._metadata_known(now)

    def _metadata_known(self, now: float) -> None:
        """Settled, and the metadata fetched if it was wanted: on to verification."""
        torrent = self.torrent
        if torrent is None:
            self._start_linger(now)
            return
        self._check_possession_against(torrent.num_pieces)
        chosen = self._choose(torrent) if self.pieces_to_verify else []
        if self.full_file is not None:
            chosen = self._start_stream(torrent, self.full_file) or chosen
        if not chosen:
            self._start_linger(now)
        elif torrent.version == "v2":
            self._phase = "hashes"
            self.hash_pieces = deque(chosen)
            self._next_layer(now)
        else:
            self._start_unchoke(chosen, now)

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

    # -- BEP 52 piece layers ---------------------------------------------------------

    def _next_layer(self, now: float) -> None:
        """Look at the next chosen piece: keep it, drop it, or ask for its layer hashes.

        A bare v2 info dictionary has no piece layers; a piece whose hash
        cannot be had is left out and counted unavailable.
        """
        torrent = self.torrent
        assert torrent is not None
        while self.hash_pieces:
            piece = self.hash_pieces.popleft()
            spans = [s for s in torrent.spans(piece) if not torrent.files[s.file_index].pad]
            if len(spans) != 1:
                self.unavailable += 1
                continue
            index = spans[0].file_index
            local = spans[0].file_offset // torrent.piece_length
            if self._v2_hash(torrent, index, local) is not None:
                self.hash_keep.append(piece)
                continue
            self._request_layer(torrent, piece, index, local, now)
            return
        keep, self.hash_keep = self.hash_keep, []
        if keep:
            self._start_unchoke(keep, now)
        else:
            self._start_linger(now)

    def _request_layer(
        self, torrent: Metainfo, piece: int, file_index: int, local: int, now: float
    ) -> None:
        """Ask for the chunk of the file's piece layer (up to 512 hashes) around `local`."""
        root = torrent.files[file_index].pieces_root
        assert root is not None
        height = merkle.piece_height(torrent.piece_length)
        npieces = len(torrent.file_pieces(file_index))
        width = 1 << max(0, (npieces - 1).bit_length())
        length = min(width, _MAX_HASHES_PER_REQUEST)
        start = local // length * length
        # libtorrent counts proof layers from the base layer, so the uncles of a
        # chunk up to the root take log2(width) - 1 of them (more is refused).
        proof_layers = width.bit_length() - 2
        self.layer_request = _LayerRequest(
            piece, file_index, local, root, height, start, length, width, npieces
        )
        self.hash_reply = None
        self._send(
            pw.HashRequest(root, height, start, length, proof_layers if length < width else 0)
        )
        self._deadline = now + self.timeouts.hashes

    def _layer_answered(self, now: float) -> None:
        """The answer to the hash request came, or its time ran out: on to the next piece."""
        request, reply = self.layer_request, self.hash_reply
        self.layer_request, self.hash_reply = None, None
        assert request is not None and self.torrent is not None
        proven, uncles = _proven_layer(request, reply) if reply is not None else ({}, ())
        if proven:
            self.layers.setdefault(request.file_index, {}).update(proven)
            assert isinstance(reply, pw.Hashes)
            chunk = tuple(reply.hashes[: request.length])
            self.layer_chunks.setdefault(request.file_index, []).append(
                (request.start, chunk, uncles)
            )
        if self._v2_hash(self.torrent, request.file_index, request.local) is not None:
            self.hash_keep.append(request.piece)
        else:
            self.unavailable += 1
        self._next_layer(now)

    def _v2_proof(self, torrent: Metainfo, file_index: int, local: int) -> tuple[bytes, ...]:
        """The sibling hashes from piece `local`'s layer hash up to the file's pieces root.

        Empty for a file of one piece (its layer hash is the root), and when
        the piece's hash is unknown (then it was not checked either).
        """
        f = torrent.files[file_index]
        if f.length <= torrent.piece_length:
            return ()
        height = merkle.piece_height(torrent.piece_length)
        layer = torrent.piece_hashes_v2(file_index)
        if layer is not None:
            levels = self.layer_levels.get(file_index)
            if levels is None:
                levels = self.layer_levels[file_index] = merkle.layer_levels(layer, height)
            return tuple(merkle.path_from_levels(levels, local))
        for start, chunk, uncles in self.layer_chunks.get(file_index, ()):
            if start <= local < start + len(chunk):
                inside = merkle.proof_path(chunk, local - start, height, pad_to=len(chunk))
                return (*inside, *uncles)
        return ()

    def _v2_hash(self, torrent: Metainfo, file_index: int, local: int) -> bytes | None:
        """The v2 hash of piece `local` of a file, from the torrent or fetched; None if unknown."""
        hashes = torrent.piece_hashes_v2(file_index)
        if hashes is not None:
            return hashes[local] if local < len(hashes) else None
        return self.layers.get(file_index, {}).get(local)

    # -- verification ----------------------------------------------------------------

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

    def _start_stream(self, torrent: Metainfo, index: int) -> list[int]:
        """Every piece of file `index`, in order, once the peer claims them all; else []."""
        if not 0 <= index < len(torrent.files):
            return []
        f = torrent.files[index]
        pieces = torrent.file_pieces(index)
        held = self._held()
        if f.pad or f.length == 0 or (held is not None and not set(pieces) <= held):
            return []  # the peer does not claim the whole file: nothing to stream
        self.stream = _FileStream(index, f.offset, f.length, pieces.start, torrent.piece_length)
        return list(pieces)

    def _start_unchoke(self, chosen: list[int], now: float) -> None:
        torrent = self.torrent
        assert torrent is not None
        dl = self.download
        for piece in chosen:
            size = torrent.piece_size(piece)
            dl.queue.extend(
                (piece, begin, min(pw.BLOCK_SIZE, size - begin))
                for begin in range(0, size, pw.BLOCK_SIZE)
            )
            dl.received[piece] = 0
        self._send(pw.Interested())
        self._enter("unchoke", now, self.timeouts.unchoke)
        if not self.choked:  # unchoked before we even asked
            self._enter("download", now, self.timeouts.block)
            self._download_progress(now)

    def _download_progress(self, now: float) -> None:
        dl = self.download
        if not dl.queue and not dl.outstanding:
            self._start_linger(now)
            return
        if self.choked:
            self.mid_download = True
            self._enter("unchoke", now, self.timeouts.unchoke)
            return
        pipeline = max(1, min(self.limits.pipeline, (self.ext.reqq if self.ext else None) or 250))
        batch: list[pw.Message] = []
        while dl.queue and len(dl.outstanding) + len(batch) < pipeline:
            piece, begin, length = dl.queue.popleft()
            if piece in dl.dropped:
                continue
            dl.outstanding.add((piece, begin, length))
            batch.append(pw.Request(piece, begin, length))
        self._send(*batch)
        if not dl.queue and not dl.outstanding:
            self._start_linger(now)  # what was left belonged to dropped pieces
            return
        # The longest silence allowed counts from the latest event.
        self._deadline = now + self.timeouts.block

    def _on_block(self, block: pw.Piece, at: At) -> None:
        dl = self.download
        key = (block.index, block.begin, len(block.block))
        dl.outstanding.discard(key)
        if self.first_data_at is None:
            self.first_data_at = at
        self.bytes_downloaded += len(block.block)
        if block.index in dl.dropped or block.index not in dl.received:
            return
        self.first_at.setdefault(block.index, at)
        torrent = self.torrent
        assert torrent is not None
        size = torrent.piece_size(block.index)
        if block.begin + len(block.block) > size:
            raise _StopError(ProbeErrorKind.PROTOCOL, "block beyond the end of its piece")
        buf = dl.buffers.get(block.index)
        if buf is None:
            buf = dl.buffers[block.index] = bytearray(size)
        buf[block.begin : block.begin + len(block.block)] = block.block
        dl.received[block.index] += len(block.block)
        if dl.received[block.index] >= size:
            del dl.received[block.index]
            data = dl.buffers.pop(block.index)
            first_at = self.first_at.pop(block.index, at)
            if self._piece_ok(torrent, block.index, data, first_at, at):
                self.verified += 1
            else:
                self.failed += 1
            if self.stream is not None:
                self.stream.add(block.index, data, first_at, at)

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

    def _piece_ok(
        self, torrent: Metainfo, piece: int, data: bytearray, first_at: At, last_at: At
    ) -> bool:
        """Every hash the torrent has for this piece matches (v1 SHA-1, v2 merkle).

        Each hash is computed, whatever the others gave, and kept as a check
        for the transcript: a failed verification is evidence too.
        """
        checks: list[PieceCheck[At]] = []
        plen = torrent.piece_length
        if torrent.pieces:
            computed = hashlib.sha1(data, usedforsecurity=False).digest()
            expected = torrent.piece_hash_v1(piece)
            checks.append(
                PieceCheck(
                    piece, piece * plen, len(data), "sha1", computed, expected,
                    computed == expected, first_at, last_at,
                )
            )  # fmt: skip
        for span in torrent.spans(piece):
            f = torrent.files[span.file_index]
            if f.pad or f.pieces_root is None:
                continue
            local = span.file_offset // plen
            layer_hash = self._v2_hash(torrent, span.file_index, local)
            if layer_hash is None:
                continue
            chunk = memoryview(data)[span.piece_offset : span.piece_offset + span.length]
            merkle_hash = merkle.piece_hash(chunk, local, plen)
            checks.append(
                PieceCheck(
                    piece, span.file_offset, span.length, "sha256", merkle_hash, layer_hash,
                    merkle_hash == layer_hash, first_at, last_at, span.file_index,
                    self._v2_proof(torrent, span.file_index, local),
                )
            )  # fmt: skip
        room = max(0, self.limits.max_checks - len(self.checks))
        self.checks += checks[:room]
        self.checks_omitted += len(checks) - len(checks[:room])
        return bool(checks) and all(c.ok for c in checks)

    def _start_linger(self, now: float) -> None:
        if self.timeouts.pex_linger > 0 and not self.pex:
            self._enter("pex", now, self.timeouts.pex_linger)
        else:
            self._finish()

    # -- events ----------------------------------------------------------------------

    def _apply(self, event: pw.Event, at: At) -> None:
        match event:
            case pw.Handshake():
                self.peer_handshake = event
                self.handshake_at = at
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
                    raise _StopError(ProbeErrorKind.PROTOCOL, f"more than {bound} have messages")
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
                self._on_block(event, at)
            case pw.Reject():
                self._on_reject(event)
            case pw.MetadataData(piece, total, data):
                if total != (self.ext.metadata_size if self.ext else None):
                    raise _StopError(
                        ProbeErrorKind.BAD_METADATA, "total_size differs from metadata_size"
                    )
                self.metadata_pieces[piece] = data
            case pw.MetadataReject():
                self.metadata_rejected = True
            case pw.Hashes() | pw.HashReject() if (
                self.layer_request is not None and event.pieces_root == self.layer_request.root
            ):
                self.hash_reply = event
            case pw.Request() if self.conn.fast and self.replies < self.limits.max_replies:
                # We hold nothing and choke the peer; BEP 6 asks us to say no.
                self.replies += 1
                self._send(pw.Reject(event.index, event.begin, event.length))
            case pw.MetadataRequest(piece) if (
                self.replies < self.limits.max_replies
                and self.conn.peer_extensions.get("ut_metadata")
            ):
                # We have no metadata to give; a peer that never offered
                # ut_metadata cannot even be told so, and is not worth failing.
                self.replies += 1
                self._send(pw.MetadataReject(piece))
            case pw.ConnectionClosed():
                raise _StopError(ProbeErrorKind.CLOSED, "peer closed the connection")
            case _:
                self._count_control()

    def _count_control(self) -> None:
        self.control_messages += 1
        if self.control_messages > self.limits.max_control_messages:
            raise _StopError(ProbeErrorKind.PROTOCOL, "flood of control messages")

    # -- result ----------------------------------------------------------------------

    def _result(self) -> ProbeResult[At]:
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
            peer_id=hs.peer_id if hs else None,
            client=(ext.v if ext and ext.v else None) or from_id,
            client_from_peer_id=from_id,
            reserved=hs.reserved if hs else None,
            handshake_infohash=hs.infohash if hs else None,
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
            error=self._error,
            sent_handshake=self.sent_handshake,
            extension_raw=ext.raw if ext else None,
            bitfield=self.bitfield.bits if self.bitfield is not None else None,
            have_all=self.have_all,
            have_none=self.have_none,
            haves=len(self.haves),
            checks=tuple(self.checks),
            checks_omitted=self.checks_omitted,
            full_file=self.stream.result() if self.stream is not None else None,
        )


_Proven = tuple[dict[int, bytes], tuple[bytes, ...]]


def _proven_layer(request: _LayerRequest, reply: pw.Hashes | pw.HashReject) -> _Proven:
    """The hashes of the answer by piece in the file, and the uncles that led them to the
    pieces root; ({}, ()) if they do not lead there."""
    if not isinstance(reply, pw.Hashes):
        return {}, ()
    height, start, length, width = request.height, request.start, request.length, request.width
    if (reply.base_layer, reply.index, reply.length) != (height, start, length):
        return {}, ()
    if len(reply.hashes) < length:
        return {}, ()
    base, uncles = reply.hashes[:length], reply.hashes[length:]
    try:
        node = merkle.root_from_layer(base, height, pad_to=length)
    except merkle.MerkleError:
        return {}, ()
    position = start // length
    level = height + length.bit_length() - 1
    used: list[bytes] = []
    for uncle in uncles:
        if 1 << (level - height) >= width:
            break
        node = hashlib.sha256(uncle + node if position & 1 else node + uncle).digest()
        used.append(uncle)
        position //= 2
        level += 1
    if 1 << (level - height) < width or node != request.root:
        return {}, ()
    return {start + i: h for i, h in enumerate(base) if start + i < request.npieces}, tuple(used)


def _info_matches(info: bytes, infohash: bytes) -> bool:
    """Whether the info dictionary is the one `infohash` names (v1, v2 or v2 truncated)."""
    if len(infohash) == 32:
        return hashlib.sha256(info).digest() == infohash
    return infohash in (
        hashlib.sha1(info, usedforsecurity=False).digest(),
        hashlib.sha256(info).digest()[:_SHA1],
    )
