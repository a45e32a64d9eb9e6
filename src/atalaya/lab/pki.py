"""A self-made CA and a unit's signing certificate, as a PKCS#12 file and on a SoftHSM2 token.

For the tests and the demo: everything is made at run time in a folder of
theirs, no key or certificate is committed, and a token lives in its own
SoftHSM2 token folder. A unit uses its own certificate (see atalaya.signing).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkcs11 import Attribute, CertificateType, ObjectClass

from atalaya.signing import Pkcs11Key, Pkcs12Key

SOFTHSM_LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")
P12_PASSWORD = b"unidad-de-prueba"
# The PINs of a throw-away token the lab makes; never a unit's.
TOKEN_PIN = "123456"  # noqa: S105
SO_PIN = "654321"


@dataclass(frozen=True)
class Pki:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path
    p12: Pkcs12Key
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ES"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Unidad de pruebas (sintética)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_pki(folder: Path) -> Pki:
    """A CA and a signing certificate it issued, valid from an hour ago for a day."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name("CA de pruebas Atalaya")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    # RSA: what units' certificates mostly are, and what SoftHSM2 signs
    # with a hash-and-sign mechanism (it has no CKM_ECDSA_SHA256).
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Unidad de pruebas — firma"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem = folder / "unit.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = folder / "unit-key.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    p12_path = folder / "unit.p12"
    p12_path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"unidad",
            key,
            cert,
            [ca_cert],
            serialization.BestAvailableEncryption(P12_PASSWORD),
        )
    )
    return Pki(
        ca_pem=ca_pem,
        cert_pem=cert_pem,
        key_pem=key_pem,
        p12=Pkcs12Key(p12_path, P12_PASSWORD),
        cert=cert,
    )


def softhsm_available() -> bool:
    return SOFTHSM_LIBRARY.is_file() and shutil.which("softhsm2-util") is not None


# The configuration this process's SoftHSM2 library was pointed at, once made.
_process_conf: Path | None = None


def make_softhsm_token(folder: Path, pki: Pki, label: str | None = None) -> Pkcs11Key:
    """A SoftHSM2 token holding the unit's key and certificate.

    SoftHSM2 reads SOFTHSM2_CONF once, when the library is first initialised
    in a process: the first call points the process at a token folder under
    `folder`, and later calls add their tokens there, each under its own
    label (two tokens with one label would make a key ambiguous).
    """
    global _process_conf  # noqa: PLW0603 - one library state per process, as SoftHSM2 has
    if _process_conf is None:
        tokens = folder / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        _process_conf = folder / "softhsm2.conf"
        _process_conf.write_text(
            f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        os.environ["SOFTHSM2_CONF"] = str(_process_conf)
    conf = _process_conf
    label = label or f"atalaya-{secrets.token_hex(4)}"
    util = shutil.which("softhsm2-util") or "softhsm2-util"
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", TOKEN_PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        env=env,
        timeout=30,
    )
    subprocess.run(
        [
            util,
            "--import",
            str(pki.key_pem),
            "--token",
            label,
            "--label",
            "firma",
            "--id",
            "01",
            "--pin",
            TOKEN_PIN,
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=30,
    )
    _store_certificate(label, pki.cert)
    return Pkcs11Key(library=SOFTHSM_LIBRARY, token_label=label, key_label="firma", pin=TOKEN_PIN)


def _store_certificate(label: str, cert: x509.Certificate) -> None:
    # softhsm2-util imports keys only; the certificate goes in through PKCS#11.
    lib = pkcs11.lib(str(SOFTHSM_LIBRARY))
    token = lib.get_token(token_label=label)
    with token.open(rw=True, user_pin=TOKEN_PIN) as session:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.LABEL: "firma",
                Attribute.ID: b"\x01",
                Attribute.SUBJECT: cert.subject.public_bytes(),
                Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
            }
        )
