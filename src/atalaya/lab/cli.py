"""`atalaya lab up|down|status`: a local network of real peers in the background."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from atalaya.console import err, out, print_json
from atalaya.errors import AtalayaError
from atalaya.lab import processes
from atalaya.lab.layout import (
    DEFAULT_IP_PREFIX,
    FAILED_NAME,
    HASH_SET_NAME,
    LOG_NAME,
    MANIFEST_NAME,
    NETNS_TAG_NAME,
    PID_NAME,
    SUPERVISOR_MODULE,
    clear_outputs,
    load_manifest,
)

app = typer.Typer(
    help="The lab: real BitTorrent (and eD2K) peers on 127.x for demos and tests.",
    no_args_is_help=True,
)

DirOption = Annotated[
    Path, typer.Option("--dir", help="Folder of the lab: content, logs, manifest.")
]
DEFAULT_DIR = Path("lab-run")
_STOP_TIMEOUT = 10.0
_CHILD_NAMES = ("opentracker", "transmission-daemon", "amuled")
_ED2K_MIN_TIMEOUT = 420.0


def _supervisor_pid(lab_dir: Path) -> int | None:
    """The pid of the supervisor running `lab_dir`, or None."""
    try:
        pid = int((lab_dir / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if processes.is_running(pid, SUPERVISOR_MODULE) else None


@app.command()
def up(
    lab_dir: DirOption = DEFAULT_DIR,
    peers: Annotated[int, typer.Option("--peers", help="libtorrent seeders.")] = 3,
    leechers: Annotated[int, typer.Option("--leechers", help="Peers holding nothing.")] = 1,
    transmission: Annotated[
        bool, typer.Option("--transmission", help="Add a Transmission 3.00 v1 seeder.")
    ] = False,
    amule: Annotated[
        bool,
        typer.Option(
            "--amule",
            help="Add an aMule 2.3.3 eD2K client sharing a watched and an unwatched file "
            "(watch it with 'watch ed2k --source IP:PORT').",
        ),
    ] = False,
    ip_prefix: Annotated[
        str, typer.Option("--ip-prefix", help="Addresses PREFIX.N (127.x.y).")
    ] = DEFAULT_IP_PREFIX,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for it.")] = 60.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the manifest.")] = False,
    ed2k: Annotated[
        bool,
        typer.Option(
            "--ed2k",
            help="Instead: a Kad network of real aMule daemons in network namespaces "
            "(needs root; ready in about two minutes, waits at least 420 s).",
        ),
    ] = False,
) -> None:
    """Start the lab in the background and wait until its peers seed and its DHT formed."""
    if ed2k:
        _up_ed2k(lab_dir, max(timeout, _ED2K_MIN_TIMEOUT), json_output)
        return
    # Imported here: the rest of `atalaya` runs without libtorrent installed.
    from atalaya.lab.network import LabSpec  # noqa: PLC0415

    spec = LabSpec(
        seeders=peers,
        leechers=leechers,
        transmission=transmission,
        amule=amule,
        ip_prefix=ip_prefix,
        start_timeout=timeout,
    )
    lab_dir = lab_dir.resolve()
    running = _supervisor_pid(lab_dir)
    if running is not None:
        raise AtalayaError(
            f"a lab is already running in {lab_dir} (pid {running}): "
            f"stop it with 'atalaya lab down --dir {lab_dir}'"
        )
    lab_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(lab_dir)
    args = [sys.executable, "-m", SUPERVISOR_MODULE, "--dir", str(lab_dir)]
    args += ["--seeders", str(spec.seeders), "--leechers", str(spec.leechers)]
    args += ["--ip-prefix", spec.ip_prefix, "--timeout", str(spec.start_timeout)]
    if spec.transmission:
        args.append("--transmission")
    if spec.amule:
        args.append("--amule")
    with (lab_dir / LOG_NAME).open("ab") as log:
        # Its own session: a Ctrl-C in this terminal later must not reach it.
        child = subprocess.Popen(
            args,
            cwd=lab_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    err.print(f"starting the lab in {lab_dir} (pid {child.pid})")
    try:
        manifest = _wait_ready(lab_dir, child, spec.start_timeout + 15.0)
    except BaseException:
        processes.end_child(child, _STOP_TIMEOUT)
        raise
    err.print(f"lab ready in {manifest['startup_seconds']:.1f} s; stop it with 'atalaya lab down'")
    if json_output:
        print_json(manifest)
        return
    out.print(f"manifest: {lab_dir / MANIFEST_NAME}")
    out.print(f"hash set: {lab_dir / HASH_SET_NAME}")
    out.print(f"tracker:  {manifest['tracker']['announce_url']} {manifest['tracker']['udp_url']}")
    nodes = " ".join(f"{n['ip']}:{n['port']}" for n in manifest["dht_nodes"])
    out.print(f"dht:      {nodes}")
    for peer in manifest["ed2k_peers"]:
        out.print(f"ed2k:     --source {peer['ip']}:{peer['port']} ({peer['client']})")


def _up_ed2k(lab_dir: Path, timeout: float, json_output: bool) -> None:
    from atalaya.lab.netns import require_netns  # noqa: PLC0415

    require_netns()
    lab_dir = lab_dir.resolve()
    running = _supervisor_pid(lab_dir)
    if running is not None:
        raise AtalayaError(
            f"a lab is already running in {lab_dir} (pid {running}): "
            f"stop it with 'atalaya lab down --dir {lab_dir}'"
        )
    lab_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(lab_dir)
    _remove_namespaces(lab_dir)  # what a killed earlier run left here
    args = [sys.executable, "-m", SUPERVISOR_MODULE, "--dir", str(lab_dir), "--ed2k"]
    args += ["--timeout", str(timeout)]
    with (lab_dir / LOG_NAME).open("ab") as log:
        child = subprocess.Popen(
            args,
            cwd=lab_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    err.print(f"starting the Kad lab in {lab_dir} (pid {child.pid})")
    try:
        manifest = _wait_ready(lab_dir, child, timeout + 30.0)
    except BaseException:
        processes.end_child(child, _STOP_TIMEOUT)
        _remove_namespaces(lab_dir)
        raise
    err.print(f"Kad lab ready in {manifest['startup_seconds']:.1f} s (aMule publishes its "
              "sources into Kad about 100 s later); stop it with 'atalaya lab down --dir "
              f"{lab_dir}'")  # fmt: skip
    if json_output:
        print_json(manifest)
        return
    _print_ed2k(manifest)


def _print_ed2k(manifest: dict[str, Any]) -> None:
    out.print(f"hash set: {manifest['hash_set']} (--format lines --algorithm ed2k)")
    out.print(f"watched:  {manifest['watched']['link']}")
    out.print(f"bind:     {manifest['observer_ip']}")
    out.print("kad:      " + " ".join(f"--kad-bootstrap {b}" for b in manifest["kad_bootstrap"]))
    for node in manifest["nodes"]:
        out.print(
            f"{node['name']:<11} {node['ip']}:{node['tcp_port']} (Kad UDP {node['udp_port']})"
        )


def _remove_namespaces(lab_dir: Path) -> list[str]:
    """Remove the namespaces, links and daemons of the Kad lab of `lab_dir`, by its tag."""
    from atalaya.lab.netns import remove_leftovers  # noqa: PLC0415

    path = lab_dir / NETNS_TAG_NAME
    try:
        tag = path.read_text().strip()
    except FileNotFoundError:
        return []
    removed = remove_leftovers(tag)
    path.unlink()
    return removed


def _wait_ready(lab_dir: Path, child: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        if (lab_dir / MANIFEST_NAME).exists():
            manifest = load_manifest(lab_dir)
            if manifest.get("supervisor_pid") == child.pid:
                return manifest
        status = child.poll()
        if status is not None:
            failed = lab_dir / FAILED_NAME
            reason = failed.read_text().strip() if failed.exists() else _log_tail(lab_dir)
            raise AtalayaError(f"the lab did not start: {reason}")
        if time.monotonic() >= deadline:
            raise AtalayaError(
                f"the lab was not ready after {timeout:.0f} s; see {lab_dir / LOG_NAME}"
            )
        time.sleep(0.1)


def _log_tail(lab_dir: Path) -> str:
    try:
        lines = (lab_dir / LOG_NAME).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


@app.command()
def down(lab_dir: DirOption = DEFAULT_DIR) -> None:
    """Stop the lab started in --dir: its supervisor, then any daemon it left behind."""
    lab_dir = lab_dir.resolve()
    pid = _supervisor_pid(lab_dir)
    children: list[int] = []
    with contextlib.suppress(AtalayaError):
        children = [int(p) for p in load_manifest(lab_dir).get("child_pids", [])]
    if pid is None and not any(_is_child(c) for c in children):
        # A Kad lab whose supervisor was killed leaves namespaces: find them by tag.
        removed = _remove_namespaces(lab_dir)
        with contextlib.suppress(FileNotFoundError):
            (lab_dir / PID_NAME).unlink()  # the killed supervisor's
        if removed:
            err.print(f"removed what a stopped Kad lab left: {', '.join(removed)}")
        else:
            err.print(f"no lab is running in {lab_dir}")
        return
    if pid is not None and not processes.stop(pid, SUPERVISOR_MODULE, _STOP_TIMEOUT):
        raise AtalayaError(f"the lab supervisor (pid {pid}) did not stop")
    # A supervisor that was killed cannot stop its daemons: stop them by their pid.
    for child in children:
        for name in _CHILD_NAMES:
            if not processes.stop(child, name, _STOP_TIMEOUT):
                raise AtalayaError(f"lab process {child} ({name}) did not stop")
    _remove_namespaces(lab_dir)
    with contextlib.suppress(FileNotFoundError):
        (lab_dir / PID_NAME).unlink()
    err.print(f"lab in {lab_dir} stopped")


def _is_child(pid: int) -> bool:
    return any(processes.is_running(pid, name) for name in _CHILD_NAMES)


@app.command()
def status(
    lab_dir: DirOption = DEFAULT_DIR,
    json_output: Annotated[bool, typer.Option("--json", help="Print the manifest.")] = False,
) -> None:
    """Say whether the lab in --dir runs, and what it holds."""
    lab_dir = lab_dir.resolve()
    pid = _supervisor_pid(lab_dir)
    if pid is None:
        if json_output:
            print_json({"running": False, "lab_dir": str(lab_dir)})
        else:
            out.print(f"no lab is running in {lab_dir}")
        raise typer.Exit(1)
    manifest = load_manifest(lab_dir)
    if json_output:
        print_json({"running": True, **manifest})
        return
    out.print(f"lab running in {lab_dir} (pid {pid})")
    if manifest.get("kind") == "ed2k-kad":
        _print_ed2k(manifest)
        return
    out.print(f"tracker:  {manifest['tracker']['announce_url']}")
    for peer in manifest["peers"]:
        held = ", ".join(peer["seeds"]) or "-"
        nothing = ", ".join(peer["holds_nothing"])
        line = f"{peer['name']:<13} {peer['ip']}:{peer['port']:<6} seeds {held}"
        out.print(line + (f"; holds nothing of {nothing}" if nothing else ""))
    for peer in manifest.get("ed2k_peers", []):
        shares = ", ".join(
            s["path"] + (" (watched)" if s["watched"] else "") for s in peer["shares"]
        )
        out.print(f"{peer['name']:<13} {peer['ip']}:{peer['port']:<6} shares on eD2K {shares}")
