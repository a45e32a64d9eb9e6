"""The eD2K observer finds sources in a Kad network of real aMule 2.3.3 daemons and proves them.

Five aMule daemons, each on a host of a namespace lab (aMule's Kad refuses
127/8), form a Kad network: a seed of the watched file, a node holding two
of its three parts, a bystander sharing an unwatched file, a downloader
holding nothing, a relay. Kad source searches toward the watched file's Kad
id find the seed and the partial node; each is probed and proven by a part
downloaded from it alone, the partial one with its true share (2 of 3
parts); the others are never sighted. A sighting's user hash, client and
port are what aMule says about itself; the user hash Kad gave as the source
is the same one. The seed requires protocol obfuscation: it is proven only
because the probe keys obfuscation from that user hash, as the connect
options Kad publishes with the source ask.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from atalaya.hashsets.algorithms import ED2K
from atalaya.hashsets.importer import import_hash_set
from atalaya.lab.amule_kad import PARTIAL_PARTS, WATCHED_NAME, WATCHED_SIZE, AmuleKadLab
from atalaya.networks.ed2k.obfuscation import requires_obfuscation, wants_obfuscation
from atalaya.networks.ed2k.probe import ProbeTimeouts
from atalaya.observe.ed2k.kad_search import KadClient, KadSearchConfig
from atalaya.observe.ed2k.network import ED2K_NETWORK
from atalaya.observe.ed2k.observer import Ed2kConfig, Ed2kObserver
from atalaya.observe.watchlist import load_targets
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import sighting
from tests.lab.netns_support import assert_gone, require_netns_here
from tests.support.cli import run_atalaya, spawn_atalaya

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(1200)]

# Seen: the lab is ready (every sharer past its firewall check) in ~130 s,
# its sources are in Kad ~100 s later, a search takes ~5 s.
SOURCES_TIMEOUT = 420.0
SEARCH_EVERY = 35.0  # over aMule's flood limit for source searches from one address


def test_kad_finds_and_the_observer_proves_both_sharers_and_no_one_else(tmp_path: Path) -> None:
    require_netns_here("amuled", "amulecmd")
    lab = AmuleKadLab(tmp_path / "lab")
    tag = lab.netns.tag
    begin = time.monotonic()
    with lab:
        assert lab.files is not None
        ready = time.monotonic() - begin
        listing = tmp_path / "ed2k.txt"
        listing.write_text(lab.files.watched_hash.hex() + "\n")
        engine = create_store_engine(f"sqlite:///{tmp_path / 'atalaya.db'}")
        upgrade(engine)
        import_hash_set(engine, listing, fmt="lines", algorithm=ED2K, category="A")
        targets = load_targets(engine, ED2K_NETWORK)
        assert [t.value for t in targets] == [lab.files.watched_hash]
        config = Ed2kConfig(
            (),
            bind_ip=lab.observer_ip,
            user_hash=os.urandom(16),
            timeouts=ProbeTimeouts(total=90.0),
            kad_bootstrap=tuple(lab.bootstrap),
            kad=KadSearchConfig(total_timeout=30.0),
        )
        observer = Ed2kObserver(engine, targets, {lab.files.watched_hash: WATCHED_SIZE}, config)
        sharers = {lab.nodes["seed"].ip, lab.nodes["partial"].ip}
        found_at: float | None = None
        kad_users: dict[str, bytes] = {}
        kad_crypt: dict[str, int] = {}

        async def search_and_probe() -> None:
            nonlocal found_at
            stop = asyncio.Event()
            async with KadClient(lab.observer_ip, config=config.kad) as client:
                deadline = time.monotonic() + SOURCES_TIMEOUT
                while time.monotonic() < deadline:
                    done = await observer.kad_target(client, targets[0], stop, None)
                    for item in done.search.sources:
                        if item.source.ip is not None:
                            kad_users[item.source.ip] = item.source.user_hash
                            kad_crypt[item.source.ip] = item.source.crypt_options
                    proven = {r.ip for r in done.probes if r.proof}
                    if sharers <= proven:
                        found_at = time.monotonic() - begin
                        return
                    await asyncio.sleep(SEARCH_EVERY)

        asyncio.run(search_and_probe())
        assert found_at is not None, (
            f"Kad sources not proven in {SOURCES_TIMEOUT:.0f} s after the lab was ready "
            f"({observer.stats})"
        )
        with engine.connect() as conn:
            rows = conn.execute(select(sighting)).mappings().all()
        by_ip: dict[str, list[dict[str, object]]] = {}
        for found in rows:
            by_ip.setdefault(str(found["ip"]), []).append(dict(found))
        # Only the two sharers were ever sighted (no unprobed LowID records either).
        assert set(by_ip) == sharers, set(by_ip)
        for name, share in (("seed", 1.0), ("partial", len(PARTIAL_PARTS) / 3)):
            node = lab.nodes[name]
            proven = [r for r in by_ip[node.ip] if r["proof"]]
            assert proven, by_ip[node.ip]
            row = proven[-1]
            assert row["found_by"] == "kad"
            assert row["peer_id"] == node.user_hash().hex()
            assert row["client"] == "aMule 2.3.3" and row["port"] == node.port
            assert row["have_fraction"] == pytest.approx(share)
            details = row["details"]
            assert isinstance(details, dict)
            assert details["parts_held"] == (3 if name == "seed" else len(PARTIAL_PARTS))
            assert details["verified_part"] in (range(3) if name == "seed" else PARTIAL_PARTS)
            # Kad named the source by the user hash aMule has.
            assert kad_users[node.ip] == node.user_hash()
            # Both ask for obfuscation (the seed requires it), and got it.
            assert wants_obfuscation(kad_crypt[node.ip]) and details["obfuscated"] is True
        assert requires_obfuscation(kad_crypt[lab.nodes["seed"].ip])
        assert observer.stats.obfuscated >= 2
        assert observer.stats.kad_malformed == 0
        engine.dispose()
        cli_seconds = _watch_from_the_command_line(tmp_path, lab, config.user_hash, sharers)
    assert_gone(tag)
    print(
        f"lab ready in {ready:.0f} s (Kad reconnected on {lab.rechecks or 'none'}); "
        "both sharers found by Kad and proven "
        f"{found_at:.0f} s after start; {observer.stats.kad_searches} searches; "
        f"watch ed2k --kad-bootstrap took {cli_seconds:.0f} s; "
        f"Kad connect options { ({ip: hex(v) for ip, v in kad_crypt.items()}) }"
    )


def _watch_from_the_command_line(
    tmp_path: Path, lab: AmuleKadLab, user_hash: bytes, sharers: set[str]
) -> float:
    """`atalaya watch ed2k --kad-bootstrap` proves both sharers, and sights no one else."""
    assert lab.files is not None
    env = {"ATALAYA_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    listing = tmp_path / "cli-ed2k.txt"
    listing.write_text(lab.files.watched_hash.hex() + "\n")
    for args in (
        ("init",),
        ("hashsets", "import", str(listing), "--format", "lines", "--algorithm", "ed2k",
         "--source", "lista-sintetica", "--category", "1"),
    ):  # fmt: skip
        done = run_atalaya(*args, env=env)
        assert done.returncode == 0, done.stderr
    # The user hash the probes above used: aMule shuts out an address whose hash changes.
    state = tmp_path / "ed2k.json"
    state.write_text(json.dumps({"user_hash": user_hash.hex()}))
    link = f"ed2k://|file|{WATCHED_NAME}|{WATCHED_SIZE}|{lab.files.watched_hash.hex()}|/"
    bootstrap = [arg for ip, port in lab.bootstrap for arg in ("--kad-bootstrap", f"{ip}:{port}")]
    begin = time.monotonic()
    watched = spawn_atalaya(
        "watch", "ed2k", *bootstrap, "--bind", lab.observer_ip, "--link", link,
        "--duration", "60", "--interval", "600", "--json", "--state", str(state),
        env=env, timeout=240.0,
    )  # fmt: skip
    seconds = time.monotonic() - begin
    assert watched.returncode == 0, watched.stderr
    summary = json.loads(watched.stdout)
    assert summary["kad_searches"] == 1 and summary["kad_sources"] == 2, summary
    assert summary["verified"] == 2 and summary["sightings"] == 2 and summary["unprobed"] == 0
    engine = create_engine(env["ATALAYA_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(select(sighting)).mappings().all()
    engine.dispose()
    assert {r["ip"] for r in rows} == sharers
    assert all(r["proof"] and r["found_by"] == "kad" for r in rows)
    assert all(r["details"]["obfuscated"] for r in rows)
    return seconds
