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

from atalaya.lab.layout import FAILED_NAME, PID_NAME, SUPERVISOR_MODULE
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {SUPERVISOR_MODULE}")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--seeders", type=int, default=LabSpec.seeders)
    parser.add_argument("--leechers", type=int, default=LabSpec.leechers)
    parser.add_argument("--transmission", action="store_true")
    parser.add_argument("--ip-prefix", default=LabSpec.ip_prefix)
    parser.add_argument("--timeout", type=float, default=LabSpec.start_timeout)
    parser.add_argument("--max-lifetime", type=float, default=DEFAULT_LIFETIME)
    args = parser.parse_args(argv)
    try:
        spec = LabSpec(
            seeders=args.seeders,
            leechers=args.leechers,
            transmission=args.transmission,
            ip_prefix=args.ip_prefix,
            start_timeout=args.timeout,
        )
    except Exception as exc:
        args.dir.mkdir(parents=True, exist_ok=True)
        (args.dir / FAILED_NAME).write_text(f"{exc}\n")
        return 2
    return run(spec, args.dir.resolve(), args.max_lifetime)


if __name__ == "__main__":
    sys.exit(main())
