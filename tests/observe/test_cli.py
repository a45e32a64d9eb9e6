"""`atalaya watch bittorrent` and `atalaya sightings export`, run as an operator
runs them (`python -m atalaya`), against a small lab on 127.94.0.N and SQLite.

The lab: seed-1 seeds the watched v1, v2 and hybrid torrents, seed-2 only
unwatched ones, leech-1 joined the watched ones holding nothing. A hybrid is
one torrent with two names: seed-1 is sighted once for it, under its v1 hash.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from atalaya.lab.layout import HASH_SET_NAME
from atalaya.observe.sightings import EXPORT_FIELDS
from atalaya.store import create_store_engine
from atalaya.store.tables import sighting
from tests.support.cli import DEFAULT_ENV

pytestmark = pytest.mark.lab

PREFIX = "127.94.0"
OBSERVER_IP = f"{PREFIX}.200"
PIECES = 3  # not the default, to see that --pieces is honoured
DURATION = 10
# The fields the issue names for an export, in its order.
ISSUE_FIELDS = (
    "network",
    "item_kind",
    "item_value",
    "ip",
    "port",
    "seen_at",
    "found_by",
    "client",
    "peer_id",
    "have_fraction",
    "pieces_verified",
    "pieces_failed",
    "file_key",
    "category",
)
UTC_MICROSECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


@dataclass
class Lab:
    dir: Path
    db_url: str
    watch_args: list[str]
    # (infohash hex, ip, port) -> (file sha256 key, category label, piece size)
    expected: dict[tuple[str, str, int], tuple[str, str, int]]
    # A hybrid's v1 hex -> its v2 hex
    hybrids: dict[str, str]
    leecher_ip: str
    unwatched_ip: str
    dht_nodes: list[tuple[str, int]]


def atalaya(lab: Lab, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atalaya", "--db", lab.db_url, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        # The purpose and recipient an operator's profile sets (LED art. 25).
        env={**DEFAULT_ENV, **os.environ},
    )


def sightings_in(lab: Lab) -> int:
    engine = create_store_engine(lab.db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(sighting)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from atalaya.lab.manifest import write_outputs
    from atalaya.lab.network import LabNetwork, LabSpec

    lab_dir = tmp_path_factory.mktemp("cli-lab")
    spec = LabSpec(seeders=2, leechers=1, ip_prefix=PREFIX)
    with LabNetwork(spec, lab_dir) as network:
        write_outputs(network)
        assert network.tracker is not None
        args = ["--bind", OBSERVER_IP, "--allow-network", "127.0.0.0/8", "--port", "0"]
        args += ["--dht-state", str(lab_dir / "dht.json")]
        args += ["--tracker", network.tracker.announce_url]
        for peer in network.peers.values():
            args += ["--dht-bootstrap", f"{peer.ip}:{peer.port}"]
        seed1 = network.peers["seed-1"]
        expected = {}
        hybrids = {}
        for name in network.holdings["seed-1"].seeds:
            built = network.torrents[name]
            if not built.plan.infohash_watched:
                continue  # found only by discovery, which this test does not ask for
            (planned,) = built.plan.files
            assert planned.watched and planned.category is not None
            key = f"sha256:{built.fingerprints[planned.path].digests['sha256'].hex()}"
            v1, v2 = built.hashes.v1, built.hashes.v2
            # One sighting per torrent: a hybrid's under its v1 hash, naming v2.
            name_key = (v1 or v2).hex()
            expected[(name_key, seed1.ip, seed1.port)] = (
                key,
                planned.category,
                built.plan.piece_size,
            )
            if v1 is not None and v2 is not None:
                hybrids[v1.hex()] = v2.hex()
        yield Lab(
            dir=lab_dir,
            db_url=f"sqlite:///{lab_dir / 'atalaya.db'}",
            watch_args=args,
            expected=expected,
            hybrids=hybrids,
            leecher_ip=network.peers["leech-1"].ip,
            unwatched_ip=network.peers["seed-2"].ip,
            dht_nodes=[(p.ip, p.port) for p in network.peers.values()],
        )


@pytest.fixture(scope="module")
def watched(lab: Lab) -> dict[str, Any]:
    """init, import the lab's hash set, one `watch --duration` run; its JSON summary."""
    init = atalaya(lab, "init")
    assert init.returncode == 0, init.stderr
    imported = atalaya(
        lab, "hashsets", "import", str(lab.dir / HASH_SET_NAME), "--format", "csv", "--json"
    )
    assert imported.returncode == 0, imported.stderr
    watch = atalaya(
        lab,
        "watch",
        "bittorrent",
        *lab.watch_args,
        "--duration",
        str(DURATION),
        "--pieces",
        str(PIECES),
        "--json",
        timeout=DURATION + 60,
    )
    assert watch.returncode == 0, watch.stderr
    assert "Traceback" not in watch.stderr
    summary: dict[str, Any] = json.loads(watch.stdout)
    return summary


def export(lab: Lab, fmt: str) -> str:
    result = atalaya(lab, "sightings", "export", "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith(f"{sightings_in(lab)} sightings exported")
    return result.stdout


@pytest.fixture(scope="module")
def exported(lab: Lab, watched: dict[str, Any]) -> dict[str, str]:
    """The store after the `watch --duration` run, exported in both formats."""
    return {fmt: export(lab, fmt) for fmt in ("jsonl", "csv")}


def test_watch_with_duration_proves_every_seeder(lab: Lab, watched: dict[str, Any]) -> None:
    assert len(lab.expected) == 3  # v1, v2, and the hybrid (two hashes, one torrent)
    assert len(lab.hybrids) == 1
    assert watched["targets"] == 3
    assert watched["sightings"] == watched["verified"] == watched["holding"] == 3
    assert watched["failed_verification"] == 0
    # The leecher was found too (for each of its three torrents) and probed.
    assert watched["peers_found"] >= 6 and watched["probed"] == watched["peers_found"]
    assert sightings_in(lab) == 3


def test_hybrid_seeder_is_one_sighting_naming_both_hashes(
    lab: Lab, watched: dict[str, Any]
) -> None:
    engine = create_store_engine(lab.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(sighting.c.item_value, sighting.c.details).where(
                    sighting.c.run_id == watched["run_id"]
                )
            ).all()
    finally:
        engine.dispose()
    ((v1, v2),) = lab.hybrids.items()
    (details,) = [d for infohash, d in rows if infohash == v1]
    assert details["infohash_v2"] == v2
    assert details["asked_infohash"] in (v1, v2)
    assert details["handshake_infohash"] in (v1, v2[:40])
    assert v2 not in {infohash for infohash, _ in rows}


def test_export_jsonl_has_the_issue_fields(
    lab: Lab, watched: dict[str, Any], exported: dict[str, str]
) -> None:
    rows = [json.loads(line) for line in exported["jsonl"].splitlines()]
    assert len(rows) == 3
    import libtorrent as lt

    for row in rows:
        assert tuple(row)[: len(ISSUE_FIELDS)] == ISSUE_FIELDS
        key = (row["item_value"], row["ip"], row["port"])
        file_key, category, piece_size = lab.expected[key]
        assert row["item_kind"] == ("btih" if len(row["item_value"]) == 40 else "btih2")
        assert row["network"] == "bittorrent"
        assert UTC_MICROSECONDS.fullmatch(row["seen_at"]), row["seen_at"]
        assert row["found_by"] in ("dht", "tracker")
        assert row["client"] == f"atalaya-lab libtorrent/{lt.__version__}"
        assert re.fullmatch(r"[0-9a-f]{40}", row["peer_id"])
        assert bytes.fromhex(row["peer_id"]).startswith(b"-LT")
        assert row["have_fraction"] == 1.0
        assert row["pieces_verified"] == PIECES and row["pieces_failed"] == 0
        assert row["proof"] is True
        assert (PIECES - 1) * piece_size < row["bytes_downloaded"] <= PIECES * piece_size
        assert row["file_key"] == file_key
        assert row["category"] == category
        assert row["local_ip"] == OBSERVER_IP
        assert row["run_id"] == watched["run_id"]
    assert {(r["item_value"], r["ip"], r["port"]) for r in rows} == set(lab.expected)
    # Oldest first.
    assert [r["seen_at"] for r in rows] == sorted(r["seen_at"] for r in rows)
    # Neither the leecher nor the peer of unwatched files is in it.
    assert not {r["ip"] for r in rows} & {lab.leecher_ip, lab.unwatched_ip}


def test_watch_keeps_its_dht_state_for_the_next_run(lab: Lab, watched: dict[str, Any]) -> None:
    state = json.loads((lab.dir / "dht.json").read_text())
    assert state["version"] == 1
    assert re.fullmatch(r"[0-9a-f]{40}", state["ipv4"]["node_id"])
    saved = {(ip, port) for ip, port in state["ipv4"]["nodes"]}
    assert saved, "the lab's DHT nodes answered: they are worth keeping"
    assert saved <= set(lab.dht_nodes)
    assert "ipv6" not in state  # bound to one IPv4 address: no IPv6 node ran


def test_export_csv_matches_jsonl(exported: dict[str, str]) -> None:
    jsonl = [json.loads(line) for line in exported["jsonl"].splitlines()]
    reader = csv.DictReader(io.StringIO(exported["csv"]))
    assert reader.fieldnames is not None
    assert tuple(reader.fieldnames) == EXPORT_FIELDS
    assert tuple(reader.fieldnames)[: len(ISSUE_FIELDS)] == ISSUE_FIELDS
    rows = list(reader)
    assert len(rows) == len(jsonl) == 3
    for from_csv, from_json in zip(rows, jsonl, strict=True):
        assert from_csv == {k: "" if v is None else str(v) for k, v in from_json.items()}


def test_ctrl_c_stops_watch_and_keeps_its_sightings(lab: Lab, watched: dict[str, Any]) -> None:
    before = sightings_in(lab)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atalaya",
            "--db",
            lab.db_url,
            "watch",
            "bittorrent",
            *lab.watch_args,
            "--pieces",
            str(PIECES),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Interrupt once it has written something: no --duration, it would run on.
        deadline = time.monotonic() + 60
        while sightings_in(lab) == before:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "watch wrote no sighting in 60 s"
            time.sleep(0.1)
        written = sightings_in(lab) - before
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout)
    # Nothing already written is lost, and all it reports is in the store.
    after = [json.loads(line) for line in export(lab, "jsonl").splitlines()]
    mine = [r for r in after if r["run_id"] == summary["run_id"]]
    assert summary["sightings"] == len(mine) >= written >= 1
    assert summary["run_id"] != watched["run_id"]
    assert len(after) == before + len(mine)
    for row in mine:
        assert (row["item_value"], row["ip"], row["port"]) in lab.expected
        assert row["proof"] is True
