"""The clock's offset: chrony's report, a real chronyd and NTP exchanges on loopback, the bound."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.observe.clock import (
    ClockGuard,
    ClockReading,
    ClockSettings,
    ClockSourceError,
    measure_clock,
    ntp_offset,
    parse_chrony_tracking,
    refusal,
    split_server,
)
from tests.observe.clock_support import Chronyd, SkewedNtpServer

IP = "127.61.0.1"
NOW = datetime(2026, 12, 2, 15, 0, 0, 123456, tzinfo=UTC)


def ntp_only(server: str) -> ClockSettings:
    return ClockSettings(use_chrony=False, use_kernel=False, ntp_server=server)


TRACKING = """Reference ID    : C0A80001 (192.168.0.1)
Stratum         : 3
Ref time (UTC)  : Wed Dec 02 15:47:52 2026
System time     : {system} of NTP time
Last offset     : +0.000012345 seconds
RMS offset      : 0.000020000 seconds
Frequency       : 1.234 ppm slow
Residual freq   : +0.000 ppm
Skew            : 0.010 ppm
Root delay      : 0.001000000 seconds
Root dispersion : 0.000500000 seconds
Update interval : 64.2 seconds
Leap status     : {leap}
"""


@pytest.mark.parametrize(
    ("system", "offset"),
    [
        ("0.000123000 seconds fast", 0.000123),
        ("1.500000000 seconds slow", -1.5),
        ("0.000000000 seconds fast", 0.0),
    ],
)
def test_chrony_report_fast_is_ahead_slow_is_behind(system: str, offset: float) -> None:
    got, source = parse_chrony_tracking(TRACKING.format(system=system, leap="Normal"))
    assert got == offset
    assert source == "chrony: reference C0A80001 (192.168.0.1), stratum 3"


@pytest.mark.parametrize(
    "text",
    [
        TRACKING.format(system="0.1 seconds fast", leap="Not synchronised"),
        TRACKING.format(system="a lot fast", leap="Normal"),
        "506 Cannot talk to daemon\n",
        "",
    ],
)
def test_chrony_report_without_a_usable_offset_is_a_typed_error(text: str) -> None:
    with pytest.raises(ClockSourceError):
        parse_chrony_tracking(text)


@given(st.text(max_size=2000))
def test_chrony_parser_gives_an_offset_or_a_typed_error(text: str) -> None:
    try:
        offset, source = parse_chrony_tracking(text)
    except ClockSourceError:
        return
    assert isinstance(offset, float) and len(source) <= 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ntp.example", ("ntp.example", 123)),
        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
        ("[::1]:1234", ("::1", 1234)),
        ("[::1]", ("::1", 123)),
    ],
)
def test_server_names(text: str, expected: tuple[str, int]) -> None:
    assert split_server(text) == expected


@pytest.mark.parametrize("text", ["", "host:", "host:0", "host:99999", "[::1", "[::1]x", "a:b"])
def test_bad_server_names(text: str) -> None:
    with pytest.raises(ValueError, match="not an NTP server"):
        split_server(text)


def reading(offset: float | None) -> ClockReading:
    return ClockReading(offset, "ntp: test", NOW)


def test_bound_refuses_beyond_and_says_why() -> None:
    settings = ClockSettings(max_offset_s=1.0)
    assert refusal(reading(0.999), settings) is None
    assert refusal(reading(-1.0), settings) is None
    why = refusal(reading(-1.25), settings)
    assert why is not None
    assert "-1.250 s" in why and "1 s bound" in why and "not recorded as evidence" in why
    assert refusal(reading(None), settings) is None
    strict = ClockSettings(require_known=True)
    unknown = refusal(reading(None), strict)
    assert unknown is not None and "unknown" in unknown


def test_no_source_is_an_unknown_offset_that_says_why() -> None:
    got = measure_clock(
        ClockSettings(use_chrony=True, chronyc=("/nonexistent/chronyc",), use_kernel=False)
    )
    assert got.offset_s is None
    assert got.source.startswith("none: ") and "chronyc" in got.source


def test_skewed_ntp_server_is_measured_and_refused() -> None:
    with SkewedNtpServer(IP, skew_s=-5.0) as server:
        # The server is 5 s behind us: our clock is 5 s ahead.
        offset, source = ntp_offset(server.server, timeout=2)
        assert offset == pytest.approx(5.0, abs=0.2)
        assert source == f"ntp: {IP}:{server.port}, stratum 2"
        guard = ClockGuard(ntp_only(server.server))
        assert guard.reading.offset_s == pytest.approx(5.0, abs=0.2)
        why = guard.refusal()
        assert why is not None and re.search(r"\+(4\.9\d\d|5\.0\d\d) s off", why)
        assert server.server in why
        assert server.answered >= 2


def test_unsynchronised_ntp_server_gives_no_offset() -> None:
    with SkewedNtpServer(IP, skew_s=0.0, leap=3) as server:
        with pytest.raises(ClockSourceError, match="not synchronised"):
            ntp_offset(server.server, timeout=2)
        got = measure_clock(ntp_only(server.server))
        assert got.offset_s is None and "not synchronised" in got.source


def test_silent_ntp_server_is_a_typed_error_within_its_timeout() -> None:
    with SkewedNtpServer(IP, skew_s=0.0) as server:
        server.silence()
        with pytest.raises(ClockSourceError):
            ntp_offset(server.server, timeout=0.5)


needs_chrony = pytest.mark.skipif(not Chronyd.available(), reason="chrony is not installed")


@needs_chrony
def test_real_chronyd_over_ntp_and_chronyc(tmp_path: Path) -> None:
    with Chronyd(IP, tmp_path / "chrony") as chronyd:
        offset, source = ntp_offset(chronyd.server, timeout=2)
        # chronyd serves this machine's own clock: the offset is the loopback's noise.
        assert abs(offset) < 0.05
        assert source == f"ntp: {chronyd.server}, stratum 8"
        by_chronyc = measure_clock(ClockSettings(chronyc=chronyd.chronyc, use_kernel=False))
        assert by_chronyc.offset_s is not None and abs(by_chronyc.offset_s) < 0.05
        assert by_chronyc.source.startswith("chrony: reference 7F7F0101")
        # chrony first; a configured server only when chronyc cannot answer.
        fallback = measure_clock(
            ClockSettings(chronyc=("/nonexistent/chronyc",), ntp_server=chronyd.server)
        )
        assert fallback.source.startswith("ntp: ")
        assert refusal(fallback, ClockSettings()) is None
