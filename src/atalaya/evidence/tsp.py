"""RFC 3161 time-stamp protocol, sans-I/O: the query to send, and what a reply must be.

Requests and replies are built and parsed by rfc3161-client (Trail of
Bits); this module adds the checks a client owes its evidence: the reply
is bounded, parses, is granted, carries the nonce we sent and the imprint
of our message (SHA-256), and, given the TSA's certificate chain, is
signed by a certificate for time stamping that chains to it.

What is stored is the whole DER TimeStampResp (status and token): the
library parses replies only, and `openssl ts -verify -in FILE` reads it as
it is (`-token_in` for the bare token, `StampReply.token_der`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from atalaya.errors import AtalayaError

SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
MAX_REPLY_BYTES = 256 * 1024  # a reply with a chain of a few certificates is a few KiB
MAX_CA_BYTES = 1024 * 1024


class TsaError(AtalayaError):
    """A time-stamp authority could not be used or gave a reply we must not keep."""


class TsaUnreachableError(TsaError):
    """No reply: the connection failed or timed out, or the HTTP status was not 200."""


class TsaReplyTooLargeError(TsaError):
    """The reply is larger than MAX_REPLY_BYTES."""


class TsaMalformedReplyError(TsaError):
    """The reply is not a DER TimeStampResp."""


class TsaRejectedError(TsaError):
    """The TSA answered with a status other than granted."""


class TsaNonceMismatchError(TsaError):
    """The token carries another nonce than our request: a replayed or someone else's reply."""


class TsaImprintMismatchError(TsaError):
    """The token stamps another message than ours, or with another hash than SHA-256."""


class TsaSignatureError(TsaError):
    """The token's signature or certificate does not check against the given CA."""


@dataclass(frozen=True)
class StampQuery:
    """One request: its DER, the nonce in it, and the message's SHA-256."""

    der: bytes
    nonce: int
    digest: bytes


@dataclass(frozen=True)
class StampReply:
    """A granted, checked reply: the DER to store and what it says."""

    der: bytes
    gen_time: datetime
    serial: int
    digest: bytes

    @property
    def token_der(self) -> bytes:
        return decode_timestamp_response(self.der).time_stamp_token()


def build_query(message: bytes) -> StampQuery:
    """A request for SHA-256(`message`) with a fresh nonce, asking for the TSA's certificate."""
    request = (
        TimestampRequestBuilder()
        .data(message)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    nonce = request.nonce
    assert nonce is not None  # asked for above
    return StampQuery(request.as_bytes(), nonce, hashlib.sha256(message).digest())


def parse_reply(der: bytes) -> TimeStampResponse:
    if len(der) > MAX_REPLY_BYTES:
        raise TsaReplyTooLargeError(
            f"the TSA's reply is {len(der)} bytes, more than {MAX_REPLY_BYTES}"
        )
    try:
        return decode_timestamp_response(der)
    except Exception as exc:  # the Rust parser raises ValueError and others
        raise TsaMalformedReplyError(
            f"the TSA's reply is not an RFC 3161 TimeStampResp: {str(exc)[:200]}"
        ) from exc


def _status(reply: TimeStampResponse) -> None:
    try:
        status = PKIStatus(reply.status)
    except ValueError:
        raise TsaRejectedError(f"the TSA answered with unknown status {reply.status}") from None
    # grantedWithMods is refused too: rfc3161-client's verifier (and so
    # verify-stamps) accepts granted only, and a token kept must verify later.
    if status != PKIStatus.GRANTED:
        texts = "; ".join(s[:200] for s in reply.status_string[:4])
        raise TsaRejectedError(
            f"the TSA refused the request ({status.name.lower()}{': ' + texts if texts else ''})"
        )


def check_reply(
    der: bytes,
    digest: bytes,
    nonce: int | None = None,
    roots: Sequence[x509.Certificate] = (),
) -> StampReply:
    """The reply `der` checked against what was asked; raises a TsaError subclass otherwise.

    `nonce`: the one we sent (None when re-checking a stored reply, whose
    nonce was checked when it came). `roots`: the TSA's CA certificates;
    without them the signature is not checked (only at stamping time, when
    no CA was given).
    """
    reply = parse_reply(der)
    _status(reply)
    try:
        info = reply.tst_info
        imprint = info.message_imprint
        algorithm, stamped = imprint.hash_algorithm, imprint.message
        token_nonce = info.nonce
        gen_time, serial = info.gen_time, info.serial_number
    except Exception as exc:
        raise TsaMalformedReplyError(f"the TSA's token cannot be read: {str(exc)[:200]}") from exc
    if algorithm != SHA256_OID or stamped != digest:
        raise TsaImprintMismatchError(
            "the TSA's token stamps another message than the one sent "
            f"({algorithm.dotted_string} {stamped.hex()[:64]}, expected SHA-256 {digest.hex()})"
        )
    if nonce is not None and token_nonce != nonce:
        raise TsaNonceMismatchError(
            "the TSA's token carries another nonce than the request: a replayed or foreign reply"
        )
    if roots:
        builder = VerifierBuilder()
        for root in roots:
            builder = builder.add_root_certificate(root)
        try:
            builder.build().verify(reply, digest)
        except VerificationError as exc:
            raise TsaSignatureError(f"the token does not verify: {str(exc)[:200]}") from exc
        except Exception as exc:
            raise TsaSignatureError(f"the token cannot be verified: {str(exc)[:200]}") from exc
    at = gen_time if gen_time.tzinfo is not None else gen_time.replace(tzinfo=UTC)
    return StampReply(der, at.astimezone(UTC), serial, digest)


def load_ca_file(data: bytes, name: str) -> list[x509.Certificate]:
    """Every PEM certificate in `data` (a CA file as `openssl -CAfile` takes), or one DER."""
    if len(data) > MAX_CA_BYTES:
        raise TsaError(f"{name} is larger than {MAX_CA_BYTES} bytes: not a CA file")
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise TsaError(f"{name} holds no readable certificate: {str(exc)[:200]}") from exc
    if not certs:
        raise TsaError(f"{name} holds no certificate")
    return certs
