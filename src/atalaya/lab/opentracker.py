"""A real opentracker (Debian package) on a loopback address, whitelist-only.

Debian builds opentracker with a whitelist: it serves only the info-hashes
written to the file given with `-w` before it starts. Run as root it chroots
into its folder (`-d`) and drops to the user `nobody`, so the folder and the
file are made readable by everyone and the file is named relative to it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from atalaya.errors import AtalayaError
from atalaya.lab.ports import free_port, is_loopback
from atalaya.lab.processes import end_child

WHITELIST_NAME = "whitelist.txt"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class OpenTracker:
    """opentracker serving `infohashes` over HTTP and UDP on ip:port."""

    def __init__(
        self, ip: str, workdir: Path, infohashes: Sequence[bytes], *, port: int | None = None
    ) -> None:
        if not is_loopback(ip):
            raise ValueError(f"the lab tracker lives on 127.0.0.0/8 only, got {ip!r}")
        self.ip = ip
        self.workdir = workdir
        self.port = port or 0
        # Trackers see v2 torrents under the first 20 bytes of their info-hash.
        self.infohashes = tuple(dict.fromkeys(h[:20] for h in infohashes))
        if any(len(h) != 20 for h in self.infohashes):
            raise ValueError("info-hashes must be 20 (v1) or 32 (v2) bytes")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def announce_url(self) -> str:
        return f"http://{self.ip}:{self.port}/announce"

    @property
    def udp_url(self) -> str:
        return f"udp://{self.ip}:{self.port}/announce"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Write the whitelist, start opentracker and wait until it accepts connections."""
        if self.process is not None:
            return
        binary = shutil.which("opentracker")
        if binary is None:
            raise AtalayaError("opentracker is not installed: run scripts/setup.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        whitelist = self.workdir / WHITELIST_NAME
        whitelist.write_text("".join(h.hex() + "\n" for h in self.infohashes))
        whitelist.chmod(0o644)
        if not self.port:
            self.port = free_port(self.ip)
        log = (self.workdir / "opentracker.log").open("wb")
        args = [binary, "-i", self.ip, "-p", str(self.port), "-P", str(self.port)]
        args += ["-d", str(self.workdir), "-w", WHITELIST_NAME]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        with log:
            self.process = subprocess.Popen(
                args, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + _START_TIMEOUT
        # It accepts connections before its whitelist is loaded: wait for both.
        while not (_accepts(self.ip, self.port) and self._serves_whitelist()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                text = (self.workdir / "opentracker.log").read_text(errors="replace").strip()
                raise AtalayaError(f"opentracker did not start on {self.ip}:{self.port}: {text}")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the process this object started; safe to call twice."""
        process, self.process = self.process, None
        end_child(process, _STOP_TIMEOUT)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _serves_whitelist(self) -> bool:
        if not self.infohashes:
            return True
        # A "stopped" announce skips the whitelist: ask as a peer, then leave again.
        if not self._announce("started"):
            return False
        self._announce("stopped")
        return True

    def _announce(self, event: str) -> bool:
        """Whether an announce of the first whitelisted hash succeeded."""
        query = urllib.parse.urlencode(
            {
                "info_hash": self.infohashes[0],
                "peer_id": b"-AT0000-labreadiness",
                "port": 1,
                "uploaded": 0,
                "downloaded": 0,
                "left": 0,
                "numwant": 0,
                "compact": 1,
                "event": event,
            }
        )
        url = f"{self.announce_url}?{query}"  # always http://127.x, built here
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:  # noqa: S310
                return b"failure reason" not in reply.read(65536)
        except OSError:
            return False


def _accepts(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False
