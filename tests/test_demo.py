"""The README's main command: the demo runs end to end against the real lab."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from atalaya import demo
from atalaya.lab.geo import PLACES, place_of
from atalaya.store import create_store_engine
from atalaya.store.tables import lead_presence

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.mark.timeout(900)  # a lab, 40 s + 15 s of watching, leads, a signed request and package
def test_demo_finds_exactly_the_lab_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "demo"
    assert demo.main(["--dir", str(work), "--duration", "40", "--no-serve"]) == 0
    printed = capsys.readouterr().out
    assert "missed: 0; reported without seeding: 0" in printed
    # The lab's aMule shares one watched file (and one unwatched): found, proven, nothing else.
    assert (
        "eMule ground truth: 1 (peer, watched file) pairs sharing; sighted with verified "
        "parts: 1; missed: 0; reported without sharing: 0"
    ) in printed
    with (work / "sightings.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows, "the demo exported no sighting"
    assert {row["network"] for row in rows} == {"bittorrent", "ed2k"}
    assert {row["found_by"] for row in rows if row["network"] == "bittorrent"} >= {"dht", "tracker"}
    assert all(int(row["pieces_failed"]) == 0 for row in rows)
    manifest = json.loads((work / "lab" / "manifest.json").read_text())
    (amule,) = manifest["ed2k_peers"]
    (ed2k_row,) = [row for row in rows if row["network"] == "ed2k"]
    assert (ed2k_row["ip"], int(ed2k_row["port"])) == (amule["ip"], amule["port"])
    assert ed2k_row["client"] == "aMule 2.3.3" and ed2k_row["proof_kind"] == "full_file"
    (shared,) = [f for f in amule["shares"] if f["watched"]]
    assert ed2k_row["item_value"] == shared["ed2k"]
    # Every sighted peer became part of a lead placed in a real Spanish municipality
    # by the lab's own location database.
    leads = json.loads((work / "leads.geojson").read_text())["features"]
    assert leads, "the demo built no lead"
    municipalities = {p.municipality_code for p in PLACES if p.municipality_code}
    for feature in leads:
        assert feature["geometry"]["type"] == "Point"
        assert feature["properties"]["municipality_code"] in municipalities
    # The aMule client's lead is on the map beside the BitTorrent ones, in its own town.
    emule_leads = [f for f in leads if "ed2k" in f["properties"]["networks"]]
    assert len(emule_leads) == 1
    amule_place = place_of(int(amule["ip"].rsplit(".", 1)[1]))
    assert amule_place.country == "ES"
    assert emule_leads[0]["properties"]["municipality_code"] == amule_place.municipality_code
    engine = create_store_engine(f"sqlite:///{work / 'atalaya.db'}")
    with engine.connect() as conn:
        in_leads = set(conn.scalars(select(lead_presence.c.ip).distinct()))
    engine.dispose()
    assert in_leads == {row["ip"] for row in rows}
    # The top lead went to a judge: its signed request (PDF/A and DOCX) and an
    # evidence package that verified offline (the demo fails otherwise).
    drafted = {p.suffix for p in (work / "requests").iterdir()}
    assert drafted == {".pdf", ".docx"}
    assert (work / "case-1.zip").stat().st_size > 0
    # The lab was stopped: none of its processes (aMule's included) is left running.
    pids = [manifest["supervisor_pid"], *manifest["child_pids"]]
    assert pids[0] is not None and amule["pid"] in pids
    assert not [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    # A stopped process may linger as a zombie until init reaps it: that is not running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("not the demo's")
    assert demo.main(["--dir", str(tmp_path), "--duration", "1"]) == 1
    assert (tmp_path / "precious.txt").read_text() == "not the demo's"


def test_the_ed2k_watch_names_every_watched_file_and_the_truth_only_shared_ones() -> None:
    watched = {"path": "d/w.bin", "size": 7, "watched": True, "ed2k": "aa" * 16}
    unwatched = {"path": "u.bin", "size": 9, "watched": False, "ed2k": "bb" * 16}
    other = {"path": "o.bin", "size": 8, "watched": True, "ed2k": "cc" * 16}
    manifest = {
        "torrents": [{"files": [watched, unwatched]}, {"files": [other]}],
        "ed2k_peers": [{"ip": "127.77.0.91", "port": 4662, "shares": [watched, unwatched]}],
    }
    args = demo._ed2k_watch_args(manifest)
    assert args[:4] == ["watch", "ed2k", "--source", "127.77.0.91:4662"]
    links = [args[i + 1] for i, a in enumerate(args) if a == "--link"]
    assert links == [f"ed2k://|file|w.bin|7|{'aa' * 16}|/", f"ed2k://|file|o.bin|8|{'cc' * 16}|/"]
    names, expected = demo._ed2k_ground_truth(manifest)
    assert expected == {("127.77.0.91", "w.bin")} and names["bb" * 16] == "u.bin"
