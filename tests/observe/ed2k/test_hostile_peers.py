"""The eD2K observer against fake peers on loopback: each hostile one costs only itself.

Every behaviour of `atalaya.lab.ed2k_peer` is a source of the same watched
file beside one honest peer; the run ends within its bounded probe
timeouts, the honest peer is sighted with proof and transcript, and no
hostile peer is sighted with proof.
"""

from __future__ import annotations

import asyncio
import json
import random
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import Engine, select

from atalaya.evidence.verify_ed2k import check_ed2k_transcript
from atalaya.evidence.verify_pieces import PieceCheck
from atalaya.hashsets.algorithms import ED2K
from atalaya.lab.ed2k_peer import BEHAVIOURS, FakeEd2kPeer
from atalaya.networks.ed2k.aich import BLOCK_SIZE
from atalaya.networks.ed2k.probe import ProbeTimeouts
from atalaya.observe.ed2k.observer import AICH_FROM_LINK, Ed2kConfig, Ed2kObserver
from atalaya.observe.watchlist import WatchTarget
from atalaya.store.tables import proof_transcript, sighting

CONTENT = random.Random(14).randbytes(2 * BLOCK_SIZE + 4321)
# Generous for a loaded machine, and still what bounds the staller.
TIMEOUTS = ProbeTimeouts(
    connect=5.0, hello=5.0, file=5.0, hashset=5.0, upload=5.0, block=5.0, total=20.0
)


async def _observe(
    engine: Engine, behaviours: tuple[str, ...], *, aich: bool
) -> tuple[Ed2kObserver, dict[str, FakeEd2kPeer]]:
    async with AsyncExitStack() as stack:
        peers: dict[str, FakeEd2kPeer] = {}
        for n, behaviour in enumerate(behaviours):
            peer = FakeEd2kPeer(
                f"127.0.0.{120 + n}", CONTENT, behaviour,  # type: ignore[arg-type]
                user_hash=bytes([n]) * 16, connection_lifetime=10.0,
            )  # fmt: skip
            peers[behaviour] = await stack.enter_async_context(peer)
        honest = peers["honest"]
        target = WatchTarget("ed2k", ED2K, honest.file_hash, "test", file_key=None)
        config = Ed2kConfig(
            tuple((p.ip, p.port) for p in peers.values()),
            interval=600.0,
            max_concurrent=len(peers),
            timeouts=TIMEOUTS,
            retry_pause=0.5,
        )
        done = asyncio.Event()
        observer = Ed2kObserver(
            engine,
            [target],
            {honest.file_hash: len(CONTENT)},
            config,
            aich={honest.file_hash: (honest.master, AICH_FROM_LINK)} if aich else None,
            on_update=lambda stats: done.set() if stats.probed == len(peers) else None,
        )
        # One round: every probe is bounded by TIMEOUTS.total; the outer
        # bound only keeps a broken test from hanging.
        await asyncio.wait_for(observer.run(duration=60.0, stop=done), 90.0)
        return observer, peers


@pytest.mark.parametrize("aich", [True, False], ids=["aich", "md4"])
def test_hostile_peers_cost_only_themselves(engine: Engine, aich: bool) -> None:
    observer, peers = asyncio.run(_observe(engine, BEHAVIOURS, aich=aich))
    assert observer.stats.probed == len(BEHAVIOURS)
    with engine.connect() as conn:
        rows = conn.execute(select(sighting).order_by(sighting.c.id)).mappings().all()
        t = proof_transcript.c
        bodies = {int(r[0]): bytes(r[1]) for r in conn.execute(select(t.sighting_id, t.body))}
    by_ip = {r["ip"]: r for r in rows}
    honest = by_ip[peers["honest"].ip]
    assert honest["proof"] and honest["proof_kind"] == ("pieces" if aich else "full_file")
    assert honest["details"]["proof_kind"] == ("aich_block" if aich else "file_md4")
    proven = {r["ip"] for r in rows if r["proof"]}
    # The AICH liar's tree is refused, and its bytes are good: the part MD4
    # proves it. The peer that stalled once is asked again and proven.
    assert proven == {peers["honest"].ip, peers["aich_liar"].ip, peers["stalls_once"].ip}
    assert peers["stalls_once"].connections == 2 and observer.stats.retried == 1
    liar = by_ip[peers["liar"].ip]
    assert not liar["proof"] and liar["pieces_failed"] == 1
    for behaviour in ("malformed", "oversized_tags", "oversized_packet", "zlib_bomb", "staller"):
        assert peers[behaviour].ip not in by_ip, behaviour
    # Every sighting's transcript re-checks offline, the liar's as a failure.
    checked = PieceCheck()
    for row in rows:
        check_ed2k_transcript(json.loads(bodies[row["id"]]), str(row["id"]), checked)
    assert checked.problems == [] and checked.failed == 1 and checked.verified == 3


def test_the_fake_peer_refuses_addresses_off_loopback() -> None:
    with pytest.raises(ValueError, match="127"):
        FakeEd2kPeer("192.0.2.1", CONTENT)
