"""A real aMule 2.3.3 daemon (Debian amule-daemon) sharing lab files over eD2K.

amuled answers the eD2K client protocol on loopback (its Kad refuses 127/8:
see the lab notes), so on 127.0.0.0/8 it is a source found by address, with
eD2K servers and Kad off. It runs from its own config folder with its own
ports; External Connections (EC) are on, on its address, with a random
password, so `amulecmd` can ask it what it shares and who it is.

Upload limits matter: with aMule's defaults a loopback client gets ~12 KiB/s,
so the lab sets a high upload rate (kB/s) and enough slots for every probe.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from atalaya.errors import AtalayaError
from atalaya.lab.ports import free_port, is_loopback
from atalaya.lab.processes import end_child

_START_TIMEOUT = 60.0  # aMule hashes every shared file before it lists it
_STOP_TIMEOUT = 10.0
_CMD_TIMEOUT = 15.0
_SHARED_LINE = re.compile(r"^\s*>\s*([0-9A-Fa-f]{32})\s+(.+?)\s*$")


class AmuleError(AtalayaError):
    """The lab's aMule daemon failed to start or to answer."""


@dataclass(frozen=True)
class SharedFile:
    ed2k: bytes
    path: str


# aMule's [Obfuscation] settings, weakest to strongest: each level implies
# the ones before it (Preferences.h); "requested" is aMule's default.
Obfuscation = Literal["off", "supported", "requested", "required"]
_OBFUSCATION_LEVELS: dict[str, tuple[int, int, int]] = {
    "off": (0, 0, 0),
    "supported": (1, 0, 0),
    "requested": (1, 1, 0),
    "required": (1, 1, 1),
}


def obfuscation_conf(level: Obfuscation) -> str:
    """aMule's [Obfuscation] section for `level`."""
    supported, requested, required = _OBFUSCATION_LEVELS[level]
    return (
        "[Obfuscation]\n"
        f"IsClientCryptLayerSupported={supported}\n"
        f"IsCryptLayerRequested={requested}\n"
        f"IsClientCryptLayerRequired={required}\n"
    )


class AmulePeer:
    """amuled on `ip` (127.0.0.0/8), sharing `files` from its own folder.

    `obfuscation` sets aMule's protocol obfuscation: with "required" it
    closes every plain eD2K connection (IsClientCryptLayerRequired).
    """

    def __init__(
        self,
        ip: str,
        workdir: Path,
        files: Sequence[Path],
        *,
        nick: str = "",
        obfuscation: Obfuscation = "requested",
    ) -> None:
        if not is_loopback(ip):
            raise ValueError(f"an aMule on loopback lives on 127.0.0.0/8, got {ip!r}")
        self.ip = ip
        self.workdir = workdir
        self.files = tuple(files)
        self.obfuscation = obfuscation
        self.nick = nick or f"lab-{secrets.token_hex(3)}"
        self.port = 0
        self.ec_port = 0
        self._password = secrets.token_hex(12)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Write its configuration, start it, and wait until it lists every shared file."""
        if self.process is not None:
            return
        binary = shutil.which("amuled")
        if binary is None or shutil.which("amulecmd") is None:
            raise AmuleError("amuled/amulecmd are not installed: run scripts/setup.sh")
        config = self.workdir / "config"
        share = self.workdir / "share"
        for folder in (config / "Temp", share):
            folder.mkdir(parents=True, exist_ok=True)
        for file in self.files:
            target = share / file.name
            if not target.exists():
                target.hardlink_to(file) if _same_fs(file, share) else shutil.copy2(file, target)
        self.port = free_port(self.ip)
        self.ec_port = free_port(self.ip)
        (config / "amule.conf").write_text(self._conf(config))
        log = (self.workdir / "amuled.log").open("wb")
        with log:
            self.process = subprocess.Popen(
                [binary, "--config-dir", str(config), "--log-stdout"],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                if len(self.shared()) >= len(self.files):
                    return
            except AmuleError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                text = (self.workdir / "amuled.log").read_text(errors="replace")
                raise AmuleError(f"amuled did not start on {self.ip}: {text.strip()[-500:]}")
            time.sleep(0.5)

    def _conf(self, config: Path) -> str:
        md5 = hashlib.md5(self._password.encode(), usedforsecurity=False).hexdigest()
        return (
            "[eMule]\n"
            f"Nick={self.nick}\n"
            f"Address={self.ip}\n"
            f"Port={self.port}\n"
            "UDPPort=0\nUDPEnable=0\n"
            "ConnectToKad=0\nConnectToED2K=0\n"
            # kB/s: unthrottled in practice on loopback; 1,000 kB/s a slot
            # gives 100 slots, one for every probe of a test.
            "MaxUpload=100000\nUploadCapacity=100000\nSlotAllocation=1000\n"
            "MaxDownload=0\n"
            # aMule always shares its incoming folder; a shareddir.dat written
            # before its first run is replaced by an empty one.
            f"TempDir={config / 'Temp'}\nIncomingDir={self.workdir / 'share'}\n"
            "ShareHiddenFiles=0\nIPFilterAutoLoad=0\nFilterLanIPs=0\nParanoidFiltering=0\n"
            "[ExternalConnect]\n"
            "AcceptExternalConnections=1\n"
            f"ECAddress={self.ip}\nECPort={self.ec_port}\nECPassword={md5}\n"
            "[WebServer]\nEnabled=0\n" + obfuscation_conf(self.obfuscation)
        )

    def command(self, text: str) -> str:
        """One amulecmd command's output."""
        try:
            run = subprocess.run(
                [
                    "amulecmd", "-h", self.ip, "-p", str(self.ec_port),
                    "-P", self._password, "-c", text,
                ],
                capture_output=True,
                text=True,
                timeout=_CMD_TIMEOUT,
                check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AmuleError(f"amulecmd failed: {exc}") from exc
        if "Connection established" not in run.stdout:
            raise AmuleError(f"amulecmd could not connect: {run.stdout[-300:]}{run.stderr[-300:]}")
        return run.stdout

    def shared(self) -> list[SharedFile]:
        """What aMule says it shares, hashed."""
        found = []
        for line in self.command("show shared").splitlines():
            match = _SHARED_LINE.match(line)
            if match:
                found.append(SharedFile(bytes.fromhex(match.group(1)), match.group(2)))
        return found

    def user_hash(self) -> bytes:
        """The user hash aMule says it has (preferences.dat: a version byte, then the hash).

        Like eMule, aMule stamps its marker bytes (byte 5 = 14, byte 14 = 111)
        on the stored hash when it loads it; the hash it sends carries them.
        """
        raw = (self.workdir / "config" / "preferences.dat").read_bytes()
        if len(raw) < 17:
            raise AmuleError("aMule's preferences.dat holds no user hash yet")
        stamped = bytearray(raw[1:17])
        stamped[5], stamped[14] = 14, 111
        return bytes(stamped)

    def close(self) -> None:
        """Stop the daemon this object started; safe to call twice."""
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


def _same_fs(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False
