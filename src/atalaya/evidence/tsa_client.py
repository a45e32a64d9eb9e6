"""Sending a query to a TSA over HTTP (RFC 3161 §3.4): the only I/O of stamping.

The reply is read as a stream and dropped past MAX_REPLY_BYTES, and the
whole exchange has a deadline, so a hostile or broken TSA costs at most
that much memory and time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx
from cryptography import x509

from atalaya.evidence.tsp import (
    MAX_REPLY_BYTES,
    StampReply,
    TsaError,
    TsaReplyTooLargeError,
    TsaUnreachableError,
    build_query,
    check_reply,
)

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
DEFAULT_TIMEOUT_S = 20.0


def check_url(url: str) -> str:
    """`url` if it is an http(s) URL; TsaError otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise TsaError(f"the TSA URL {url[:200]!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TsaError(f"the TSA URL {url[:200]!r} must start with http:// or https://")
    return url


def post_query(
    url: str,
    der: bytes,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_bytes: int = MAX_REPLY_BYTES,
) -> bytes:
    """POST `der` to `url` and return the reply's body, bounded in size and time."""
    check_url(url)
    deadline = time.monotonic() + timeout
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("POST", url, content=der, headers={"Content-Type": QUERY_TYPE}) as resp,
        ):
            if resp.status_code != 200:
                raise TsaUnreachableError(f"the TSA at {url} answered HTTP {resp.status_code}")
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TsaReplyTooLargeError(
                    f"the TSA at {url} announces a {declared}-byte reply, more than {max_bytes}"
                )
            body = bytearray()
            for chunk in resp.iter_raw():
                body += chunk
                if len(body) > max_bytes:
                    raise TsaReplyTooLargeError(
                        f"the TSA at {url} sent more than {max_bytes} bytes"
                    )
                if time.monotonic() > deadline:
                    raise TsaUnreachableError(f"the TSA at {url} took more than {timeout:g} s")
            return bytes(body)
    except httpx.TimeoutException as exc:
        raise TsaUnreachableError(f"the TSA at {url} did not answer in {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise TsaUnreachableError(f"the TSA at {url} cannot be reached: {exc}") from exc


def stamp(
    url: str,
    message: bytes,
    *,
    roots: Sequence[x509.Certificate] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
) -> StampReply:
    """Have the TSA at `url` stamp SHA-256(`message`); the reply checked (tsp.check_reply)."""
    query = build_query(message)
    der = post_query(url, query.der, timeout=timeout)
    return check_reply(der, query.digest, query.nonce, roots)
