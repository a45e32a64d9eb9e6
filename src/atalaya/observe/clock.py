"""The observer's clock against its time source: measured, recorded, and a bound on it.

A defence expert will ask how good the times are. Every sighting records
the offset of the observer's clock from its time source (positive: the
observer's clock is ahead), measured at the start of a run and again
periodically, from the first of these that answers:

1. chrony's own status (`chronyc -n tracking`: "System time : X seconds
   fast/slow of NTP time"), where chronyd runs and is synchronised;
2. a configured NTP server, asked with a real NTP client (ntplib);
3. the kernel's estimate (`ntp_adjtime` with no modes reads it without
   changing anything), when NTP disciplines the clock.

When none answers, the offset is unknown and we say so (None) rather than
record a number that means nothing. A measured offset beyond the bound
(default 1 s) means the times would mislead: sightings are then not
recorded as evidence (`ClockGuard.refusal` says why). docs/clock.md has the
operator's view.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import ntplib

DEFAULT_MAX_OFFSET_S = 1.0
DEFAULT_INTERVAL_S = 300.0
CHRONYC_TRACKING = ("chronyc", "-n", "tracking")
NTP_PORT = 123
_MAX_SOURCE = 200  # characters of a source's description (a server's reply goes in it)
_MAX_CHRONY_OUTPUT = 64 * 1024

_TIME_ERROR = 5  # clock not synchronised
_STA_NANO = 0x2000


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> (Linux, glibc); the padding is part of the ABI.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


def clock_offset_s() -> float | None:
    """Seconds the clock is ahead of its source (negative: behind); None if unknown."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = libc.ntp_adjtime(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0 or state == _TIME_ERROR:
        return None
    scale = 1e-9 if timex.status & _STA_NANO else 1e-6
    return float(timex.offset) * scale


# --- measuring ----------------------------------------------------------------


@dataclass(frozen=True)
class ClockReading:
    """One measurement of the clock's offset from its source."""

    offset_s: float | None  # positive: our clock is ahead; None: unknown
    source: str  # "chrony: …", "ntp: host:port …", "kernel", or "none: why"
    measured_at: datetime  # UTC, by our own clock


@dataclass(frozen=True)
class ClockSettings:
    """Where the offset comes from, how often, and how much of it is too much."""

    use_chrony: bool = True
    chronyc: tuple[str, ...] = CHRONYC_TRACKING
    ntp_server: str | None = None  # "host" or "host:port" ("[v6]:port")
    use_kernel: bool = True
    max_offset_s: float = DEFAULT_MAX_OFFSET_S
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = 3.0
    # Refuse evidence also when no source gives an offset at all.
    require_known: bool = False


class ClockSourceError(Exception):
    """A time source gave no usable offset; the message says why."""


_TRACKING_LINE = re.compile(r"^\s*([A-Za-z ()]+?)\s*:\s*(.*?)\s*$")
_SYSTEM_TIME = re.compile(r"^([0-9]+(?:\.[0-9]+)?) seconds (fast|slow) of NTP time$")


def parse_chrony_tracking(text: str) -> tuple[float, str]:
    """(offset, source description) from `chronyc -n tracking` output; ClockSourceError if none.

    "fast" is our clock ahead (a positive offset), "slow" behind. A daemon
    that is not synchronised ("Leap status : Not synchronised") has no
    offset worth recording.
    """
    fields: dict[str, str] = {}
    for line in text[:_MAX_CHRONY_OUTPUT].splitlines():
        match = _TRACKING_LINE.match(line)
        if match:
            fields[match.group(1)] = match.group(2)
    leap = fields.get("Leap status")
    if leap is None or "System time" not in fields:
        raise ClockSourceError("chronyc gave no tracking report")
    if leap.lower() == "not synchronised":
        raise ClockSourceError("chronyd is not synchronised")
    system = _SYSTEM_TIME.match(fields["System time"])
    if system is None:
        raise ClockSourceError(f"chronyc: unreadable system time {fields['System time'][:80]!r}")
    offset = float(system.group(1)) * (1 if system.group(2) == "fast" else -1)
    if not math.isfinite(offset):
        raise ClockSourceError("chronyc: offset is not a number")
    reference = fields.get("Reference ID", "?")
    stratum = fields.get("Stratum", "?")
    return offset, _bounded(f"chrony: reference {reference}, stratum {stratum}")


def chrony_offset(command: Sequence[str], timeout: float) -> tuple[float, str]:
    """Ask chronyd for its tracking report; ClockSourceError when it cannot answer."""
    if not command or shutil.which(command[0]) is None:
        raise ClockSourceError("chronyc is not installed")
    try:
        # A fixed command from the settings, no shell.
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClockSourceError(f"chronyc: {exc}") from exc
    if done.returncode != 0:
        raise ClockSourceError(f"chronyc: {done.stderr.strip()[:200] or done.returncode}")
    return parse_chrony_tracking(done.stdout)


def split_server(server: str) -> tuple[str, int]:
    """("host", port) from "host", "host:port" or "[v6]:port"; ValueError if malformed."""
    text = server.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not an NTP server: {server!r}")
        port = rest[1:] if rest else str(NTP_PORT)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, str(NTP_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not an NTP server: {server!r}")
    return host, int(port)


def ntp_offset(server: str, timeout: float) -> tuple[float, str]:
    """Ask an NTP server (RFC 5905 client mode) how far our clock is off.

    ntplib's offset is what must be added to our clock to reach the
    server's; ours is the opposite sign (positive: we are ahead).
    """
    host, port = split_server(server)
    try:
        stats = ntplib.NTPClient().request(host, version=4, port=port, timeout=timeout)
    except (ntplib.NTPException, OSError) as exc:
        raise ClockSourceError(f"NTP server {server}: {exc}") from exc
    if stats.leap == 3 or not 0 < stats.stratum < 16:
        raise ClockSourceError(f"NTP server {server} is not synchronised")
    offset = -float(stats.offset)
    if not math.isfinite(offset):
        raise ClockSourceError(f"NTP server {server}: offset is not a number")
    return offset, _bounded(f"ntp: {host}:{port}, stratum {stats.stratum}")


def measure_clock(
    settings: ClockSettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> ClockReading:
    """The clock's offset from the first source that answers (see the module docstring).

    Blocking (a subprocess, a UDP exchange): asyncio callers run it in a thread.
    """
    why: list[str] = []
    if settings.use_chrony:
        try:
            offset, source = chrony_offset(settings.chronyc, settings.timeout_s)
            return ClockReading(offset, source, now())
        except ClockSourceError as exc:
            why.append(str(exc))
    if settings.ntp_server:
        try:
            offset, source = ntp_offset(settings.ntp_server, settings.timeout_s)
            return ClockReading(offset, source, now())
        except (ClockSourceError, ValueError) as exc:
            why.append(str(exc))
    if settings.use_kernel:
        kernel = clock_offset_s()
        if kernel is not None:
            return ClockReading(kernel, "kernel: ntp_adjtime", now())
        why.append("the kernel clock is not synchronised")
    return ClockReading(
        None, _bounded("none: " + "; ".join(why or ["no source configured"])), now()
    )


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_SOURCE else text[: _MAX_SOURCE - 1] + "…"


# --- the bound -------------------------------------------------------------------


def refusal(reading: ClockReading, settings: ClockSettings) -> str | None:
    """Why sightings stamped with this reading are not evidence; None when they are."""
    if reading.offset_s is None:
        if settings.require_known:
            return (
                f"the clock's offset is unknown ({reading.source}) and a known offset is "
                "required: sightings are not recorded as evidence"
            )
        return None
    if abs(reading.offset_s) > settings.max_offset_s:
        return (
            f"the clock is {reading.offset_s:+.3f} s off its time source ({reading.source}), "
            f"beyond the {settings.max_offset_s:g} s bound: sightings are not recorded as "
            "evidence until it is corrected"
        )
    return None


class ClockGuard:
    """The latest reading of a run, shared by its tasks; measured again on demand."""

    def __init__(
        self,
        settings: ClockSettings,
        measure: Callable[[ClockSettings], ClockReading] = measure_clock,
    ) -> None:
        self.settings = settings
        self._measure = measure
        self._lock = threading.Lock()
        self._reading: ClockReading | None = None

    def measure(self) -> ClockReading:
        """Measure now (blocking) and keep it as the latest reading."""
        reading = self._measure(self.settings)
        with self._lock:
            self._reading = reading
        return reading

    @property
    def reading(self) -> ClockReading:
        """The latest reading (measured on first use)."""
        with self._lock:
            reading = self._reading
        return reading if reading is not None else self.measure()

    def refusal(self) -> str | None:
        return refusal(self.reading, self.settings)
