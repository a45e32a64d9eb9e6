"""The background process of `atalaya lab up`: holds the lab until told to stop.

It writes its pid file first, starts the network, writes the manifest and the
hash set (their presence means "ready"), then drains libtorrent's alerts
until SIGTERM or SIGINT, or its maximum lifetime, and stops everything it
started. A failure to start is written to `failed.txt` for `lab up` to show.
Run as `python -m atalaya.lab.supervisor --dir DIR ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from atalaya.lab.layout import FAILED_NAME, NETNS_TAG_NAME, PID_NAME, SUPERVISOR_MODULE
from atalaya.lab.manifest import write_outputs
from atalaya.lab.network import LabNetwork, LabSpec

DEFAULT_LIFETIME = 12 * 3600.0
_TICK_SECONDS = 0.5


def run(spec: LabSpec, lab_dir: Path, max_lifetime: float) -> int:
    """Start the lab, hold it until a stop signal or `max_lifetime`; the exit status."""
    lab_dir.mkdir(parents=True, exist_ok=True)
    (lab_dir / PID_NAME).write_text(f"{os.getpid()}\n")
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    network = LabNetwork(spec, lab_dir)
    try:
        try:
            network.start()
            write_outputs(network, supervisor_pid=os.getpid())
        except Exception as exc:
            (lab_dir / FAILED_NAME).write_text(f"{exc}\n")
            print(f"lab failed to start: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"lab ready in {network.startup_seconds:.1f} s", file=sys.stderr, flush=True)
        deadline = time.monotonic() + max_lifetime
        while not stopping and time.monotonic() < deadline:
            network.poll()
            time.sleep(_TICK_SECONDS)
        return 0
    finally:
        network.close()
        with contextlib.suppress(FileNotFoundError):
            (lab_dir / PID_NAME).unlink()


def run_ed2k(lab_dir: Path, timeout: float, max_lifetime: float) -> int:
    """The Kad lab of aMule daemons (lab.amule_kad), held as `run` holds the BitTorrent one.

    Its namespace tag is written before anything is made, so `lab down` can
    remove what it made (namespaces, links, the daemons in them) even after
    this process was killed.
    """
    # Imported here: the BitTorrent lab's supervisor needs none of it.
    from atalaya.lab.amule_kad import AmuleKadLab  # noqa: PLC0415

    lab_dir.mkdir(parents=True, exist_ok=True)
    (lab_dir / PID_NAME).write_text(f"{os.getpid()}\n")
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    lab = AmuleKadLab(lab_dir)
    (lab_dir / NETNS_TAG_NAME).write_text(f"{lab.netns.tag}\n")
    try:
        try:
            lab.start(timeout)
            lab.write_outputs(supervisor_pid=os.getpid())
        except Exception as exc:
            (lab_dir / FAILED_NAME).write_text(f"{exc}\n")
            print(f"lab failed to start: {exc}", file=sys.stderr, flush=True)
            return 1
        print(f"Kad lab ready in {lab.startup_seconds:.1f} s", file=sys.stderr, flush=True)
        deadline = time.monotonic() + max_lifetime
        while not stopping and time.monotonic() < deadline:
            time.sleep(_TICK_SECONDS)
        return 0
    finally:
        lab.close()
        with contextlib.suppress(FileNotFoundError):
            (lab_dir / PID_NAME).unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {SUPERVISOR_MODULE}")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--seeders", type=int, default=LabSpec.seeders)
    parser.add_argument("--leechers", type=int, default=LabSpec.leechers)
    parser.add_argument("--transmission", action="store_true")
    parser.add_argument("--amule", action="store_true")
    parser.add_argument("--ip-prefix", default=LabSpec.ip_prefix)
    parser.add_argument("--timeout", type=float, default=LabSpec.start_timeout)
    parser.add_argument("--max-lifetime", type=float, default=DEFAULT_LIFETIME)
    parser.add_argument("--ed2k", action="store_true", help="the Kad lab of aMule daemons")
    args = parser.parse_args(argv)
    try:
        spec = LabSpec(
            seeders=args.seeders,
            leechers=args.leechers,
            transmission=args.transmission,
            amule=args.amule,
            ip_prefix=args.ip_prefix,
            start_timeout=args.timeout,
        )
    except Exception as exc:
        args.dir.mkdir(parents=True, exist_ok=True)
        (args.dir / FAILED_NAME).write_text(f"{exc}\n")
        return 2
    if args.ed2k:
        return run_ed2k(args.dir.resolve(), args.timeout, args.max_lifetime)
    return run(spec, args.dir.resolve(), args.max_lifetime)


if __name__ == "__main__":
    sys.exit(main())
