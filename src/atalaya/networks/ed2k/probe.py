"""Probe one eD2K peer, sans-I/O: who it is, what it says it holds, and whether its data is real.

`Ed2kProbe` holds every decision; its caller owns the socket and the clocks,
exactly as for BitTorrent's `ProbeMachine`::

    probe = Ed2kProbe(ip, port, file_hash, file_size=size, user_hash=ours, now=t)
    probe.connected(local_endpoint, now, at)
    probe.receive_data(data, now, at)          # b"" when the peer closed
    probe.handle_timer(now)                    # when now >= probe.get_timer()
    probe.fail(kind, detail)
    sock.send(probe.data_to_send())
    probe.result                               # once probe.done

The exchange is the one eMule and aMule clients use to download: HELLO and
its answer (the peer's user hash, client and version, TCP port, whether it is
firewalled), REQUESTFILENAME and SETREQFILEID (the advertised name, the
part map, or "no such file"), HASHSETREQUEST for files of more than one part
(the part hashes, checked against the file hash), STARTUPLOADREQ until the
peer accepts (or queues us), then one whole part requested in 180 KiB
blocks, three per request, and its MD4 compared with the expected hash. A
file of one part is checked against the file hash itself: the whole file was
downloaded from that single peer. Content is hashed in memory and dropped.

With an `obfuscation.Initiator` (the peer's user hash known), the
connection opens with eMule's obfuscation handshake (phase "obfuscation")
and everything after it is RC4: a peer that requires obfuscation talks to
no one else. The result says whether the connection was obfuscated.

We advertise no compression, so a peer sends plain parts; a compressed one
is a protocol error. Every phase has a time limit, the whole probe another;
whatever the peer sends, the probe ends with a result, never an exception.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final, Generic, TypeVar

from Crypto.Hash import MD4

from atalaya.networks.ed2k import aich, obfuscation
from atalaya.networks.ed2k import messages as m
from atalaya.networks.ed2k.hashing import EMPTY_PART_HASH, PART_SIZE
from atalaya.networks.ed2k.packets import PacketDecoder
from atalaya.networks.ed2k.tags import Tag
from atalaya.networks.ed2k.wire import HASH_SIZE, Ed2kError

At = TypeVar("At")

BLOCK: Final = 184_320  # aMule's EMBLOCKSIZE: one request range
EDONKEY_VERSION: Final = 0x3C

# eMule "compatible client" ids (aMule src/include/protocol/ed2k/ClientSoftware.h).
_SOFTWARE: Final = {
    0: "eMule",
    1: "cDonkey",
    2: "xMule",
    3: "aMule",
    4: "Shareaza",
    5: "eMule Plus",
    6: "Hydranode",
    0x0A: "MLDonkey",
    0x14: "lphant",
    0x28: "Shareaza",
}


class ProbeErrorKind(StrEnum):
    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    CLOSED = "closed"
    PROTOCOL = "protocol_error"
    NO_FILE = "no_file"  # the peer answered that it does not share the file
    QUEUED = "queued"  # the peer kept us in its upload queue past the time limit
    LOW_ID = "low_id"  # the peer is firewalled: found, never probed for content


@dataclass(frozen=True)
class ProbeError:
    kind: ProbeErrorKind
    phase: str
    detail: str


@dataclass(frozen=True)
class ProbeTimeouts:
    connect: float = 5.0
    hello: float = 10.0
    file: float = 10.0
    hashset: float = 10.0
    upload: float = 30.0  # waiting for an upload slot
    block: float = 20.0  # longest silence while a block is outstanding
    total: float = 180.0


@dataclass(frozen=True)
class ProbeLimits:
    max_packet: int = 2_000_000
    max_verify_bytes: int = PART_SIZE  # one part
    max_control_packets: int = 10_000
    read_size: int = 64 * 1024


@dataclass(frozen=True)
class Ed2kProbeResult(Generic[At]):
    """What one probe of one peer established; times are the caller's, taken on arrival."""

    ip: str
    port: int
    file_hash: bytes
    connected_at: At | None = None
    hello_at: At | None = None
    first_data_at: At | None = None
    finished_at: At | None = None
    user_hash: bytes | None = None
    client: str | None = None  # "aMule 2.3.3", from the eMule version tag
    nick: str | None = None  # attacker-chosen: display only
    client_port: int | None = None  # the TCP port the peer says it listens on
    client_id: int | None = None
    low_id: bool | None = None
    file_name: str | None = None
    parts_total: int | None = None
    parts_held: int | None = None
    have_fraction: float | None = None
    part_map: tuple[bool, ...] = ()  # FILESTATUS as sent; empty: the peer said complete
    part_hashes: tuple[bytes, ...] = ()
    verified_part: int | None = None
    parts_verified: int = 0
    parts_failed: int = 0
    bytes_downloaded: int = 0
    proof_kind: str | None = None  # "part_md4" | "file_md4" | "aich_block"
    part_digest: bytes | None = None  # MD4 of the part's bytes as they arrived
    aich_version: int = 0  # the AICH version the peer's hello offers; 0: none
    # The AICH path: the master hash we trusted, the peer's recovery data for
    # the part, the block downloaded (offset, length) and its SHA-1.
    aich_master: bytes | None = None
    aich_hashes: tuple[tuple[int, bytes], ...] = ()
    block_offset: int | None = None
    block_length: int | None = None
    block_digest: bytes | None = None
    block_expected: bytes | None = None  # the block's leaf in the checked recovery data
    aich_note: str | None = None  # why the AICH path was not taken or was left
    queue_rank: int | None = None
    # The connection completed eMule's obfuscation handshake: every byte
    # after it, both ways, was RC4 keyed from the peer's user hash.
    obfuscated: bool = False
    local_ip: str | None = None
    local_port: int | None = None
    error: ProbeError | None = None

    @property
    def proof(self) -> bool:
        return self.parts_verified > 0 and self.parts_failed == 0


def client_name(version_tag: int | None) -> str | None:
    """The client software and version an eMule version tag states."""
    if version_tag is None:
        return None
    software = _SOFTWARE.get(version_tag >> 24, f"client {version_tag >> 24:#x}")
    major = (version_tag >> 17) & 0x7F
    minor = (version_tag >> 10) & 0x7F
    update = (version_tag >> 7) & 0x07
    return f"{software} {major}.{minor}.{update}"


def parts_of(size: int) -> int:
    """How many part hashes eMule keeps for a file of `size` bytes (see hashing.py)."""
    return size // PART_SIZE + 1 if size >= PART_SIZE else 1


class _StopError(Exception):
    def __init__(self, kind: ProbeErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Ed2kProbe(Generic[At]):
    def __init__(
        self,
        ip: str,
        port: int,
        file_hash: bytes,
        *,
        file_size: int | None,
        user_hash: bytes,
        now: float,
        client_id: int = 0,
        listen_port: int = 0,
        nick: str = "atalaya",
        timeouts: ProbeTimeouts | None = None,
        limits: ProbeLimits | None = None,
        aich_master: bytes | None = None,
        obfuscator: obfuscation.Initiator | None = None,
    ) -> None:
        if len(file_hash) != HASH_SIZE or len(user_hash) != HASH_SIZE:
            raise ValueError("file and user hashes are 16 bytes")
        if aich_master is not None and len(aich_master) != aich.HASH_SIZE:
            raise ValueError("an AICH master hash is 20 bytes")
        # The master hash comes from the operator's reference (a link's h=,
        # a hash set), never from a peer: a peer's own claim proves nothing.
        self._aich_master = aich_master
        self._aich_part: int | None = None
        self._block: aich.Node | None = None
        self._block_expected = b""
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._timeouts = timeouts or ProbeTimeouts()
        self._limits = limits or ProbeLimits()
        self._file_hash = file_hash
        self._file_size = file_size
        self._user_hash = user_hash
        self._client_id = client_id
        self._listen_port = listen_port
        self._nick = nick
        self._decoder = PacketDecoder(self._limits.max_packet)
        self._crypt = obfuscator
        self._raw = bytearray()  # bytes that go out as they are: the obfuscation handshake
        self._out = bytearray()  # the eD2K stream, encrypted on its way out when obfuscated
        self._result: Ed2kProbeResult[At] = Ed2kProbeResult(ip, port, file_hash)
        self._done = False
        self._phase = "connect"
        self._deadline = now + self._timeouts.connect
        self._total_deadline = now + self._timeouts.total
        self._control = 0
        self._name_seen = False
        self._status_seen = False
        self._held: tuple[bool, ...] = ()  # the part map; empty: complete or not yet known
        self._part: int | None = None
        self._part_start = 0
        self._part_end = 0
        self._received = 0
        self._requested_to = 0
        self._md4 = MD4.new()  # noqa: S303 - eD2K is defined on MD4: an identifier, not a defence

    # --- the caller's side ----------------------------------------------------

    @property
    def done(self) -> bool:
        return self._done

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def read_size(self) -> int:
        return self._limits.read_size

    @property
    def result(self) -> Ed2kProbeResult[At] | None:
        return self._result if self._done else None

    def get_timer(self) -> float | None:
        return None if self._done else min(self._deadline, self._total_deadline)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        if data and self._crypt is not None:
            # Nothing is queued here before the handshake is complete.
            data = self._crypt.encrypt(data)
        if self._raw:
            data = bytes(self._raw) + data
            self._raw.clear()
        return data

    def connected(self, local: tuple[str, int] | None, now: float, at: At) -> None:
        if self._done or self._phase != "connect":
            return
        self._set(connected_at=at)
        if local is not None:
            self._set(local_ip=local[0], local_port=local[1])
        if self._crypt is not None:
            # The hello waits for the peer's answer: aMule drops a
            # connection whose first read holds more than the handshake.
            self._raw += self._crypt.data_to_send()
            self._enter("obfuscation", now, self._timeouts.hello)
            return
        self._out += self._hello().encode()
        self._enter("hello", now, self._timeouts.hello)

    def receive_data(self, data: bytes, now: float, at: At) -> None:
        if self._done:
            return
        if not data:
            self._finish(ProbeErrorKind.CLOSED, "the peer closed the connection")
            return
        if self._crypt is not None:
            try:
                data = self._crypt.receive(data)
            except obfuscation.ObfuscationError as exc:
                self._finish(ProbeErrorKind.PROTOCOL, f"obfuscation: {exc}"[:300])
                return
            if self._phase == "obfuscation":
                if not self._crypt.established:
                    return
                self._set(obfuscated=True)
                self._out += self._hello().encode()
                self._enter("hello", now, self._timeouts.hello)
            if not data:
                return
        try:
            for packet in self._decoder.feed(data):
                self._handle(m.decode(packet), now, at)
                if self._done:
                    return
        except _StopError as stop:
            self._finish(stop.kind, stop.detail)
        except Ed2kError as exc:
            self._finish(ProbeErrorKind.PROTOCOL, str(exc)[:300])

    def handle_timer(self, now: float) -> None:
        if self._done:
            return
        if now >= self._total_deadline:
            self._finish(ProbeErrorKind.TIMEOUT, "the whole probe ran past its time limit")
        elif now >= self._deadline:
            if self._phase == "upload":
                self._finish(ProbeErrorKind.QUEUED, "no upload slot within the time limit")
            else:
                self._finish(ProbeErrorKind.TIMEOUT, f"no answer in phase {self._phase}")

    def fail(self, kind: ProbeErrorKind, detail: str) -> None:
        if not self._done:
            self._finish(kind, detail)

    # --- the exchange ---------------------------------------------------------

    def _hello(self) -> m.Hello:
        # Unicode support only (bit 28 of misc options 1): no compression, no
        # extended requests, no source exchange, so the peer's answers keep to
        # the messages this probe reads.
        # AICH (bits 29-31) is offered only when this probe may use it.
        options = 1 << 28 | (1 << 29 if self._aich_master is not None else 0)
        tags = (
            Tag.string(m.CT_NAME, self._nick),
            Tag.uint(m.CT_VERSION, EDONKEY_VERSION),
            Tag.uint(m.CT_EMULE_MISCOPTIONS1, options),
        )
        return m.Hello(self._user_hash, self._client_id, self._listen_port, tags)

    def _handle(self, message: m.Message, now: float, at: At) -> None:
        if isinstance(message, m.Hello):
            self._hello_answered(message, now, at)
        elif self._phase == "hello":
            self._control_packet()
        elif isinstance(message, m.FilenameAnswer):
            self._check_file(message.file_hash)
            self._set(file_name=message.name.decode("utf-8", "replace")[:500])
            self._name_seen = True
            self._file_progress(now)
        elif isinstance(message, m.FileStatus):
            self._check_file(message.file_hash)
            self._file_status(message)
            self._status_seen = True
            self._file_progress(now)
        elif isinstance(message, m.FileRequest) and message.opcode == m.OP_FILEREQANSNOFIL:
            self._check_file(message.file_hash)
            raise _StopError(ProbeErrorKind.NO_FILE, "the peer does not share this file")
        elif isinstance(message, m.HashsetAnswer):
            self._hashset(message, now)
        elif isinstance(message, m.AichAnswer):
            self._aich_answer(message, now)
        elif isinstance(message, m.Signal) and message.opcode == m.OP_ACCEPTUPLOADREQ:
            if self._phase == "upload":
                self._start_download(now)
        elif isinstance(message, m.QueueRank):
            self._set(queue_rank=message.rank)
        elif isinstance(message, m.SendingPart):
            self._data(message, now, at)
        elif isinstance(message, m.Signal) and message.opcode == m.OP_CANCELTRANSFER:
            raise _StopError(ProbeErrorKind.CLOSED, "the peer cancelled the transfer")
        else:
            self._control_packet()

    def _control_packet(self) -> None:
        self._control += 1
        if self._control > self._limits.max_control_packets:
            raise _StopError(ProbeErrorKind.PROTOCOL, "too many packets that carry nothing")

    def _check_file(self, file_hash: bytes) -> None:
        if file_hash != self._file_hash:
            raise _StopError(ProbeErrorKind.PROTOCOL, "the peer answered about another file")

    def _hello_answered(self, hello: m.Hello, now: float, at: At) -> None:
        if self._phase != "hello" or not hello.answer:
            # A second hello, or the peer's own HELLO: eMule answers ours only.
            self._control_packet()
            return
        version = next(
            (t.integer() for t in hello.tags if t.name == m.CT_EMULE_VERSION and _is_int(t)),
            None,
        )
        self._set(
            hello_at=at,
            user_hash=hello.user_hash,
            client=client_name(version),
            nick=hello.nick,
            client_port=hello.port,
            client_id=hello.client_id,
            low_id=hello.low_id,
            aich_version=hello.aich_version,
        )
        self._out += m.FileRequest(m.OP_REQUESTFILENAME, self._file_hash).encode()
        self._out += m.FileRequest(m.OP_SETREQFILEID, self._file_hash).encode()
        self._enter("file", now, self._timeouts.file)

    def _file_status(self, status: m.FileStatus) -> None:
        expected = parts_of(self._file_size) if self._file_size is not None else None
        if status.complete:
            total = expected
            held = expected
        else:
            total = len(status.parts)
            held = sum(status.parts)
            # eMule sends the map over the real parts (not the extra empty one).
            if expected is not None and total not in (expected, expected - 1):
                raise _StopError(ProbeErrorKind.PROTOCOL, f"part map of {total} parts")
        fraction: float | None = 1.0
        if not status.complete:
            fraction = held / total if total and held is not None else 0.0
        self._set(parts_total=total, parts_held=held, have_fraction=fraction, part_map=status.parts)
        self._held = status.parts

    def _file_progress(self, now: float) -> None:
        if self._phase != "file" or not (self._name_seen and self._status_seen):
            return
        if self._result.parts_held == 0:
            raise _StopError(ProbeErrorKind.NO_FILE, "the peer holds no complete part")
        if self._aich_request(now):
            return
        self._md4_path(now)

    def _md4_path(self, now: float) -> None:
        size = self._file_size
        if size is not None and size < PART_SIZE:
            self._choose_part(now, part_hashes=())
            return
        self._out += m.FileRequest(m.OP_HASHSETREQUEST, self._file_hash).encode()
        self._enter("hashset", now, self._timeouts.hashset)

    def _aich_request(self, now: float) -> bool:
        """Ask for a part's AICH recovery data when a trusted master hash and the peer allow."""
        size = self._file_size
        if self._aich_master is None:
            return False
        if not self._result.aich_version & 1:
            self._set(aich_note="the peer does not offer AICH")
            return False
        # aMule answers only for a file of more than one block, and a part
        # of more than one block (ListenSocket's OP_AICHREQUEST).
        if size is None or size <= aich.BLOCK_SIZE:
            self._set(aich_note="the file size is unknown or one block")
            return False
        held = self._held
        candidates = [
            part
            for part in range(-(-size // PART_SIZE))
            if (not held or (part < len(held) and held[part]))
            and self._part_length(part) > aich.BLOCK_SIZE
        ]
        if not candidates:
            self._set(aich_note="the peer holds no part of more than one block")
            return False
        # A part whose last block is shortest costs the least to prove.
        part = min(candidates, key=lambda p: (aich.part_blocks(size, p)[-1].size, p))
        self._aich_part = part
        self._set(aich_master=self._aich_master)
        self._out += m.AichRequest(self._file_hash, part, self._aich_master).encode()
        self._enter("aich", now, self._timeouts.hashset)
        return True

    def _aich_answer(self, answer: m.AichAnswer, now: float) -> None:
        if self._phase != "aich":
            self._control_packet()
            return
        self._check_file(answer.file_hash)
        size, part, master = self._file_size, self._aich_part, self._aich_master
        assert size is not None and part is not None and master is not None
        # Whatever goes wrong here, the part MD4 can still prove possession.
        if answer.recovery is None:
            self._set(aich_note="the peer refused the AICH request")
            self._md4_path(now)
            return
        if answer.part != part or answer.master != master:
            self._set(aich_note="the AICH answer is for another part or master hash")
            self._md4_path(now)
            return
        hashes = answer.recovery.hashes
        self._set(aich_hashes=hashes)
        try:
            checked = aich.check_part(size, part, master, hashes)
        except aich.AichError as exc:
            self._set(aich_note=str(exc)[:300])
            self._md4_path(now)
            return
        # The shortest block of the part: the last one.
        self._block = checked.blocks[-1]
        self._block_expected = checked.block_hashes[-1]
        self._part = part
        self._part_start = self._block.offset
        self._part_end = self._block.offset + self._block.size
        self._received = self._requested_to = self._part_start
        self._out += m.FileRequest(m.OP_STARTUPLOADREQ, self._file_hash).encode()
        self._enter("upload", now, self._timeouts.upload)

    def _hashset(self, answer: m.HashsetAnswer, now: float) -> None:
        if self._phase != "hashset":
            self._control_packet()
            return
        self._check_file(answer.file_hash)
        hashes = answer.part_hashes
        if len(hashes) < 2:
            raise _StopError(ProbeErrorKind.PROTOCOL, "a hash set of fewer than two parts")
        if not _hashset_matches(hashes, self._file_hash):
            raise _StopError(ProbeErrorKind.PROTOCOL, "the part hashes do not make the file hash")
        self._set(part_hashes=hashes)
        self._choose_part(now, part_hashes=hashes)

    def _choose_part(self, now: float, part_hashes: tuple[bytes, ...]) -> None:
        held = self._held
        real = [h for h in part_hashes if h != EMPTY_PART_HASH] or list(part_hashes)
        count = len(real) if part_hashes else 1
        # Any part but the last is a whole PART_SIZE, so its length needs no
        # file size; the last needs it.
        candidates = [i for i in range(count) if not held or (i < len(held) and held[i])]
        candidates = [i for i in candidates if self._part_length(i) > 0]
        if self._file_size is None:
            candidates = [i for i in candidates if i < count - 1]
        if not candidates:
            raise _StopError(
                ProbeErrorKind.NO_FILE, "no part this probe can verify (file size unknown)"
            )
        # The shortest part costs the least to prove: the last, when the size is known.
        part = min(candidates, key=lambda i: (self._part_length(i), i))
        start = part * PART_SIZE
        end = start + self._part_length(part)
        if end - start > self._limits.max_verify_bytes:
            raise _StopError(ProbeErrorKind.NO_FILE, "the part is over the download limit")
        self._part, self._part_start, self._part_end = part, start, end
        self._received = start
        self._requested_to = start
        self._out += m.FileRequest(m.OP_STARTUPLOADREQ, self._file_hash).encode()
        self._enter("upload", now, self._timeouts.upload)

    def _part_length(self, part: int) -> int:
        if self._file_size is None:
            return PART_SIZE
        return max(0, min(PART_SIZE, self._file_size - part * PART_SIZE))

    def _start_download(self, now: float) -> None:
        self._enter("download", now, self._timeouts.block)
        self._request_more()

    def _request_more(self) -> None:
        if self._requested_to >= self._part_end:
            return
        ranges: list[tuple[int, int]] = []
        at = self._requested_to
        while at < self._part_end and len(ranges) < 3:
            ranges.append((at, min(at + BLOCK, self._part_end)))
            at = ranges[-1][1]
        self._requested_to = at
        self._out += m.RequestParts(self._file_hash, tuple(ranges)).encode()

    def _data(self, part: m.SendingPart, now: float, at: At) -> None:
        if self._phase != "download":
            raise _StopError(ProbeErrorKind.PROTOCOL, "content before it was asked for")
        self._check_file(part.file_hash)
        if part.compressed:
            raise _StopError(ProbeErrorKind.PROTOCOL, "a compressed part, never offered")
        if part.start != self._received or part.start + len(part.data) > self._requested_to:
            raise _StopError(
                ProbeErrorKind.PROTOCOL,
                f"bytes at {part.start} while {self._received} was expected",
            )
        if self._result.first_data_at is None:
            self._set(first_data_at=at)
        if self._block is not None:
            self._sha1.update(part.data)
        else:
            self._md4.update(part.data)
        self._received += len(part.data)
        self._set(bytes_downloaded=self._result.bytes_downloaded + len(part.data))
        self._enter("download", now, self._timeouts.block)
        if self._received == self._requested_to:
            self._request_more()
        if self._received == self._part_end:
            self._verify()

    def _verify(self) -> None:
        if self._block is not None:
            block = self._sha1.digest()
            self._set(
                block_offset=self._block.offset,
                block_length=self._block.size,
                block_digest=block,
                block_expected=self._block_expected,
                verified_part=self._part,
            )
            if block == self._block_expected:
                self._set(parts_verified=1, proof_kind="aich_block")
            else:
                self._set(parts_failed=1)
            self._out += m.Signal(m.OP_CANCELTRANSFER).encode()
            self._finish(None, "")
            return
        digest = self._md4.digest()
        self._set(part_digest=digest)
        if self._result.part_hashes:
            assert self._part is not None
            expected = self._result.part_hashes[self._part]
            kind = "part_md4"
        else:
            expected = self._file_hash
            kind = "file_md4"
        if digest == expected:
            self._set(parts_verified=1, verified_part=self._part, proof_kind=kind)
        else:
            self._set(parts_failed=1, verified_part=self._part)
        self._out += m.Signal(m.OP_CANCELTRANSFER).encode()
        self._finish(None, "")

    # --- plumbing ---------------------------------------------------------------

    def _set(self, **changes: object) -> None:
        self._result = replace(self._result, **changes)  # type: ignore[arg-type]

    def _enter(self, phase: str, now: float, seconds: float) -> None:
        self._phase = phase
        self._deadline = now + seconds

    def _finish(self, kind: ProbeErrorKind | None, detail: str) -> None:
        if kind is not None:
            self._set(error=ProbeError(kind, self._phase, detail))
        self._done = True
        self._phase = "done"


def _is_int(tag: Tag) -> bool:
    return isinstance(tag.value, int) and not isinstance(tag.value, bool)


def _hashset_matches(hashes: tuple[bytes, ...], file_hash: bytes) -> bool:
    """Whether the part hashes make the file hash, with or without eMule's extra empty part."""
    candidates = [hashes]
    if hashes[-1] == EMPTY_PART_HASH:
        candidates.append(hashes[:-1])
    else:
        candidates.append((*hashes, EMPTY_PART_HASH))
    for parts in candidates:
        outer = MD4.new()  # noqa: S303 - eD2K is defined on MD4: an identifier, not a defence
        for part in parts:
            outer.update(part)
        if outer.digest() == file_hash:
            return True
    return False
