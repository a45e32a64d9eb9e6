"""The eD2K observer and peers that obfuscate: fake peers on loopback that require or support it."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from sqlalchemy import Engine, select

from atalaya.errors import AtalayaError
from atalaya.hashsets.algorithms import ED2K
from atalaya.lab.ed2k_peer import FakeEd2kPeer, PeerObfuscation
from atalaya.networks.ed2k.obfuscation import CRYPT_REQUESTED, CRYPT_REQUIRED, CRYPT_SUPPORTED
from atalaya.networks.ed2k.probe import ProbeErrorKind, ProbeTimeouts
from atalaya.observe.ed2k.cli import parse_ed2k_source
from atalaya.observe.ed2k.observer import Ed2kConfig, Ed2kObserver, Obfuscate
from atalaya.observe.ed2k.probe import Ed2kProbeResult
from atalaya.observe.watchlist import WatchTarget
from atalaya.store.tables import proof_transcript, sighting

CONTENT = random.Random(15).randbytes(123_456)
PEER_HASH = bytes(range(100, 116))
TIMEOUTS = ProbeTimeouts(connect=5.0, hello=5.0, file=5.0, upload=5.0, block=5.0, total=20.0)
SUPPORTED_AND_REQUESTED = 0x03


async def _probe(
    engine: Engine,
    ip: str,
    obfuscation: PeerObfuscation,
    *,
    mode: Obfuscate = Obfuscate.AUTO,
    operator_hash: bytes | None = None,
    kad: tuple[bytes, int] | None = None,
) -> tuple[Ed2kObserver, Ed2kProbeResult, FakeEd2kPeer]:
    peer = FakeEd2kPeer(
        ip, CONTENT, user_hash=PEER_HASH, connection_lifetime=10.0, obfuscation=obfuscation
    )
    async with peer:
        target = WatchTarget("ed2k", ED2K, peer.file_hash, "test", file_key=None)
        endpoint = (peer.ip, peer.port)
        config = Ed2kConfig(
            (endpoint,),
            source_user_hashes={endpoint: operator_hash} if operator_hash else {},
            obfuscate=mode,
            timeouts=TIMEOUTS,
            retry_pause=0.2,
            peer_pause=0.2,
        )
        observer = Ed2kObserver(engine, [target], {peer.file_hash: len(CONTENT)}, config)
        if kad is None:
            result = await observer.probe(endpoint, target)
        else:
            result = await observer.probe(
                endpoint, target, found_by="kad", peer_hash=kad[0], crypt_options=kad[1]
            )
        return observer, result, peer


def test_a_peer_that_requires_obfuscation_is_proven_with_its_user_hash(engine: Engine) -> None:
    observer, result, peer = asyncio.run(
        _probe(engine, "127.0.0.140", "required", operator_hash=PEER_HASH)
    )
    assert result.proof and result.obfuscated, result.error
    assert observer.stats.obfuscated == 1 and peer.obfuscated_connections == 1
    with engine.connect() as conn:
        row = conn.execute(select(sighting)).mappings().one()
        body = conn.execute(select(proof_transcript.c.body)).scalar_one()
    assert row["proof"] and row["details"]["obfuscated"] is True
    assert json.loads(bytes(body))["obfuscated"] is True


def test_without_its_user_hash_it_hangs_up_and_nothing_is_sighted(engine: Engine) -> None:
    observer, result, peer = asyncio.run(_probe(engine, "127.0.0.141", "required"))
    assert result.error is not None and result.error.kind is ProbeErrorKind.CLOSED
    assert result.error.phase == "hello" and not result.obfuscated
    assert observer.stats.sightings == 0 and peer.obfuscated_connections == 0


def test_a_plain_peer_is_still_probed_plain(engine: Engine) -> None:
    observer, result, _ = asyncio.run(_probe(engine, "127.0.0.142", "none"))
    assert result.proof and not result.obfuscated and observer.stats.obfuscated == 0
    with engine.connect() as conn:
        row = conn.execute(select(sighting)).mappings().one()
    assert row["details"]["obfuscated"] is False


def test_a_kad_source_that_asks_for_it_gets_it(engine: Engine) -> None:
    observer, result, peer = asyncio.run(
        _probe(engine, "127.0.0.143", "supported", kad=(PEER_HASH, SUPPORTED_AND_REQUESTED))
    )
    assert result.proof and result.obfuscated and peer.obfuscated_connections == 1
    assert observer.stats.plain_fallbacks == 0


def test_a_stale_user_hash_falls_back_to_plain_when_not_required(engine: Engine) -> None:
    stale = bytes(16)
    observer, result, peer = asyncio.run(
        _probe(engine, "127.0.0.144", "supported", kad=(stale, SUPPORTED_AND_REQUESTED))
    )
    assert result.proof and not result.obfuscated
    assert observer.stats.plain_fallbacks == 1 and peer.connections == 2


def test_no_plain_fallback_for_a_source_that_requires_it(engine: Engine) -> None:
    stale = bytes(16)
    observer, result, peer = asyncio.run(
        _probe(engine, "127.0.0.145", "required", kad=(stale, 0x07))
    )
    assert not result.proof and result.error is not None
    assert result.error.phase == "obfuscation"
    assert observer.stats.plain_fallbacks == 0 and peer.connections == 1


@pytest.mark.parametrize(
    ("mode", "operator", "kad", "expected"),
    [
        (Obfuscate.AUTO, None, None, False),  # an operator source, hash unknown
        (Obfuscate.AUTO, PEER_HASH, None, True),  # the operator named the hash
        (Obfuscate.AUTO, None, (PEER_HASH, 0), False),  # Kad: no crypt options
        (Obfuscate.AUTO, None, (PEER_HASH, CRYPT_SUPPORTED), False),  # supports, not asked
        (Obfuscate.AUTO, None, (PEER_HASH, SUPPORTED_AND_REQUESTED), True),
        (Obfuscate.AUTO, None, (PEER_HASH, CRYPT_SUPPORTED | CRYPT_REQUIRED), True),
        (Obfuscate.AUTO, None, (PEER_HASH, CRYPT_REQUESTED), True),  # aMule 2.3.3's default
        (Obfuscate.AUTO, None, (PEER_HASH, CRYPT_REQUIRED), True),  # 2.3.3 requiring it
        (Obfuscate.ALWAYS, None, (PEER_HASH, 0), True),
        (Obfuscate.ALWAYS, None, None, False),  # no hash: nothing to key it with
        (Obfuscate.NEVER, PEER_HASH, (PEER_HASH, 0x07), False),
    ],
)
def test_when_a_probe_is_obfuscated(
    engine: Engine,
    mode: Obfuscate,
    operator: bytes | None,
    kad: tuple[bytes, int] | None,
    expected: bool,
) -> None:
    source = ("192.0.2.7", 4662)
    config = Ed2kConfig(
        (source,), source_user_hashes={source: operator} if operator else {}, obfuscate=mode
    )
    observer = Ed2kObserver(engine, [], {}, config)
    key = observer.obfuscate_for(source, *(kad if kad else (None, None)))
    assert (key == PEER_HASH) if expected else key is None


def test_source_with_a_user_hash_on_the_command_line() -> None:
    assert parse_ed2k_source("192.0.2.7:4662") == ("192.0.2.7", 4662, None)
    text = "192.0.2.7:4662/" + PEER_HASH.hex().upper()
    assert parse_ed2k_source(text) == ("192.0.2.7", 4662, PEER_HASH)
    for bad in ("192.0.2.7:4662/abc", "192.0.2.7:4662/" + "zz" * 16, "192.0.2.7/" + "00" * 16):
        with pytest.raises(AtalayaError):
            parse_ed2k_source(bad)
