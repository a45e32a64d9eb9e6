"""Protocol obfuscation against a real aMule 2.3.3 that requires it, on loopback.

aMule with `[Obfuscation] IsClientCryptLayerRequired=1` hangs up on a plain
eD2K connection; the obfuscated one, keyed from its user hash, is proven
like any other. That aMule accepts our handshake and its answer decrypts to
the sync value is the check of `networks.ed2k.obfuscation` against the real
thing (the byte vectors in tests/networks/ed2k/test_obfuscation.py were
derived from the spec).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from atalaya.lab.amule import AmulePeer
from atalaya.lab.files import write_random_file
from atalaya.networks.ed2k import obfuscation
from atalaya.networks.ed2k.hashing import PART_SIZE, Ed2kHasher
from atalaya.networks.ed2k.probe import ProbeErrorKind, ProbeTimeouts
from atalaya.observe.ed2k.probe import Ed2kProbeResult, probe_peer
from atalaya.store.tables import proof_transcript, sighting
from tests.networks.ed2k.test_obfuscation import rc4
from tests.support.cli import run_atalaya, spawn_atalaya

AMULE_IP = "127.0.0.71"
# aMule distrusts an address whose user hash changes: each probe below
# comes from its own address with its own hash.
PLAIN_IP = "127.0.0.72"
OBFUSCATED_IP = "127.0.0.73"
WRONG_KEY_IP = "127.0.0.74"
WATCH_IP = "127.0.0.75"
RAW_IP = "127.0.0.76"

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
    peer: AmulePeer, path: Path, bind_ip: str, obfuscate_for: bytes | None
) -> Ed2kProbeResult:
    return asyncio.run(
        probe_peer(
            peer.ip,
            peer.port,
            _ed2k(path),
            file_size=path.stat().st_size,
            user_hash=os.urandom(16),
            bind_ip=bind_ip,
            timeouts=ProbeTimeouts(hello=8.0, total=90.0),
            obfuscate_for=obfuscate_for,
        )
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> object:
    folder = tmp_path_factory.mktemp("amule-crypt")
    # Two parts: the short last one is what the probe downloads and proves.
    large = write_random_file(folder / "files" / "large.bin", PART_SIZE + 150_000, seed=71)
    with AmulePeer(
        AMULE_IP, folder / "peer", [large], nick="nodo-cifrado", obfuscation="required"
    ) as peer:
        conf = (folder / "peer" / "config" / "amule.conf").read_text()
        assert "IsClientCryptLayerRequired=1" in conf
        yield peer, large


def test_amules_answer_decrypts_as_the_spec_says(lab: tuple[AmulePeer, Path]) -> None:
    # Our handshake, then aMule's raw answer read off the socket and
    # decrypted with the RC4 written out in the unit tests, keyed
    # MD5(user hash, 203, random key) past 1024 bytes.
    peer, _ = lab
    random_key = bytes.fromhex("01020304")
    initiator = obfuscation.Initiator(
        peer.user_hash(), random_key=random_key, marker=0x17, padding=b"abc"
    )

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(peer.ip, peer.port, local_addr=(RAW_IP, 0))
        try:
            writer.write(initiator.handshake)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(4096), 10.0)
            # Nothing more comes until we speak: aMule waits for our hello.
            with pytest.raises(TimeoutError):
                answer += await asyncio.wait_for(reader.read(4096), 1.0)
            return answer
        finally:
            writer.close()

    answer = asyncio.run(exchange())
    key = hashlib.md5(peer.user_hash() + bytes([203]) + random_key).digest()
    plain = rc4(key, answer)
    assert plain[:4] == bytes.fromhex("c46f5e83"), plain[:4].hex()
    assert plain[4] == 0  # method: obfuscation
    assert len(answer) == 6 + plain[5] and plain[5] <= 254  # its padding, then nothing
    assert initiator.receive(answer) == b"" and initiator.established


def test_a_plain_connection_is_refused(lab: tuple[AmulePeer, Path]) -> None:
    peer, large = lab
    result = _probe(peer, large, PLAIN_IP, None)
    assert result.error is not None and result.error.kind is ProbeErrorKind.CLOSED
    assert result.error.phase == "hello" and result.hello_at is None
    assert not result.obfuscated and not result.proof


def test_the_obfuscated_connection_proves_a_part(lab: tuple[AmulePeer, Path]) -> None:
    peer, large = lab
    result = _probe(peer, large, OBFUSCATED_IP, peer.user_hash())
    assert result.error is None, result.error
    assert result.obfuscated
    assert result.proof and result.proof_kind == "part_md4" and result.verified_part == 1
    assert result.bytes_downloaded == 150_000
    assert result.user_hash == peer.user_hash() and result.client == "aMule 2.3.3"
    assert result.nick == "nodo-cifrado"


def test_a_wrong_user_hash_fails_in_the_handshake(lab: tuple[AmulePeer, Path]) -> None:
    peer, large = lab
    result = _probe(peer, large, WRONG_KEY_IP, bytes(16))
    assert result.error is not None and result.error.phase == "obfuscation"
    assert not result.obfuscated and not result.proof


@pytest.mark.slow  # two commands in child processes
def test_watch_ed2k_with_the_user_hash_on_the_command_line(
    lab: tuple[AmulePeer, Path], tmp_path: Path
) -> None:
    peer, large = lab
    env = {"ATALAYA_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    done = run_atalaya("init", env=env)
    assert done.returncode == 0, done.stderr
    link = f"ed2k://|file|{large.name}|{large.stat().st_size}|{_ed2k(large).hex()}|/"
    watched = spawn_atalaya(
        "watch", "ed2k", "--source", f"{peer.ip}:{peer.port}/{peer.user_hash().hex()}",
        "--bind", WATCH_IP, "--link", link, "--duration", "30", "--interval", "600",
        "--json", "--state", str(tmp_path / "ed2k.json"),
        env=env,
    )  # fmt: skip
    assert watched.returncode == 0, watched.stderr
    summary = json.loads(watched.stdout)
    assert summary["verified"] == 1 and summary["obfuscated"] == 1, (summary, watched.stderr)
    engine = create_engine(env["ATALAYA_DATABASE_URL"])
    with engine.connect() as conn:
        row = conn.execute(select(sighting)).mappings().one()
        body = conn.execute(select(proof_transcript.c.body)).scalar_one()
    assert row["proof"] and row["details"]["obfuscated"] is True
    assert row["peer_id"] == peer.user_hash().hex()
    assert json.loads(bytes(body))["obfuscated"] is True
