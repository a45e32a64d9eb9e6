"""What a running lab writes for its users: a JSON manifest and a CSV hash set.

The manifest says where everything is (addresses, ports, tracker URLs), each
torrent's info-hashes, which files are watched with their hashes, and which
peer holds what (`ed2k_peers`: the aMule client and the files it shares).
The hash set is in the CSV format `atalaya hashsets import` reads, one row
per watched file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import libtorrent as lt

from atalaya.errors import AtalayaError
from atalaya.hashsets.algorithms import BTIH, BTIH2, BTV1_PIECE_SIZES, BTV1_PREFIX, BTV2_ROOT
from atalaya.hashsets.fingerprint import CATEGORY_COLUMN, NAME_COLUMN
from atalaya.lab.content import BuiltTorrent
from atalaya.lab.geo import write_lab_geo_db
from atalaya.lab.layout import GEO_DB_NAME, HASH_SET_NAME, MANIFEST_NAME, MANIFEST_VERSION
from atalaya.lab.network import LabNetwork

_FILE_HASHES = ("md5", "sha1", "sha256", "ed2k")
HASH_SET_COLUMNS = (
    *_FILE_HASHES,
    BTIH,
    BTIH2,
    BTV2_ROOT,
    *(f"{BTV1_PREFIX}{size}" for size in BTV1_PIECE_SIZES),
    CATEGORY_COLUMN,
    NAME_COLUMN,
)


def _hex(value: bytes | None) -> str | None:
    return value.hex() if value is not None else None


def _torrent_entry(network: LabNetwork, built: BuiltTorrent) -> dict[str, Any]:
    plan = built.plan
    files = []
    for planned in plan.files:
        digests = built.fingerprints[planned.path].digests
        files.append(
            {
                "path": planned.path,
                "size": planned.size,
                "watched": planned.watched,
                "category": planned.category,
                **{name: digests[name].hex() for name in _FILE_HASHES},
                BTV2_ROOT: _hex(digests.get(BTV2_ROOT)),
                "btv1_first_piece": _hex(digests.get(f"{BTV1_PREFIX}{plan.piece_size}")),
            }
        )
    holders = network.holdings.items()
    return {
        "name": plan.name,
        "version": plan.version,
        "purpose": plan.purpose,
        "piece_size": plan.piece_size,
        "infohash_v1": _hex(built.hashes.v1),
        "infohash_v2": _hex(built.hashes.v2),
        "tracker_hashes": [h.hex() for h in built.hashes.tracker_hashes],
        "infohash_watched": plan.infohash_watched,
        "torrent_file": str(network.lab_dir / "torrents" / f"{plan.name}.torrent"),
        "files": files,
        "seeders": sorted(name for name, h in holders if plan.name in h.seeds),
        "holding_nothing": sorted(name for name, h in holders if plan.name in h.holds_nothing),
    }


def _ed2k_peers(network: LabNetwork) -> list[dict[str, Any]]:
    amule = network.amule
    if amule is None:
        return []
    shares = []
    for planned in network.amule_files():
        digests = next(
            t.fingerprints[planned.path]
            for t in network.torrents.values()
            if planned.path in t.fingerprints
        ).digests
        shares.append(
            {
                "path": planned.path,
                "size": planned.size,
                "watched": planned.watched,
                "category": planned.category,
                "ed2k": digests["ed2k"].hex(),
            }
        )
    return [
        {
            "name": "amule",
            "client": "aMule 2.3.3",
            "ip": amule.ip,
            "port": amule.port,
            "nick": amule.nick,
            "pid": amule.pid,
            "shares": shares,
        }
    ]


def build_manifest(network: LabNetwork, *, supervisor_pid: int | None = None) -> dict[str, Any]:
    """The manifest of a started network, as plain JSON values."""
    tracker = network.tracker
    if tracker is None:
        raise AtalayaError("the lab is not started: nothing to describe")
    peers = []
    for name, peer in network.peers.items():
        holdings = network.holdings[name]
        peers.append(
            {
                "name": name,
                "client": f"libtorrent {lt.__version__}",
                "ip": peer.ip,
                "port": peer.port,
                "dht": peer.dht,
                "seeds": list(holdings.seeds),
                "holds_nothing": list(holdings.holds_nothing),
            }
        )
    if network.transmission is not None:
        tr = network.transmission
        peers.append(
            {
                "name": "transmission",
                "client": "Transmission 3.00",
                "ip": tr.ip,
                "port": tr.port,
                "dht": False,
                "seeds": list(network.holdings["transmission"].seeds),
                "holds_nothing": [],
                "pid": tr.pid,
                "rpc_url": tr.rpc_url,
            }
        )
    return {
        "manifest_version": MANIFEST_VERSION,
        "lab_dir": str(network.lab_dir),
        "started_at": network.started_at,
        "startup_seconds": network.startup_seconds,
        "supervisor_pid": supervisor_pid,
        "child_pids": network.child_pids(),
        "spec": {
            "seeders": network.spec.seeders,
            "leechers": network.spec.leechers,
            "transmission": network.spec.transmission,
            "amule": network.spec.amule,
            "ip_prefix": network.spec.ip_prefix,
            "seed": network.spec.seed,
        },
        "tracker": {
            "ip": tracker.ip,
            "port": tracker.port,
            "announce_url": tracker.announce_url,
            "udp_url": tracker.udp_url,
            "pid": tracker.pid,
        },
        "dht_nodes": [{"ip": p.ip, "port": p.port} for p in network.peers.values() if p.dht],
        "peers": peers,
        "ed2k_peers": _ed2k_peers(network),
        "torrents": [_torrent_entry(network, t) for t in network.torrents.values()],
        "hash_set": str(network.lab_dir / HASH_SET_NAME),
        # Made-up ISPs in real towns for the lab's addresses: enrich with it.
        "geo_db": str(network.lab_dir / GEO_DB_NAME),
    }


def hash_set_rows(network: LabNetwork) -> list[dict[str, str]]:
    """One row per watched file, keyed by HASH_SET_COLUMNS (empty where unknown)."""
    rows = []
    for built in network.torrents.values():
        watched_infohash = built.plan.infohash_watched
        for planned in built.plan.files:
            if not planned.watched:
                continue
            digests = built.fingerprints[planned.path].digests
            row = dict.fromkeys(HASH_SET_COLUMNS, "")
            for column in HASH_SET_COLUMNS:
                if column in digests:
                    row[column] = digests[column].hex()
            if watched_infohash:
                row[BTIH] = _hex(built.hashes.v1) or ""
                row[BTIH2] = _hex(built.hashes.v2) or ""
            row[CATEGORY_COLUMN] = planned.category or ""
            row[NAME_COLUMN] = planned.path.rsplit("/", 1)[-1]
            rows.append(row)
    return rows


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_outputs(network: LabNetwork, *, supervisor_pid: int | None = None) -> Path:
    """Write the manifest and the hash set into the lab folder; the manifest's path."""
    lab_dir = network.lab_dir
    rows = hash_set_rows(network)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=HASH_SET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_atomically(lab_dir / HASH_SET_NAME, text.getvalue())
    write_lab_geo_db(lab_dir / GEO_DB_NAME, network.spec.ip_prefix)
    manifest = build_manifest(network, supervisor_pid=supervisor_pid)
    path = lab_dir / MANIFEST_NAME
    _write_atomically(path, json.dumps(manifest, indent=2) + "\n")
    return path
