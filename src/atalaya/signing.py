"""The unit's signature: PAdES on generated PDFs and detached CMS on packages.

The key stays where the unit keeps it: a PKCS#12 file, or a PKCS#11 token
(smart card, HSM; SoftHSM2 in the tests) that never lets the key out. Both
are opened through pyHanko, so the same signer serves a judicial request and
an evidence package's manifest.

Settings come from the environment so that no secret is ever a command-line
argument (visible to every user of the machine in the process list).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from asn1crypto import cms
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
from pyhanko.sign.signers.pdf_cms import Signer

from atalaya.errors import AtalayaError

P12_ENV = "ATALAYA_SIGN_P12"
P12_PASSWORD_ENV = "ATALAYA_SIGN_P12_PASSWORD"  # noqa: S105 - names of variables, not secrets
PKCS11_LIB_ENV = "ATALAYA_SIGN_PKCS11_LIB"
PKCS11_TOKEN_ENV = "ATALAYA_SIGN_PKCS11_TOKEN"  # noqa: S105
PKCS11_KEY_ENV = "ATALAYA_SIGN_PKCS11_KEY"
PKCS11_CERT_ENV = "ATALAYA_SIGN_PKCS11_CERT"
PKCS11_PIN_ENV = "ATALAYA_SIGN_PKCS11_PIN"


class SigningError(AtalayaError):
    """The unit's key could not be opened or could not sign."""


@dataclass(frozen=True)
class Pkcs12Key:
    """A key and certificate chain in a PKCS#12 file."""

    path: Path
    passphrase: bytes | None = None

    def describe(self) -> str:
        return f"PKCS#12 file {self.path}"


@dataclass(frozen=True)
class Pkcs11Key:
    """A key on a PKCS#11 token, with its certificate on the same token."""

    library: Path
    token_label: str
    key_label: str
    pin: str
    cert_label: str | None = None

    def describe(self) -> str:
        return f"PKCS#11 token {self.token_label!r}, key {self.key_label!r}"


SigningKey = Pkcs12Key | Pkcs11Key


def key_from_env(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The configured key, or None when the unit signs nothing.

    A half-made configuration is an error that names what is missing rather
    than a silent unsigned document.
    """
    env = os.environ if environ is None else environ
    p12 = env.get(P12_ENV)
    lib = env.get(PKCS11_LIB_ENV)
    if p12 and lib:
        raise SigningError(f"set either {P12_ENV} or {PKCS11_LIB_ENV}, not both")
    if p12:
        password = env.get(P12_PASSWORD_ENV)
        return Pkcs12Key(Path(p12), password.encode() if password is not None else None)
    if lib:
        needed = (PKCS11_TOKEN_ENV, PKCS11_KEY_ENV, PKCS11_PIN_ENV)
        missing = [name for name in needed if not env.get(name)]
        if missing:
            raise SigningError(f"{PKCS11_LIB_ENV} is set but {', '.join(missing)} is not")
        return Pkcs11Key(
            library=Path(lib),
            token_label=env[PKCS11_TOKEN_ENV],
            key_label=env[PKCS11_KEY_ENV],
            pin=env[PKCS11_PIN_ENV],
            cert_label=env.get(PKCS11_CERT_ENV) or None,
        )
    return None


@contextmanager
def open_signer(key: SigningKey) -> Iterator[Signer]:
    """A pyHanko signer for ``key``; a token's session is closed on exit."""
    if isinstance(key, Pkcs12Key):
        if not key.path.is_file():
            raise SigningError(f"{key.describe()}: no such file")
        try:
            loaded = signers.SimpleSigner.load_pkcs12(  # type: ignore[no-untyped-call]
                pfx_file=str(key.path), passphrase=key.passphrase
            )
        except (OSError, ValueError) as exc:
            raise SigningError(f"{key.describe()} could not be opened: {exc}") from exc
        if loaded is None:
            raise SigningError(
                f"{key.describe()} could not be opened: wrong password or not a key with"
                " its certificate"
            )
        yield loaded
        return
    if not key.library.is_file():
        raise SigningError(f"{key.describe()}: PKCS#11 library {key.library} not found")
    try:
        session = open_pkcs11_session(
            str(key.library),
            token_criteria=TokenCriteria(label=key.token_label),
            user_pin=key.pin,
        )
    except Exception as exc:  # the PKCS#11 layer raises many unrelated types
        raise SigningError(f"{key.describe()} could not be opened: {exc}") from exc
    try:
        try:
            signer = PKCS11Signer(
                session,
                cert_label=key.cert_label or key.key_label,
                key_label=key.key_label,
            )
        except Exception as exc:
            raise SigningError(f"{key.describe()}: {exc}") from exc
        yield signer
    finally:
        session.close()


def sign_detached(data: bytes, signer: Signer) -> bytes:
    """A detached CMS SignedData (DER) over ``data``, SHA-256.

    `openssl cms -verify -binary -inform DER -content DATA` accepts it.
    """
    try:
        info: cms.ContentInfo = asyncio.run(
            signer.async_sign_general_data(data, "sha256", detached=True)
        )
    except Exception as exc:
        raise SigningError(f"signing failed: {exc}") from exc
    return bytes(info.dump())


def sign_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    reason: str,
    location: str | None = None,
    field_name: str = "Firma",
) -> bytes:
    """``pdf`` with a PAdES baseline signature (B-B) added incrementally.

    The signed revision covers the whole document as generated, so a PDF/A
    file stays PDF/A; `pdfsig` reports the signature valid.
    """
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        reason=reason,
        location=location,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
    )
    out = BytesIO()
    try:
        writer = IncrementalPdfFileWriter(BytesIO(pdf))
        signers.sign_pdf(writer, meta, signer=signer, output=out)
    except Exception as exc:
        raise SigningError(f"signing the PDF failed: {exc}") from exc
    return out.getvalue()
