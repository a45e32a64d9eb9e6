"""The unit's signature, checked by tools that know nothing of Atalaya: openssl and pdfsig."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import typst

from atalaya.signing import (
    P12_ENV,
    P12_PASSWORD_ENV,
    PKCS11_LIB_ENV,
    PKCS11_PIN_ENV,
    PKCS11_TOKEN_ENV,
    Pkcs11Key,
    Pkcs12Key,
    SigningError,
    key_from_env,
    open_signer,
    sign_detached,
    sign_pdf,
)
from tests.support.pki import Pki

DATA = "manifiesto sintético: 0123456789abcdef\n".encode()


@pytest.fixture
def pki(unit_pki: Pki) -> Pki:
    return unit_pki


@pytest.fixture
def token(unit_token: Pkcs11Key) -> Pkcs11Key:
    return unit_token


def _openssl_cms_verify(tmp_path: Path, pki: Pki, data: bytes, signature: bytes) -> bool:
    content = tmp_path / "content.bin"
    content.write_bytes(data)
    sig = tmp_path / "content.p7s"
    sig.write_bytes(signature)
    run = subprocess.run(
        [
            "openssl", "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(sig), "-content", str(content),
            "-CAfile", str(pki.ca_pem), "-purpose", "any", "-out", "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    return run.returncode == 0 and "Verification successful" in run.stderr


def _a_pdf() -> bytes:
    source = b'#set document(title: "Prueba")\n= Solicitud de prueba\nTexto sint\xc3\xa9tico.\n'
    pdf = typst.compile(source, format="pdf")
    assert isinstance(pdf, bytes)
    return pdf


def _pdfsig(tmp_path: Path, pdf: bytes) -> str:
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    run = subprocess.run(
        ["pdfsig", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    return run.stdout + run.stderr


needs_pdfsig = pytest.mark.skipif(
    shutil.which("pdfsig") is None, reason="poppler-utils (pdfsig) is not installed"
)


def test_detached_signature_from_a_pkcs12_file_verifies_with_openssl(
    tmp_path: Path, pki: Pki
) -> None:
    with open_signer(pki.p12) as signer:
        signature = sign_detached(DATA, signer)
    assert _openssl_cms_verify(tmp_path, pki, DATA, signature)
    assert not _openssl_cms_verify(tmp_path, pki, DATA + b"x", signature)


def test_detached_signature_from_a_softhsm_token_verifies_with_openssl(
    tmp_path: Path, pki: Pki, token: Pkcs11Key
) -> None:
    with open_signer(token) as signer:
        signature = sign_detached(DATA, signer)
    assert _openssl_cms_verify(tmp_path, pki, DATA, signature)
    assert not _openssl_cms_verify(tmp_path, pki, DATA[:-1], signature)


@needs_pdfsig
@pytest.mark.parametrize("source", ["p12", "token"])
def test_pdf_signature_is_valid_for_pdfsig(
    tmp_path: Path, pki: Pki, request: pytest.FixtureRequest, source: str
) -> None:
    key = pki.p12 if source == "p12" else request.getfixturevalue("token")
    with open_signer(key) as signer:
        signed = sign_pdf(_a_pdf(), signer, reason="Solicitud judicial", location="Madrid")
    report = _pdfsig(tmp_path, signed)
    assert "Signature is Valid" in report, report
    tampered = bytearray(signed)
    # A byte inside the signed range (the first revision's content) changes.
    at = signed.index(b"Solicitud de prueba") if b"Solicitud de prueba" in signed else 200
    tampered[at] ^= 0x01
    assert "Signature is Valid" not in _pdfsig(tmp_path, bytes(tampered))


def test_wrong_password_is_one_clear_error(pki: Pki) -> None:
    with (
        pytest.raises(SigningError, match="could not be opened"),
        open_signer(Pkcs12Key(pki.p12.path, b"wrong")),
    ):
        pass


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with (
        pytest.raises(SigningError, match="no such file"),
        open_signer(Pkcs12Key(tmp_path / "absent.p12")),
    ):
        pass


def test_wrong_pin_is_one_clear_error(token: Pkcs11Key) -> None:
    bad = Pkcs11Key(token.library, token.token_label, token.key_label, pin="000000")
    with pytest.raises(SigningError, match="could not be opened"), open_signer(bad):
        pass


def test_settings_from_the_environment() -> None:
    assert key_from_env({}) is None
    key = key_from_env({P12_ENV: "/x/unit.p12", P12_PASSWORD_ENV: "s"})
    assert key == Pkcs12Key(Path("/x/unit.p12"), b"s")
    with pytest.raises(SigningError, match="not both"):
        key_from_env({P12_ENV: "/x", PKCS11_LIB_ENV: "/y"})
    with pytest.raises(SigningError, match=PKCS11_PIN_ENV):
        key_from_env({PKCS11_LIB_ENV: "/y", PKCS11_TOKEN_ENV: "t", "ATALAYA_SIGN_PKCS11_KEY": "k"})
    token = key_from_env(
        {
            PKCS11_LIB_ENV: "/y",
            PKCS11_TOKEN_ENV: "t",
            "ATALAYA_SIGN_PKCS11_KEY": "k",
            PKCS11_PIN_ENV: "1",
        }
    )
    assert token == Pkcs11Key(Path("/y"), "t", "k", "1")
