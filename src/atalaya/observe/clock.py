"""The system clock's offset from its time source, as the kernel knows it.

A defence expert will ask how good the times are. When NTP (or chrony)
disciplines the clock, the kernel keeps its latest estimate of the offset;
`ntp_adjtime` with no modes reads it without changing anything. When the
clock is not synchronised, the offset is unknown and we say so (None)
rather than record a number that means nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

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
