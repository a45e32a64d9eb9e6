"""A store with one case worth packaging, made through the real parts.

Real torrents (libtorrent makes them from random bytes: v1, v2 and hybrid),
their info dictionaries stored as the observer stores them, a hash set
imported from a plain list of the files' SHA-1, sightings written by the
observer's writer, proof transcripts built from the real bytes (v1 piece
SHA-1; v2 layer hashes with their merkle proof path up to the file's
pieces root, built here from the torrent's piece layers), leads built, a
case opened on the lead, enrichment facts, audit records, and every
sighting and the audit head stamped by the lab TSA (real `openssl ts`).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import libtorrent as lt
from sqlalchemy import Engine, insert, select

from atalaya.accounts import User, add_unit, add_user, get_user
from atalaya.audit.log import log_event
from atalaya.cases.records import open_case
from atalaya.evidence.stamps import stamp_audit_head, stamp_sightings, tsa_stamper
from atalaya.evidence.tsp import load_ca_file
from atalaya.hashsets.importer import import_hash_set
from atalaya.lab.torrents import TorrentVersion, infohashes, make_torrent
from atalaya.lab.tsa import LabTsa
from atalaya.leads.build import build_leads
from atalaya.leads.config import LeadsConfig
from atalaya.networks.bittorrent.merkle import ZERO_HASHES, piece_hash, piece_height
from atalaya.networks.bittorrent.metainfo import Metainfo, parse_torrent
from atalaya.observe.sightings import Sighting, SightingWriter
from atalaya.store.tables import (
    enrichment,
    enrichment_data,
    lead,
    proof_transcript,
    sighting,
    torrent_metadata,
)
from tests.accounts.helpers import FAST, PASSWORD
from tests.leads.helpers import HOME, NOW, facts

PIECE = 16384
IP = "10.1.0.1"
RECIPIENT = "Juzgado de Instrucción n.º 1 de Pruebas (sintético)"


@dataclass(frozen=True)
class Made:
    """One lab torrent: its version, info dictionary, info-hashes and content."""

    version: TorrentVersion
    info: bytes
    v1: str | None
    v2: str | None
    content: bytes
    torrent: bytes


@dataclass(frozen=True)
class CaseWorld:
    user: User
    case_id: int
    sighting_ids: list[int]
    torrents: list[Made]
    tsa_ca: Path


def lab_torrent(folder: Path, rng: random.Random, version: TorrentVersion, size: int) -> Made:
    path = folder / version / f"synthetic-{version}.bin"
    path.parent.mkdir(parents=True)
    content = rng.randbytes(size)
    path.write_bytes(content)
    data = make_torrent(path, version=version, piece_size=PIECE)
    hashes = infohashes(data)
    info = lt.torrent_info(data).info_section()
    return Made(
        version,
        bytes(info),
        None if hashes.v1 is None else hashes.v1.hex(),
        None if hashes.v2 is None else hashes.v2.hex(),
        content,
        data,
    )


def v2_proof(layer: list[bytes], index: int) -> list[str]:
    """Siblings from piece `index` up to the pieces root, the layer padded as BEP 52 pads it."""
    width = 1
    while width < len(layer):
        width *= 2
    height = piece_height(PIECE)
    nodes = layer + [ZERO_HASHES[height]] * (width - len(layer))
    path = []
    while len(nodes) > 1:
        path.append(nodes[index ^ 1].hex())
        nodes = [hashlib.sha256(nodes[i] + nodes[i + 1]).digest() for i in range(0, len(nodes), 2)]
        index //= 2
    return path


@cache
def _parsed(torrent: bytes) -> Metainfo:
    return parse_torrent(torrent)


def transcript(made: Made, kind: str, value: str, pieces: list[int], fail: int | None) -> bytes:
    parsed = _parsed(made.torrent)
    entries: list[dict[str, Any]] = []
    for index in pieces:
        data = made.content[index * PIECE : (index + 1) * PIECE]
        received = data if index != fail else bytes(len(data))
        if made.version in ("v1", "hybrid"):
            expected = parsed.piece_hash_v1(index)
            computed = hashlib.sha1(received).digest()
            entries.append(_piece(index, len(data), "sha1", computed, expected, None, []))
        if made.version in ("v2", "hybrid"):
            file_index = next(i for i, f in enumerate(parsed.files) if f.pieces_root)
            layer = list(parsed.piece_hashes_v2(file_index) or ())
            expected = layer[index]
            computed = piece_hash(received, index, PIECE)
            entries.append(
                _piece(
                    index, len(data), "sha256", computed, expected, file_index,
                    v2_proof(layer, index),
                )
            )  # fmt: skip
    body = {
        "version": 1,
        "item": {"kind": kind, "value": value},
        "metadata": {"info_hash": made.v1 if kind == "btih" else made.v2},
        "pieces": entries,
        "content": "received bytes were hashed and dropped",
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _piece(
    index: int,
    length: int,
    algorithm: str,
    computed: bytes,
    expected: bytes,
    file_index: int | None,
    path: list[str],
) -> dict[str, Any]:
    return {
        "index": index,
        "offset": index * PIECE,
        "length": length,
        "algorithm": algorithm,
        "computed": computed.hex(),
        "expected": expected.hex(),
        "ok": computed == expected,
        "file_index": file_index,
        "proof_path": path,
    }


def make_case_world(
    engine: Engine,
    folder: Path,
    tsa: LabTsa,
    *,
    extra_sightings: int = 0,
    seed: int = 7,
    stamp: bool = True,
    transcripts: bool = True,
    seen: datetime = datetime(2026, 10, 1, 8, 0, tzinfo=UTC),
) -> CaseWorld:
    rng = random.Random(seed)
    torrents = [
        lab_torrent(folder, rng, "v1", 5 * PIECE + 999),
        lab_torrent(folder, rng, "v2", 6 * PIECE + 123),
        lab_torrent(folder, rng, "hybrid", 3 * PIECE + 7),
    ]
    listing = folder / "lista-sintetica.txt"
    listing.write_text("".join(hashlib.sha1(m.content).hexdigest() + "\n" for m in torrents))
    report = import_hash_set(engine, listing, category="A")
    with engine.begin() as conn:
        add_unit(conn, "Madrid", ("28",), "Madrid desk, +34 900 000 101", NOW)
        add_user(conn, "luis", "Madrid", "supervisor", PASSWORD, NOW, FAST)
        for m in torrents:
            conn.execute(
                insert(torrent_metadata).values(
                    infohash=m.v1 or m.v2,
                    infohash_v2=m.v2,
                    name=f"synthetic-{m.version}.bin",
                    info=m.info,
                    fetched_at=NOW - timedelta(days=30),
                    fetched_from=f"{IP}:6881",
                )
            )
    planned: list[tuple[Made, str, str, list[int], int | None]] = []
    for m in torrents:
        kind, value = ("btih", m.v1) if m.v1 else ("btih2", m.v2)
        assert value is not None
        planned.append((m, kind, value, [0, 1], None))
        # The second probe of each torrent got one piece wrong: a failed verification.
        planned.append(
            (m, kind, value, [2, 3], 3) if m.version != "hybrid" else (m, kind, value, [2], 2)
        )
        if m.version == "hybrid":
            planned.append((m, "btih2", m.v2 or "", [1], None))
    planned += [planned[0]] * extra_sightings
    items = []
    for n, (m, kind, value, pieces, fail) in enumerate(planned):
        failed = 1 if fail in pieces else 0
        items.append(
            Sighting(
                network="bittorrent",
                item_kind=kind,
                item_value=value,
                ip=IP,
                port=6881,
                seen_at=seen + timedelta(seconds=n),
                found_by="dht",
                run_id="00000000-0000-4000-8000-000000000000",
                client='=HYPERLINK("http://x.invalid")',  # a hostile client name
                peer_id=("-LT2010-" + "ab" * 6).encode().hex(),
                pieces_verified=len(pieces) - failed,
                pieces_failed=failed,
                bytes_downloaded=PIECE * len(pieces),
                file_key=f"sha1:{hashlib.sha1(m.content).hexdigest()}",
                category=1,
                hash_set=report.hash_set,
                hash_set_sha256=report.file_sha256,
                local_ip="127.0.0.1",
                local_port=50000,
                clock_offset_s=0.002,
            )
        )
    SightingWriter(engine).write(items)
    with engine.begin() as conn:
        ids = [int(i) for i in conn.scalars(select(sighting.c.id).order_by(sighting.c.id))]
        rows = []
        for sid, (m, kind, value, pieces, fail) in zip(ids, planned, strict=True):
            body = transcript(m, kind, value, pieces, fail)
            rows.append(
                {
                    "sighting_id": sid,
                    "version": 1,
                    "body": body,
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            )
        if transcripts:  # older sightings, or another network's, have none
            conn.execute(insert(proof_transcript), rows)
        conn.execute(
            insert(enrichment_data).values(
                data_version="e" * 64,
                sources={"geo": "synthetic-geo 2026-10", "asn": "synthetic-asn 2026-10"},
                attribution="Synthetic test data",
                created_at=NOW,
            )
        )
        conn.execute(
            insert(enrichment).values(
                ip=IP,
                data_version="e" * 64,
                country="ES",
                province_code="28",
                province_name="Madrid",
                asn=64512,
                isp="Synthetic ISP (test)",
                time_zone="Europe/Madrid",
                flags=[],
                computed_at=NOW,
            )
        )
    build_leads(engine, facts({IP: HOME}), LeadsConfig(), now=NOW)
    with engine.begin() as conn:
        user = get_user(conn, "luis")
        lead_id = int(conn.scalars(select(lead.c.id)).one())
        case = open_case(conn, user, lead_id, NOW, reason="Synthetic case for the package tests")
    log_event(engine, "case_open", actor=user.actor(), object_type="case", object_id=case.id)
    log_event(engine, "lead_claim", actor=user.actor(), object_type="lead", object_id=lead_id)
    if stamp:
        roots = load_ca_file(tsa.ca_file.read_bytes(), "lab TSA CA")
        stamper = tsa_stamper(tsa.url, roots)
        stamp_sightings(engine, stamper, tsa.url, batch_size=4096)
        stamp_audit_head(engine, stamper, tsa.url)
    return CaseWorld(user, case.id, ids, torrents, tsa.ca_file)
