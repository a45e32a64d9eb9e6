"""Time servers for clock tests, on 127.0.0.0/8 with ports picked at run time.

`Chronyd`: Debian's real chronyd, on its own configuration, serving its
local clock (`local stratum 8`) over NTP and answering `chronyc tracking`
on its own command port. `-x` keeps it off the system clock; its pid,
drift and socket files live in the test's folder.

`SkewedNtpServer`: a small NTP responder (RFC 5905 server mode) whose clock
runs `skew_s` seconds off ours: a real UDP exchange, for the case no
well-behaved server can be made to show.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from atalaya.lab.ports import free_port

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
STARTUP_TIMEOUT_S = 10.0


def _ntp_timestamp(seconds: float) -> bytes:
    value = seconds + NTP_EPOCH_OFFSET
    whole = int(value)
    return struct.pack("!II", whole, int((value - whole) * 2**32) & 0xFFFFFFFF)


class Chronyd:
    """A chronyd of the test's own; a context manager that stops it (by pid) on exit."""

    def __init__(self, ip: str, workdir: Path) -> None:
        self.ip = ip
        self.workdir = workdir
        self.ntp_port = free_port(ip)
        self.cmd_port = free_port(ip)
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("chronyd") is not None and shutil.which("chronyc") is not None

    @property
    def server(self) -> str:
        return f"{self.ip}:{self.ntp_port}"

    @property
    def chronyc(self) -> tuple[str, ...]:
        return ("chronyc", "-h", self.ip, "-p", str(self.cmd_port), "-n", "tracking")

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "chrony.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.ntp_port}",
                    f"bindaddress {self.ip}",
                    f"cmdport {self.cmd_port}",
                    f"bindcmdaddress {self.ip}",
                    # Clients on loopback speak from 127.0.0.1 whatever address they ask.
                    "cmdallow 127.0.0.0/8",
                    "allow 127.0.0.0/8",
                    "local stratum 8",
                    f"pidfile {self.workdir / 'chronyd.pid'}",
                    f"driftfile {self.workdir / 'chrony.drift'}",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)],
            stdout=(self.workdir / "chronyd.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = (self.workdir / "chronyd.log").read_text(errors="replace")
                raise RuntimeError(f"chronyd exited: {log}")
            done = subprocess.run(
                list(self.chronyc), capture_output=True, text=True, timeout=5, check=False
            )
            if done.returncode == 0 and "Leap status     : Normal" in done.stdout:
                return
            time.sleep(0.2)
        raise RuntimeError("chronyd did not answer `chronyc tracking` in time")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SkewedNtpServer:
    """An NTP server whose clock is `skew_s` seconds off ours (positive: ahead)."""

    def __init__(self, ip: str, skew_s: float, *, stratum: int = 2, leap: int = 0) -> None:
        self.ip = ip
        self.skew_s = skew_s
        self.stratum = stratum
        self.leap = leap
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def server(self) -> str:
        return f"{self.ip}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(query) < 48:
                continue
            received = time.time() + self.skew_s
            version = (query[0] >> 3) & 7
            header = struct.pack(
                "!BBbb", (self.leap << 6) | (version << 3) | 4, self.stratum, 4, -20
            )
            reply = (
                header
                + bytes(8)  # root delay, root dispersion
                + b"TEST"  # reference id
                + _ntp_timestamp(received - 1)  # reference time
                + query[40:48]  # originate: the client's transmit time
                + _ntp_timestamp(received)
                + _ntp_timestamp(time.time() + self.skew_s)
            )
            # Counted before it leaves: the client may read it before this thread runs on.
            self.answered += 1
            with contextlib.suppress(OSError):
                self.sock.sendto(reply, peer)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def silence(self) -> None:
        """Stop answering; the port stays bound, so queries go unanswered."""
        self._stop.set()
        self._thread.join(5)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.silence()
        self.sock.close()
