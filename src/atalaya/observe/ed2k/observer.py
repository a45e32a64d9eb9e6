"""The eD2K observer: probe known sources for every watched eD2K file, record sightings.

Each round, every (source, target) pair is probed once, a few sources at a
time and one target after another on each source; a
peer that answers with the file's part map is sighted, with proof when the
part it sent hashes to the expected MD4. A peer that says it does not share
the file, or that cannot be reached, is counted and not sighted. Rounds
repeat every `interval` seconds until the duration ends or `stop` is set;
what is written stays written.

One user hash is used for the whole run and kept between runs in a small
state file: aMule bans, for a while, an address whose user hash changes
(seen in the lab: every later connection closed during the hello). The hash
carries no eMule marker bytes (byte 5 = 14, byte 14 = 111): a client marked
as eMule is expected to send eMule's extended requests, and aMule then
leaves our plain file requests unanswered.

Protocol obfuscation (`networks.ed2k.obfuscation`) needs the peer's user
hash: Kad gives it with every source, with the source's connect options;
an operator may give it with a source (`IP:PORT/USERHASH`). By default
(`Obfuscate.AUTO`) a probe is obfuscated when the source asks for it (it
requests or requires it, in Kad's connect options) or when the
operator named its user hash; a handshake that fails with a source that
does not require obfuscation is tried once more in plain eD2K.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from atalaya.hashsets import lookup
from atalaya.hashsets.algorithms import ED2K
from atalaya.networks.ed2k.obfuscation import requires_obfuscation, wants_obfuscation
from atalaya.networks.ed2k.probe import ProbeErrorKind, ProbeTimeouts
from atalaya.observe.ed2k.kad_search import KadClient, KadSearchConfig, KadSearchResult
from atalaya.observe.ed2k.probe import Ed2kProbeResult, probe_peer, utc_now
from atalaya.observe.ed2k.transcript import encode_transcript
from atalaya.observe.sightings import Sighting, SightingWriter, new_run_id
from atalaya.observe.watchlist import WatchTarget

NETWORK = "ed2k"
# Where the size of a file in a hash set is kept (Project VIC's field).
_SIZE_ATTRIBUTES = ("MediaSize", "size", "Size")
# Where a hash set may keep a file's AICH master hash (hex or eMule's base32).
_AICH_ATTRIBUTES = ("aich", "AICH", "AichHash")
AICH_FROM_LINK = "link"
AICH_FROM_HASH_SET = "hash_set"


def new_user_hash() -> bytes:
    raw = bytearray(os.urandom(16))
    if raw[5] == 14 and raw[14] == 111:
        raw[14] = 0  # never the eMule marker: see the module docstring
    return bytes(raw)


def default_state_path() -> Path:
    """$XDG_STATE_HOME/atalaya/ed2k.json (~/.local/state/atalaya/ed2k.json)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "atalaya" / "ed2k.json"


def load_user_hash(path: Path) -> bytes:
    """The user hash kept in `path`, made and saved there on first use."""
    try:
        data = json.loads(path.read_text())
        value = bytes.fromhex(data["user_hash"])
        if len(value) == 16:
            return value
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value = new_user_hash()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"user_hash": value.hex()}) + "\n")
    partial.replace(path)
    return value


class Obfuscate(StrEnum):
    """When a probe opens an obfuscated connection (the peer's user hash known)."""

    AUTO = "auto"  # the source asks for it (Kad connect options), or the operator named its hash
    ALWAYS = "always"  # whenever the peer's user hash is known
    NEVER = "never"


@dataclass(frozen=True)
class Ed2kConfig:
    sources: tuple[tuple[str, int], ...]
    # The user hash an operator gave for a source (`--source IP:PORT/HASH`).
    source_user_hashes: Mapping[tuple[str, int], bytes] = field(default_factory=dict)
    obfuscate: Obfuscate = Obfuscate.AUTO
    bind_ip: str | None = None
    interval: float = 300.0
    max_concurrent: int = 8
    timeouts: ProbeTimeouts = field(default_factory=ProbeTimeouts)
    user_hash: bytes = field(default_factory=new_user_hash)
    # A probe that stalls (no answer in a phase, or the peer hangs up) is
    # asked once more after a pause: a busy peer tears down our previous
    # connection to it while it accepts the next, and then sends nothing.
    stall_retries: int = 1
    retry_pause: float = 3.0
    # Between two probes of one peer: aMule ends our last upload session
    # when it gets to it, and ending it after it has accepted the next one
    # leaves that one without data.
    peer_pause: float = 1.0
    # Kad nodes to bootstrap from: each round, every target's sources are
    # searched in Kad and probed (LowID ones recorded, never probed).
    kad_bootstrap: tuple[tuple[str, int], ...] = ()
    kad: KadSearchConfig = field(default_factory=KadSearchConfig)


@dataclass
class Ed2kStats:
    targets: int = 0
    sources: int = 0
    rounds: int = 0
    probed: int = 0
    holding: int = 0
    verified: int = 0
    failed_verification: int = 0
    not_sharing: int = 0
    unreachable: int = 0
    sightings: int = 0
    aich_proofs: int = 0
    unprobed: int = 0  # found (by Kad) but not probed: LowID / firewalled
    retried: int = 0  # probes asked again after a stall
    kad_searches: int = 0
    kad_sources: int = 0  # distinct sources Kad gave (reachable or not)
    kad_malformed: int = 0  # Kad datagrams dropped as unreadable
    obfuscated: int = 0  # probes over an obfuscated connection
    plain_fallbacks: int = 0  # obfuscation handshakes failed, asked again in plain eD2K


def _target_attributes(
    engine: Engine, targets: Sequence[WatchTarget]
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Each target's eD2K hash with the attributes its hash set record carries."""
    keys = {t.file_key: t.value for t in targets if t.file_key}
    if not keys:
        return
    with engine.connect() as conn:
        files = lookup.files_by_keys(conn, keys)
    for file in files:
        if isinstance(file.attributes, dict):
            yield keys[file.file_key], file.attributes


def file_sizes(engine: Engine, targets: Sequence[WatchTarget]) -> dict[bytes, int]:
    """Sizes the hash sets state for the targets' files (VICS `MediaSize`)."""
    sizes: dict[bytes, int] = {}
    for value_key, attributes in _target_attributes(engine, targets):
        for name in _SIZE_ATTRIBUTES:
            value = attributes.get(name)
            if isinstance(value, int) and value > 0:
                sizes[value_key] = value
                break
            if isinstance(value, str) and value.isascii() and value.isdigit():
                sizes[value_key] = int(value)
                break
    return sizes


def aich_masters(engine: Engine, targets: Sequence[WatchTarget]) -> dict[bytes, bytes]:
    """AICH master hashes the hash sets give for the targets' files (hex or base32)."""
    found: dict[bytes, bytes] = {}
    for value_key, attributes in _target_attributes(engine, targets):
        for name in _AICH_ATTRIBUTES:
            value = _aich_value(attributes.get(name))
            if value is not None:
                found[value_key] = value
                break
    return found


def _aich_value(value: object) -> bytes | None:
    if not isinstance(value, str) or not value.isascii():
        return None
    try:
        if len(value) == 40:
            return bytes.fromhex(value)
        if len(value) == 32:
            return base64.b32decode(value.upper())
    except (ValueError, binascii.Error):
        return None
    return None


class Ed2kObserver:
    def __init__(
        self,
        engine: Engine,
        targets: Sequence[WatchTarget],
        sizes: dict[bytes, int],
        config: Ed2kConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        on_update: Callable[[Ed2kStats], None] | None = None,
        aich: dict[bytes, tuple[bytes, str]] | None = None,
    ) -> None:
        self.engine = engine
        self.targets = [t for t in targets if t.kind == ED2K and len(t.value) == 16]
        self.sizes = sizes
        # By file hash: the trusted AICH master hash and where it came from.
        self.aich = aich or {}
        self.config = config
        self.clock = clock
        self.on_update = on_update
        self.run_id = new_run_id()
        self.stats = Ed2kStats(targets=len(self.targets), sources=len(config.sources))
        self._writer = SightingWriter(engine)
        self._kad: KadClient | None = None

    async def run(self, *, duration: float | None, stop: asyncio.Event | None = None) -> Ed2kStats:
        if self.config.kad_bootstrap and self._kad is None:
            self._kad = KadClient(self.config.bind_ip or "0.0.0.0", config=self.config.kad)  # noqa: S104
            await self._kad.start()
        try:
            return await self._run(duration, stop)
        finally:
            if self._kad is not None:
                self._kad.close()
                self._kad = None

    async def _run(self, duration: float | None, stop: asyncio.Event | None) -> Ed2kStats:
        stop = stop or asyncio.Event()
        ends = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            await self._round(stop, ends)
            if self._kad is not None:
                await self._kad_round(self._kad, stop, ends)
            self.stats.rounds += 1
            wait = self.config.interval
            if ends is not None:
                wait = min(wait, ends - time.monotonic())
            if wait <= 0:
                break
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                continue
        return self.stats

    async def _round(self, stop: asyncio.Event, ends: float | None) -> None:
        gate = asyncio.Semaphore(self.config.max_concurrent)

        async def one_source(source: tuple[str, int]) -> None:
            # One connection at a time per peer: aMule refuses a second one
            # from the same client while the first is open.
            async with gate:
                for index, target in enumerate(self.targets):
                    if stop.is_set() or (ends is not None and time.monotonic() >= ends):
                        return
                    if index:
                        await asyncio.sleep(self.config.peer_pause)
                    await self.probe(source, target)

        await asyncio.gather(*(one_source(s) for s in self.config.sources))

    async def _kad_round(self, client: KadClient, stop: asyncio.Event, ends: float | None) -> None:
        """Search each target's sources in Kad and probe them, one target after another."""
        for target in self.targets:
            if stop.is_set() or (ends is not None and time.monotonic() >= ends):
                return
            await self.kad_target(client, target, stop, ends)

    async def kad_target(
        self, client: KadClient, target: WatchTarget, stop: asyncio.Event, ends: float | None
    ) -> KadRound:
        """One Kad search for `target`; every reachable source probed, LowID ones recorded."""
        found = await client.find_sources(
            target.value, self.sizes.get(target.value, 0), self.config.kad_bootstrap
        )
        self.stats.kad_searches += 1
        self.stats.kad_sources += len(found.sources)
        self.stats.kad_malformed += found.malformed
        for item in found.firewalled:
            source = item.source
            if source.ip is None:
                continue  # nothing to record a sighting against
            node = f"{item.node[0]}:{item.node[1]}"
            facts = {
                "user_hash": source.user_hash.hex(),
                "kad_node": node,
                "crypt_options": source.crypt_options,
            }
            self.record_unprobed(
                source.ip, source.tcp_port or 0, target, found_by="kad",
                reason=f"low_id: Kad source type {source.source_type} (firewalled)", facts=facts,
            )  # fmt: skip
        gate = asyncio.Semaphore(self.config.max_concurrent)

        async def one(
            endpoint: tuple[str, int], user_hash: bytes, crypt: int
        ) -> Ed2kProbeResult | None:
            async with gate:
                if stop.is_set() or (ends is not None and time.monotonic() >= ends):
                    return None
                return await self.probe(
                    endpoint, target, found_by="kad", peer_hash=user_hash, crypt_options=crypt
                )

        endpoints: dict[tuple[str, int], tuple[bytes, int]] = {}
        for item in found.reachable:
            if item.source.ip is not None and item.source.tcp_port:
                endpoint = (item.source.ip, item.source.tcp_port)
                endpoints.setdefault(endpoint, (item.source.user_hash, item.source.crypt_options))
        results = await asyncio.gather(
            *(one(endpoint, *endpoints[endpoint]) for endpoint in sorted(endpoints))
        )
        return KadRound(found, [r for r in results if r is not None])

    def obfuscate_for(
        self, source: tuple[str, int], peer_hash: bytes | None, crypt_options: int | None
    ) -> bytes | None:
        """The user hash to key an obfuscated connection with, or None for plain eD2K.

        `crypt_options` None: the source came from the operator, who named
        its user hash (or not) for a reason.
        """
        peer_hash = peer_hash or self.config.source_user_hashes.get(source)
        mode = self.config.obfuscate
        if peer_hash is None or mode is Obfuscate.NEVER:
            return None
        if mode is Obfuscate.ALWAYS or crypt_options is None:
            return peer_hash
        return peer_hash if wants_obfuscation(crypt_options) else None

    async def probe(
        self,
        source: tuple[str, int],
        target: WatchTarget,
        found_by: str = "operator",
        *,
        peer_hash: bytes | None = None,
        crypt_options: int | None = None,
    ) -> Ed2kProbeResult:
        """Probe one source for one target and record what it showed.

        `peer_hash` and `crypt_options` are what Kad said of the source.
        """
        master = self.aich.get(target.value)
        key = self.obfuscate_for(source, peer_hash, crypt_options)
        # A source Kad says supports obfuscation but does not require it is
        # reachable in plain eD2K when the handshake fails (a stale user hash).
        fallback = (
            key is not None
            and self.config.obfuscate is Obfuscate.AUTO
            and crypt_options is not None
            and not requires_obfuscation(crypt_options)
        )
        attempts = 1 + max(0, self.config.stall_retries)
        attempt = 0
        while attempt < attempts:
            if attempt:
                self.stats.retried += 1
                await asyncio.sleep(self.config.retry_pause)
            attempt += 1
            result = await probe_peer(
                source[0],
                source[1],
                target.value,
                file_size=self.sizes.get(target.value),
                user_hash=self.config.user_hash,
                bind_ip=self.config.bind_ip,
                timeouts=self.config.timeouts,
                clock=self.clock,
                aich_master=master[0] if master else None,
                obfuscate_for=key,
            )
            if fallback and _handshake_failed(result):
                self.stats.plain_fallbacks += 1
                key, fallback = None, False
                await asyncio.sleep(self.config.peer_pause)
                attempt -= 1  # the plain try is not a stall retry
                continue
            if not _stalled(result):
                break
        self._record(result, target, found_by)
        return result

    def record_unprobed(
        self,
        ip: str,
        port: int,
        target: WatchTarget,
        *,
        found_by: str,
        reason: str,
        facts: dict[str, Any] | None = None,
    ) -> int:
        """Record a source that was found but could not be probed (LowID, firewalled).

        It is a sighting with no proof and no claim of what it holds
        (`have_fraction` empty); `details.probed` is false and says why.
        """
        record = unprobed_sighting(
            ip, port, target, self.run_id, seen_at=self.clock(), found_by=found_by, reason=reason,
            facts=facts,
        )  # fmt: skip
        written = self._writer.write([record])
        self.stats.unprobed += written
        self.stats.sightings += written
        if self.on_update is not None:
            self.on_update(self.stats)
        return written

    def _record(self, result: Ed2kProbeResult, target: WatchTarget, found_by: str) -> None:
        self.stats.probed += 1
        self.stats.obfuscated += int(result.obfuscated)
        error = result.error
        if error is not None and error.kind in (
            ProbeErrorKind.REFUSED,
            ProbeErrorKind.UNREACHABLE,
        ):
            self.stats.unreachable += 1
        elif error is not None and error.kind is ProbeErrorKind.NO_FILE and not result.parts_held:
            self.stats.not_sharing += 1
        master = self.aich.get(target.value)
        sighting = to_sighting(
            result,
            target,
            self.run_id,
            found_by,
            file_size=self.sizes.get(target.value),
            aich_source=master[1] if master else None,
        )
        if sighting is not None:
            self.stats.holding += 1
            self.stats.verified += int(result.proof)
            self.stats.aich_proofs += int(result.proof and result.proof_kind == "aich_block")
            self.stats.failed_verification += int(result.parts_failed > 0)
            self.stats.sightings += self._writer.write([sighting])
        if self.on_update is not None:
            self.on_update(self.stats)


@dataclass(frozen=True)
class KadRound:
    """One target's Kad search and the probes of the sources it found."""

    search: KadSearchResult
    probes: list[Ed2kProbeResult]


def _handshake_failed(result: Ed2kProbeResult) -> bool:
    """The peer was reached but the obfuscation handshake did not complete."""
    error = result.error
    return (
        error is not None
        and error.phase == "obfuscation"
        and error.kind in (ProbeErrorKind.CLOSED, ProbeErrorKind.PROTOCOL, ProbeErrorKind.TIMEOUT)
    )


def _stalled(result: Ed2kProbeResult) -> bool:
    """A probe that got under way and then stopped hearing from the peer.

    Only a peer that answered the hello counts: one that never answered is
    unreachable, and asking again at once would not change that.
    """
    error = result.error
    return (
        error is not None
        and error.kind in (ProbeErrorKind.TIMEOUT, ProbeErrorKind.CLOSED)
        and result.hello_at is not None
        and not result.proof
    )


def unprobed_sighting(
    ip: str,
    port: int,
    target: WatchTarget,
    run_id: str,
    *,
    seen_at: datetime,
    found_by: str,
    reason: str,
    facts: dict[str, Any] | None = None,
) -> Sighting:
    """A source found (by Kad) that could not be probed: never proof, never a claim of parts."""
    details: dict[str, Any] = {"probed": False, "reason": reason[:300]}
    details.update(facts or {})
    return Sighting(
        network=NETWORK,
        item_kind=ED2K,
        item_value=target.hex,
        ip=ip,
        port=port,
        seen_at=seen_at,
        found_by=found_by,
        run_id=run_id,
        file_key=target.file_key,
        category=target.category,
        hash_set=target.hash_set,
        hash_set_sha256=target.hash_set_sha256,
        details=details,
    )


def to_sighting(
    result: Ed2kProbeResult,
    target: WatchTarget,
    run_id: str,
    found_by: str = "operator",
    *,
    file_size: int | None = None,
    aich_source: str | None = None,
) -> Sighting | None:
    """The sighting a probe makes: only a peer that answered with the file's part map.

    The time is when the peer's hello answer arrived; the port is the one we
    connected to (the client's own TCP port). Its transcript says what was
    exchanged and checked (`atalaya.observe.ed2k.transcript`).
    """
    if result.hello_at is None or result.have_fraction is None or result.user_hash is None:
        return None
    details: dict[str, Any] = {
        "user_hash": result.user_hash.hex(),
        "client_id": result.client_id,
        "low_id": result.low_id,
        "client_port": result.client_port,
        "nick": result.nick[:100] if result.nick else None,
        "parts_total": result.parts_total,
        "parts_held": result.parts_held,
        "verified_part": result.verified_part,
        "proof_kind": result.proof_kind,
        "queue_rank": result.queue_rank,
        "aich_version": result.aich_version,
        "obfuscated": result.obfuscated,
        "probed": True,
    }
    if result.aich_note:
        details["aich_note"] = result.aich_note[:300]
    if result.error is not None:
        details["error"] = {
            "kind": str(result.error.kind),
            "phase": result.error.phase,
            "detail": result.error.detail[:300],
        }
    return Sighting(
        network=NETWORK,
        item_kind=ED2K,
        item_value=target.hex,
        ip=result.ip,
        port=result.port,
        seen_at=result.hello_at,
        found_by=found_by,
        run_id=run_id,
        client=result.client,
        peer_id=result.user_hash.hex(),
        advertised_name=result.file_name,
        have_fraction=result.have_fraction,
        pieces_verified=result.parts_verified,
        pieces_failed=result.parts_failed,
        bytes_downloaded=result.bytes_downloaded,
        file_key=target.file_key,
        category=target.category,
        hash_set=target.hash_set,
        hash_set_sha256=target.hash_set_sha256,
        local_ip=result.local_ip,
        local_port=result.local_port,
        # The whole one-part file hashed to its eD2K hash is the known file's
        # own hash recomputed; a part against the hash set, or one AICH block
        # against the reference master hash, is a piece proof
        # (details.proof_kind says which).
        proof_kind=(
            None
            if not result.proof
            else "full_file"
            if result.proof_kind == "file_md4"
            else "pieces"
        ),
        details=details,
        transcript=encode_transcript(
            result, item_value=target.hex, file_size=file_size, aich_source=aich_source
        ),
    )
