"""The README demo: a lab of real peers, watched, its sightings made into leads, on a map.

Runs the same `atalaya` commands an operator would, printing each one before
it runs, in a folder of its own (`demo-run/` by default): start the lab of
real third-party peers on 127.77.0.N, create the store, import the lab's
reference hash set, watch BitTorrent through the lab's tracker and DHT with
discovery on, then eD2K: probe the lab's aMule client (on loopback a source
known by address, as aMule's Kad refuses 127/8) for every watched file's eD2K
hash. Export the sightings and compare them with the lab's ground truth
(which peer really seeds or shares which watched file). Then enrich the sighted
addresses from the lab's own MaxMind-format database (made-up ISPs in real
Spanish towns), build and list the leads, create a unit and two users, stop
the lab (also on failure or Ctrl-C) and serve the web application on the
results until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from atalaya.lab.geo import PLACES
from atalaya.lab.layout import load_manifest
from atalaya.lab.pki import make_pki
from atalaya.lab.tsa import LabTsa
from atalaya.signing import P12_ENV, P12_PASSWORD_ENV

console = Console(highlight=False)
if not console.is_terminal:
    # Piped or logged: the table keeps full addresses and names rather than 80 columns.
    console = Console(highlight=False, width=160)
# Marks a folder as the demo's own, so a re-run may clear it and nothing else.
_STAMP = ".atalaya-demo"
DEMO_UNIT = "Unidad demo (made up)"
# One round of eD2K probes (about a second a file) fits; the next round would
# come after the run ends.
ED2K_DURATION = 15.0
ED2K_STATE = "ed2k-state.json"


class DemoError(Exception):
    """A step of the demo failed; its message says which and why."""


# Every read of personal data says what for, every export to whom (LED art. 25).
_DISCLOSE = ("--purpose", "triage", "--recipient", "the demo")


def _atalaya(
    args: Sequence[str],
    cwd: Path,
    *,
    capture: bool = False,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run one `atalaya` command as a user would, showing it first."""
    shown = shlex.join(args) + (" <<< '…'" if stdin is not None else "")
    console.print(f"[bold cyan]$ atalaya {shown}[/]", soft_wrap=True)
    cmd = [sys.executable, "-m", "atalaya.cli", *args]
    done = subprocess.run(
        cmd,
        cwd=cwd,
        check=False,
        text=True,
        input=stdin,
        stdout=subprocess.PIPE if capture else None,
        env={
            **os.environ,
            "ATALAYA_DATABASE_URL": f"sqlite:///{cwd / 'atalaya.db'}",
            # Tables printed to a pipe or a log keep their columns readable.
            **({} if console.is_terminal else {"COLUMNS": str(console.width)}),
            **(env or {}),
        },
    )
    if done.returncode != 0:
        raise DemoError(f"'atalaya {args[0]} …' failed with exit status {done.returncode}")
    return done.stdout or ""


def _prepare(work: Path) -> None:
    if work.exists():
        if not (work / _STAMP).exists():
            raise DemoError(f"{work} exists and is not a demo folder: choose another with --dir")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / _STAMP).write_text("made by python -m atalaya.demo; safe to delete\n")


def _watch_args(manifest: dict[str, Any], duration: float) -> list[str]:
    tracker = manifest["tracker"]
    # The lab lives on loopback: fence the run in, as an operator testing would.
    args = ["watch", "bittorrent", "--allow-network", "127.0.0.0/8"]
    args += ["--bind", "127.0.0.1", "--port", "0"]
    args += ["--tracker", tracker["announce_url"]]
    args += ["--tracker", tracker["udp_url"]]
    for node in manifest["dht_nodes"][:2]:
        args += ["--dht-bootstrap", f"{node['ip']}:{node['port']}"]
    return [*args, "--discover", "--interval", "10", "--duration", f"{duration:g}"]


def _ed2k_watch_args(manifest: dict[str, Any]) -> list[str]:
    """Probe the lab's eD2K clients for every watched file.

    The lab's CSV hash set carries eD2K hashes but no sizes, and a file of one
    part is proven only with its size: the files' ed2k:// links give it. All
    watched files are named, not just the ones aMule shares, so the ones it
    does not have show as not sharing.
    """
    args = ["watch", "ed2k"]
    for peer in manifest["ed2k_peers"]:
        args += ["--source", f"{peer['ip']}:{peer['port']}"]
    # Our user hash stays in the demo folder: aMule distrusts an address whose hash changes.
    args += ["--bind", "127.0.0.1", "--state", ED2K_STATE]
    for torrent in manifest["torrents"]:
        for f in torrent["files"]:
            if f["watched"]:
                name = f["path"].rsplit("/", 1)[-1]
                args += ["--link", f"ed2k://|file|{name}|{f['size']}|{f['ed2k']}|/"]
    return [*args, "--duration", f"{ED2K_DURATION:g}", "--interval", "600"]


def _ground_truth(manifest: dict[str, Any]) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """Infohash → torrent name, and the (ip, torrent) pairs that really seed a watched file."""
    names: dict[str, str] = {}
    ip_of = {peer["name"]: peer["ip"] for peer in manifest["peers"]}
    expected: set[tuple[str, str]] = set()
    for torrent in manifest["torrents"]:
        for key in ("infohash_v1", "infohash_v2"):
            if torrent.get(key):
                names[torrent[key]] = torrent["name"]
        if any(f["watched"] for f in torrent["files"]):
            expected |= {(ip_of[s], torrent["name"]) for s in torrent["seeders"]}
    return names, expected


def _ed2k_ground_truth(manifest: dict[str, Any]) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """eD2K hash → file name, and the (ip, file name) pairs of watched files really shared."""
    names: dict[str, str] = {}
    for torrent in manifest["torrents"]:
        for f in torrent["files"]:
            names[f["ed2k"]] = f["path"].rsplit("/", 1)[-1]
    expected = {
        (peer["ip"], names[f["ed2k"]])
        for peer in manifest.get("ed2k_peers", [])
        for f in peer["shares"]
        if f["watched"]
    }
    return names, expected


def _proven(sightings: list[dict[str, Any]], names: dict[str, str]) -> set[tuple[str, str]]:
    return {
        (s["ip"], names.get(s["item_value"], s["item_value"]))
        for s in sightings
        if s["pieces_verified"] > 0 and s["pieces_failed"] == 0
    }


def _compare(
    expected: set[tuple[str, str]],
    proven: set[tuple[str, str]],
    *,
    title: str,
    item: str,
    verb: str,
    proof: str,
) -> bool:
    """Print one network's ground truth against what was proven; whether they match."""
    missed = expected - proven
    wrong = proven - expected
    console.print(
        f"{title} ground truth: {len(expected)} (peer, watched {item}) pairs {verb}; "
        f"sighted with verified {proof}: {len(expected & proven)}; "
        f"missed: {len(missed)}; reported without {verb}: {len(wrong)}"
    )
    for ip, name in sorted(missed):
        console.print(f"  [yellow]missed[/] {ip} {verb} {name}")
    for ip, name in sorted(wrong):
        console.print(f"  [red]wrong[/] {ip} reported for {name}")
    return not missed and not wrong


def _report(manifest: dict[str, Any], sightings: list[dict[str, Any]]) -> bool:
    names, expected = _ground_truth(manifest)
    ed2k_names, ed2k_expected = _ed2k_ground_truth(manifest)
    table = Table(title="Sightings (UTC)", show_lines=False)
    for column in (
        "seen at", "network", "peer", "found by", "client", "torrent / file", "held",
        "verified", "cat.",
    ):  # fmt: skip
        table.add_column(column)
    for s in sorted(sightings, key=lambda s: (s["seen_at"], s["ip"])):
        held = s["have_fraction"]
        verified = f"{s['pieces_verified']} ok" + (
            f", [red]{s['pieces_failed']} failed[/]" if s["pieces_failed"] else ""
        )
        item = names.get(s["item_value"]) or ed2k_names.get(s["item_value"])
        table.add_row(
            s["seen_at"][11:26],
            s["network"],
            f"{s['ip']}:{s['port']}",
            s["found_by"],
            s["client"] or "?",
            item or s["item_value"][:12],
            "?" if held is None else f"{held:.0%}",
            verified,
            "" if s["category"] is None else str(s["category"]),
        )
    console.print(table)
    bittorrent = [s for s in sightings if s["network"] == "bittorrent"]
    ok = _compare(
        expected, _proven(bittorrent, names),
        title="lab", item="torrent", verb="seeding", proof="pieces",
    )  # fmt: skip
    if manifest.get("ed2k_peers"):
        ed2k = [s for s in sightings if s["network"] == "ed2k"]
        # A verified part: the whole file when it has one part, else a part or an AICH block.
        ok = _compare(
            ed2k_expected, _proven(ed2k, ed2k_names),
            title="eMule", item="file", verb="sharing", proof="parts",
        ) and ok  # fmt: skip
    return ok


def _leads(work: Path, lab_dir: Path) -> dict[str, str]:
    """Enrich, build and list leads; a unit for the lab's provinces and its users.

    Returns username -> password of the users made (random, shown once).
    """
    geo_db = str(lab_dir / "geo.mmdb")
    _atalaya(["enrich", "--city-db", geo_db, "--asn-db", geo_db], work)
    _atalaya(["leads", "build"], work)
    _atalaya(["leads", "list", "--purpose", "triage"], work)
    _atalaya(["leads", "export", "--format", "geojson", "--out", "leads.geojson", *_DISCLOSE], work)
    provinces = sorted({p.municipality_code[:2] for p in PLACES if p.municipality_code})
    unit_args = ["units", "add", DEMO_UNIT, "--contact", "demo desk, +34 000 000 000 (made up)"]
    for code in provinces:
        unit_args += ["--province", code]
    _atalaya(unit_args, work)
    users: dict[str, str] = {}
    for name, role in (("analyst", "analyst"), ("auditor", "auditor")):
        password = secrets.token_urlsafe(12)
        _atalaya(
            ["users", "add", name, "--unit", DEMO_UNIT, "--role", role, "--password-stdin"],
            work,
            stdin=password + "\n",
        )
        users[name] = password
    return users


def _to_a_judge(work: Path) -> None:
    """The highest-scoring lead carried to a judge: a case, its request, its evidence package.

    The lab's time-stamp authority (real `openssl ts`) stamps the sightings;
    the request (PAdES) and the package (CMS) are signed with a demo unit
    certificate from a self-made CA (a unit uses its own: atalaya.signing),
    and the package is verified offline, as a defence expert would.
    """
    pki = make_pki(work / "pki")
    env = {P12_ENV: str(pki.p12.path), P12_PASSWORD_ENV: (pki.p12.passphrase or b"").decode()}
    listed = _atalaya(["leads", "list", "--json", "--purpose", "triage"], work, capture=True)
    leads = [json.loads(line) for line in listed.splitlines() if line.strip()]
    if not leads:
        raise DemoError("no lead to open a case on")
    top = max(leads, key=lambda lead: (lead["score"], -lead["id"]))
    _atalaya(["cases", "open", str(top["id"]), "--as", "analyst"], work)
    _atalaya(["requests", "draft-case", "1", "--as", "analyst", "--out", "requests"], work, env=env)
    with LabTsa() as tsa:
        _atalaya(["evidence", "stamp", "--tsa", tsa.url, "--tsa-ca", str(tsa.ca_file)], work)
        shutil.copyfile(tsa.ca_file, work / "tsa-ca.pem")
    _atalaya(
        ["evidence", "export", "1", "--out", "case-1.zip", "--as", "analyst",
         "--recipient", "Juzgado de guardia (demo)"],
        work,
        env=env,
    )  # fmt: skip
    _atalaya(
        ["evidence", "verify", "case-1.zip", "--ca", str(pki.ca_pem), "--tsa-ca", "tsa-ca.pem"],
        work,
    )


def _serve(work: Path, port: int, users: dict[str, str]) -> None:
    """Serve the web application on the demo's store until Ctrl-C."""
    console.print(
        f"[bold]Open http://127.0.0.1:{port}/[/] and sign in: "
        + ", ".join(f"[bold]{u}[/] / [bold]{p}[/]" for u, p in users.items())
        + " (Ctrl-C stops)"
    )
    try:
        _atalaya(["serve", "--port", str(port)], work)
    except KeyboardInterrupt:
        console.print("server stopped")


def run(
    work: Path,
    duration: float,
    transmission: bool,
    serve_port: int | None = None,
    *,
    amule: bool = True,
) -> bool:
    """The whole demo; True when what was found matches the lab's ground truth."""
    _prepare(work)
    lab_dir = work / "lab"
    lab_args = ["lab", "up", "--dir", str(lab_dir)]
    lab_args += ["--transmission"] if transmission else []
    _atalaya([*lab_args, *(["--amule"] if amule else [])], work)
    try:
        manifest = load_manifest(lab_dir)
        _atalaya(["init"], work)
        _atalaya(
            [
                "hashsets",
                "import",
                str(lab_dir / "hashset.csv"),
                "--format",
                "csv",
                "--source",
                "Atalaya lab (synthetic)",
            ],
            work,
        )
        _atalaya(["hashsets", "list"], work)
        _atalaya(_watch_args(manifest, duration), work)
        if manifest.get("ed2k_peers"):
            _atalaya(_ed2k_watch_args(manifest), work)
        exported = _atalaya(
            ["sightings", "export", "--format", "jsonl", *_DISCLOSE], work, capture=True
        )
        sightings = [json.loads(line) for line in exported.splitlines() if line.strip()]
        _atalaya(
            ["sightings", "export", "--format", "csv", "--out", "sightings.csv", *_DISCLOSE], work
        )
        ok = _report(manifest, sightings)
        users = _leads(work, lab_dir)
        _to_a_judge(work)
    finally:
        _atalaya(["lab", "down", "--dir", str(lab_dir)], work)
    if serve_port is not None:
        _serve(work, serve_port, users)
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m atalaya.demo",
        description=(
            "Start a lab of real peers (BitTorrent and eD2K), import its hash set, watch it, "
            "show the sightings, "
            "build leads and serve them on a map."
        ),
    )
    parser.add_argument("--dir", type=Path, default=Path("demo-run"), help="demo folder")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds to watch (default 60)"
    )
    parser.add_argument(
        "--no-transmission", action="store_true", help="leave the Transmission seeder out"
    )
    parser.add_argument("--no-amule", action="store_true", help="leave the aMule (eD2K) client out")
    parser.add_argument(
        "--port", type=int, default=8000, help="port of the web application (default 8000)"
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="stop after building the leads, serve nothing"
    )
    args = parser.parse_args(argv)
    work = args.dir.resolve()
    try:
        ok = run(
            work,
            args.duration,
            transmission=not args.no_transmission,
            serve_port=None if args.no_serve else args.port,
            amule=not args.no_amule,
        )
    except DemoError as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    console.print(f"store, lab logs, sightings.csv and leads.geojson are in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
