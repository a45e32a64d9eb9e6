"""A case of eD2K sightings of a real aMule, exported and verified offline; forged transcripts fail.

aMule 2.3.3 shares two files; the observer proves one by an AICH block
(its master hash given as a link's h= would be) and the other, of one
part, whole by MD4. The sightings become a lead, the lead a case, the case
a signed and stamped evidence package: `verify_package` holds it, with
both eD2K checks redone from the transcripts alone. An insider who edits a
transcript and seals the package again is caught by the eD2K checks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from atalaya.accounts import add_unit, add_user, get_user
from atalaya.cases.records import open_case
from atalaya.evidence.package import export_case, seal
from atalaya.evidence.package_manifest import MANIFEST_NAME, SIGNATURE_NAME
from atalaya.evidence.package_zip import read_package, write_package
from atalaya.evidence.stamps import stamp_sightings, tsa_stamper
from atalaya.evidence.tsp import load_ca_file
from atalaya.evidence.verify_package import verify_package
from atalaya.hashsets.algorithms import ED2K
from atalaya.hashsets.importer import import_hash_set
from atalaya.lab.amule import AmulePeer
from atalaya.lab.files import write_random_file
from atalaya.lab.tsa import LabTsa
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.networks.ed2k import aich
from atalaya.networks.ed2k.hashing import ed2k_hash
from atalaya.networks.ed2k.probe import ProbeTimeouts
from atalaya.observe.ed2k.network import ED2K_NETWORK
from atalaya.observe.ed2k.observer import AICH_FROM_LINK, Ed2kConfig, Ed2kObserver
from atalaya.observe.watchlist import load_targets
from atalaya.signing import open_signer, sign_detached
from atalaya.store import create_store_engine, upgrade
from atalaya.store.tables import lead
from tests.accounts.helpers import FAST, PASSWORD
from tests.leads.helpers import HOME, facts
from tests.support.pki import make_pki

AMULE_IP = "127.0.0.46"
OUR_IP = "127.0.0.47"
NOW = datetime.now(UTC)

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("amuled") is None, reason="amule-daemon is not installed"),
]


def test_an_ed2k_case_exports_verifies_and_a_forged_transcript_fails(tmp_path: Path) -> None:
    small = write_random_file(tmp_path / "files" / "pequeno.bin", 150_000, seed=61)
    large = write_random_file(tmp_path / "files" / "grande.bin", 3 * aich.BLOCK_SIZE + 9, seed=62)
    listing = tmp_path / "ed2k.txt"
    listing.write_text("".join(ed2k_hash(f.read_bytes()).hex() + "\n" for f in (small, large)))
    engine = create_store_engine(f"sqlite:///{tmp_path / 'atalaya.db'}")
    upgrade(engine)
    import_hash_set(engine, listing, fmt="lines", algorithm=ED2K, category="A")
    targets = load_targets(engine, ED2K_NETWORK)
    sizes = {ed2k_hash(f.read_bytes()): f.stat().st_size for f in (small, large)}
    large_hash = ed2k_hash(large.read_bytes())
    masters = {large_hash: (aich.master_hash(large.read_bytes()), AICH_FROM_LINK)}
    with AmulePeer(AMULE_IP, tmp_path / "amule", [small, large]) as peer:
        config = Ed2kConfig(
            ((peer.ip, peer.port),),
            bind_ip=OUR_IP,
            user_hash=os.urandom(16),
            timeouts=ProbeTimeouts(total=60.0),
        )
        stop = asyncio.Event()
        observer = Ed2kObserver(
            engine,
            targets,
            sizes,
            config,
            aich=masters,
            on_update=lambda s: stop.set() if s.probed == len(targets) else None,
        )
        stats = asyncio.run(observer.run(duration=150.0, stop=stop))
    assert stats.verified == 2 and stats.aich_proofs == 1, stats

    with engine.begin() as conn:
        add_unit(conn, "Madrid", ("28",), "Madrid desk, +34 900 000 101", NOW)
        add_user(conn, "luis", "Madrid", "supervisor", PASSWORD, NOW, FAST)
    build_leads(engine, facts({AMULE_IP: HOME}), LeadsConfig(), now=NOW)
    with engine.begin() as conn:
        user = get_user(conn, "luis")
        lead_id = int(conn.scalars(select(lead.c.id)).one())
        case = open_case(conn, user, lead_id, NOW, reason="Synthetic eD2K case (lab)")
    pki = make_pki(tmp_path / "pki")
    # A stamp's time has whole seconds: one taken within the second of the
    # last sighting could read as earlier than it.
    time.sleep(1.1)
    with LabTsa() as tsa:
        roots = load_ca_file(tsa.ca_file.read_bytes(), "lab TSA CA")
        stamp_sightings(engine, tsa_stamper(tsa.url, roots), tsa.url, batch_size=4096)
        out = tmp_path / "case.zip"
        export_case(
            engine, user, case.id, out, key=pki.p12, recipient="Juzgado (sintético)", now=NOW
        )
        data = out.read_bytes()
        report = verify_package(data, ca=[pki.cert], tsa_ca=roots)
        problems = [en for _, en in report.problems]
        assert problems == []
        holds = " ".join(en for _, en in report.holds)
        assert "transcripts: 2; 2 pieces checked" in holds and "2 verified" in holds

        # An insider changes what the AICH check computed, fixes the index
        # and seals the package again with the unit's key.
        files = read_package(data)
        name = next(
            n for n, body in files.items() if n.startswith("transcripts/") and b"aich_block" in body
        )
        doc = json.loads(files[name])
        doc["check"]["expected"] = doc["check"]["computed"] = "00" * 20
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        index = json.loads(files["transcripts/index.json"])
        index[name[len("transcripts/") : -len(".json")]]["sha256"] = hashlib.sha256(
            body
        ).hexdigest()
        files = {**files, name: body, "transcripts/index.json": json.dumps(index).encode()}
        unsealed = {k: v for k, v in files.items() if k not in (MANIFEST_NAME, SIGNATURE_NAME)}
        with open_signer(pki.p12) as signer:
            forged = seal(unsealed, lambda manifest: sign_detached(manifest, signer))
        forged_zip = tmp_path / "forged.zip"
        write_package(forged_zip, forged, NOW)
        report = verify_package(forged_zip.read_bytes(), ca=[pki.cert], tsa_ca=roots)
        problems = [en for _, en in report.problems]
        assert any(
            f"{name}: the expected hash is not that block's AICH leaf" in p for p in problems
        )
    engine.dispose()
