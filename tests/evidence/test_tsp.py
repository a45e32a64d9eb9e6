"""The RFC 3161 client's checks without a TSA: what it sends, and replies that are not replies."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.evidence.tsp import (
    MAX_REPLY_BYTES,
    TsaError,
    TsaMalformedReplyError,
    TsaReplyTooLargeError,
    build_query,
    check_reply,
    load_ca_file,
)


def test_query_asks_sha256_of_the_message_with_a_fresh_nonce() -> None:
    message = b"\x01" * 32
    first, second = build_query(message), build_query(message)
    assert first.digest == hashlib.sha256(message).digest()
    assert first.digest in first.der  # the imprint travels as is
    assert first.nonce != second.nonce
    assert first.der != second.der
    # SEQUENCE, version 1, SHA-256's OID (2.16.840.1.101.3.4.2.1) in the imprint.
    assert first.der[0] == 0x30
    assert bytes.fromhex("0609608648016503040201") in first.der


@given(st.binary(max_size=3000))
def test_any_bytes_give_a_typed_error_never_a_crash(data: bytes) -> None:
    with pytest.raises(TsaError):
        check_reply(data, b"\x00" * 32, 1)


def test_oversized_reply_is_refused_before_parsing() -> None:
    with pytest.raises(TsaReplyTooLargeError):
        check_reply(b"\x30" * (MAX_REPLY_BYTES + 1), b"\x00" * 32, 1)
    with pytest.raises(TsaMalformedReplyError):
        check_reply(b"", b"\x00" * 32, 1)


@given(st.binary(max_size=500))
def test_ca_files_that_are_not_certificates_give_a_typed_error(data: bytes) -> None:
    with pytest.raises(TsaError):
        load_ca_file(data, "ca.pem")
    with pytest.raises(TsaError):
        load_ca_file(b"-----BEGIN CERTIFICATE-----\n" + data, "ca.pem")
