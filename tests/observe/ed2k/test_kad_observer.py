"""`Ed2kObserver` with Kad: sources a (fake) Kad node gives are probed; LowID ones only recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

from sqlalchemy import Engine, select

from atalaya.hashsets.algorithms import ED2K
from atalaya.lab.ed2k_peer import FakeEd2kPeer
from atalaya.networks.ed2k import kad
from atalaya.networks.ed2k.probe import ProbeTimeouts
from atalaya.networks.ed2k.tags import Tag
from atalaya.observe.ed2k.cli import parse_source
from atalaya.observe.ed2k.observer import Ed2kConfig, Ed2kObserver
from atalaya.observe.watchlist import WatchTarget
from atalaya.store.tables import sighting
from tests.observe.ed2k.test_kad_search import FAST, FakeNode, source_tags
from tests.support.cli import run_atalaya

CONTENT = random.Random(15).randbytes(200_000)
TIMEOUTS = ProbeTimeouts(
    connect=5.0, hello=5.0, file=5.0, hashset=5.0, upload=5.0, block=5.0, total=20.0
)


def test_kad_sources_are_probed_and_lowid_ones_recorded_unprobed(engine: Engine) -> None:
    async def body() -> None:
        async with FakeEd2kPeer("127.0.0.31", CONTENT, user_hash=bytes([7]) * 16) as peer:
            target = WatchTarget("ed2k", ED2K, peer.file_hash, "test", file_key=None)
            node = FakeNode("127.0.0.32", kad.kad_id_from_hash(peer.file_hash) ^ 1)
            lowid = (Tag.uint(kad.TAG_SOURCETYPE, 5), *source_tags("127.0.0.33", 4662)[1:])
            node.sources = [
                kad.SearchResult(
                    kad.kad_id_from_hash(peer.user_hash), source_tags(peer.ip, peer.port)
                ),
                kad.SearchResult(kad.kad_id_from_hash(bytes([9]) * 16), lowid),
            ]
            await node.start()
            try:
                config = Ed2kConfig(
                    (),
                    bind_ip="127.0.0.1",
                    timeouts=TIMEOUTS,
                    kad_bootstrap=((node.ip, node.port),),
                    kad=dataclasses.replace(FAST, total_timeout=5.0),
                )
                stop = asyncio.Event()
                observer = Ed2kObserver(
                    engine,
                    [target],
                    {peer.file_hash: len(CONTENT)},
                    config,
                    on_update=lambda s: stop.set() if s.probed else None,
                )
                stats = await observer.run(duration=60.0, stop=stop)
            finally:
                node.close()
        assert stats.kad_searches == 1 and stats.kad_sources == 2
        assert stats.verified == 1 and stats.unprobed == 1
        with engine.connect() as conn:
            rows = {r["ip"]: r for r in conn.execute(select(sighting)).mappings()}
        assert rows[peer.ip]["proof"] and rows[peer.ip]["found_by"] == "kad"
        assert rows[peer.ip]["peer_id"] == peer.user_hash.hex()
        low = rows["127.0.0.33"]
        assert not low["proof"] and low["have_fraction"] is None
        assert low["details"]["probed"] is False and "low_id" in low["details"]["reason"]
        assert low["details"]["user_hash"] == (bytes([9]) * 16).hex()

    asyncio.run(body())


def test_watch_ed2k_needs_sources_or_kad_nodes_and_reads_them(tmp_path: Path) -> None:
    env = {"ATALAYA_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    assert run_atalaya("init", env=env).returncode == 0
    done = run_atalaya("watch", "ed2k", env=env)
    assert done.returncode != 0 and "--kad-bootstrap IPV4:PORT" in done.stderr
    done = run_atalaya("watch", "ed2k", "--kad-bootstrap", "not-a-node", env=env)
    assert done.returncode != 0 and "--kad-bootstrap 'not-a-node'" in done.stderr
    assert parse_source("100.64.0.2:4672", "--kad-bootstrap") == ("100.64.0.2", 4672)
