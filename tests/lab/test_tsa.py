"""The lab TSA is a real `openssl ts -reply`, and a hostile one only ever gives typed errors."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.evidence.tsa_client import stamp
from atalaya.evidence.tsp import (
    TsaError,
    TsaImprintMismatchError,
    TsaMalformedReplyError,
    TsaNonceMismatchError,
    TsaRejectedError,
    TsaReplyTooLargeError,
    TsaSignatureError,
    TsaUnreachableError,
    check_reply,
    load_ca_file,
)
from atalaya.lab.tsa import LabTsa, Mode

pytestmark = pytest.mark.lab

MESSAGE = bytes(range(32))


@pytest.fixture(scope="module")
def tsa() -> Iterator[LabTsa]:
    with LabTsa() as running:
        yield running


@pytest.fixture(autouse=True)
def honest_again(tsa: LabTsa) -> Iterator[None]:
    yield
    tsa.mode = "honest"


def roots_of(tsa: LabTsa) -> list[x509.Certificate]:
    return load_ca_file(tsa.ca_file.read_bytes(), "ca.pem")


def test_tsa_certificate_is_for_time_stamping_only(tsa: LabTsa) -> None:
    cert = x509.load_pem_x509_certificate(tsa.tsa_cert_file.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert tsa.url.startswith("http://127.0.0.1:")


def test_openssl_accepts_the_token_it_made(tsa: LabTsa, tmp_path: Path) -> None:
    reply = stamp(tsa.url, MESSAGE, roots=roots_of(tsa))
    (tmp_path / "reply.tsr").write_bytes(reply.der)
    (tmp_path / "token.tst").write_bytes(reply.token_der)
    (tmp_path / "message.bin").write_bytes(MESSAGE)
    ca = str(tsa.ca_file)
    for args in (
        ["-data", str(tmp_path / "message.bin"), "-in", str(tmp_path / "reply.tsr")],
        ["-digest", reply.digest.hex(), "-in", str(tmp_path / "token.tst"), "-token_in"],
    ):
        done = subprocess.run(
            ["openssl", "ts", "-verify", *args, "-CAfile", ca],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    other = tmp_path / "other.bin"
    other.write_bytes(MESSAGE[::-1])
    command = ["openssl", "ts", "-verify", "-data", str(other)]
    command += ["-in", str(tmp_path / "reply.tsr"), "-CAfile", ca]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("garbage", TsaMalformedReplyError),
        ("oversized", TsaReplyTooLargeError),
        ("oversized_stream", TsaReplyTooLargeError),
        ("replay", TsaNonceMismatchError),
        ("wrong_imprint", TsaImprintMismatchError),
        ("rejected", TsaRejectedError),
        ("error", TsaUnreachableError),
    ],
)
def test_a_hostile_tsa_gives_a_typed_error(tsa: LabTsa, mode: str, error: type[TsaError]) -> None:
    stamp(tsa.url, MESSAGE)  # an honest reply first: the one "replay" sends again
    tsa.mode = cast(Mode, mode)
    with pytest.raises(error):
        stamp(tsa.url, MESSAGE, roots=roots_of(tsa), timeout=10)


def test_another_ca_does_not_vouch_for_the_token(tsa: LabTsa) -> None:
    reply = stamp(tsa.url, MESSAGE)
    with LabTsa() as other, pytest.raises(TsaSignatureError):
        check_reply(reply.der, reply.digest, None, roots_of(other))
    assert check_reply(reply.der, reply.digest, None, roots_of(tsa)).gen_time == reply.gen_time


def test_every_damaged_reply_gives_a_typed_error(tsa: LabTsa) -> None:
    reply = stamp(tsa.url, MESSAGE)
    roots = roots_of(tsa)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(reply.der) - 1), st.integers(1, 255), st.booleans())
    def damaged(position: int, flip: int, cut: bool) -> None:
        data = reply.der[:position] if cut else bytearray(reply.der)
        if not cut:
            assert isinstance(data, bytearray)
            data[position] ^= flip
        try:
            check_reply(bytes(data), reply.digest, None, roots)
        except TsaError:
            return
        # A flip the signature does not cover (an unsigned field's padding, say)
        # must still leave a reply that says the same.
        assert check_reply(bytes(data), reply.digest, None, roots).digest == reply.digest

    damaged()


def test_closing_stops_the_server_and_removes_the_folder() -> None:
    with LabTsa() as tsa:
        folder, port = tsa.folder, int(tsa.url.rsplit(":", 1)[1].split("/")[0])
        assert (folder / "tsa.key").exists()
    assert not folder.exists()
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", port)) != 0
