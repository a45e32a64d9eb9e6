"""A real time-stamp authority for tests and the demo: `openssl ts -reply` behind local HTTP.

It makes its own throwaway CA and TSA certificate (RSA, with the critical
extendedKeyUsage timeStamping that RFC 3161 §2.3 requires) in a temporary
folder, and serves RFC 3161 over HTTP on 127.0.0.1 at a port the system
picks. Every query is answered by the real OpenSSL command line, as a
TSA run by a unit could be. `close()` (or leaving the `with` block) stops
the server and removes the folder.

For tests of a client against a hostile TSA, `mode` makes it misbehave:
"garbage" (random bytes), "oversized" (more than any reply may be, with a
Content-Length), "oversized_stream" (the same without one), "replay" (the
previous reply again: its nonce is not the one asked), "wrong_imprint" (a
real token over another digest), "rejected" (a real rejection), "error"
(HTTP 500).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Mode = Literal[
    "honest",
    "garbage",
    "oversized",
    "oversized_stream",
    "replay",
    "wrong_imprint",
    "rejected",
    "error",
]
MAX_QUERY_BYTES = 64 * 1024
OPENSSL_TIMEOUT_S = 20.0
OVERSIZED_BYTES = 1024 * 1024
POLICY = "1.3.6.1.4.1.99999.1.1"  # a made-up policy under an unassigned arc

_CONFIG = """\
[ tsa ]
default_tsa = lab_tsa

[ lab_tsa ]
dir = {folder}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class TsaLabError(RuntimeError):
    """The lab TSA could not start or answer (openssl missing, failed or too slow)."""


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Atalaya lab (synthetic)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_certificates(folder: Path, now: dt.datetime) -> None:
    """ca.pem/ca.key (self-signed CA) and tsa.pem/tsa.key (the TSA's, signed by the CA)."""
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=30)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = _name("Atalaya lab TSA root CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = (
        x509.CertificateBuilder()
        .subject_name(_name("Atalaya lab TSA"))
        .issuer_name(ca_name)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "tsa.pem").write_bytes(tsa.public_bytes(serialization.Encoding.PEM))
    _write_key(folder / "ca.key", ca_key)
    _write_key(folder / "tsa.key", tsa_key)


class LabTsa:
    """A running lab TSA; use as a context manager."""

    def __init__(self, openssl: str = "openssl") -> None:
        found = shutil.which(openssl)
        if found is None:
            raise TsaLabError(f"{openssl} not found: the lab TSA runs the real 'openssl ts'")
        self.openssl = found
        self.mode: Mode = "honest"
        self.queries = 0
        self._last_reply: bytes | None = None
        self._lock = threading.Lock()
        self._folder: Path | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            raise TsaLabError("the lab TSA is not running")
        return self._folder

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM): `--tsa-ca`, `openssl ts -verify -CAfile`."""
        return self.folder / "ca.pem"

    @property
    def tsa_cert_file(self) -> Path:
        return self.folder / "tsa.pem"

    @property
    def config_file(self) -> Path:
        return self.folder / "tsa.cnf"

    @property
    def url(self) -> str:
        if self._server is None:
            raise TsaLabError("the lab TSA is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/tsa"

    def start(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="atalaya-tsa-"))
        try:
            make_certificates(self._folder, dt.datetime.now(dt.UTC))
            (self._folder / "serial").write_text("01\n")
            self.config_file.write_text(
                _CONFIG.format(folder=self._folder, policy=POLICY), encoding="ascii"
            )
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
            self._server.daemon_threads = True
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="lab-tsa", daemon=True
            )
            self._thread.start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

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

    def _openssl(self, *args: str) -> None:
        try:
            done = subprocess.run(
                [self.openssl, "ts", *args],
                capture_output=True,
                timeout=OPENSSL_TIMEOUT_S,
                check=False,
                env={**os.environ, "OPENSSL_CONF": str(self.config_file)},
            )
        except subprocess.TimeoutExpired as exc:
            raise TsaLabError(f"openssl ts {args[0]} took more than {OPENSSL_TIMEOUT_S} s") from exc
        if done.returncode != 0:
            raise TsaLabError(
                f"openssl ts {args[0]} failed: {done.stderr.decode(errors='replace')[:500]}"
            )

    def _query_for(self, digest_hex: str, algorithm: str, work: Path) -> Path:
        query = work / "other.tsq"
        self._openssl("-query", "-digest", digest_hex, f"-{algorithm}", "-cert", "-out", str(query))
        return query

    def reply(self, query_der: bytes) -> bytes:
        """The real `openssl ts -reply` to `query_der` (or the misbehaviour `mode` asks for)."""
        mode = self.mode
        if mode == "garbage":
            return secrets.token_bytes(200)
        if mode == "replay" and self._last_reply is not None:
            return self._last_reply
        with self._lock, tempfile.TemporaryDirectory(dir=self.folder) as temp:
            work = Path(temp)
            query = work / "query.tsq"
            query.write_bytes(query_der)
            if mode == "wrong_imprint":
                query = self._query_for(secrets.token_hex(32), "sha256", work)
            elif mode == "rejected":
                # A digest the TSA does not accept: OpenSSL answers with a rejection.
                query = self._query_for(secrets.token_hex(16), "md5", work)
            answer = work / "reply.tsr"
            self._openssl(
                "-reply",
                "-config",
                str(self.config_file),
                "-section",
                "lab_tsa",
                "-queryfile",
                str(query),
                "-out",
                str(answer),
            )
            der = answer.read_bytes()
        self.queries += 1
        if mode == "honest":
            self._last_reply = der
        return der


def _handler(tsa: LabTsa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length_text = self.headers.get("Content-Length", "")
            if not length_text.isdigit() or int(length_text) > MAX_QUERY_BYTES:
                self.send_error(400, "a time-stamp query with a Content-Length is expected")
                return
            body = self.rfile.read(int(length_text))
            if tsa.mode == "error":
                self.send_error(500, "lab TSA told to fail")
                return
            if tsa.mode in ("oversized", "oversized_stream"):
                self._oversized(declared=tsa.mode == "oversized")
                return
            try:
                der = tsa.reply(body)
            except TsaLabError as exc:
                self.send_error(500, str(exc)[:200])
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(der)))
            self.end_headers()
            self.wfile.write(der)

        def _oversized(self, *, declared: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            if declared:
                self.send_header("Content-Length", str(OVERSIZED_BYTES))
            self.end_headers()
            chunk = b"\x30" * 4096
            try:
                for _ in range(OVERSIZED_BYTES // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client hung up once it had seen enough: what it should do
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass  # tests read results, not an access log on stderr

    return Handler
