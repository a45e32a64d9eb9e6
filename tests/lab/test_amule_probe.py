"""The eD2K probe against a real aMule 2.3.3 (Debian amule-daemon) on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from atalaya.lab.amule import AmulePeer
from atalaya.lab.files import write_random_file
from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k.aich import BLOCK_SIZE
from atalaya.networks.ed2k.hashing import PART_SIZE, Ed2kHasher
from atalaya.networks.ed2k.probe import ProbeErrorKind, ProbeTimeouts
from atalaya.observe.ed2k.probe import Ed2kProbeResult, probe_peer
from atalaya.store.tables import lead, sighting
from tests.support.cli import run_atalaya, spawn_atalaya

AMULE_IP = "127.0.0.41"
OUR_IP = "127.0.0.42"
# The command line keeps its own user hash: it probes from another address,
# since aMule bans an address whose user hash changes.
WATCH_IP = "127.0.0.43"
# One user hash for the whole run, as an observer keeps: aMule distrusts an
# address whose user hash changes.
USER_HASH = os.urandom(16)
# aMule queues a client that asks for a fifth upload slot in quick
# succession (seen in the lab), so the AICH probes come from their own
# address and user hash.
AICH_IP = "127.0.0.44"
AICH_USER_HASH = os.urandom(16)

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("amuled") is None, reason="amule-daemon is not installed"),
]


def _ed2k(path: Path) -> bytes:
    hasher = Ed2kHasher()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
    return hasher.digest()


def _probe(
    peer: AmulePeer, file_hash: bytes, size: int | None, aich_master: bytes | None = None
) -> Ed2kProbeResult:
    return asyncio.run(
        probe_peer(
            peer.ip,
            peer.port,
            file_hash,
            file_size=size,
            user_hash=USER_HASH if aich_master is None else AICH_USER_HASH,
            bind_ip=OUR_IP if aich_master is None else AICH_IP,
            timeouts=ProbeTimeouts(total=90.0),
            aich_master=aich_master,
        )
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> object:
    folder = tmp_path_factory.mktemp("amule")
    small = write_random_file(folder / "files" / "small.bin", 300_000, seed=41)
    # Two parts: a whole one and a short last one (the cheap one to prove).
    large = write_random_file(folder / "files" / "large.bin", PART_SIZE + 250_000, seed=42)
    unshared = write_random_file(folder / "files" / "unshared.bin", 200_000, seed=43)
    with AmulePeer(AMULE_IP, folder / "peer", [small, large], nick="nodo-sintetico") as peer:
        yield peer, small, large, unshared


def test_amule_lists_what_rhash_computes(lab: tuple[AmulePeer, Path, Path, Path]) -> None:
    peer, small, large, _ = lab
    assert {f.ed2k for f in peer.shared()} == {_ed2k(small), _ed2k(large)}


def test_a_one_part_file_is_downloaded_whole_and_its_hash_recomputed(
    lab: tuple[AmulePeer, Path, Path, Path],
) -> None:
    peer, small, _, _ = lab
    result = _probe(peer, _ed2k(small), small.stat().st_size)
    assert result.error is None, result.error
    assert result.proof and result.proof_kind == "file_md4"
    assert result.bytes_downloaded == small.stat().st_size
    assert result.client == "aMule 2.3.3" and result.nick == "nodo-sintetico"
    assert result.client_port == peer.port and result.user_hash is not None
    assert result.file_name == "small.bin" and result.have_fraction == 1.0
    assert result.local_ip == OUR_IP
    assert result.hello_at is not None and result.first_data_at is not None


def test_a_two_part_file_is_proven_by_its_shortest_part(
    lab: tuple[AmulePeer, Path, Path, Path],
) -> None:
    peer, _, large, _ = lab
    result = _probe(peer, _ed2k(large), large.stat().st_size)
    assert result.error is None, result.error
    assert result.proof and result.proof_kind == "part_md4" and result.verified_part == 1
    assert result.bytes_downloaded == 250_000
    assert len(result.part_hashes) == 2


@pytest.mark.parametrize(("name", "block"), [("small", 300_000 - BLOCK_SIZE), ("large", 65_680)])
def test_one_aich_block_proves_against_the_master_hash_computed_here(
    lab: tuple[AmulePeer, Path, Path, Path], name: str, block: int
) -> None:
    # aMule answers an AICH request only when the master hash asked under
    # is its own: a proof here is also our tree checked against aMule's.
    peer, small, large, _ = lab
    path = small if name == "small" else large
    master = aich.master_hash(path.read_bytes())
    result = _probe(peer, _ed2k(path), path.stat().st_size, aich_master=master)
    assert result.error is None, result.error
    assert result.aich_version & 1, "aMule offers AICH in its hello"
    assert result.proof and result.proof_kind == "aich_block", result.aich_note
    assert result.bytes_downloaded == block == result.block_length
    content = path.read_bytes()
    assert result.block_offset is not None
    assert result.block_digest == aich.block_hash(
        content[result.block_offset : result.block_offset + block]
    )


def test_a_master_hash_amule_does_not_have_falls_back_to_the_part_md4(
    lab: tuple[AmulePeer, Path, Path, Path],
) -> None:
    peer, _, large, _ = lab
    result = _probe(peer, _ed2k(large), large.stat().st_size, aich_master=bytes(20))
    assert result.proof and result.proof_kind == "part_md4"
    assert result.aich_note == "the peer refused the AICH request"


def test_a_file_not_shared_is_no_sighting(lab: tuple[AmulePeer, Path, Path, Path]) -> None:
    peer, _, _, unshared = lab
    result = _probe(peer, _ed2k(unshared), unshared.stat().st_size)
    assert not result.proof
    assert result.error is not None
    assert result.error.kind in (ProbeErrorKind.NO_FILE, ProbeErrorKind.TIMEOUT)


@pytest.mark.slow  # two commands in child processes and a lead build
def test_watch_ed2k_records_sightings_that_become_leads(
    lab: tuple[AmulePeer, Path, Path, Path], tmp_path: Path
) -> None:
    peer, small, large, unshared = lab
    env = {"ATALAYA_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    listing = tmp_path / "ed2k.txt"
    listing.write_text("".join(_ed2k(f).hex() + "\n" for f in (small, large, unshared)))
    for args in (
        ("init",),
        ("hashsets", "import", str(listing), "--format", "lines", "--algorithm", "ed2k",
         "--source", "lista-sintetica", "--category", "1"),
    ):  # fmt: skip
        done = run_atalaya(*args, env=env)
        assert done.returncode == 0, done.stderr
    links = [f"ed2k://|file|{f.name}|{f.stat().st_size}|{_ed2k(f).hex()}|/" for f in (small, large)]
    # The large file's link carries its AICH master hash (h=, base32), as eMule writes it.
    aich_text = base64.b32encode(aich.master_hash(large.read_bytes())).decode()
    links[1] = links[1][:-1] + f"h={aich_text}|/"
    watched = spawn_atalaya(
        "watch", "ed2k", "--source", f"{peer.ip}:{peer.port}", "--bind", WATCH_IP,
        "--link", links[0], "--link", links[1], "--duration", "30", "--interval", "600",
        "--json", "--state", str(tmp_path / "ed2k.json"),
        env=env,
    )  # fmt: skip
    assert watched.returncode == 0, watched.stderr
    summary = json.loads(watched.stdout)
    assert summary["sightings"] == 2, (summary, watched.stderr)
    assert summary["probed"] == 3 and summary["sightings"] == 2 and summary["verified"] == 2
    assert summary["aich_proofs"] == 1
    assert summary["not_sharing"] + summary["unreachable"] <= 1
    engine = create_engine(env["ATALAYA_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(select(sighting).order_by(sighting.c.id)).mappings().all()
    assert {r["item_value"] for r in rows} == {_ed2k(small).hex(), _ed2k(large).hex()}
    for row in rows:
        assert row["network"] == "ed2k" and row["item_kind"] == "ed2k" and row["proof"]
        small_one = row["item_value"] == _ed2k(small).hex()
        assert row["proof_kind"] == ("full_file" if small_one else "pieces")
        assert row["details"]["proof_kind"] == ("file_md4" if small_one else "aich_block")
        # What aMule says about itself: its user hash, client and port.
        assert row["peer_id"] == peer.user_hash().hex()
        assert row["client"] == "aMule 2.3.3" and row["port"] == peer.port
        assert row["ip"] == peer.ip and row["local_ip"] == WATCH_IP
        assert row["file_key"] is not None and row["category"] is not None
    built = run_atalaya("leads", "build", "--json", env=env)
    assert built.returncode == 0, built.stderr
    with engine.connect() as conn:
        leads = conn.execute(select(lead.c.networks, lead.c.sightings)).all()
    assert [(list(networks), count) for networks, count in leads] == [(["ed2k"], 2)]
